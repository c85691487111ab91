"""The guest's start-up helpers: frozen into every built guest as the module ``_wasinn_boot``.

This file runs inside the wasm runtime, not on the host.  ``wasinn build`` compiles it with two
constants appended (see ``bundler._boot_module``):

* ``PRELOAD``: the modules the guest imports at its top level that are safe to import at build
  time (stdlib and the wasi_nn SDK, never the guest's own code, which might print or read
  files); a snapshot build imports them in ``preinitialise``.
* ``OMITTED``: the stdlib modules the runtime has but this guest's bundle left out (tree-shaking).
  Importing one raises an ImportError that says how to add it.
* ``NUMPY_LEFT_OUT`` / ``NUMPY_UNAVAILABLE`` (numpy guests only): the numpy modules the build
  left out (``numpy_parts``), and the numpy packages the wasm build of numpy lacks, with why.

``toolchain/runtime/main.c`` calls ``install()`` when the guest starts without a snapshot, or
``preinitialise()`` at build time (under Wizer) and ``refresh()`` at every run of a snapshot.
"""

import sys

PRELOAD: tuple = ()
OMITTED: frozenset = frozenset()
NUMPY_LEFT_OUT: frozenset = frozenset()
NUMPY_UNAVAILABLE: dict = {}


class _OmittedStdlibFinder:
    """Last on sys.meta_path: names a left-out stdlib module instead of a bare 'No module'."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name in OMITTED:
            raise ModuleNotFoundError(
                f"No module named {name!r}: it is in the wasm runtime's standard library, but "
                "`wasinn build` found no import of it in the guest (a dynamic import?) and left "
                f'it out. Add it with [tool.wasinn] include = ["{name}"] in the guest\'s '
                f"pyproject.toml, or `wasinn build --include {name}`",
                name=name,
            )
        if name in NUMPY_LEFT_OUT:
            raise ModuleNotFoundError(
                f"No module named {name!r}: `wasinn build` bundles only the parts of numpy the "
                "guest names (imports and attributes such as np.random), and found no use of "
                "this one (a dynamic import or getattr?). Add it with [tool.wasinn] include = "
                f'["{name}"] in the guest\'s pyproject.toml, or `wasinn build --include {name}`',
                name=name,
            )
        for package, reason in NUMPY_UNAVAILABLE.items():
            if name == package or name.startswith(package + "."):
                raise ModuleNotFoundError(f"No module named {name!r}: {reason}", name=name)
        return None


def _left_out_codec(name):
    """Last codec search function: an encoding whose module the build left out is named, with
    the way to include it, instead of a bare 'unknown encoding'."""
    import encodings
    from encodings.aliases import aliases

    normal = encodings.normalize_encoding(name.lower())
    for module in (aliases.get(normal) or aliases.get(normal.replace(".", "_")), normal):
        if module and f"encodings.{module}" in OMITTED:
            raise LookupError(
                f"unknown encoding: {name}: its codec module encodings.{module} was left out "
                "by `wasinn build` (codecs are looked up by name at run time). Add it with "
                f'[tool.wasinn] include = ["encodings.{module}"] or '
                f"`wasinn build --include encodings.{module}`"
            )
    return None


def install():
    """Set up the import of left-out modules (every start without a snapshot)."""
    if (OMITTED or NUMPY_LEFT_OUT) and _OmittedStdlibFinder not in sys.meta_path:
        import codecs

        sys.meta_path.append(_OmittedStdlibFinder)
        codecs.register(_left_out_codec)


def preinitialise():
    """At build time, under Wizer: import what every run would import first."""
    install()
    import runpy  # noqa: F401  (main.c runs the entry through it)

    for name in PRELOAD:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - it is imported again, for real, at run time
            if name.split(".")[0] == "numpy":
                # numpy's C modules cannot be initialised a second time, so the run could
                # not import it either: fail the build here, with the traceback.
                raise
    import gc

    # Everything made so far lives as long as the run: keep the collector from walking (and
    # writing to, i.e. copying, page by page) the snapshot's objects at every full collection.
    gc.collect()
    gc.freeze()
    # For the build (snapshot_trim): these modules' bundle code is not needed any more.
    sys.stdout.write("wasinn-snapshot-imported: " + " ".join(sorted(sys.modules)) + "\n")
    sys.stdout.flush()


def refresh():
    """At the start of each run of a snapshot: state that must come from the run, not the build.

    argv, the environment and the preopened folders are re-read by main.c; the rest is here.
    """
    stdout = sys.stdout
    if stdout is not None:  # CPython line-buffers stdout only when it is a terminal
        try:
            interactive = stdout.isatty()
        except (OSError, ValueError):
            interactive = False
        if interactive != stdout.line_buffering:
            stdout.reconfigure(line_buffering=interactive)
    random = sys.modules.get("random")
    if random is not None:  # seeded from os.urandom when imported, i.e. at build time
        random.seed()
    mtrand = sys.modules.get("numpy.random.mtrand")
    if mtrand is not None:  # np.random's legacy global state: the same, at import
        mtrand.seed()
    logging = sys.modules.get("logging")
    if logging is not None:  # relativeCreated counts from the import
        import time

        logging._startTime = time.time()
