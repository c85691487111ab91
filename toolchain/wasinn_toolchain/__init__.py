"""wasinn_toolchain: builds the guest runtime and bundles Python guests into one wasm module."""
