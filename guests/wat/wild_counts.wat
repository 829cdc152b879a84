;; Host memory must not follow a count the guest chose: fd_write with 2^20 empty iovecs
;; (an 8 MiB table, all in bounds) answers EINVAL (more than IOV_MAX, as writev(2) does),
;; and so does poll_oneoff with 2^20 subscriptions (48 MiB of them, in bounds). Exit codes
;; 10+ name a failure; 0 when both are refused and a sane call still works.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1300)
  (func (export "_start")
    ;; 2^20 iovecs of length 0 at address 0.
    (if (i32.ne (call $write (i32.const 1) (i32.const 0) (i32.const 1048576) (i32.const 60000000))
                (i32.const 28))
      (then (call $exit (i32.const 10))))
    ;; 1024 of them is fine (and writes nothing).
    (if (call $write (i32.const 1) (i32.const 0) (i32.const 1024) (i32.const 60000000))
      (then (call $exit (i32.const 11))))
    ;; 2^20 zeroed subscriptions (clock, relative 0) at 0, events at 50331648.
    (if (i32.ne (call $poll (i32.const 0) (i32.const 50331648) (i32.const 1048576)
                            (i32.const 85000000))
                (i32.const 28))
      (then (call $exit (i32.const 12))))))
