"""A guest's own dependencies: [project] dependencies, vendor/, [tool.wasinn] exclude, -v."""

from __future__ import annotations

from pathlib import Path

import pytest

from firsthour_helpers import wasinn

MAIN = """
import importlib
import vend
import wasi_nn  # noqa: F401  (the SDK is bundled only when imported)
print("vend", vend.VALUE)
print(importlib.import_module("packaging.version").Version("1.2.3rc1").pre)
"""


@pytest.fixture()
def guest(tmp_path) -> Path:
    pytest.importorskip("packaging.version")   # pytest itself depends on it
    folder = tmp_path / "dg"
    (folder / "vendor" / "vend").mkdir(parents=True)
    (folder / "tools").mkdir()
    (folder / "main.py").write_text(MAIN)
    (folder / "vendor" / "vend" / "__init__.py").write_text("VALUE = 42\n")
    (folder / "train.py").write_text("import torch\n")
    (folder / "tools" / "fit.py").write_text("import torch\n")
    (folder / "pyproject.toml").write_text(
        '[project]\nname = "dg"\ndependencies = ["packaging>=20"]\n'
        '[tool.wasinn]\nexclude = ["train.py", "tools"]\n')
    return folder


def test_dependencies_vendor_exclude_and_verbose_listing(runtime, guest, tmp_path):
    built = wasinn("build", "-v", str(guest), "-o", str(tmp_path / "dg.wasm"))
    assert built.returncode == 0, built.stderr
    rows = {line.split()[0]: line for line in built.stdout.splitlines() if line.startswith("  ")}
    assert "vendor:" in rows["vend"]
    assert "environment:" in rows["packaging.version"]   # only imported dynamically: declared
    assert "guest:" in rows["main"] and "SDK:" in rows["wasi_nn._context"]
    assert "stdlib (runtime)" in rows["json"]
    assert "excluded" in rows["train"] and "excluded" in rows["tools.fit"]
    assert "tools" not in rows                            # nothing left in it: not a package
    ran = wasinn("run", str(tmp_path / "dg.wasm"))
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "vend 42\n('rc', 1)\n"


def test_missing_or_native_dependency_is_a_clear_build_error(runtime, guest, tmp_path):
    pyproject = guest / "pyproject.toml"
    for dependency, expected in (("no-such-dist-xyz", "neither installed in this Python"),
                                 ("pillow", "native extension")):
        pyproject.write_text(f'[project]\nname = "dg"\ndependencies = ["{dependency}"]\n')
        result = wasinn("build", str(guest), "-o", str(tmp_path / "x.wasm"))
        assert result.returncode == 2 and expected in result.stderr, result.stderr
        assert f"dependency '{dependency}'" in result.stderr
    pyproject.write_text('[project]\nname = "dg"\ndependencies = "packaging"\n')
    result = wasinn("build", str(guest), "-o", str(tmp_path / "x.wasm"))
    assert result.returncode == 2 and "must be a list of strings" in result.stderr


def test_without_exclude_the_training_script_breaks_the_build(runtime, guest, tmp_path):
    (guest / "pyproject.toml").write_text('[project]\nname = "dg"\ndependencies = ["packaging"]\n')
    (guest / "main.py").write_text(MAIN + "import train\n")
    result = wasinn("build", str(guest), "-o", str(tmp_path / "x.wasm"))
    assert result.returncode == 2 and "torch" in result.stderr
