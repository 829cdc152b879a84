;; Raw wasi-threads and atomic waits/notifies, which wasmix rewrites into host calls: the
;; results the instructions define (1 not-equal, 2 timed out, 0 woken), and a wake across
;; threads. Exit codes 10+ name the check that failed.
(module
  (import "env" "memory" (memory 1 1 shared))
  (import "wasi" "thread-spawn" (func $spawn (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (loop $l
      (if (i32.eqz (i32.atomic.load (i32.const 0)))
        (then
          (drop (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const -1)))
          (br $l))))
    (i32.atomic.store offset=4 (i32.const 0) (i32.const 2))
    (drop (memory.atomic.notify offset=4 (i32.const 0) (i32.const 1))))
  (func (export "_start")
    (if (i32.ne (memory.atomic.wait32 (i32.const 8) (i32.const 5) (i64.const 0)) (i32.const 1))
      (then (call $exit (i32.const 10))))
    (if (i32.ne (memory.atomic.wait32 (i32.const 8) (i32.const 0) (i64.const 1000000)) (i32.const 2))
      (then (call $exit (i32.const 11))))
    (if (i32.ne (memory.atomic.wait64 (i32.const 16) (i64.const 0) (i64.const 1000)) (i32.const 2))
      (then (call $exit (i32.const 12))))
    (if (i32.ne (memory.atomic.notify (i32.const 8) (i32.const 5)) (i32.const 0))
      (then (call $exit (i32.const 13))))
    (if (i32.lt_s (call $spawn (i32.const 0)) (i32.const 1))
      (then (call $exit (i32.const 14))))
    (i32.atomic.store (i32.const 0) (i32.const 1))
    (drop (memory.atomic.notify (i32.const 0) (i32.const 1)))
    (loop $w
      (if (i32.ne (i32.atomic.load (i32.const 4)) (i32.const 2))
        (then
          (drop (memory.atomic.wait32 (i32.const 4) (i32.const 0) (i64.const -1)))
          (br $w))))))
