;; WASIX fd_pipe as the 2022 toolchain's programs use it: both ends read and write, each
;; reading what the other wrote. Written from Wasmer's source of that time:
;; lib/wasi/src/state/pipe.rs at commit 06474c1748c1a0c71d234f1f2702d8dc171291ba, where
;; WasiPipe::new() returns two ends whose channels cross (pipe1 sends to pipe2's receiver and
;; back), and fd_pipe hands out pipe1's descriptor first and pipe2's second.
;;
;; Prints "ping" (written at the first end, read at the second), "pong" (written at the
;; second, read at the first), then "eof" once the first end is closed and the second reads
;; 0 bytes. Exits 10 + step number on any failure.
(module
  (import "wasix_32v1" "fd_pipe" (func $pipe (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "ping\n")
  (data (i32.const 110) "pong\n")
  (data (i32.const 120) "eof\n")
  ;; fd_write/fd_read of one buffer (iovec at 300, count out at 308); the count, or exit 10+step.
  (func $io (param $read i32) (param $fd i32) (param $buf i32) (param $len i32) (param $step i32) (result i32)
    (i32.store (i32.const 300) (local.get $buf))
    (i32.store (i32.const 304) (local.get $len))
    (if (if (result i32) (local.get $read)
          (then (call $read (local.get $fd) (i32.const 300) (i32.const 1) (i32.const 308)))
          (else (call $write (local.get $fd) (i32.const 300) (i32.const 1) (i32.const 308))))
      (then (call $exit (i32.add (i32.const 10) (local.get $step)))))
    (i32.load (i32.const 308)))
  (func (export "_start")
    (local $first i32) (local $second i32) (local $n i32)
    (if (call $pipe (i32.const 200) (i32.const 204)) (then (call $exit (i32.const 10))))
    (local.set $first (i32.load (i32.const 200)))
    (local.set $second (i32.load (i32.const 204)))
    ;; first -> second
    (drop (call $io (i32.const 0) (local.get $first) (i32.const 100) (i32.const 5) (i32.const 1)))
    (local.set $n (call $io (i32.const 1) (local.get $second) (i32.const 500) (i32.const 64) (i32.const 2)))
    (drop (call $io (i32.const 0) (i32.const 1) (i32.const 500) (local.get $n) (i32.const 3)))
    ;; second -> first
    (drop (call $io (i32.const 0) (local.get $second) (i32.const 110) (i32.const 5) (i32.const 4)))
    (local.set $n (call $io (i32.const 1) (local.get $first) (i32.const 500) (i32.const 64) (i32.const 5)))
    (drop (call $io (i32.const 0) (i32.const 1) (i32.const 500) (local.get $n) (i32.const 6)))
    ;; closing the first end is the second's end of file
    (if (call $close (local.get $first)) (then (call $exit (i32.const 17))))
    (if (call $io (i32.const 1) (local.get $second) (i32.const 500) (i32.const 64) (i32.const 8))
      (then (call $exit (i32.const 18))))
    (drop (call $io (i32.const 0) (i32.const 1) (i32.const 120) (i32.const 4) (i32.const 9)))))
