/*
 * wasinn guest runtime: the entry point of the wasm module.
 *
 * The module carries no Python files.  `wasinn build` appends one "bundle" (docs/contracts.md:
 * marshaled code objects of the stdlib subset, the wasi_nn SDK and the guest's package) as an
 * active data segment and patches its address and length into `wasinn_bundle_locator` below.
 * At start-up we turn the bundle's records into CPython's frozen-module table, pointing straight
 * into the segment (nothing is copied), register our built-in C modules, initialise CPython with
 * a configuration that needs no file at all, and run the entry module as `__main__`.
 *
 * Heap and bundle: the bundle sits at the old end of initial memory.  zig's wasi-libc malloc
 * (Zig's BrkAllocator) takes every page with memory.grow, i.e. above the current end of
 * memory, which at start-up is already past the bundle; it never hands out the unused tail of
 * the linked initial memory.  `heap_avoids_bundle` probes this once at start-up, so a libc that
 * behaves differently fails loudly instead of corrupting code objects (docs/runtime.md).
 */

#include <Python.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasinn_runtime.h"

/* The locator the bundler patches: magic, u32 address, u32 length (little-endian).
 * `volatile` keeps the compiler from folding the unset value into the code that reads it.
 * Unset is all-ones, not zeros: `wasm-opt -Oz`'s memory packing drops zero bytes from data
 * segments, which would cut the locator short (docs/runtime.md). */
volatile unsigned char wasinn_bundle_locator[16] = {
    0x9f, 'W', 'N', 'B', 'L', 'O', 'C', 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
};
#define LOCATOR_UNSET 0xffffffffu

/* Snapshot pre-initialisation (docs/runtime.md, "Snapshots"): Wizer calls the exported
 * `wizer-initialize` at build time, which initialises CPython and imports what the guest needs,
 * then saves memory and globals as the new module's data.  `_start` then finds
 * `preinitialised` set and only refreshes what belongs to the run. */
static volatile int preinitialised = 0;
static const char *entry_module = NULL;

extern void __wasm_call_ctors(void);
extern void __wasilibc_reset_preopens(void);
extern void __wasilibc_populate_preopens(void);
extern char **environ;

#define EXIT_NO_BUNDLE 2 /* like a usage error: the module cannot run at all */

static const char BUNDLE_MAGIC[8] = {'W', 'A', 'S', 'I', 'N', 'N', 'B', '1'};

/* Read a little-endian u32 (wasm is little-endian, but be explicit and alignment-safe). */
static uint32_t read_u32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Round up to a multiple of 4 in 64 bits: a u32 length near 2**32 must not wrap to 0. */
static uint64_t pad4(uint64_t n) { return (n + 3u) & ~(uint64_t)3; }

static int fail(const char *fmt, const char *detail) {
    fprintf(stderr, "wasinn: ");
    fprintf(stderr, fmt, detail);
    fputc('\n', stderr);
    return EXIT_NO_BUNDLE;
}

/* A name must be non-empty, NUL-terminated exactly at `len`, and contain no inner NUL. */
static int valid_name(const unsigned char *p, uint32_t len) {
    return len > 0 && p[len] == 0 && memchr(p, 0, len) == NULL;
}

/*
 * Parse the bundle into a frozen-module table (entries point into the bundle) and the entry
 * module's name.  Every length is checked against the bundle's end in 64-bit arithmetic, so
 * a truncated or corrupt bundle is reported instead of read out of bounds.
 */
static int parse_bundle(const unsigned char *base, uint32_t size, struct _frozen **table_out,
                        const char **entry_out) {
    uint64_t end = size, pos = 0;
    if (size < 16 || memcmp(base, BUNDLE_MAGIC, 8) != 0)
        return fail("corrupt bundle: %s", "bad header magic (expected WASINNB1)");
    uint32_t count = read_u32(base + 8);
    uint32_t entry_len = read_u32(base + 12);
    pos = 16;
    if (pos + pad4((uint64_t)entry_len + 1) > end || !valid_name(base + pos, entry_len))
        return fail("corrupt bundle: %s", "bad entry module name");
    *entry_out = (const char *)(base + pos);
    pos += pad4((uint64_t)entry_len + 1);
    /* Each record needs at least 16 bytes, which bounds `count` before we allocate. */
    if ((uint64_t)count * 16 > end - pos)
        return fail("corrupt bundle: %s", "module count exceeds the bundle size");
    struct _frozen *table = calloc((size_t)count + 1, sizeof(struct _frozen));
    if (table == NULL)
        return fail("%s", "out of memory while reading the bundle");
    for (uint32_t i = 0; i < count; i++) {
        if (pos + 12 > end) {
            free(table);
            return fail("corrupt bundle: %s", "truncated record header");
        }
        uint32_t name_len = read_u32(base + pos);
        uint32_t code_len = read_u32(base + pos + 4);
        uint32_t flags = read_u32(base + pos + 8);
        pos += 12;
        uint64_t name_span = pad4((uint64_t)name_len + 1), code_span = pad4(code_len);
        if (name_len > end || pos + name_span > end || !valid_name(base + pos, name_len)) {
            free(table);
            return fail("corrupt bundle: %s", "bad module name in a record");
        }
        const char *name = (const char *)(base + pos);
        pos += name_span;
        if (code_len == 0 || code_len > INT32_MAX || pos + code_span > end) {
            free(table);
            return fail("corrupt bundle: code of module '%s' is truncated", name);
        }
        table[i].name = name;
        table[i].code = base + pos;
        table[i].size = (int)code_len;
        table[i].is_package = (flags & 1u) != 0;
        table[i].get_code = NULL;
        pos += code_span;
    }
    *table_out = table;
    return 0;
}

