;; asyncify's entry points with the wrong types: refused at load with a clear error.
(module
  (import "wasix_32v1" "proc_fork" (func $fork (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "asyncify_start_unwind") (param i64))
  (func (export "asyncify_stop_unwind"))
  (func (export "asyncify_start_rewind") (param i32))
  (func (export "asyncify_stop_rewind"))
  (func (export "_start") (drop (call $fork (i32.const 1) (i32.const 0)))))
