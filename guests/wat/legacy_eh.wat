;; A module in the legacy exception-handling encoding (try/catch), as clang emits it by
;; default: wasmix names the encoding and how to translate it instead of failing to compile.
(module
  (tag $e (param i32))
  (func (export "_start")
    try
      i32.const 1
      throw $e
    catch $e
      drop
    end))
