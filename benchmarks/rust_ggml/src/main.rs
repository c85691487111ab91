//! What WasmEdge's `wasmedge-ggml/llama` (one-shot mode) and `llama-stream` guests do, written
//! against the `wasmedge-wasi-nn` crate's API shape (GraphBuilder::new(Ggml, AUTO).config(..)
//! .build_from_cache(name), set_input(0, U8, [1], prompt), compute / compute_single,
//! get_output(1) metadata). The crate is not in Debian, so its few calls are declared here by
//! hand on the `wasi_ephemeral_nn` imports. Prints exactly what examples/llama_chat prints.
//!
//!     rust-ggml-llama.wasm MODEL_NAME PROMPT [--stream]
//! Options from the environment: enable_log, n_gpu_layers, ctx_size, n_predict, temp, seed,
//! reverse_prompt.

use std::env;
use std::io::Write;

const TENSOR_TYPE_U8: u32 = 3;
const ERRNO_END_OF_SEQUENCE: u32 = 100;
const ERRNO_CONTEXT_FULL: u32 = 101;
const ERRNO_PROMPT_TOO_LONG: u32 = 102;

#[repr(C)]
struct Tensor {
    dims_ptr: *const u32,
    dims_len: u32,
    tensor_type: u32,
    data_ptr: *const u8,
    data_len: u32,
}

#[link(wasm_import_module = "wasi_ephemeral_nn")]
extern "C" {
    #[link_name = "load_by_name_with_config"]
    fn nn_load_by_name_with_config(name: *const u8, name_len: u32, config: *const u8,
                                   config_len: u32, graph: *mut u32) -> u32;
    #[link_name = "init_execution_context"]
    fn nn_init(graph: u32, context: *mut u32) -> u32;
    #[link_name = "set_input"]
    fn nn_set_input(context: u32, index: u32, tensor: *const Tensor) -> u32;
    #[link_name = "compute"]
    fn nn_compute(context: u32) -> u32;
    #[link_name = "get_output"]
    fn nn_get_output(context: u32, index: u32, out: *mut u8, out_len: u32, written: *mut u32) -> u32;
    #[link_name = "compute_single"]
    fn nn_compute_single(context: u32) -> u32;
    #[link_name = "get_output_single"]
    fn nn_get_output_single(context: u32, index: u32, out: *mut u8, out_len: u32,
                            written: *mut u32) -> u32;
    #[link_name = "fini_single"]
    fn nn_fini_single(context: u32) -> u32;
}

fn check(errno: u32, what: &str) {
    if errno != 0 {
        eprintln!("error: {} failed: errno {}", what, errno);
        std::process::exit(1);
    }
}

/// The crate's `set_input(0, TensorType::U8, &[1], prompt)`.
fn set_input(context: u32, index: u32, data: &[u8]) -> u32 {
    let dims = [1u32];
    let tensor = Tensor { dims_ptr: dims.as_ptr(), dims_len: 1, tensor_type: TENSOR_TYPE_U8,
                          data_ptr: data.as_ptr(), data_len: data.len() as u32 };
    unsafe { nn_set_input(context, index, &tensor) }
}

/// The examples' `get_output_from_context`: a 4 MB buffer, lossy UTF-8.
fn get_output(context: u32, index: u32, single: bool) -> String {
    let mut buffer = vec![0u8; 4096 * 1024];
    let mut written = 0u32;
    let errno = unsafe {
        if single {
            nn_get_output_single(context, index, buffer.as_mut_ptr(), buffer.len() as u32, &mut written)
        } else {
            nn_get_output(context, index, buffer.as_mut_ptr(), buffer.len() as u32, &mut written)
        }
    };
    check(errno, "get_output");
    String::from_utf8_lossy(&buffer[..written as usize]).to_string()
}

/// One value of the flat metadata JSON (numbers and strings only), as text.
fn metadata_field(json: &str, key: &str) -> String {
    let pattern = format!("\"{}\": ", key);
    let start = match json.find(&pattern) { Some(i) => i + pattern.len(), None => return String::new() };
    let rest = &json[start..];
    let end = rest.find(|c| c == ',' || c == '}').unwrap_or(rest.len());
    rest[..end].trim().to_string()
}

