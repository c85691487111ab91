;; Loops forever: for --timeout.
(module
  (memory (export "memory") 1)
  (func (export "_start") (loop $forever (br $forever))))
