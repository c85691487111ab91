/*
 * `_wasi_nn`: the raw `wasi_ephemeral_nn` ABI (docs/contracts.md, ARCHITECTURE §2) as a thin
 * built-in module.
 *
 * Why C and why so thin: every buffer argument is taken through the buffer protocol and its
 * address handed to the host as is, so a 14 MB model or a tensor crosses into the host without
 * a single copy on the guest side.  Policy (names, tensor objects, context managers) lives in
 * the Python SDK (`wasi_nn`); this file only marshals integers and pointers.
 *
 * Flavours: compiled normally, the module imports all thirteen functions (WasmEdge has them
 * all).  Compiled with -DWASINN_PORTABLE it imports only the six that Wasmtime's CLI provides
 * (load, load_by_name, init_execution_context, set_input, compute, get_output); the others
 * raise Error(6, name) -- unsupported_operation -- without reaching the host, so the module
 * still instantiates on a host that lacks them.
 */

#include <Python.h>

#include <stdint.h>
#include <string.h>

#include "wasinn_runtime.h"

#define ERRNO_UNSUPPORTED_OPERATION 6
#define ERRNO_TOO_LARGE 7

/* One model part for `load`: 8 bytes, {u32 ptr, u32 len} on wasm32. */
typedef struct {
    const void *data;
    uint32_t len;
} nn_builder;

/* The tensor descriptor for `set_input`: 20 bytes on wasm32.  `type` is written as 4 bytes,
 * like the Rust crate's enum; hosts read the byte at +8. */
typedef struct {
    const uint32_t *dims;
    uint32_t dims_len;
    uint32_t type;
    const void *data;
    uint32_t data_len;
} nn_tensor;

#if defined(__wasm32__)
_Static_assert(sizeof(nn_builder) == 8, "builder is {u32 ptr, u32 len}");
_Static_assert(sizeof(nn_tensor) == 20, "tensor layout of wasi_ephemeral_nn");
#endif

#define NN_IMPORT(name) __attribute__((import_module("wasi_ephemeral_nn"), import_name(name)))

NN_IMPORT("load")
int32_t nn_load(const nn_builder *builders, uint32_t builders_len, uint32_t encoding,
                uint32_t target, uint32_t *graph_out);
NN_IMPORT("load_by_name")
int32_t nn_load_by_name(const char *name, uint32_t name_len, uint32_t *graph_out);
NN_IMPORT("init_execution_context")
int32_t nn_init_execution_context(uint32_t graph, uint32_t *ctx_out);
NN_IMPORT("set_input")
int32_t nn_set_input(uint32_t ctx, uint32_t index, const nn_tensor *tensor);
NN_IMPORT("compute")
int32_t nn_compute(uint32_t ctx);
NN_IMPORT("get_output")
int32_t nn_get_output(uint32_t ctx, uint32_t index, void *out, uint32_t out_max_len,
                      uint32_t *written_out);

#ifndef WASINN_PORTABLE
NN_IMPORT("load_by_name_with_config")
int32_t nn_load_by_name_with_config(const char *name, uint32_t name_len, const char *config,
                                    uint32_t config_len, uint32_t *graph_out);
NN_IMPORT("get_output_single")
int32_t nn_get_output_single(uint32_t ctx, uint32_t index, void *out, uint32_t out_max_len,
                             uint32_t *written_out);
NN_IMPORT("compute_single")
int32_t nn_compute_single(uint32_t ctx);
NN_IMPORT("fini_single")
int32_t nn_fini_single(uint32_t ctx);
NN_IMPORT("unload")
int32_t nn_unload(uint32_t graph);
NN_IMPORT("finalize_execution_context")
int32_t nn_finalize_execution_context(uint32_t ctx);
#endif

static PyObject *NnError; /* _wasi_nn.Error */

/* Raise Error(errno, function) or, when needed >= 0, Error(errno, function, needed). */
static PyObject *raise_nn(int32_t err, const char *function, int64_t needed) {
    PyObject *args = needed >= 0 ? Py_BuildValue("(isL)", (int)err, function, (long long)needed)
                                 : Py_BuildValue("(is)", (int)err, function);
    if (args != NULL) {
        PyErr_SetObject(NnError, args);
        Py_DECREF(args);
    }
    return NULL;
}

