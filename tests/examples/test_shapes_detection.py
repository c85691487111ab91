"""The shapes detection example: a detector trained here, numpy decode + NMS in wasm and native."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wasinn_toolchain import paths

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shapes_detection"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"shapes_{name}", EXAMPLE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    folder = tmp_path_factory.mktemp("shapes")
    # In a process of its own: training changes torch's global state (threads, RNG), which
    # other tests compare against.
    done = subprocess.run([sys.executable, str(EXAMPLE / "make_model.py"), str(folder)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    return folder


def _wasinn(*args: str, cwd: Path) -> list[str]:
    done = subprocess.run([sys.executable, "-m", "wasinn", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    main = _load("main")
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]],
                     dtype=np.float32)
    scores = np.array([0.8, 0.9, 0.7, 0.6], dtype=np.float32)
    assert main.nms(boxes, scores).tolist() == [1, 2]
    assert main.nms(boxes[:0], scores[:0]).tolist() == []


def test_the_detector_finds_every_box_in_wasm_as_natively(model_dir: Path, tmp_path) -> None:
    if not paths.numpy_runtime_wasm().is_file():
        pytest.skip("numpy flavour not built (python -m wasinn_toolchain.build_runtime --numpy)")
    wasm = tmp_path / "shapes.wasm"
    _wasinn("build", str(EXAMPLE), "-o", str(wasm), cwd=model_dir)
    args = ["shapes.onnx", "scene.bmp"]
    wasm_lines = _wasinn("run", "--dir", ".:.", str(wasm), *args, cwd=model_dir)
    native_lines = _wasinn("run", "--native", str(EXAMPLE), *args, cwd=model_dir)
    assert wasm_lines == native_lines
    truth = json.loads((model_dir / "scene.json").read_text())
    found = [[float(v) for v in line.replace("box (", "").replace(") - (", ", ")
              .split(")")[0].split(", ")] for line in wasm_lines[1:]]
    assert wasm_lines[0].startswith(f"{len(truth)} objects")
    for box in truth:
        assert max(_iou(box, f) for f in found) > 0.7, (box, found)
