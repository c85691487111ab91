/*
 * `_wasinn_image` as a wasm shared library for components (`wasinn build --component`).
 *
 * componentize-py links native extensions into a component as WASI "dynamic libraries"
 * (position-independent code, a `dylink.0` section, imports resolved against its own
 * libpython and libc).  Its interpreter is a newer CPython than the 3.11 whose wasm32-wasi
 * headers we have, so this build uses the stable ABI (Py_LIMITED_API 3.11, set on the command
 * line) and is named `*.abi3.so`.  image_module.c uses a few non-limited macros; they are
 * replaced here by their stable-ABI function equivalents so the shared source stays as it is.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>

#ifndef Py_LIMITED_API
#error "build with -DPy_LIMITED_API=0x030B0000"
#endif

/* Not in the 3.11 limited API: libc's allocator is what PyMem_Raw* wraps anyway. */
#define PyMem_RawMalloc malloc
#define PyMem_RawFree free
/* Macros reaching into object layouts: the exported functions do the same through the ABI. */
#define PyBytes_AS_STRING PyBytes_AsString
#define PyByteArray_AS_STRING PyByteArray_AsString
#undef PySequence_Fast_GET_SIZE
#undef PySequence_Fast_GET_ITEM
#define PySequence_Fast_GET_SIZE PySequence_Size
/* PySequence_Fast returns a list or a tuple; both getters give borrowed references. */
#define PySequence_Fast_GET_ITEM(seq, i) \
    (PyList_Check(seq) ? PyList_GetItem((seq), (i)) : PyTuple_GetItem((seq), (i)))

#include "image_module.c"
