;; What a shell's `> /dev/null` and fopen("/dev/null", "w") do: open /dev/null write-only
;; with O_CREAT|O_TRUNC, then write to it. Linux allows it; run with one mount at /data so
;; the synthetic /dev is descriptor 4. Exit 10 if the open fails, 11 if the write does.
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "null")
  (func (export "_start")
    ;; oflags CREAT (1) | TRUNC (8); rights FD_WRITE (1 << 6) | FD_FILESTAT_SET_SIZE (1 << 22)
    (if (call $open (i32.const 4) (i32.const 0) (i32.const 100) (i32.const 4) (i32.const 9)
                    (i64.const 0x400040) (i64.const 0) (i32.const 0) (i32.const 200))
      (then (call $exit (i32.const 10))))
    (i32.store (i32.const 300) (i32.const 100))
    (i32.store (i32.const 304) (i32.const 4))
    (if (call $write (i32.load (i32.const 200)) (i32.const 300) (i32.const 1) (i32.const 308))
      (then (call $exit (i32.const 11))))))
