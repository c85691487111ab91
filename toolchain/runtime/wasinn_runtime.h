/* Declarations shared by the runtime's C files: the built-in modules main.c registers. */
#ifndef WASINN_RUNTIME_H
#define WASINN_RUNTIME_H

#include <Python.h>

/* `_wasi_nn`: the raw wasi_ephemeral_nn ABI over the buffer protocol (wasi_nn_module.c). */
PyMODINIT_FUNC PyInit__wasi_nn(void);
/* `_wasinn_image`: image decode / resize / to_tensor in C (image_module.c). */
PyMODINIT_FUNC PyInit__wasinn_image(void);

#endif