/* PyArg converter: a Python int in 0..2**32-1 (handles, indices and enum values). */
static int u32_converter(PyObject *obj, void *out) {
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "expected an int, got %.80s", Py_TYPE(obj)->tp_name);
        return 0;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(obj);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_SetString(PyExc_OverflowError, "value must be in 0..2**32-1");
        return 0;
    }
    if (v > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "value must be in 0..2**32-1");
        return 0;
    }
    *(uint32_t *)out = (uint32_t)v;
    return 1;
}

/* Lengths cross the ABI as u32; refuse anything larger instead of truncating it. */
static int fits_u32(Py_ssize_t n, const char *what) {
    if ((unsigned long long)n > UINT32_MAX) {
        PyErr_Format(PyExc_ValueError, "%s is larger than 4 GiB", what);
        return 0;
    }
    return 1;
}

/* A `str` (its cached UTF-8, no copy) or any bytes-like buffer. */
typedef struct {
    Py_buffer view;
    int has_view;
    const char *ptr;
    Py_ssize_t len;
} text_arg;

static int text_get(PyObject *obj, text_arg *t, const char *what) {
    t->has_view = 0;
    if (PyUnicode_Check(obj)) {
        t->ptr = PyUnicode_AsUTF8AndSize(obj, &t->len);
        if (t->ptr == NULL)
            return 0;
    } else {
        if (PyObject_GetBuffer(obj, &t->view, PyBUF_SIMPLE) != 0) {
            PyErr_Format(PyExc_TypeError, "%s must be str or a bytes-like object, not %.80s",
                         what, Py_TYPE(obj)->tp_name);
            return 0;
        }
        t->has_view = 1;
        t->ptr = t->view.buf;
        t->len = t->view.len;
    }
    if (!fits_u32(t->len, what)) {
        if (t->has_view)
            PyBuffer_Release(&t->view);
        t->has_view = 0;
        return 0;
    }
    return 1;
}

static void text_release(text_arg *t) {
    if (t->has_view)
        PyBuffer_Release(&t->view);
    t->has_view = 0;
}

static PyObject *py_load(PyObject *self, PyObject *args) {
    PyObject *builders_obj;
    uint32_t encoding, target, graph = 0;
    if (!PyArg_ParseTuple(args, "OO&O&:load", &builders_obj, u32_converter, &encoding,
                          u32_converter, &target))
        return NULL;
    PyObject *seq = PySequence_Fast(builders_obj, "builders must be a sequence of buffers");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), got = 0;
    Py_buffer *views = PyMem_Calloc(n ? (size_t)n : 1, sizeof(Py_buffer));
    nn_builder *builders = PyMem_Calloc(n ? (size_t)n : 1, sizeof(nn_builder));
    PyObject *result = NULL;
    if (views == NULL || builders == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; got < n; got++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, got);
        if (PyObject_GetBuffer(item, &views[got], PyBUF_SIMPLE) != 0) {
            PyErr_Format(PyExc_TypeError, "builder %zd must be a contiguous bytes-like object, not %.80s",
                         got, Py_TYPE(item)->tp_name);
            goto done;
        }
        if (!fits_u32(views[got].len, "a builder")) {
            got++; /* this view must be released too */
            goto done;
        }
        builders[got].data = views[got].buf;
        builders[got].len = (uint32_t)views[got].len;
    }
    int32_t err = nn_load(builders, (uint32_t)n, encoding, target, &graph);
    if (err != 0)
        raise_nn(err, "load", -1);
    else
        result = PyLong_FromUnsignedLong(graph);
done:
    for (Py_ssize_t i = 0; i < got; i++)
        PyBuffer_Release(&views[i]);
    PyMem_Free(views);
    PyMem_Free(builders);
    Py_DECREF(seq);
    return result;
}

static PyObject *py_load_by_name(PyObject *self, PyObject *name_obj) {
    text_arg name;
    uint32_t graph = 0;
    if (!text_get(name_obj, &name, "name"))
        return NULL;
    int32_t err = nn_load_by_name(name.ptr, (uint32_t)name.len, &graph);
    text_release(&name);
    if (err != 0)
        return raise_nn(err, "load_by_name", -1);
    return PyLong_FromUnsignedLong(graph);
}

