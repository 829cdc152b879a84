;; A module with asyncify's entry points that corrupts asyncify's data pointer while
;; "unwinding": wasmix must end it with a clear error, not trust the pointer.
(module
  (import "wasix_32v1" "proc_fork" (func $fork (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $sp (export "__stack_pointer") (mut i32) (i32.const 4096))
  (func (export "asyncify_start_unwind") (param i32)
    (i32.store (local.get 0) (i32.const 0x7ffffff0)))
  (func (export "asyncify_stop_unwind"))
  (func (export "asyncify_start_rewind") (param i32))
  (func (export "asyncify_stop_rewind"))
  (func (export "_start") (drop (call $fork (i32.const 1) (i32.const 0)))))
