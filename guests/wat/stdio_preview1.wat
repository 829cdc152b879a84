;; How a preview1 program sees descriptors 0-2: for each, the filetype fd_fdstat_get reports and
;; whether the rights allow seek or tell ("s" or "-"), e.g. "2- 2- 2-". WASIX programs see
;; character devices that cannot seek whatever their stdio is, as under Wasmer
;; (lib/wasi/src/state/mod.rs, WasiFs::fdstat, commit 2c8da56e99f69f7f80bf9e243465dc23483d6ede);
;; preview1 programs see the real file types.
(module
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $fdstat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 1)
  (func $show (param $fd i32) (param $at i32)
    (if (call $fdstat (local.get $fd) (i32.const 100)) (then unreachable))
    ;; filetype digit
    (i32.store8 (local.get $at) (i32.add (i32.const 48) (i32.load8_u (i32.const 100))))
    ;; FD_SEEK (1<<2) | FD_TELL (1<<5) in rights_base
    (i32.store8 (i32.add (local.get $at) (i32.const 1))
      (select (i32.const 115) (i32.const 45)
        (i32.and (i32.load (i32.const 108)) (i32.const 36))))
    (i32.store8 (i32.add (local.get $at) (i32.const 2)) (i32.const 32)))
  (func (export "_start")
    (call $show (i32.const 0) (i32.const 200))
    (call $show (i32.const 1) (i32.const 203))
    (call $show (i32.const 2) (i32.const 206))
    (i32.store8 (i32.const 208) (i32.const 10))
    (i32.store (i32.const 300) (i32.const 200))
    (i32.store (i32.const 304) (i32.const 9))
    (drop (call $write (i32.const 1) (i32.const 300) (i32.const 1) (i32.const 308)))))
