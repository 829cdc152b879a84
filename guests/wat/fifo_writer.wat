;; Prints "opening", then opens `fifo` in the first preopen for writing, which waits for a
;; reader, and writes "hi\n" to it. Exit 10 if the open fails, 11 if the write does.
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "fifo")
  (data (i32.const 120) "opening\n")
  (data (i32.const 140) "hi\n")
  (func (export "_start")
    (i32.store (i32.const 300) (i32.const 120))
    (i32.store (i32.const 304) (i32.const 8))
    (drop (call $write (i32.const 1) (i32.const 300) (i32.const 1) (i32.const 308)))
    ;; rights FD_WRITE (1 << 6)
    (if (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 4) (i32.const 0)
                    (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 200))
      (then (call $exit (i32.const 10))))
    (i32.store (i32.const 300) (i32.const 140))
    (i32.store (i32.const 304) (i32.const 3))
    (if (call $write (i32.load (i32.const 200)) (i32.const 300) (i32.const 1) (i32.const 308))
      (then (call $exit (i32.const 11))))))
