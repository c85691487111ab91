;; A guest using a --nn-preload model: load_by_name("demo"), one f32 [1,3] input
;; (1, 2, 3), compute, get_output; writes the output's bytes to stdout and exits with the first
;; failing errno (+ 10 * step) or 0.
(module
  (import "wasi_ephemeral_nn" "load_by_name" (func $load_by_name (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "init_execution_context" (func $init (param i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "set_input" (func $set_input (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "compute" (func $compute (param i32) (result i32)))
  (import "wasi_ephemeral_nn" "get_output" (func $get_output (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "demo")
  ;; dims [1, 3] at 128
  (data (i32.const 128) "\01\00\00\00\03\00\00\00")
  ;; f32 1.0 2.0 3.0 at 256
  (data (i32.const 256) "\00\00\80\3f\00\00\00\40\00\00\40\40")
  ;; tensor struct at 512: dims_ptr 128, dims_len 2, type 1 (f32), data_ptr 256, data_len 12
  (data (i32.const 512) "\80\00\00\00\02\00\00\00\01\00\00\00\00\01\00\00\0c\00\00\00")
  (func $check (param $errno i32) (param $step i32)
    (if (local.get $errno)
      (then (call $proc_exit (i32.add (local.get $errno) (i32.mul (local.get $step) (i32.const 10)))))))
  (func (export "_start")
    (call $check (call $load_by_name (i32.const 64) (i32.const 4) (i32.const 16)) (i32.const 1))
    (call $check (call $init (i32.load (i32.const 16)) (i32.const 20)) (i32.const 2))
    (call $check (call $set_input (i32.load (i32.const 20)) (i32.const 0) (i32.const 512)) (i32.const 3))
    (call $check (call $compute (i32.load (i32.const 20))) (i32.const 4))
    (call $check (call $get_output (i32.load (i32.const 20)) (i32.const 0) (i32.const 1024)
      (i32.const 4096) (i32.const 24)) (i32.const 5))
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.load (i32.const 24)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $proc_exit (i32.const 0))))
