/* numpy's C extension modules, statically linked into wasinn-runtime-numpy.wasm.
 *
 * They are registered in the inittab under their dotted names.  CPython 3.11's BuiltinImporter
 * only answers top-level imports (it returns None whenever a package path is given), so a small
 * meta-path finder, installed right after start-up, hands dotted built-in names to it. */
#include <Python.h>

#include "wasinn_runtime.h"

#define NUMPY_MODULES(X)                                   \
    X("numpy._core._multiarray_umath", _multiarray_umath)  \
    X("numpy.linalg._umath_linalg", _umath_linalg)         \
    X("numpy.random._common", _common)                     \
    X("numpy.random.bit_generator", bit_generator)         \
    X("numpy.random._bounded_integers", _bounded_integers) \
    X("numpy.random._mt19937", _mt19937)                   \
    X("numpy.random._pcg64", _pcg64)                       \
    X("numpy.random._philox", _philox)                     \
    X("numpy.random._sfc64", _sfc64)                       \
    X("numpy.random._generator", _generator)               \
    X("numpy.random.mtrand", mtrand)

#define DECLARE(dotted, name) PyMODINIT_FUNC PyInit_##name(void);
NUMPY_MODULES(DECLARE)

int wasinn_register_flavour_modules(void) {
#define REGISTER(dotted, name) \
    if (PyImport_AppendInittab(dotted, PyInit_##name) != 0) return -1;
    NUMPY_MODULES(REGISTER)
    return 0;
}

/* Placed right after BuiltinImporter, so a dotted built-in is found before any path search. */
static const char FINDER[] =
    "import sys, _imp\n"
    "class _DottedBuiltinFinder:\n"
    "    _builtin = sys.meta_path[0]\n"
    "    _spec = type(sys.__spec__)\n"
    "    _is_builtin = _imp.is_builtin\n"
    "    @classmethod\n"
    "    def find_spec(cls, name, path=None, target=None):\n"
    "        if '.' in name and cls._is_builtin(name):\n"
    "            return cls._spec(name, cls._builtin, origin='built-in')\n"
    "        return None\n"
    "sys.meta_path.insert(1, _DottedBuiltinFinder)\n"
    "del _DottedBuiltinFinder, sys, _imp\n";

int wasinn_flavour_after_init(void) {
    PyObject *globals = PyDict_New();
    if (globals == NULL)
        return -1;
    if (PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) != 0) {
        Py_DECREF(globals);
        return -1;
    }
    PyObject *result = PyRun_String(FINDER, Py_file_input, globals, globals);
    Py_DECREF(globals);
    if (result == NULL) {
        PyErr_Print();
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* C++ `throw` without wasm exception handling: numpy's C++ (np.unique's hash table) throws
 * only on allocation failure, and nothing could catch it here, so it ends the program with a
 * message instead of an unresolved import. */
#include <stdio.h>
#include <stdlib.h>

void *__cxa_allocate_exception(size_t size) {
    (void)size;
    fputs("wasinn: a C++ exception was thrown inside numpy (out of memory?); aborting\n", stderr);
    abort();
}

void __cxa_throw(void *exception, void *type, void (*destructor)(void *)) {
    (void)exception, (void)type, (void)destructor;
    fputs("wasinn: a C++ exception was thrown inside numpy; aborting\n", stderr);
    abort();
}
