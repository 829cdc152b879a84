;; The 2022 WASIX ABI numbered socket types DGRAM 0, STREAM 1 (Wasmer
;; lib/wasi-types/src/net.rs @ 75a98ab171bee010b9a7cd0f836919dc4519dcaf): sock_open with
;; type 0 makes a datagram socket, which fdstat reports as SOCKET_DGRAM (5), and type 1 a
;; stream (6). Exit 0 when both hold; 10+ names what failed.
(module
  (import "wasix_32v1" "sock_open" (func $open (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $stat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func $kind (param $ty i32) (result i32)
    (if (call $open (i32.const 1) (local.get $ty) (i32.const 0) (i32.const 0))
      (then (call $exit (i32.const 10))))
    (if (call $stat (i32.load (i32.const 0)) (i32.const 16))
      (then (call $exit (i32.const 11))))
    (i32.load8_u (i32.const 16)))
  (func (export "_start")
    (if (i32.ne (call $kind (i32.const 0)) (i32.const 5)) (then (call $exit (i32.const 12))))
    (if (i32.ne (call $kind (i32.const 1)) (i32.const 6)) (then (call $exit (i32.const 13))))))
