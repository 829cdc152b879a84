;; The 2023-era WASIX process calls: `proc_spawn` with a piped stdout (handles returned) and
;; the two-argument `proc_join`. Echoes what the child wrote; exit codes 10+ name a failure.
;; Needs the guest directory mounted at /bin.
(module
  (import "wasix_32v1" "proc_spawn"
    (func $spawn (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasix_32v1" "proc_join" (func $join (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "/bin/child.wasm")
  (data (i32.const 200) "child\0aecho\0aold-abi")
  (data (i32.const 300) ".")
  (func (export "_start")
    ;; stdin inherit (1), stdout piped (0), stderr inherit (1); handles at 400
    (if (call $spawn (i32.const 100) (i32.const 15) (i32.const 0)
                     (i32.const 200) (i32.const 20) (i32.const 0) (i32.const 0)
                     (i32.const 1) (i32.const 0) (i32.const 1)
                     (i32.const 300) (i32.const 1) (i32.const 400))
      (then (call $exit (i32.const 10))))
    (if (i32.ne (i32.load8_u (i32.const 412)) (i32.const 1)) (then (call $exit (i32.const 11))))
    (i32.store (i32.const 600) (i32.const 700))
    (i32.store (i32.const 604) (i32.const 64))
    (if (call $read (i32.load (i32.const 416)) (i32.const 600) (i32.const 1) (i32.const 608))
      (then (call $exit (i32.const 12))))
    (i32.store (i32.const 604) (i32.load (i32.const 608)))
    (drop (call $write (i32.const 1) (i32.const 600) (i32.const 1) (i32.const 608)))
    ;; join that pid with the old form: option<pid> at 500, exit code at 508
    (i32.store8 (i32.const 500) (i32.const 1))
    (i32.store (i32.const 504) (i32.load (i32.const 400)))
    (if (call $join (i32.const 500) (i32.const 508)) (then (call $exit (i32.const 13))))
    (if (i32.load (i32.const 508)) (then (call $exit (i32.const 14))))))