static PyObject *py_load_by_name_with_config(PyObject *self, PyObject *args) {
    PyObject *name_obj, *config_obj;
    if (!PyArg_ParseTuple(args, "OO:load_by_name_with_config", &name_obj, &config_obj))
        return NULL;
#ifdef WASINN_PORTABLE
    return raise_nn(ERRNO_UNSUPPORTED_OPERATION, "load_by_name_with_config", -1);
#else
    text_arg name, config;
    uint32_t graph = 0;
    if (!text_get(name_obj, &name, "name"))
        return NULL;
    if (!text_get(config_obj, &config, "config")) {
        text_release(&name);
        return NULL;
    }
    int32_t err = nn_load_by_name_with_config(name.ptr, (uint32_t)name.len, config.ptr,
                                              (uint32_t)config.len, &graph);
    text_release(&name);
    text_release(&config);
    if (err != 0)
        return raise_nn(err, "load_by_name_with_config", -1);
    return PyLong_FromUnsignedLong(graph);
#endif
}

static PyObject *py_init_execution_context(PyObject *self, PyObject *args) {
    uint32_t graph, ctx = 0;
    if (!PyArg_ParseTuple(args, "O&:init_execution_context", u32_converter, &graph))
        return NULL;
    int32_t err = nn_init_execution_context(graph, &ctx);
    if (err != 0)
        return raise_nn(err, "init_execution_context", -1);
    return PyLong_FromUnsignedLong(ctx);
}

#define DIMS_ON_STACK 16

static PyObject *py_set_input(PyObject *self, PyObject *args) {
    uint32_t ctx, index, type;
    PyObject *dims_obj, *data_obj;
    if (!PyArg_ParseTuple(args, "O&O&OO&O:set_input", u32_converter, &ctx, u32_converter, &index,
                          &dims_obj, u32_converter, &type, &data_obj))
        return NULL;
    PyObject *seq = PySequence_Fast(dims_obj, "dims must be a sequence of ints");
    if (seq == NULL)
        return NULL;
    Py_ssize_t ndims = PySequence_Fast_GET_SIZE(seq);
    uint32_t stack_dims[DIMS_ON_STACK];
    uint32_t *dims = ndims <= DIMS_ON_STACK ? stack_dims : PyMem_Malloc((size_t)ndims * 4);
    PyObject *result = NULL;
    int have_view = 0;
    Py_buffer view;
    if (dims == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < ndims; i++)
        if (!u32_converter(PySequence_Fast_GET_ITEM(seq, i), &dims[i]))
            goto done;
    if (PyObject_GetBuffer(data_obj, &view, PyBUF_SIMPLE) != 0) {
        PyErr_Format(PyExc_TypeError, "data must be a contiguous bytes-like object, not %.80s",
                     Py_TYPE(data_obj)->tp_name);
        goto done;
    }
    have_view = 1;
    if (!fits_u32(view.len, "tensor data"))
        goto done;
    nn_tensor tensor = {dims, (uint32_t)ndims, type, view.buf, (uint32_t)view.len};
    int32_t err = nn_set_input(ctx, index, &tensor);
    if (err != 0)
        raise_nn(err, "set_input", -1);
    else
        result = Py_NewRef(Py_None);
done:
    if (have_view)
        PyBuffer_Release(&view);
    if (dims != stack_dims)
        PyMem_Free(dims);
    Py_DECREF(seq);
    return result;
}

/* compute / compute_single / fini_single / unload / finalize_execution_context: one handle in,
 * nothing out but the errno. */
typedef int32_t (*handle_fn)(uint32_t);

static PyObject *call_handle(PyObject *args, handle_fn fn, const char *name) {
    uint32_t handle;
    if (!PyArg_ParseTuple(args, "O&", u32_converter, &handle))
        return NULL;
    if (fn == NULL)
        return raise_nn(ERRNO_UNSUPPORTED_OPERATION, name, -1);
    int32_t err = fn(handle);
    if (err != 0)
        return raise_nn(err, name, -1);
    Py_RETURN_NONE;
}

#ifdef WASINN_PORTABLE
#define EXTENSION(fn) NULL
#else
#define EXTENSION(fn) fn
#endif

static PyObject *py_compute(PyObject *self, PyObject *args) {
    return call_handle(args, nn_compute, "compute");
}
static PyObject *py_compute_single(PyObject *self, PyObject *args) {
    return call_handle(args, EXTENSION(nn_compute_single), "compute_single");
}
static PyObject *py_fini_single(PyObject *self, PyObject *args) {
    return call_handle(args, EXTENSION(nn_fini_single), "fini_single");
}
static PyObject *py_unload(PyObject *self, PyObject *args) {
    return call_handle(args, EXTENSION(nn_unload), "unload");
}
static PyObject *py_finalize_execution_context(PyObject *self, PyObject *args) {
    return call_handle(args, EXTENSION(nn_finalize_execution_context), "finalize_execution_context");
}

