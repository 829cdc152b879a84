;; The 2022/2023-era WASIX process calls: `proc_spawn` with a piped stdout (handles
;; returned) and the two-parameter `proc_join`, whose layout follows Wasmer's
;; lib/wasi/src/syscalls/wasix/proc_join.rs at commit 1405d7ff9909fbacf37dbff8cafccf1c0d3fc39e:
;; `pid_ptr` holds a plain u32 pid (u32::MAX = any child) and receives the joined pid
;; (only when joining any); `exit_code_ptr` receives the exit code as a u32; with no child
;; both get u32::MAX and ECHILD (WASI errno 12), and ECHILD is returned.
;; Echoes what the first child wrote; exit codes 10+ name a failure. Needs the guest
;; directory mounted at /bin.
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
  (data (i32.const 240) "child\0aexit\0a7")
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
    ;; Join that pid: a plain u32 at 500, a sentinel after it that must survive.
    (i32.store (i32.const 500) (i32.load (i32.const 400)))
    (i32.store (i32.const 504) (i32.const 0x5eed))
    (i32.store (i32.const 508) (i32.const 99))
    (if (call $join (i32.const 500) (i32.const 508)) (then (call $exit (i32.const 13))))
    (if (i32.load (i32.const 508)) (then (call $exit (i32.const 14))))
    (if (i32.ne (i32.load (i32.const 504)) (i32.const 0x5eed)) (then (call $exit (i32.const 15))))
    ;; A child that exits 7, joined as "any": its pid and its raw exit code come back.
    (if (call $spawn (i32.const 100) (i32.const 15) (i32.const 0)
                     (i32.const 240) (i32.const 12) (i32.const 0) (i32.const 0)
                     (i32.const 1) (i32.const 1) (i32.const 1)
                     (i32.const 300) (i32.const 1) (i32.const 440))
      (then (call $exit (i32.const 16))))
    (i32.store (i32.const 500) (i32.const -1))
    (if (call $join (i32.const 500) (i32.const 508)) (then (call $exit (i32.const 17))))
    (if (i32.ne (i32.load (i32.const 500)) (i32.load (i32.const 440)))
      (then (call $exit (i32.const 18))))
    (if (i32.ne (i32.load (i32.const 508)) (i32.const 7)) (then (call $exit (i32.const 19))))
    ;; No child left: ECHILD (12) returned, u32::MAX and ECHILD stored.
    (i32.store (i32.const 500) (i32.const -1))
    (if (i32.ne (call $join (i32.const 500) (i32.const 508)) (i32.const 12))
      (then (call $exit (i32.const 20))))
    (if (i32.ne (i32.load (i32.const 500)) (i32.const -1)) (then (call $exit (i32.const 21))))
    (if (i32.ne (i32.load (i32.const 508)) (i32.const 12)) (then (call $exit (i32.const 22))))
    ;; A pid that is no child of ours: ECHILD, the code slot says so.
    (i32.store (i32.const 500) (i32.const 4242))
    (if (i32.ne (call $join (i32.const 500) (i32.const 508)) (i32.const 12))
      (then (call $exit (i32.const 23))))
    (if (i32.ne (i32.load (i32.const 508)) (i32.const 12)) (then (call $exit (i32.const 24))))))
