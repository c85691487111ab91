/* wasinn.abi._fastcall: the trampoline wasmtime calls for each wasi_ephemeral_nn import.
 *
 * wasmtime's "unchecked" host functions get (env, caller, raw values, count). Doing the
 * per-call work of that signature in Python through ctypes (a libffi closure converting four
 * arguments, four foreign calls to find the caller's memory, a ctypes union per argument)
 * cost ~20 us per call warm and several times that right after an inference evicted the
 * caches: three times per inference. Here it is a few C calls, and Python is entered once,
 * as body(memory_base or None, memory_size, (u32 args...)) -> errno (>= 0), or -1 when the
 * body stored an exception for wasmtime-py to raise (the call then traps).
 *
 * Nothing of wasmtime is linked in: the five C API functions and the layout facts this needs
 * (the size of wasmtime_extern_t, where its union starts, the memory kind) come from
 * wasmtime-py's own ctypes bindings at run time, through `configure`.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdalign.h>

typedef int (*export_get_fn)(void *caller, const char *name, size_t name_len, void *item);
typedef void *(*caller_context_fn)(void *caller);
typedef uint8_t *(*memory_data_fn)(const void *context, const void *memory);
typedef size_t (*memory_size_fn)(const void *context, const void *memory);
typedef void *(*trap_new_fn)(const char *message, size_t length);

#define EXTERN_SPACE 128       /* bytes kept for a wasmtime_extern_t (32 in wasmtime 49-50) */
#define MAX_ARITY 16

static export_get_fn export_get;
static caller_context_fn caller_context;
static memory_data_fn memory_data;
static memory_size_fn memory_size;
static trap_new_fn trap_new;
static size_t memory_offset;   /* offsetof(wasmtime_extern_t, of) */
static size_t value_size;      /* sizeof(wasmtime_val_raw_t) */
static unsigned char memory_kind;
static int configured;

typedef struct {
    PyObject *body;
    Py_ssize_t arity;
} Entry;

static const char TRAP_TEXT[] = "python exception";

static void *trampoline(void *env, void *caller, void *values, size_t count)
{
    Entry *entry = (Entry *)env;
    void *trap = NULL;
    PyGILState_STATE gil = PyGILState_Ensure();
    alignas(16) unsigned char item[EXTERN_SPACE];
    PyObject *base, *size, *args = NULL, *result = NULL;

    if (export_get(caller, "memory", 6, item) && item[0] == memory_kind) {
        const void *context = caller_context(caller);
        const void *memory = item + memory_offset;
        base = PyLong_FromVoidPtr(memory_data(context, memory));
        size = PyLong_FromSize_t(memory_size(context, memory));
    } else {
        base = Py_NewRef(Py_None);
        size = PyLong_FromLong(0);
    }
    if (base != NULL && size != NULL && (size_t)entry->arity <= count
            && (args = PyTuple_New(entry->arity)) != NULL) {
        for (Py_ssize_t i = 0; i < entry->arity; i++) {
            uint32_t raw = *(uint32_t *)((char *)values + (size_t)i * value_size);
            PyObject *value = PyLong_FromUnsignedLong(raw);
            if (value == NULL) {
                Py_CLEAR(args);
                break;
            }
            PyTuple_SET_ITEM(args, i, value);
        }
    }
    if (args != NULL)
        result = PyObject_CallFunctionObjArgs(entry->body, base, size, args, NULL);
    long errno_value = -1;          /* -1 also when the result is not an int (error set) */
    if (result != NULL)
        errno_value = PyLong_AsLong(result);
    if (PyErr_Occurred())           /* the body catches everything: this is a bug, reported */
        PyErr_WriteUnraisable(entry->body);
    if (errno_value < 0 || count == 0)
        trap = trap_new(TRAP_TEXT, sizeof TRAP_TEXT - 1);
    else
        *(int32_t *)values = (int32_t)errno_value;
    Py_XDECREF(result);
    Py_XDECREF(args);
    Py_XDECREF(base);
    Py_XDECREF(size);
    PyGILState_Release(gil);
    return trap;
}

