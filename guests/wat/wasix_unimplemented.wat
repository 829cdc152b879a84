;; A WASIX call wasmix lacks links and answers ENOSYS (52); `path_open2` opens with
;; close-on-exec. Exit codes 10+ name a failure. Needs a directory mounted as the first preopen.
(module
  (import "wasix_32v1" "port_addr_clear" (func $port_addr_clear (result i32)))
  (import "wasix_32v1" "path_open2"
    (func $open2 (param i32 i32 i32 i32 i32 i64 i64 i32 i32 i32) (result i32)))
  (import "wasix_32v1" "fd_fdflags_get" (func $fdflags (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "made")
  (func (export "_start")
    (if (i32.ne (call $port_addr_clear) (i32.const 52)) (then (call $exit (i32.const 10))))
    ;; create "made" under fd 3 (oflags CREAT=1), rights: read+write, fdflagsext CLOEXEC
    (if (call $open2 (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 4) (i32.const 1)
                     (i64.const 66) (i64.const 0) (i32.const 0) (i32.const 1) (i32.const 200))
      (then (call $exit (i32.const 11))))
    (if (call $fdflags (i32.load (i32.const 200)) (i32.const 204)) (then (call $exit (i32.const 12))))
    (if (i32.ne (i32.load16_u (i32.const 204)) (i32.const 1)) (then (call $exit (i32.const 13))))))
