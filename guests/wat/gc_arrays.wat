;; The GC proposal's struct and array types, as a program like Sightglass's `splay` uses
;; them (before this the engine refused the module: "cannot define array types when gc
;; types are disabled"): builds a linked list of structs holding arrays, sums them, prints
;; "sum 5050" (1 + 2 + ... + 100).
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (type $nums (array (mut i32)))
  (type $node (struct (field $vals (ref $nums)) (field $next (ref null $node))))
  (memory (export "memory") 1)
  (data (i32.const 100) "sum ")
  (func $list (result (ref null $node))
    (local $head (ref null $node)) (local $arr (ref $nums)) (local $i i32) (local $j i32)
    ;; ten nodes of ten numbers: 1..100
    (loop $nodes
      (local.set $arr (array.new $nums (i32.const 0) (i32.const 10)))
      (local.set $j (i32.const 0))
      (loop $fill
        (array.set $nums (local.get $arr) (local.get $j)
          (i32.add (i32.mul (local.get $i) (i32.const 10)) (i32.add (local.get $j) (i32.const 1))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br_if $fill (i32.lt_u (local.get $j) (i32.const 10))))
      (local.set $head (struct.new $node (local.get $arr) (local.get $head)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $nodes (i32.lt_u (local.get $i) (i32.const 10))))
    (local.get $head))
  (func $sum (param $n (ref null $node)) (result i32)
    (local $total i32) (local $j i32) (local $arr (ref $nums))
    (block $done
      (loop $walk
        (br_if $done (ref.is_null (local.get $n)))
        (local.set $arr (struct.get $node $vals (local.get $n)))
        (local.set $j (i32.const 0))
        (loop $add
          (local.set $total (i32.add (local.get $total) (array.get $nums (local.get $arr) (local.get $j))))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br_if $add (i32.lt_u (local.get $j) (array.len (local.get $arr)))))
        (local.set $n (struct.get $node $next (local.get $n)))
        (br $walk)))
    (local.get $total))
  ;; writes "sum N\n" for N < 10000
  (func (export "_start")
    (local $n i32) (local $at i32)
    (local.set $n (call $sum (call $list)))
    (local.set $at (i32.const 108))
    (i32.store8 (local.get $at) (i32.const 10))
    (loop $digits
      (local.set $at (i32.sub (local.get $at) (i32.const 1)))
      (i32.store8 (local.get $at) (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digits (local.get $n)))
    ;; "sum " then the digits
    (i32.store (i32.const 200) (i32.const 100))
    (i32.store (i32.const 204) (i32.const 4))
    (i32.store (i32.const 208) (local.get $at))
    (i32.store (i32.const 212) (i32.sub (i32.const 109) (local.get $at)))
    (drop (call $write (i32.const 1) (i32.const 200) (i32.const 2) (i32.const 300)))))