fn options_from_environment() -> String {
    let mut parts: Vec<String> = Vec::new();
    for (name, kind) in [("enable_log", 'b'), ("n_gpu_layers", 'n'), ("ctx_size", 'n'),
                         ("n_predict", 'n'), ("temp", 'n'), ("seed", 'n'), ("reverse_prompt", 's')] {
        if let Ok(value) = env::var(name) {
            let key = name.replace('_', "-");
            let json = match kind {
                'b' => (["1", "true", "yes"].contains(&value.to_lowercase().as_str())).to_string(),
                'n' => value.clone(),
                _ => format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\"")),
            };
            parts.push(format!("\"{}\": {}", key, json));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

fn main() {
    let args: Vec<String> = env::args().collect();
    let stream = args.iter().any(|a| a == "--stream");
    let args: Vec<&String> = args.iter().skip(1).filter(|a| a.as_str() != "--stream").collect();
    if args.len() < 2 {
        eprintln!("usage: rust-ggml-llama.wasm MODEL_NAME PROMPT [--stream]");
        std::process::exit(2);
    }
    let (name, prompt) = (args[0], args[1]);
    let config = options_from_environment();
    let mut graph = 0u32;
    check(unsafe { nn_load_by_name_with_config(name.as_ptr(), name.len() as u32, config.as_ptr(),
                                                config.len() as u32, &mut graph) },
          "load_by_name_with_config");
    let mut context = 0u32;
    check(unsafe { nn_init(graph, &mut context) }, "init_execution_context");

    println!("Prompt:\n{}", prompt);
    println!("Response:");
    check(set_input(context, 0, prompt.as_bytes()), "set_input");
    let metadata = get_output(context, 1, false);
    println!("[INFO] llama_commit: {}", metadata_field(&metadata, "llama_commit"));
    println!("[INFO] llama_build_number: {}", metadata_field(&metadata, "llama_build_number"));
    println!("[INFO] Number of input tokens: {}", metadata_field(&metadata, "input_tokens"));

    let mut context_full = false;
    let metadata;
    if !stream {
        match unsafe { nn_compute(context) } {
            0 => {}
            ERRNO_CONTEXT_FULL => context_full = true,
            errno => check(errno, "compute"),
        }
        println!("{}", get_output(context, 0, false).trim());
        if context_full {
            println!("\n[INFO] Context full, we'll reset the context and continue.");
        }
        metadata = get_output(context, 1, false);
    } else {
        // llama-stream's loop: one compute_single per token, print its piece at once
        let mut pending: Vec<u8> = Vec::new();
        let stdout = std::io::stdout();
        loop {
            match unsafe { nn_compute_single(context) } {
                0 => {}
                ERRNO_END_OF_SEQUENCE => break,
                ERRNO_CONTEXT_FULL => { context_full = true; break }
                ERRNO_PROMPT_TOO_LONG => { check(ERRNO_PROMPT_TOO_LONG, "compute_single") }
                errno => check(errno, "compute_single"),
            }
            let mut buffer = [0u8; 1024];
            let mut written = 0u32;
            check(unsafe { nn_get_output_single(context, 0, buffer.as_mut_ptr(), buffer.len() as u32,
                                                &mut written) }, "get_output_single");
            // a piece may end inside a UTF-8 character: print whole characters only
            pending.extend_from_slice(&buffer[..written as usize]);
            let valid = match std::str::from_utf8(&pending) { Ok(_) => pending.len(), Err(e) => e.valid_up_to() };
            if valid > 0 {
                let mut lock = stdout.lock();
                lock.write_all(&pending[..valid]).unwrap();
                lock.flush().unwrap();
                pending.drain(..valid);
            }
        }
        print!("{}", String::from_utf8_lossy(&pending));
        println!();
        if context_full {
            println!("\n[INFO] Context full, we'll reset the context and continue.");
        }
        metadata = get_output(context, 1, false);
        check(unsafe { nn_fini_single(context) }, "fini_single");
    }
    println!("[INFO] Number of input tokens: {}", metadata_field(&metadata, "input_tokens"));
    println!("[INFO] Number of output tokens: {}", metadata_field(&metadata, "output_tokens"));
}
