;; A misaligned memory.atomic.wait32 traps, rewritten or not.
(module
  (import "env" "memory" (memory 1 1 shared))
  (func (export "_start")
    (drop (memory.atomic.wait32 (i32.const 2) (i32.const 0) (i64.const 0)))))
