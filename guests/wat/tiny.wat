;; The smallest command: what the spawn benchmark starts.
(module (func (export "_start")))
