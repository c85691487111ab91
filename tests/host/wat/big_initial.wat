;; Needs 320 pages (20 MiB) to instantiate: for --max-memory below that.
(module
  (memory (export "memory") 320)
  (func (export "_start")))
