"""The README's guest snippet is real: built as written, it classifies banana.jpg as banana."""

from __future__ import annotations

import re
from pathlib import Path

from _example_runs import ok, run_wasm

README = Path(__file__).resolve().parents[2] / "README.md"


def _snippet() -> str:
    section = README.read_text().split("## Writing a guest", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_guest_snippet_classifies_banana(built, real_models, tmp_path: Path):
    guest = tmp_path / "readme_guest"
    guest.mkdir()
    (guest / "main.py").write_text(_snippet())
    model = real_models["mobilenet_openvino"]
    lines = ok(run_wasm(built(guest), ["mobilenet.xml", "mobilenet.bin", "input.jpg"], cwd=model))
    assert len(lines) == 5
    assert re.fullmatch(r"   1\.\) \[954\]\(0\.\d{4}\)banana", lines[0]), lines
