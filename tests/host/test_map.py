"""`wasinn map` without Ray: a real CLI subprocess running the probe guest over real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pool_guest import build_guest


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    return build_guest("pool_probe", tmp_path_factory.mktemp("map"))


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.bin").write_bytes(b"first")
    (folder / "sub" / "b.bin").write_bytes(b"\x00second\xff")
    (folder / "sub" / "c.txt").write_bytes(b"third")
    return folder


def wasinn_map(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wasinn", "map", "--no-progress", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def records(out: Path) -> dict[str, dict]:
    lines = (out / "results.jsonl").read_text().splitlines()
    return {json.loads(line)["key"]: json.loads(line) for line in lines}


def test_each_input_is_one_guest_with_its_file(probe, inputs, tmp_path):
    out = tmp_path / "out"
    result = wasinn_map("--jobs", "2", "--inputs", f"{inputs}/**/*", "--out", out, probe, "cat", "{}")
    assert result.returncode == 0, result.stderr
    assert (out / "a.bin.out").read_bytes() == b"first"
    assert (out / "sub" / "b.bin.out").read_bytes() == b"\x00second\xff"    # folders mirrored
    assert (out / "sub" / "c.txt.out").read_bytes() == b"third"
    assert all(r["ok"] for r in records(out).values()) and len(records(out)) == 3
    assert "3 ok, 0 failed" in result.stderr


def test_stdin_mode_and_failures_do_not_stop_the_job(probe, inputs, tmp_path):
    out = tmp_path / "out"
    result = wasinn_map("--stdin", "--timeout", "1", "--inputs", f"{inputs}/*.bin",
                        "--inputs", f"{inputs}/sub/*", "--out", out, probe, "echo")
    assert result.returncode == 0, result.stderr
    assert (out / "sub" / "b.bin.out").read_bytes() == b"\x00second\xff"
    failing = wasinn_map("--timeout", "1", "--inputs", f"{inputs}/**/*", "--out", tmp_path / "f",
                         probe, "spin")
    assert failing.returncode == 1
    found = records(tmp_path / "f")
    assert {r["exit_code"] for r in found.values()} == {124}
    assert "timed out after 1 s" in (tmp_path / "f" / "a.bin.err").read_text()
    assert "0 ok, 3 failed" in failing.stderr


@pytest.mark.parametrize("args, message", [
    (["--inputs", "/nonexistent/*.jpg"], "no input file matches"),
    (["--nn-preload", "m:OpenVINO:CPU:/missing.xml"], "no such file"),
    (["--nn-preload", "m:Nope:CPU:x"], "unknown encoding"),
])
def test_bad_arguments_exit_2_with_one_line(probe, inputs, tmp_path, args, message):
    if "--inputs" not in args:
        args = [*args, "--inputs", f"{inputs}/*"]
    result = wasinn_map(*args, "--out", tmp_path / "out", probe, "echo")
    assert result.returncode == 2 and message in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("wasinn map: error:")
