;; A module whose start function computes forever, before `_start` could ever run: only a
;; kill ends it, and the kill must reach it there (the interruption checks' slot is set
;; before the start function runs).
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func $forever (local $x i64)
    (loop $l
      (local.set $x (i64.add (i64.mul (local.get $x) (i64.const 6364136223846793005)) (i64.const 1)))
      (br $l)))
  (start $forever)
  (func (export "_start") (call $exit (i32.const 0))))
