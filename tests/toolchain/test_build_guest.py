"""bundler.build_guest: the guest convention, what gets bundled, and every BuildError.

These tests append to a small hand-written runtime (a WAT module with the locator), so they
run without the real runtime; the stdlib bundle is the built one, or one made from this host's
CPython 3.11 stdlib. Running built guests is in test_build_e2e.py.
"""

from __future__ import annotations

import marshal
import sysconfig
from pathlib import Path

import pytest
import wasmtime
from wasinn_toolchain import paths
from wasinn_toolchain.bundle_format import Bundle, read_bundle
from wasinn_toolchain.bundler import BuildError, BuildReport, build_guest
from wasinn_toolchain.stdlib import build_stdlib_bundle
from wasinn_toolchain.wasm_module import imports, read_appended_bundle

WAT_RUNTIME = """
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
  (import "wasi_ephemeral_nn" "load" (func (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 1024) "\\9fWNBLOC\\01\\00\\00\\00\\00\\00\\00\\00\\00"))
"""


@pytest.fixture(scope="module")
def stdlib_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    built = paths.stdlib_bundle()
    if built.is_file():
        return built
    out = tmp_path_factory.mktemp("stdlib") / "stdlib.bundle"
    build_stdlib_bundle(Path(sysconfig.get_paths()["stdlib"]), out)
    return out


@pytest.fixture(scope="module")
def wat_runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("runtime") / "runtime.wasm"
    path.write_bytes(wasmtime.wat2wasm(WAT_RUNTIME))
    return path


@pytest.fixture
def build(tmp_path: Path, wat_runtime: Path, stdlib_bundle: Path):
    def run(src: Path, **kwargs) -> tuple[BuildReport, Bundle]:
        out = tmp_path / "out.wasm"
        kwargs.setdefault("snapshot", False)  # the WAT runtime has no wizer-initialize
        report = build_guest(src, out, runtime=wat_runtime, stdlib=stdlib_bundle, **kwargs)
        bundle = read_appended_bundle(out.read_bytes())
        assert bundle is not None
        return report, read_bundle(bundle)

    return run


