;; fork of a 64-bit memory, which wasmix cannot lay out copy-on-write: ENOTSUP (58), not a
;; child without memory. The asyncify entry points are stand-ins: _start runs again on the
;; "rewind" and then sees the outcome.
(module
  (import "wasix_32v1" "proc_fork" (func $fork (param i32 i32) (result i32)))
  (import "wasix_32v1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") i64 1)
  (global $sp (export "__stack_pointer") (mut i32) (i32.const 4096))
  (global $again (mut i32) (i32.const 0))
  (func (export "asyncify_start_unwind") (param i32))
  (func (export "asyncify_stop_unwind"))
  (func (export "asyncify_start_rewind") (param i32))
  (func (export "asyncify_stop_rewind"))
  (func (export "_start")
    (if (global.get $again)
      (then (call $exit (call $fork (i32.const 1) (i32.const 16)))))
    (global.set $again (i32.const 1))
    (drop (call $fork (i32.const 1) (i32.const 16)))))
