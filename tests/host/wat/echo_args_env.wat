;; Writes its argv (NUL-separated), a newline, then its environment (NUL-separated) to stdout,
;; then exits with code 7: proves args, --env and exit codes reach the guest.
(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 2)
  (data (i32.const 100) "\n")
  ;; write(len bytes at ptr) to stdout, iovec at 0
  (func $write (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    ;; argv: count at 16, buf size at 20, pointers at 1024, strings at 8192
    (drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
    (drop (call $args_get (i32.const 1024) (i32.const 8192)))
    (call $write (i32.const 8192) (i32.load (i32.const 20)))
    (call $write (i32.const 100) (i32.const 1))
    ;; env: count at 24, buf size at 28, pointers at 4096, strings at 32768
    (drop (call $environ_sizes_get (i32.const 24) (i32.const 28)))
    (drop (call $environ_get (i32.const 4096) (i32.const 32768)))
    (call $write (i32.const 32768) (i32.load (i32.const 28)))
    (call $proc_exit (i32.const 7))))
