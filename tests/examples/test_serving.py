"""Serving and batch examples end to end: the classify_service guest behind `wasinn serve` and
`wasinn map` (threads and a local Ray cluster), checked against `wasinn run` of the
mobilenet_openvino example on the same real images."""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from _example_runs import EXAMPLES, ok, run_wasm, wasinn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))
from serve_harness import Server  # noqa: E402

IMAGES = ["banana.jpg", "dog.jpg", "cat.bmp", "grace_hopper.bmp", "wasi-nn-3.jpg"]
TOP1 = re.compile(r"^\s+1\.\) \[(\d+)\]")


@pytest.fixture(scope="module")
def mobilenet(real_models) -> Path:
    return real_models["mobilenet_openvino"]


@pytest.fixture(scope="module")
def preload(mobilenet: Path) -> str:
    return f"m:OpenVINO:CPU:{mobilenet / 'mobilenet.xml'},{mobilenet / 'mobilenet.bin'}"


@pytest.fixture(scope="module")
def classify(built) -> Path:
    return built(EXAMPLES / "classify_service")


@pytest.fixture(scope="module")
def images(fixtures_dir: Path, tmp_path_factory) -> Path:
    """The real pictures, plus one file that is not a picture at all."""
    folder = tmp_path_factory.mktemp("images")
    for name in IMAGES:
        shutil.copy(fixtures_dir / "images" / name, folder / name)
    (folder / "not_an_image.jpg").write_bytes(b"this is text, not a JPEG")
    return folder


@pytest.fixture(scope="module")
def run_top1(built, mobilenet: Path, images: Path) -> dict[str, int]:
    """Top-1 class of each picture from `wasinn run` of the mobilenet_openvino example."""
    module = built(EXAMPLES / "mobilenet_openvino")
    answers = {}
    for name in IMAGES:
        shutil.copy(images / name, mobilenet / name)
        lines = ok(run_wasm(module, ["mobilenet.xml", "mobilenet.bin", name], cwd=mobilenet))
        answers[name] = int(next(TOP1.match(l).group(1) for l in lines if TOP1.match(l)))
        (mobilenet / name).unlink()
    assert answers["banana.jpg"] == 954
    return answers


def map_top1(out: Path) -> dict[str, int]:
    return {path.name.removesuffix(".out"): json.loads(path.read_text())["top5"][0]["class"]
            for path in out.glob("*.out") if path.stat().st_size}


def check_map(result, out: Path, run_top1: dict[str, int]) -> None:
    assert result.returncode == 1, result.stderr           # the broken input fails, alone
    assert map_top1(out) == run_top1
    records = {json.loads(l)["key"]: json.loads(l) for l in (out / "results.jsonl").read_text().splitlines()}
    assert len(records) == len(IMAGES) + 1
    broken = records["not_an_image.jpg"]
    assert not broken["ok"] and "cannot decode image" in broken["error"]
    assert "cannot decode image" in (out / "not_an_image.jpg.err").read_text()
    assert f"{len(IMAGES)} ok, 1 failed" in result.stderr


def test_map_with_threads_matches_wasinn_run(classify, preload, images, run_top1, tmp_path):
    result = wasinn("map", "--jobs", "2", "--nn-preload", preload, "--inputs", f"{images}/*",
                    "--out", tmp_path / "out", classify, "m", "{}")
    check_map(result, tmp_path / "out", run_top1)


def test_map_on_a_local_ray_cluster_matches_wasinn_run(classify, preload, images, run_top1,
                                                       tmp_path):
    pytest.importorskip("ray")
    started = time.monotonic()
    result = wasinn("map", "--ray", "--actors", "2", "--nn-preload", preload,
                    "--inputs", f"{images}/*", "--out", tmp_path / "out", classify, "m", "{}",
                    timeout=900)
    print(f"wasinn map --ray (local cluster start included): {time.monotonic() - started:.1f} s")
    check_map(result, tmp_path / "out", run_top1)


def test_serve_classifies_posted_images(classify, preload, images, run_top1):
    pytest.importorskip("uvicorn")
    server = Server(["--workers", "2", "--content-type", "application/json",
                     "--nn-preload", preload, classify, "m"])
    try:
        def post(name: str):
            return name, server.request("POST", "/", (images / name).read_bytes())

        with ThreadPoolExecutor(4) as executor:
            replies = dict(executor.map(post, IMAGES * 2))
        for name, reply in replies.items():
            assert reply.status == 200 and reply.headers["content-type"] == "application/json"
            assert json.loads(reply.body)["top5"][0]["class"] == run_top1[name]
        broken = server.request("POST", "/", (images / "not_an_image.jpg").read_bytes())
        assert broken.status == 422 and "cannot decode image" in broken.json()["stderr"]
        metrics = server.request("GET", "/metrics").json()
        assert metrics["calls"] == 2 * len(IMAGES) + 1 and metrics["errors"] == 1
    finally:
        assert server.stop() == 0


def test_serve_on_a_local_ray_cluster(classify, preload, images, run_top1):
    pytest.importorskip("ray")
    import socket

    with socket.socket() as probe:                  # Ray Serve's proxy needs a fixed port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    server = Server(["--ray", "--replicas", "2", "--port", str(port), "--nn-preload", preload,
                     classify, "m"], start_timeout=600)
    print(f"wasinn serve --ray ready after {time.monotonic() - started:.1f} s")
    try:
        replies = [server.request("POST", "/", (images / name).read_bytes(), timeout=120)
                   for name in IMAGES]
        assert [json.loads(r.body)["top5"][0]["class"] for r in replies] == \
            [run_top1[name] for name in IMAGES]
        assert server.request("POST", "/", b"not an image", timeout=120).status == 422
        assert server.request("GET", "/health", timeout=120).json()["status"] == "ok"
    finally:
        assert server.stop(timeout=120) == 0
