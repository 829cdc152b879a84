;; The standard exception-handling encoding (`try_table`, `throw`, `throw_ref`, `exnref`),
;; as current toolchains emit it for C++ exceptions and setjmp/longjmp: an exception thrown
;; three calls deep with a value is caught by tag and the value used; one caught with
;; `catch_all_ref` is rethrown with `throw_ref` to an outer handler. Prints "caught 42" then
;; "rethrown 7".
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (tag $err (param i32))
  (memory (export "memory") 1)
  (data (i32.const 100) "caught 42\n")
  (data (i32.const 120) "rethrown 7\n")
  (data (i32.const 140) "WRONG\n")
  (func $print (param $at i32) (param $len i32)
    (i32.store (i32.const 300) (local.get $at))
    (i32.store (i32.const 304) (local.get $len))
    (drop (call $write (i32.const 1) (i32.const 300) (i32.const 1) (i32.const 308))))
  (func $deep (param i32) (throw $err (local.get 0)))
  (func $middle (param i32) (call $deep (local.get 0)) (call $print (i32.const 140) (i32.const 6)))
  (func $top (param i32) (call $middle (local.get 0)))
  ;; the thrown value, caught by tag
  (func $catch_value (param $v i32) (result i32)
    (block $caught (result i32)
      (try_table (catch $err $caught)
        (call $top (local.get $v)))
      (i32.const -1)))
  ;; caught as an exnref and thrown again, to the caller's handler
  (func $pass_on (param $v i32)
    (block $any (result exnref)
      (try_table (catch_all_ref $any)
        (call $top (local.get $v)))
      (return))
    (throw_ref))
  (func (export "_start")
    (if (i32.eq (call $catch_value (i32.const 42)) (i32.const 42))
      (then (call $print (i32.const 100) (i32.const 10))))
    (block $outer (result i32)
      (try_table (catch $err $outer)
        (call $pass_on (i32.const 7)))
      (i32.const -1))
    (if (i32.eq (i32.const 7)) (then (call $print (i32.const 120) (i32.const 11))))))