typedef int32_t (*output_fn)(uint32_t, uint32_t, void *, uint32_t, uint32_t *);

/* get_output / get_output_single: the host copies into the caller's writable buffer and
 * reports the bytes written; too_large carries the size the output needs. */
static PyObject *call_output(PyObject *args, output_fn fn, const char *name) {
    uint32_t ctx, index, written = 0;
    PyObject *out_obj;
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "O&O&O", u32_converter, &ctx, u32_converter, &index, &out_obj))
        return NULL;
    if (fn == NULL)
        return raise_nn(ERRNO_UNSUPPORTED_OPERATION, name, -1);
    if (PyObject_GetBuffer(out_obj, &view, PyBUF_WRITABLE) != 0) {
        PyErr_Format(PyExc_TypeError, "out must be a writable contiguous buffer, not %.80s",
                     Py_TYPE(out_obj)->tp_name);
        return NULL;
    }
    if (!fits_u32(view.len, "out")) {
        PyBuffer_Release(&view);
        return NULL;
    }
    /* An empty buffer is passed as NULL: a host that writes whole outputs past a 0-byte buffer
     * for LlamaEdge (docs/host.md, GGML) must never write over a static empty object. */
    int32_t err = fn(ctx, index, view.len ? view.buf : NULL, (uint32_t)view.len, &written);
    PyBuffer_Release(&view);
    if (err == ERRNO_TOO_LARGE)
        return raise_nn(err, name, written);
    if (err != 0)
        return raise_nn(err, name, -1);
    return PyLong_FromUnsignedLong(written);
}

static PyObject *py_get_output(PyObject *self, PyObject *args) {
    return call_output(args, nn_get_output, "get_output");
}
static PyObject *py_get_output_single(PyObject *self, PyObject *args) {
    return call_output(args, EXTENSION(nn_get_output_single), "get_output_single");
}

static PyMethodDef methods[] = {
    {"load", py_load, METH_VARARGS,
     "load(builders, encoding, target) -> graph\n\nEach builder is a bytes-like model part; its "
     "address goes to the host unchanged."},
    {"load_by_name", py_load_by_name, METH_O, "load_by_name(name) -> graph"},
    {"load_by_name_with_config", py_load_by_name_with_config, METH_VARARGS,
     "load_by_name_with_config(name, config) -> graph  (WasmEdge extension; config is JSON)"},
    {"init_execution_context", py_init_execution_context, METH_VARARGS,
     "init_execution_context(graph) -> context"},
    {"set_input", py_set_input, METH_VARARGS,
     "set_input(ctx, index, dims, type, data) -> None  (type in wasi-nn crate 0.6 numbering)"},
    {"compute", py_compute, METH_VARARGS, "compute(ctx) -> None"},
    {"compute_single", py_compute_single, METH_VARARGS, "compute_single(ctx) -> None  (WasmEdge)"},
    {"fini_single", py_fini_single, METH_VARARGS, "fini_single(ctx) -> None  (WasmEdge)"},
    {"get_output", py_get_output, METH_VARARGS,
     "get_output(ctx, index, out) -> bytes written\n\nToo small a buffer raises "
     "Error(7, 'get_output', needed)."},
    {"get_output_single", py_get_output_single, METH_VARARGS,
     "get_output_single(ctx, index, out) -> bytes written  (WasmEdge)"},
    {"unload", py_unload, METH_VARARGS, "unload(graph) -> None  (WasmEdge)"},
    {"finalize_execution_context", py_finalize_execution_context, METH_VARARGS,
     "finalize_execution_context(ctx) -> None  (WasmEdge)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "_wasi_nn",
    "The raw wasi_ephemeral_nn ABI.  Handles and enums are ints; buffers are passed to the host "
    "by address, never copied.  A non-zero errno raises Error(errno, function[, needed]).",
    -1,
    methods,
};

PyMODINIT_FUNC PyInit__wasi_nn(void) {
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    NnError = PyErr_NewExceptionWithDoc(
        "_wasi_nn.Error", "A wasi_ephemeral_nn call failed; args = (errno, function[, needed]).",
        NULL, NULL);
    if (NnError == NULL || PyModule_AddObjectRef(m, "Error", NnError) != 0 ||
#ifdef WASINN_PORTABLE
        PyModule_AddObjectRef(m, "PORTABLE", Py_True) != 0
#else
        PyModule_AddObjectRef(m, "PORTABLE", Py_False) != 0
#endif
    ) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
