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
 * `volatile` keeps the compiler from folding the zeros into the code that reads them. */
volatile unsigned char wasinn_bundle_locator[16] = {
    0x9f, 'W', 'N', 'B', 'L', 'O', 'C', 0x01, 0, 0, 0, 0, 0, 0, 0, 0,
};

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

int main(int argc, char **argv) {
    uint32_t addr = read_u32((const unsigned char *)wasinn_bundle_locator + 8);
    uint32_t size = read_u32((const unsigned char *)wasinn_bundle_locator + 12);
    if (addr == 0 || size == 0) {
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

    if (PyImport_AppendInittab("_wasi_nn", PyInit__wasi_nn) != 0 ||
        PyImport_AppendInittab("_wasinn_image", PyInit__wasinn_image) != 0)
        return fail("%s", "cannot register the built-in modules");
    /* A runtime flavour (e.g. numpy's) may link more built-in modules; the hooks are weak
     * symbols, null in the plain runtime. */
    if (wasinn_register_flavour_modules && wasinn_register_flavour_modules() != 0)
        return fail("%s", "cannot register the flavour's built-in modules");

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
    check(PyConfig_SetBytesArgv(&config, argc, argv), &config);
    check(Py_InitializeFromConfig(&config), &config);
    PyConfig_Clear(&config);
    if (wasinn_flavour_after_init && wasinn_flavour_after_init() != 0)
        return fail("%s", "cannot initialise the flavour's built-in modules");
    int exitcode = run_entry(entry);
    /* Flushes sys.stdout/stderr; like CPython, a failed flush turns into exit status 120. */
    if (Py_FinalizeEx() < 0 && exitcode == 0)
        exitcode = 120;
    return exitcode;
}
