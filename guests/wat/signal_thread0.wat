;; A 2022 WASIX libc's raise() before its thread-local storage is set up: it signals
;; thread 0, which is how Wasmer numbered a process's main thread (lib/wasi/src/state/
;; thread.rs at commit c95b4fee5d0fb88d1b60e49f91bc17cf5746951e: the thread id seed starts
;; at 0 and `inc` hands out the value before incrementing; libc-top-half/musl/src/signal/
;; raise.c of wasix-libc passes __pthread_self()->tid). The handler must run on the main
;; thread: prints "handled 10" (SIGUSR1), or exits 10+ naming a failure.
(module
  (import "wasix_32v1" "callback_signal" (func $callback (param i32 i32)))
  (import "wasix_32v1" "thread_signal" (func $thread_signal (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "on_signal")
  (data (i32.const 200) "handled   \n")
  (global $got (mut i32) (i32.const 0))
  (func (export "on_signal") (param $sig i32)
    (global.set $got (local.get $sig)))
  (func (export "_start")
    (call $callback (i32.const 100) (i32.const 9))
    (if (call $thread_signal (i32.const 0) (i32.const 10)) (then (call $exit (i32.const 10))))
    (if (i32.ne (global.get $got) (i32.const 10)) (then (call $exit (i32.const 11))))
    (i32.store8 (i32.const 208) (i32.const 49))
    (i32.store8 (i32.const 209) (i32.const 48))
    (i32.store (i32.const 300) (i32.const 200))
    (i32.store (i32.const 304) (i32.const 11))
    (drop (call $write (i32.const 1) (i32.const 300) (i32.const 1) (i32.const 308)))))