static PyObject *configure(PyObject *self, PyObject *args)
{
    unsigned long long get, context, data, data_size, new_trap;
    Py_ssize_t extern_size, offset, vsize;
    int kind;
    if (!PyArg_ParseTuple(args, "KKKKKnnni", &get, &context, &data, &data_size, &new_trap,
                          &extern_size, &offset, &vsize, &kind))
        return NULL;
    if (!get || !context || !data || !data_size || !new_trap)
        return PyErr_Format(PyExc_ValueError, "a wasmtime C API function is missing");
    if (extern_size <= 0 || extern_size > EXTERN_SPACE || offset <= 0 || offset >= extern_size
            || vsize < 4 || kind < 0 || kind > 255)
        return PyErr_Format(PyExc_ValueError, "unexpected wasmtime layout (extern %zd, offset "
                            "%zd, value %zd, kind %d)", extern_size, offset, vsize, kind);
    export_get = (export_get_fn)(uintptr_t)get;
    caller_context = (caller_context_fn)(uintptr_t)context;
    memory_data = (memory_data_fn)(uintptr_t)data;
    memory_size = (memory_size_fn)(uintptr_t)data_size;
    trap_new = (trap_new_fn)(uintptr_t)new_trap;
    memory_offset = (size_t)offset;
    value_size = (size_t)vsize;
    memory_kind = (unsigned char)kind;
    configured = 1;
    Py_RETURN_NONE;
}

static void entry_free(PyObject *capsule)
{
    Entry *entry = PyCapsule_GetPointer(capsule, "wasinn.fastcall.entry");
    if (entry != NULL) {
        Py_XDECREF(entry->body);
        PyMem_Free(entry);
    }
}

static PyObject *make_entry(PyObject *self, PyObject *args)
{
    PyObject *body;
    Py_ssize_t arity;
    if (!PyArg_ParseTuple(args, "On", &body, &arity))
        return NULL;
    if (!configured)
        return PyErr_Format(PyExc_RuntimeError, "configure() first");
    if (!PyCallable_Check(body) || arity < 0 || arity > MAX_ARITY)
        return PyErr_Format(PyExc_ValueError, "a callable and an arity of 0..%d", MAX_ARITY);
    Entry *entry = PyMem_Malloc(sizeof *entry);
    if (entry == NULL)
        return PyErr_NoMemory();
    entry->body = Py_NewRef(body);
    entry->arity = arity;
    PyObject *capsule = PyCapsule_New(entry, "wasinn.fastcall.entry", entry_free);
    if (capsule == NULL) {
        Py_DECREF(body);
        PyMem_Free(entry);
        return NULL;
    }
    PyObject *address = PyLong_FromVoidPtr(entry);
    if (address == NULL) {
        Py_DECREF(capsule);
        return NULL;
    }
    return Py_BuildValue("(NN)", capsule, address);
}

static PyObject *trampoline_address(PyObject *self, PyObject *unused)
{
    return PyLong_FromVoidPtr((void *)trampoline);
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(export_get, caller_context, memory_data, memory_data_size, trap_new, "
     "extern_size, extern_union_offset, raw_value_size, memory_kind): wasmtime's C API "
     "functions (addresses) and layout, from wasmtime-py's bindings."},
    {"entry", make_entry, METH_VARARGS,
     "entry(body, arity) -> (owner, address): the `env` for one import; keep `owner` alive "
     "as long as any linker uses it."},
    {"trampoline_address", trampoline_address, METH_NOARGS,
     "The address of the C callback to pass as a wasmtime_func_unchecked_callback_t."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastcall",
    "C trampoline for wasmtime unchecked host functions (see fastcall.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__fastcall(void)
{
    return PyModule_Create(&module);
}
