// The Rust side of the start-up comparison (benchmarks/startup.py): one line on stdout.
fn main() {
    println!("hello from a Rust guest");
}
