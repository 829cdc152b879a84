;; WASI paths are UTF-8 strings: creating a file named by the bytes "a\xffb" must answer
;; EILSEQ (25), as under wasmtime, and make nothing; exits with what path_open answered
;; (0 if it made the file).
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "a\ffb")
  (func (export "_start")
    ;; O_CREAT (1), rights FD_WRITE (1 << 6)
    (call $exit (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 3) (i32.const 1)
                            (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 200)))))
