;; The hooks a benchmark harness gives its programs (Sightglass's `bench.start` and
;; `bench.end`), empty: linked with `--preload bench=bench/suite/bench.wat` to run the
;; suite's C programs built with -DBENCH_HARNESS as a harness would.
(module
  (func (export "start"))
  (func (export "end")))