/* True if the allocator's next block lies below the bundle or past its end (see file comment). */
static int heap_avoids_bundle(uintptr_t addr, uint32_t size) {
    void *probe = malloc(64);
    uintptr_t p = (uintptr_t)probe;
    free(probe);
    return p + 64 <= addr || p >= addr + size;
}

static void check(PyStatus status, PyConfig *config) {
    if (PyStatus_Exception(status)) {
        if (config != NULL)
            PyConfig_Clear(config);
        Py_ExitStatusException(status);
    }
}

/*
 * Run the entry module as `__main__`, like `python -m ENTRY` but with sys.argv untouched:
 * runpy._run_module_as_main(entry, alter_argv=False).  Called directly rather than through
 * a `-c` command so tracebacks show only the runpy frames `python -m` shows.  PyErr_Print
 * prints uncaught exceptions through sys.excepthook and turns SystemExit into the process's
 * exit status (it finalises and exits itself), exactly as CPython's own main does.
 */
static int run_entry(const char *entry) {
    PyObject *runpy = PyImport_ImportModule("runpy");
    if (runpy == NULL) {
        PyErr_Print();
        return 1;
    }
    PyObject *result = PyObject_CallMethod(runpy, "_run_module_as_main", "(sO)", entry, Py_False);
    Py_DECREF(runpy);
    if (result == NULL) {
        PyErr_Print();
        return 1;
    }
    Py_DECREF(result);
    return 0;
}

/* A module name only ever holds identifier characters and dots: anything else means a
 * corrupt bundle, reported as such (exit 2) rather than as an import error from runpy. */
static int valid_module_name(const char *name) {
    for (const char *p = name; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!(c == '.' || c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
              (c >= 'A' && c <= 'Z') || c >= 0x80))
            return 0;
    }
    return 1;
}

/* Find and parse the bundle, install it as the frozen-module table.  0, or an exit status. */
static int prepare_bundle(void) {
    uint32_t addr = read_u32((const unsigned char *)wasinn_bundle_locator + 8);
    uint32_t size = read_u32((const unsigned char *)wasinn_bundle_locator + 12);
    if (addr == LOCATOR_UNSET || addr == 0 || size == 0 || size == LOCATOR_UNSET) {
        fprintf(stderr, "wasinn: this is the bare guest runtime: it holds no Python program.\n"
                        "Build a guest with `wasinn build DIR -o guest.wasm` and run that.\n");
        return EXIT_NO_BUNDLE;
    }
    if (!heap_avoids_bundle(addr, size))
        return fail("%s", "internal error: the heap overlaps the appended bundle");

    struct _frozen *table = NULL;
    const char *entry = NULL;
    int rc = parse_bundle((const unsigned char *)(uintptr_t)addr, size, &table, &entry);
    if (rc != 0)
        return rc;
    if (!valid_module_name(entry))
        return fail("corrupt bundle: invalid entry module name '%s'", entry);
    PyImport_FrozenModules = table;
    entry_module = entry;
    return 0;
}

/* Initialise CPython from an isolated configuration that needs no file (exits on failure). */
static void initialise_python(int argc, char **argv) {
    /* A runtime flavour (e.g. numpy's) may link more built-in modules; the hooks are weak
     * symbols, null in the plain runtime. */
    if (wasinn_register_flavour_modules && wasinn_register_flavour_modules() != 0)
        exit(fail("%s", "cannot register the flavour's built-in modules"));
    /* UTF-8 everywhere, independent of the host's locale variables. */
    PyPreConfig preconfig;
    PyPreConfig_InitIsolatedConfig(&preconfig);
    preconfig.utf8_mode = 1;
    check(Py_PreInitialize(&preconfig), NULL);

    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    /* No files: no site, no search path, no bytecode writing, no path-config warnings. */
    config.site_import = 0;
    config.write_bytecode = 0;
    config.pathconfig_warnings = 0;
    config.use_frozen_modules = 1;
    config.install_signal_handlers = 0;
    config.safe_path = 1;
    config.parse_argv = 0; /* sys.argv is the module's argv, exactly */
    config.module_search_paths_set = 1;
    check(PyConfig_SetString(&config, &config.program_name, L"python"), &config);
    check(PyConfig_SetString(&config, &config.executable, L"/python"), &config);
    check(PyConfig_SetString(&config, &config.prefix, L"/"), &config);
    check(PyConfig_SetString(&config, &config.exec_prefix, L"/"), &config);
    check(PyConfig_SetString(&config, &config.base_prefix, L"/"), &config);
    check(PyConfig_SetString(&config, &config.base_exec_prefix, L"/"), &config);
    if (argc > 0)
        check(PyConfig_SetBytesArgv(&config, argc, argv), &config);
    check(Py_InitializeFromConfig(&config), &config);
    PyConfig_Clear(&config);
    /* After start-up (so also inside a snapshot): e.g. numpy's finder for its dotted modules. */
    if (wasinn_flavour_after_init && wasinn_flavour_after_init() != 0)
        exit(fail("%s", "cannot initialise the flavour's built-in modules"));
}

