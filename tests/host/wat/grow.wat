;; Tries to grow memory by 160 pages (10 MiB): exit 0 if it grew, 1 if memory.grow failed.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (call $proc_exit (i32.eq (memory.grow (i32.const 160)) (i32.const -1)))))
