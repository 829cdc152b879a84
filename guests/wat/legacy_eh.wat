;; The legacy exception-handling encoding (try/catch/catch_all/rethrow/delegate), as clang up
;; to LLVM 19 emits it: wasmix translates it to the standard encoding at load and runs it.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "caught 0\n")
  (tag $e (param i32))
  (func $say (param $digit i32)
    (i32.store8 (i32.const 23) (i32.add (i32.const 48) (local.get $digit)))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 9))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  ;; Throws 3 through a try that delegates to the caller, past its own handler.
  (func $thrower
    try
      try
        i32.const 3
        throw $e
      delegate 1
    catch_all
      unreachable
    end)
  (func (export "_start")
    try
      try
        call $thrower
      catch $e
        call $say
        rethrow 0
      end
    catch $e
      i32.const 1
      i32.add
      call $say
    end
    (call $exit (i32.const 0))))