def make_guest(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def error_of(build, src: Path, **kwargs) -> str:
    with pytest.raises(BuildError) as info:
        build(src, **kwargs)
    return str(info.value)


# --- the convention and what is bundled -----------------------------------------------------


def test_main_py_package_and_what_is_left_out(tmp_path: Path, build) -> None:
    src = make_guest(
        tmp_path / "guest",
        {
            "main.py": "import json\nfrom helpers import util\nimport pkg.sub.deep\n",
            "helpers/__init__.py": "",
            "helpers/util.py": "from . import other\nfrom .other import VALUE\n",
            "helpers/other.py": "VALUE = 1\n",
            "pkg/sub/deep.py": "X = 2\n",  # folders without __init__.py: namespace packages
            "tests/test_main.py": "import pytest\n",
            ".hidden/secret.py": "import nothing_here\n",
            "__pycache__/junk.py": "",
            "not-a-package/x.py": "",
            "tool.txt": "not python",
        },
    )
    report, bundle = build(src)
    names = {m.name: m for m in bundle.modules}
    assert bundle.entry == "main" and report.entry == "main"
    for name in (
        "main",
        "helpers",
        "helpers.util",
        "helpers.other",
        "pkg",
        "pkg.sub",
        "pkg.sub.deep",
    ):
        assert name in names, name
    assert names["pkg"].is_package and names["pkg.sub"].is_package and not names["main"].is_package
    assert {"tests", "tests.test_main", "secret", "junk", "x", "__pycache__.junk"}.isdisjoint(names)
    # Tree-shaken: the SDK and stdlib modules the guest reaches, no more (it never imports
    # wasi_nn); os, io, codecs... are CPython's own deep-frozen copies.
    assert "wasi_nn" not in names and report.sdk_modules == 0
    assert "json" in names and "json.decoder" in names and "encodings.utf_8" in names
    assert {"os", "io", "codecs"}.isdisjoint(names)
    assert {"tarfile", "email", "unittest", "pydoc"}.isdisjoint(names)
    assert "_wasinn_boot" in names and report.stdlib_left_out > 100
    assert report.guest_modules == 7
    assert report.module_count == len(bundle.modules)
    assert report.third_party == ()
    code = marshal.loads(names["helpers.util"].code)
    assert code.co_filename == "helpers/util.py"  # like `python main.py` from the folder
    assert marshal.loads(names["json"].code).co_filename == "<frozen json>"


def test_pyproject_entry(tmp_path: Path, build) -> None:
    src = make_guest(
        tmp_path / "g",
        {
            "pyproject.toml": '[project]\nname = "x"\n[tool.wasinn]\nentry = "app.cli"\n',
            "app/__init__.py": "",
            "app/cli.py": "print('hi')\n",
        },
    )
    report, bundle = build(src)
    assert bundle.entry == "app.cli" == report.entry


def test_pyproject_entry_package_runs_its_main(tmp_path: Path, build) -> None:
    files = {"pyproject.toml": '[tool.wasinn]\nentry = "app"\n', "app/__init__.py": ""}
    src = make_guest(tmp_path / "g", files)
    assert "without app/__main__.py" in error_of(build, src)
    (src / "app" / "__main__.py").write_text("import missing_in_main_q\n")
    assert "missing_in_main_q" in error_of(build, src)  # __main__ is analysed too
    (src / "app" / "__main__.py").write_text("import __main__, _frozen_importlib\n")
    assert build(src)[1].entry == "app"


def test_pyproject_without_wasinn_table_falls_back_to_main(tmp_path: Path, build) -> None:
    src = make_guest(tmp_path / "g", {"pyproject.toml": "[project]\nname='x'\n", "main.py": ""})
    assert build(src)[1].entry == "main"


def test_guest_module_shadows_stdlib_module(tmp_path: Path, build) -> None:
    src = make_guest(tmp_path / "g", {"main.py": "import csv\n", "csv.py": "MINE = 1\n"})
    report, bundle = build(src, verbose=True)
    csv = [m for m in bundle.modules if m.name == "csv"]
    assert len(csv) == 1 and marshal.loads(csv[0].code).co_filename == "csv.py"
    assert any("shadows the stdlib" in w for w in report.warnings)


def test_pure_third_party_package_is_bundled(tmp_path: Path, build, monkeypatch) -> None:
    site = make_guest(
        tmp_path / "site",
        {
            "purelib/__init__.py": "from .core import twice\nfrom purelib import extra\n",
            "purelib/core.py": "import json\ndef twice(x):\n    return 2 * x\n",
            "purelib/extra.py": "",
            "purelib/tests/test_core.py": "import not_installed_anywhere\n",
            "onefile.py": "import purelib\n",
        },
    )
    monkeypatch.syspath_prepend(str(site))
    src = make_guest(tmp_path / "g", {"main.py": "import onefile\n"})
    report, bundle = build(src)
    names = {m.name for m in bundle.modules}
    assert {"onefile", "purelib", "purelib.core", "purelib.extra"} <= names
    assert "purelib.tests.test_core" not in names
    assert report.third_party == ("onefile", "purelib")


def test_guarded_imports_only_warn(tmp_path: Path, build) -> None:
    src = make_guest(
        tmp_path / "g",
        {
            "main.py": (
                "import sys\n"
                "try:\n    import numpy\nexcept ImportError:\n    numpy = None\n"
                "try:\n    import fast_json_not_here\n"
                "except (ValueError, ModuleNotFoundError):\n    pass\n"
                "if sys.platform == 'nope':\n    import windows_only_thing\n"
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import asyncio\n"
            )
        },
    )
    report, bundle = build(src, verbose=True)
    text = "\n".join(report.warnings)
    assert "numpy" in text and "fast_json_not_here" in text and "windows_only_thing" in text
    assert not [m for m in bundle.modules if m.name.startswith("numpy")]  # never pulled in


def test_guarded_pure_third_party_import_is_bundled(tmp_path: Path, build, monkeypatch) -> None:
    site = make_guest(
        tmp_path / "site",
        {"subcmd_dep.py": "try:\n    import gone_dep\nexcept ImportError:\n    pass\n"},
    )
    monkeypatch.syspath_prepend(str(site))
    src = make_guest(
        tmp_path / "g",
        {"main.py": "import sys\nif sys.argv[1:] == ['x']:\n    import subcmd_dep\n"},
    )
    report, bundle = build(src, verbose=True)
    assert report.third_party == ("subcmd_dep",)
    assert any("gone_dep" in w for w in report.warnings)


def test_sdk_native_mode_fallback_is_not_bundled(tmp_path: Path, build) -> None:
    src = make_guest(tmp_path / "g", {"main.py": "import wasi_nn\n"})
    report, bundle = build(src, verbose=True)
    assert not [m.name for m in bundle.modules if m.name.split(".")[0] in ("wasinn", "numpy")]
    assert report.warnings == ()
    names = {m.name: m for m in bundle.modules}
    assert "wasi_nn" in names and "wasi_nn._lowlevel" in names and report.sdk_modules >= 5
    assert "wasi_nn.image" in names  # the whole SDK: it imports some submodules by name
    assert marshal.loads(names["wasi_nn"].code).co_filename == "<frozen wasi_nn>"


# --- tree-shaking and include ------------------------------------------------------------------


def _boot_constants(bundle: Bundle) -> dict:
    """PRELOAD and OMITTED of the guest's _wasinn_boot, read by running its code natively."""
    record = next(m for m in bundle.modules if m.name == "_wasinn_boot")
    namespace: dict = {"__name__": "_wasinn_boot_test"}
    exec(marshal.loads(record.code), namespace)
    return {"PRELOAD": namespace["PRELOAD"], "OMITTED": namespace["OMITTED"]}


def test_function_level_and_guarded_imports_of_the_guest_are_followed(tmp_path: Path, build) -> None:
    src = make_guest(
        tmp_path / "g",
        {
            "main.py": "def later():\n    import csv\ntry:\n    import tomllib\n"
            "except ImportError:\n    tomllib = None\n",
            "plugin.py": "import difflib\n",  # never imported statically: still analysed
        },
    )
    _, bundle = build(src)
    names = {m.name for m in bundle.modules}
    assert {"csv", "tomllib", "tomllib._parser", "difflib", "plugin"} <= names
    omitted = _boot_constants(bundle)["OMITTED"]
    assert "tarfile" in omitted and "csv" not in omitted and "os" not in omitted


def test_include_from_the_command_and_pyproject(tmp_path: Path, build) -> None:
    src = make_guest(
        tmp_path / "g",
        {
            "main.py": "import importlib, sys\nimportlib.import_module(sys.argv[1])\n",
            "pyproject.toml": '[tool.wasinn]\ninclude = ["encodings.cp1252", "xml"]\n',
        },
    )
    _, bundle = build(src, include=["tarfile"])
    names = {m.name for m in bundle.modules}
    assert {"tarfile", "encodings.cp1252", "xml", "xml.dom.minidom", "xml.etree.ElementTree"} <= names
    assert "tarfile" not in _boot_constants(bundle)["OMITTED"]
    _, implicit = build(make_guest(tmp_path / "z", {"main.py": "import zipfile, datetime\n"}))
    names = {m.name for m in implicit.modules}
    assert {"encodings.cp437", "_strptime"} <= names  # used without an import statement


@pytest.mark.parametrize(
    ("include", "message"),
    [
        (["no_such_module_xyz"], "include: no module named 'no_such_module_xyz'"),
        (["PIL"], "include: cannot bundle 'PIL': package 'PIL' contains the native"),
        (["sqlite3"], "include: no module named 'sqlite3' in the wasm runtime's stdlib"),
        (["../etc/passwd"], "include: '../etc/passwd' is not a module name"),
        ([""], "include: '' is not a module name"),
        (["json\x00"], "is not a module name"),
    ],
)
def test_bad_include_is_a_build_error(tmp_path: Path, build, include, message) -> None:
    src = make_guest(tmp_path / "g", {"main.py": "print(1)\n"})
    assert message in error_of(build, src, include=include)


def test_bad_pyproject_include(tmp_path: Path, build) -> None:
    src = make_guest(
        tmp_path / "g",
        {"main.py": "print(1)\n", "pyproject.toml": '[tool.wasinn]\ninclude = "json"\n'},
    )
    assert "[tool.wasinn] include must be a list of module names" in error_of(build, src)


def test_preload_is_the_entrys_top_level_stdlib_and_sdk_imports(tmp_path: Path, build) -> None:
    src = make_guest(
        tmp_path / "g",
        {
            "main.py": "import json\nimport wasi_nn\nimport helper\nfrom collections import abc\n"
            "def f():\n    import csv\nif 0:\n    import difflib\n",
            "helper.py": "print('guest code never runs at build time')\n",
        },
    )
    _, bundle = build(src)
    preload = _boot_constants(bundle)["PRELOAD"]
    assert preload == ("json", "wasi_nn", "collections", "collections.abc")


def test_third_party_code_is_never_preloaded(tmp_path: Path, build, monkeypatch) -> None:
    site = make_guest(tmp_path / "site", {"pure_top/__init__.py": "print('import time')\n"})
    monkeypatch.syspath_prepend(str(site))
    src = make_guest(tmp_path / "g", {"main.py": "import pure_top\nimport json\n"})
    report, bundle = build(src)
    assert report.third_party == ("pure_top",)
    assert _boot_constants(bundle)["PRELOAD"] == ("json",)


def test_snapshot_needs_a_runtime_with_the_init_function(tmp_path: Path, build) -> None:
    src = make_guest(tmp_path / "g", {"main.py": "print(1)\n"})
    message = error_of(build, src, snapshot=True)
    assert "wizer-initialize" in message and "--no-snapshot" in message


def test_warnings_only_in_verbose_builds(tmp_path: Path, build, capsys) -> None:
    src = make_guest(
        tmp_path / "g", {"main.py": "try:\n    import nope_x\nexcept ImportError:\n    pass\n"}
    )
    assert build(src)[0].warnings == ()
    assert "nope_x" in build(src, verbose=True)[0].warnings[0]
    assert capsys.readouterr().err == ""  # the CLI prints them, not the library


def test_output_is_written_atomically_and_valid(tmp_path: Path, build) -> None:
    src = make_guest(tmp_path / "g", {"main.py": "print(1)\n"})
    report, _ = build(src)
    assert report.output_size == report.output.stat().st_size
    assert [p.name for p in report.output.parent.iterdir() if p.name.endswith(".tmp")] == []
    assert {m for m, _ in imports(report.output.read_bytes())} == {
        "wasi_snapshot_preview1",
        "wasi_ephemeral_nn",
    }
    assert report.seconds < 3.0, f"build took {report.seconds:.2f} s"


# --- errors ---------------------------------------------------------------------------------


def test_no_entry_point(tmp_path: Path, build) -> None:
    src = make_guest(tmp_path / "g", {"helper.py": "X = 1\n"})
    message = error_of(build, src)
    assert "no entry point" in message and "main.py" in message and "[tool.wasinn]" in message


def test_pyproject_entry_that_does_not_exist(tmp_path: Path, build) -> None:
    src = make_guest(
        tmp_path / "g", {"pyproject.toml": '[tool.wasinn]\nentry = "app"\n', "main.py": ""}
    )
    message = error_of(build, src)
    assert 'entry = "app"' in message and "app.py" in message


def test_pyproject_invalid(tmp_path: Path, build) -> None:
    src = make_guest(tmp_path / "g", {"pyproject.toml": "[tool.wasinn\n", "main.py": ""})
    assert "invalid TOML" in error_of(build, src)
    src = make_guest(tmp_path / "h", {"pyproject.toml": '[tool.wasinn]\nentry = "a-b"\n'})
    assert "must be a module name" in error_of(build, src)


def test_syntax_error_names_file_line_and_column(tmp_path: Path, build) -> None:
    src = make_guest(
        tmp_path / "g", {"main.py": "import helper\n", "helper.py": "x = 1\ndef f(:\n"}
    )
    message = error_of(build, src)
    assert f"{src / 'helper.py'}:2:" in message and "syntax error" in message
    assert "def f(:" in message


def test_syntax_error_in_an_unimported_file_still_fails(tmp_path: Path, build) -> None:
    src = make_guest(tmp_path / "g", {"main.py": "", "scratch/old.py": "print 'py2'\n"})
    assert f"{src / 'scratch' / 'old.py'}:1:" in error_of(build, src)


def test_compile_time_error_past_the_parser(tmp_path: Path, build) -> None:
    src = make_guest(tmp_path / "g", {"main.py": "x = 1\nreturn x\n"})
    message = error_of(build, src)
    assert f"{src / 'main.py'}:2:" in message and "'return' outside function" in message


def test_numpy_with_a_runtime_file_of_ones_own_is_refused(tmp_path: Path, build) -> None:
    # numpy comes only with the numpy runtime flavour (never the host's native numpy), so a
    # build given another runtime file cannot have it.
    src = make_guest(tmp_path / "g", {"main.py": "import sys\nimport numpy as np\n"})
    message = error_of(build, src)
    assert f"{src / 'main.py'}:2" in message
    assert "cannot bundle 'numpy'" in message and "numpy runtime flavour" in message


def test_native_file_inside_a_third_party_package(tmp_path: Path, build, monkeypatch) -> None:
    site = make_guest(
        tmp_path / "site",
        {"halfnative/__init__.py": "", "halfnative/_speedups.cpython-311-x86_64-linux-gnu.so": ""},
    )
    monkeypatch.syspath_prepend(str(site))
    src = make_guest(tmp_path / "g", {"main.py": "from halfnative import thing\n"})
    message = error_of(build, src)
    assert "halfnative/_speedups.cpython-311-x86_64-linux-gnu.so" in message
    assert "cannot be bundled" in message


def test_unknown_module(tmp_path: Path, build) -> None:
    src = make_guest(
        tmp_path / "g", {"main.py": "import os\n\n\ndef f():\n    import no_such_module_xyz\n"}
    )
    message = error_of(build, src)
    assert f"{src / 'main.py'}:5" in message and "no module named 'no_such_module_xyz'" in message


def test_unknown_submodule_of_a_guest_package(tmp_path: Path, build) -> None:
    src = make_guest(tmp_path / "g", {"main.py": "import pkg.missing\n", "pkg/__init__.py": ""})
    assert "no module named 'pkg.missing'" in error_of(build, src)


def test_missing_import_inside_a_third_party_package(tmp_path: Path, build, monkeypatch) -> None:
    site = make_guest(tmp_path / "site", {"brokenlib.py": "import not_installed_dep_q\n"})
    monkeypatch.syspath_prepend(str(site))
    src = make_guest(tmp_path / "g", {"main.py": "import brokenlib\n"})
    message = error_of(build, src)
    assert f"{site / 'brokenlib.py'}:1" in message and "not_installed_dep_q" in message


@pytest.mark.parametrize("module", ["asyncio", "zlib", "sqlite3", "tkinter", "unittest.mock",
                                    "unicodedata", "crypt"])
def test_stdlib_module_left_out_of_the_runtime(tmp_path: Path, build, module: str) -> None:
    src = make_guest(tmp_path / "g", {"main.py": f"import {module}\n"})
    message = error_of(build, src)
    assert f"'{module}'" in message and "standard library but not" in message


def test_relative_import_beyond_top_level(tmp_path: Path, build) -> None:
    src = make_guest(tmp_path / "g", {"main.py": "from . import sibling\n", "sibling.py": ""})
    assert "relative import beyond top-level package" in error_of(build, src)


def test_all_problems_are_reported_together(tmp_path: Path, build) -> None:
    src = make_guest(tmp_path / "g", {"main.py": "import nope_one\nimport nope_two\n"})
    message = error_of(build, src)
    assert "nope_one" in message and "nope_two" in message


def test_missing_or_unreadable_folder(tmp_path: Path, build) -> None:
    assert "does not exist" in error_of(build, tmp_path / "absent")
    (tmp_path / "file.py").write_text("")
    assert "is not a folder" in error_of(build, tmp_path / "file.py")
    src = tmp_path / "g"
    src.mkdir()
    (src / "main.py").symlink_to(tmp_path / "gone.py")  # dangling: cannot be read
    assert f"cannot read {src / 'main.py'}" in error_of(build, src)


def test_bad_output_paths(tmp_path: Path, wat_runtime: Path, stdlib_bundle: Path) -> None:
    src = make_guest(tmp_path / "g", {"main.py": ""})
    for out, expected in (
        (tmp_path, "is a folder"),
        (tmp_path / "no" / "x.wasm", "does not exist"),
    ):
        with pytest.raises(BuildError, match=expected):
            build_guest(src, out, runtime=wat_runtime, stdlib=stdlib_bundle)


def test_missing_runtime_says_how_to_build_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "empty"))
    src = make_guest(tmp_path / "g", {"main.py": ""})
    with pytest.raises(BuildError, match="python -m wasinn_toolchain.build_runtime"):
        build_guest(src, tmp_path / "out.wasm")


