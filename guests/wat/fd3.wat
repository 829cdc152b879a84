;; What descriptor 3 is: prints "3:N" with fd_fdstat_get's errno (0 = open, 8 = EBADF),
;; then the name of the preopen there if it is one. With no mounts it must be free, as
;; under wasmtime (the WASI testsuite's sock_shutdown-invalid_fd expects EBADF on 3).
(module
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $fdstat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name" (func $name (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (local $e i32) (local $len i32)
    (local.set $e (call $fdstat (i32.const 3) (i32.const 100)))
    (i32.store8 (i32.const 200) (i32.const 51))
    (i32.store8 (i32.const 201) (i32.const 58))
    (i32.store8 (i32.const 202) (i32.add (i32.const 48) (local.get $e)))
    (i32.store8 (i32.const 203) (i32.const 32))
    (local.set $len (i32.const 4))
    (if (i32.eqz (call $prestat (i32.const 3) (i32.const 120)))
      (then
        (drop (call $name (i32.const 3) (i32.const 204) (i32.load (i32.const 124))))
        (local.set $len (i32.add (i32.const 4) (i32.load (i32.const 124))))))
    (i32.store8 (i32.add (i32.const 200) (local.get $len)) (i32.const 10))
    (i32.store (i32.const 300) (i32.const 200))
    (i32.store (i32.const 304) (i32.add (local.get $len) (i32.const 1)))
    (drop (call $write (i32.const 1) (i32.const 300) (i32.const 1) (i32.const 308)))))
