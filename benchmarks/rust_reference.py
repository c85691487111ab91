"""Build the Rust reference guest (benchmarks/rust_seed) for the Python ÷ Rust comparison.

The design's target is "Python guest end to end ÷ the Rust-built seed guest ≤ 1.2". The seed's
prebuilt modules cannot be downloaded here, so `rust_seed/` re-writes its MobileNet programs in
Rust and builds them offline with Debian's toolchain and crates:

    apt-get install rustc cargo libstd-rust-dev-wasm32 librust-image-dev lld-14

(Debian's rustc 1.63 ships the wasm32-wasi standard library; a rustup toolchain here has no
wasm32 target and cannot download one.) Without those packages the comparison is skipped.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
CRATE = HERE / "rust_seed"
DEBIAN_RUSTC = Path("/usr/bin/rustc")
DEBIAN_CARGO = Path("/usr/bin/cargo")
WASM_STD = Path("/usr/lib/rustlib/wasm32-wasi")
WASM_LD = Path("/usr/lib/llvm-14/bin/wasm-ld")
PACKAGES = "rustc cargo libstd-rust-dev-wasm32 librust-image-dev lld-14"


class RustUnavailable(Exception):
    """The Debian Rust toolchain for wasm32-wasi is not installed; says what to install."""


def build(target_dir: Path, crate: Path = CRATE) -> Path:
    """Build a Rust reference guest (default: `rust_seed/`; `rust_ggml/` is the LLM one) into
    `target_dir`; returns the .wasm (cargo skips when current)."""
    missing = [str(p) for p in (DEBIAN_RUSTC, DEBIAN_CARGO, WASM_STD, WASM_LD) if not p.exists()]
    if missing:
        raise RustUnavailable(f"missing {', '.join(missing)} (apt-get install {PACKAGES})")
    env = {**os.environ, "RUSTC": str(DEBIAN_RUSTC), "CARGO_TARGET_DIR": str(target_dir),
           "CARGO_TARGET_WASM32_WASI_LINKER": str(CRATE / "wasm-ld-wrapper"),
           "WASM_LD": str(WASM_LD)}
    result = subprocess.run([str(DEBIAN_CARGO), "build", "--offline", "--release",
                             "--target", "wasm32-wasi"], cwd=crate, env=env,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise RustUnavailable("cargo build failed: " + (lines[-1] if lines else "?"))
    package = "rust-seed-reference" if crate == CRATE else _package_name(crate)
    return target_dir / "wasm32-wasi" / "release" / f"{package}.wasm"


def _package_name(crate: Path) -> str:
    for line in (crate / "Cargo.toml").read_text().splitlines():
        if line.startswith("name = "):
            return line.split('"')[1]
    raise RustUnavailable(f"{crate}/Cargo.toml has no package name")


if __name__ == "__main__":
    print(build(HERE.parent / "build" / "rust_seed"))
