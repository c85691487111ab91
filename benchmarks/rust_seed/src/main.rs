//! The seed's MobileNet guests (OpenVINO and PyTorch) in Rust, for benchmarks only.
//!
//! Same steps and printed lines as `examples/mobilenet_openvino` and `examples/mobilenet_pytorch`:
//! read the model, load it through `wasi_ephemeral_nn`, decode and Triangle-resize the picture
//! with the `image` crate, build the planar NCHW f32 tensor, infer, print the top 5. The ABI is
//! declared by hand (the `wasi-nn` crate is not packaged by Debian), exactly as in the
//! project's design document. Labels are left out: they do not affect the timing.
//!
//!   rust-seed-reference.wasm MODEL.xml MODEL.bin IMAGE    (OpenVINO, BGR 0..255)
//!   rust-seed-reference.wasm MODEL.pt IMAGE               (PyTorch, RGB ImageNet mean/std)

use std::env;
use std::fs;
use std::process::exit;

#[repr(C)]
struct Tensor {
    dims_ptr: *const u32,
    dims_len: u32,
    kind: u32,
    data_ptr: *const u8,
    data_len: u32,
}

#[link(wasm_import_module = "wasi_ephemeral_nn")]
extern "C" {
    #[link_name = "load"]
    fn nn_load(builders: *const u32, count: u32, encoding: u32, target: u32, graph: *mut u32) -> u32;
    #[link_name = "init_execution_context"]
    fn nn_init(graph: u32, context: *mut u32) -> u32;
    #[link_name = "set_input"]
    fn nn_set_input(context: u32, index: u32, tensor: *const Tensor) -> u32;
    #[link_name = "compute"]
    fn nn_compute(context: u32) -> u32;
    #[link_name = "get_output"]
    fn nn_get_output(context: u32, index: u32, out: *mut u8, out_len: u32, written: *mut u32) -> u32;
}

const OPENVINO: u32 = 0;
const PYTORCH: u32 = 3;
const F32: u32 = 1;

fn check(errno: u32, what: &str) {
    if errno != 0 {
        eprintln!("error: {} failed: errno {}", what, errno);
        exit(1);
    }
}

fn read(path: &str) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| {
        eprintln!("error: {}: {}", path, e);
        exit(1)
    })
}

/// Planar NCHW f32 tensor bytes: value = (p / divisor - mean[c]) / std[c], channels in `order`.
fn image_to_tensor(path: &str, order: [usize; 3], divisor: f32, mean: [f32; 3], std: [f32; 3]) -> Vec<u8> {
    let picture = image::open(path).unwrap_or_else(|e| {
        eprintln!("error: {}: {}", path, e);
        exit(1)
    });
    let rgb = picture.resize_exact(224, 224, image::imageops::FilterType::Triangle).to_rgb8();
    let pixels = rgb.as_raw();
    let plane = 224 * 224;
    let mut out = vec![0u8; 3 * plane * 4];
    for (c, &source) in order.iter().enumerate() {
        for i in 0..plane {
            let value = (pixels[i * 3 + source] as f32 / divisor - mean[c]) / std[c];
            out[(c * plane + i) * 4..(c * plane + i) * 4 + 4].copy_from_slice(&value.to_ne_bytes());
        }
    }
    out
}

fn main() {
    let args: Vec<String> = env::args().collect();
    let (encoding, parts, image_path, classes, skip) = match args.len() {
        4 => {
            let xml = read(&args[1]);
            println!("Read graph XML, size in bytes: {}", xml.len());
            let weights = read(&args[2]);
            println!("Read graph weights, size in bytes: {}", weights.len());
            (OPENVINO, vec![xml, weights], &args[3], 1001usize, 1usize)
        }
        3 => {
            let model = read(&args[1]);
            println!("Read torchscript binaries, size in bytes: {}", model.len());
            (PYTORCH, vec![model], &args[2], 1000usize, 0usize)
        }
        _ => {
            eprintln!("usage: MODEL.xml MODEL.bin IMAGE | MODEL.pt IMAGE");
            exit(2)
        }
    };
    let builders: Vec<u32> = parts.iter().flat_map(|p| [p.as_ptr() as u32, p.len() as u32]).collect();
    let mut graph = 0u32;
    check(unsafe { nn_load(builders.as_ptr(), parts.len() as u32, encoding, 0, &mut graph) }, "load");
    println!("Loaded graph into wasi-nn with ID: {}", graph);
    let mut context = 0u32;
    check(unsafe { nn_init(graph, &mut context) }, "init_execution_context");
    println!("Created wasi-nn execution context with ID: {}", context);

    let data = if encoding == OPENVINO {
        image_to_tensor(image_path, [2, 1, 0], 1.0, [0.0; 3], [1.0; 3])
    } else {
        image_to_tensor(image_path, [0, 1, 2], 255.0, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    };
    println!("Read input tensor, size in bytes: {}", data.len());
    let dims = [1u32, 3, 224, 224];
    let tensor = Tensor { dims_ptr: dims.as_ptr(), dims_len: 4, kind: F32, data_ptr: data.as_ptr(), data_len: data.len() as u32 };
    check(unsafe { nn_set_input(context, 0, &tensor) }, "set_input");
    check(unsafe { nn_compute(context) }, "compute");
    println!("Executed graph inference");

    let mut output = vec![0f32; classes];
    let mut written = 0u32;
    check(unsafe { nn_get_output(context, 0, output.as_mut_ptr() as *mut u8, (classes * 4) as u32, &mut written) }, "get_output");
    let mut ranked: Vec<(usize, f32)> = output.iter().skip(skip).cloned().enumerate().collect();
    ranked.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
    for (rank, (index, score)) in ranked.iter().take(5).enumerate() {
        println!("   {}.) [{}]({:.4})", rank + 1, index, score);
    }
}