/* Call `_wasinn_boot.<name>()` (the bundler's start-up helpers) if the bundle has them.
 * 0 on success or when the bundle has no `_wasinn_boot`; -1 with the error printed. */
static int call_boot(const char *name, int required) {
    PyObject *boot = PyImport_ImportModule("_wasinn_boot");
    if (boot == NULL) {
        if (!required && PyErr_ExceptionMatches(PyExc_ModuleNotFoundError)) {
            PyErr_Clear();
            return 0;
        }
        PyErr_Print();
        return -1;
    }
    PyObject *result = PyObject_CallMethod(boot, name, NULL);
    Py_DECREF(boot);
    if (result == NULL) {
        PyErr_Print();
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* sys.argv and sys.orig_argv of this run (the snapshot holds the build's empty ones). */
static int refresh_argv(int argc, char **argv) {
    PyObject *list = argc > 0 ? PyList_New(argc) : Py_BuildValue("[s]", ""); /* CPython: [''] */
    if (list == NULL)
        return -1;
    for (int i = 0; i < argc; i++) {
        PyObject *arg = PyUnicode_DecodeFSDefault(argv[i]);
        if (arg == NULL) {
            Py_DECREF(list);
            return -1;
        }
        PyList_SET_ITEM(list, i, arg);
    }
    PyObject *orig = PyList_GetSlice(list, 0, PyList_GET_SIZE(list));
    int rc = (orig == NULL || PySys_SetObject("argv", list) < 0 ||
              PySys_SetObject("orig_argv", orig) < 0) ? -1 : 0;
    Py_XDECREF(orig);
    Py_DECREF(list);
    return rc;
}

/* posix.environ of this run.  os.environ wraps that same dict, so both see the run's
 * variables (libc's `environ` was re-read by its constructor when `_start` began). */
static int refresh_environ(void) {
    PyObject *posix = PyImport_ImportModule("posix");
    if (posix == NULL)
        return -1;
    PyObject *env = PyObject_GetAttrString(posix, "environ");
    Py_DECREF(posix);
    if (env == NULL || !PyDict_Check(env)) {
        Py_XDECREF(env);
        PyErr_SetString(PyExc_RuntimeError, "posix.environ is not a dict");
        return -1;
    }
    PyDict_Clear(env);
    for (char **p = environ; p != NULL && *p != NULL; p++) {
        const char *eq = strchr(*p, '=');
        if (eq == NULL || eq == *p) /* like posixmodule.c: skip entries without a name */
            continue;
        PyObject *key = PyBytes_FromStringAndSize(*p, eq - *p);
        PyObject *value = PyBytes_FromString(eq + 1);
        int rc = (key == NULL || value == NULL) ? -1 : 0;
        if (rc == 0 && !PyDict_Contains(env, key)) /* the first of duplicates wins */
            rc = PyDict_SetItem(env, key, value);
        Py_XDECREF(key);
        Py_XDECREF(value);
        if (rc < 0) {
            Py_DECREF(env);
            return -1;
        }
    }
    Py_DECREF(env);
    return 0;
}

/*
 * Wizer's initialisation function, run once at build time (`wasinn build`, Wizer's default
 * export name).  wasm-ld runs constructors only for `_start`, so they are called here; they run
 * again when `_start` begins, which re-reads the run's environment and clocks.  A failure
 * traps, which fails the build with the printed error.
 */
__attribute__((export_name("wizer-initialize"))) void wasinn_preinitialise(void) {
    __wasm_call_ctors();
    if (prepare_bundle() != 0)
        __builtin_trap();
    initialise_python(0, NULL);
    if (call_boot("preinitialise", 1) != 0)
        __builtin_trap();
    preinitialised = 1;
}

int main(int argc, char **argv) {
    if (preinitialised) {
        /* The snapshot's preopen table is the build's (empty): read this run's. */
        __wasilibc_reset_preopens();
        __wasilibc_populate_preopens();
        if (refresh_argv(argc, argv) < 0 || refresh_environ() < 0) {
            PyErr_Print();
            return 1;
        }
        if (call_boot("refresh", 1) != 0)
            return 1;
    } else {
        int rc = prepare_bundle();
        if (rc != 0)
            return rc;
        initialise_python(argc, argv);
        if (call_boot("install", 0) != 0)
            return 1;
    }
    int exitcode = run_entry(entry_module);
    /* Flushes sys.stdout/stderr; like CPython, a failed flush turns into exit status 120. */
    if (Py_FinalizeEx() < 0 && exitcode == 0)
        exitcode = 120;
    return exitcode;
}