def test_missing_runtime_or_stdlib_override_is_named(
    tmp_path: Path, wat_runtime: Path, stdlib_bundle: Path
) -> None:
    src = make_guest(tmp_path / "g", {"main.py": ""})
    gone = tmp_path / "gone.wasm"
    for runtime, stdlib in ((gone, stdlib_bundle), (wat_runtime, gone)):
        with pytest.raises(BuildError, match=f"{gone} is missing"):
            build_guest(src, tmp_path / "out.wasm", runtime=runtime, stdlib=stdlib)


def test_other_python_version_is_refused(
    tmp_path: Path, wat_runtime: Path, stdlib_bundle: Path, monkeypatch
) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "MAGIC_NUMBER", b"\x00\x00\r\n")
    src = make_guest(tmp_path / "g", {"main.py": ""})
    with pytest.raises(BuildError, match="CPython 3.11"):
        build_guest(src, tmp_path / "out.wasm", runtime=wat_runtime, stdlib=stdlib_bundle)


def test_runtime_without_locator(tmp_path: Path, stdlib_bundle: Path) -> None:
    plain = tmp_path / "plain.wasm"
    plain.write_bytes(wasmtime.wat2wasm('(module (memory 1) (data (i32.const 0) "x"))'))
    src = make_guest(tmp_path / "g", {"main.py": ""})
    with pytest.raises(BuildError, match="no bundle locator"):
        build_guest(src, tmp_path / "out.wasm", runtime=plain, stdlib=stdlib_bundle)
    assert not (tmp_path / "out.wasm").exists()
