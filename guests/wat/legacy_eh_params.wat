;; A legacy `try` with block parameters, which no toolchain emits and wasmix's translation
;; refuses: the load fails with a clear error naming why and what to do.
(module
  (type $t (func (param i32) (result i32)))
  (func (export "_start")
    i32.const 1
    try (type $t)
    catch_all
      i32.const 2
    end
    drop))
