/* Declarations shared by the runtime's C files: the built-in modules main.c registers. */
#ifndef WASINN_RUNTIME_H
#define WASINN_RUNTIME_H

#include <Python.h>

/* `_wasi_nn`: the raw wasi_ephemeral_nn ABI over the buffer protocol (wasi_nn_module.c). */
PyMODINIT_FUNC PyInit__wasi_nn(void);
/* `_wasinn_image`: image decode / resize / to_tensor in C (image_module.c). */
PyMODINIT_FUNC PyInit__wasinn_image(void);

/* Optional hooks of a runtime flavour (numpy_modules.c in wasinn-runtime-numpy.wasm): register
 * more inittab entries before start-up, finish after it.  Weak: null when not linked. */
__attribute__((weak)) int wasinn_register_flavour_modules(void);
__attribute__((weak)) int wasinn_flavour_after_init(void);

#endif
