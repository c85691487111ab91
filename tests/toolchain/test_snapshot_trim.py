"""snapshot_trim: a snapshot leaves out the bundle code of the modules it already imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test_runtime_support import require_runtime
from wasinn_toolchain.bundle_format import read_bundle
from wasinn_toolchain.bundler import build_guest
from wasinn_toolchain.snapshot_trim import drop_imported_code, imported_names
from wasinn_toolchain.wasm_module import read_appended_bundle

GUEST = '''\
import json
import sys

import helper  # guest code: never imported at build time, so it keeps its code

if sys.argv[1:] == ["again"]:
    del sys.modules["json"]
    import json
print(json.dumps({"helper": helper.VALUE}))
'''


def _build(tmp_path: Path, snapshot: bool = True) -> Path:
    src = tmp_path / "guest"
    src.mkdir()
    (src / "main.py").write_text(GUEST)
    (src / "helper.py").write_text("VALUE = 7\n")
    return build_guest(src, tmp_path / "guest.wasm", snapshot=snapshot).output


def _code(wasm: Path) -> dict[str, bytes]:
    return {m.name: m.code for m in read_bundle(read_appended_bundle(wasm.read_bytes())).modules}


def _run(wasm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wasinn", "run", str(wasm), *args],
                          capture_output=True, text=True, timeout=120)


def test_imported_modules_lose_their_code_and_the_guest_runs_the_same(tmp_path: Path) -> None:
    require_runtime()
    wasm = _build(tmp_path)
    code = _code(wasm)
    # json was pre-imported: its code is a short stub and zeros; helper (guest code) is whole
    assert code["json"].endswith(bytes(64)) and len(code["json"].rstrip(b"\0")) < 400
    assert code["helper"] and not code["helper"].endswith(bytes(16))
    proc = _run(wasm)
    assert proc.returncode == 0 and proc.stdout == '{"helper": 7}\n', proc.stderr
    again = _run(wasm, "again")
    assert again.returncode == 1
    assert "json was imported when the guest was pre-initialised" in again.stderr


def test_nothing_to_drop_leaves_the_module_as_it_is(tmp_path: Path) -> None:
    require_runtime()
    wasm = _build(tmp_path, snapshot=False).read_bytes()
    assert drop_imported_code(wasm, []) is wasm
    assert drop_imported_code(wasm, ["not_in_the_bundle"]) is wasm


def test_the_report_line_is_read_from_the_initialisations_output() -> None:
    out = "noise\nwasinn-snapshot-imported: json sys _wasinn_boot\n"
    assert imported_names(out) == {"json", "sys", "_wasinn_boot"}
    assert imported_names("no report\n") == set()
