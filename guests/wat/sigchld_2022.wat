;; SIGCHLD through a WASIX libc's signal dispatch, shaped as wasix-libc's own
;; (libc-top-half/musl/src/signal/sigaction.c at wasix-org/wasix-libc commit
;; 478df188949e44f2eb7dd76d2f3a7e8fc6606268): the exported `__wasm_signal` calls
;; `__wasm_signal_impl`, which calls the handler sigaction stored for the signal through its
;; pointer (`ksa.handler(sig)`, whatever it is, SIG_IGN = 1 included) or, for SIG_DFL (0),
;; the default handler through the `default_handler` pointer; the default handler of
;; SIGCHLD, SIGURG and SIGWINCH is `SIG_IGN(sig)`, a call of pointer 1.
;;
;; Here table slot 1 holds a function that says "WRONG" and exits 99, as a real program's
;; first address-taken function would be called instead. The program raises SIGCHLD three
;; times: left at SIG_DFL, set to SIG_IGN, then to a handler that says "got SIGCHLD"; then
;; says "done". Expected: "got SIGCHLD\ndone\n".
(module
  (import "wasix_32v1" "callback_signal" (func $callback (param i32 i32)))
  (import "wasi_snapshot_preview1" "proc_raise" (func $raise (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (type $handler (func (param i32)))
  (memory (export "memory") 1)
  (table 4 funcref)
  (elem (i32.const 1) $wrong $default_handler $on_chld)
  ;; `default_handler`, a pointer to the default handler (slot 2)
  (data (i32.const 1000) "\02\00\00\00")
  (data (i32.const 100) "__wasm_signal")
  (data (i32.const 120) "got SIGCHLD\n")
  (data (i32.const 140) "done\n")
  (data (i32.const 160) "WRONG: SIG_IGN called as a function\n")
  (func $print (param $at i32) (param $len i32)
    (i32.store (i32.const 300) (local.get $at))
    (i32.store (i32.const 304) (local.get $len))
    (drop (call $write (i32.const 1) (i32.const 300) (i32.const 1) (i32.const 308))))
  (func $wrong (type $handler)
    (call $print (i32.const 160) (i32.const 36))
    (call $exit (i32.const 99)))
  ;; __default_handler: ignore CHLD (16), URG (22), WINCH (27) by calling SIG_IGN; end on others
  (func $default_handler (type $handler)
    (if (i32.or (i32.eq (local.get 0) (i32.const 16))
          (i32.or (i32.eq (local.get 0) (i32.const 22)) (i32.eq (local.get 0) (i32.const 27))))
      (then
        (call_indirect (type $handler) (local.get 0) (i32.const 1))
        (return)))
    (call $exit (i32.add (i32.const 128) (local.get 0))))
  (func $on_chld (type $handler)
    (call $print (i32.const 120) (i32.const 12)))
  ;; __wasm_signal_impl: handlers[sig] lives at 1024 + 4 * sig
  (func $impl (param $sig i32)
    (local $h i32)
    (local.set $h (i32.load (i32.add (i32.const 1024) (i32.shl (local.get $sig) (i32.const 2)))))
    (if (local.get $h)
      (then (call_indirect (type $handler) (local.get $sig) (local.get $h)))
      (else (call_indirect (type $handler) (local.get $sig) (i32.load (i32.const 1000))))))
  (func (export "__wasm_signal") (param $sig i32)
    (call $impl (local.get $sig)))
  (func (export "_start")
    (call $callback (i32.const 100) (i32.const 13))
    (drop (call $raise (i32.const 16)))
    (i32.store (i32.const 1088) (i32.const 1))
    (drop (call $raise (i32.const 16)))
    (i32.store (i32.const 1088) (i32.const 3))
    (drop (call $raise (i32.const 16)))
    (call $print (i32.const 140) (i32.const 5))))
