"""`wasinn.GuestPool`: isolation between calls, per-call limits, concurrency, hostile arguments.

Everything runs a real built guest (`guests/pool_probe`) on the real host with a real
TorchScript model preloaded by name.
"""

from __future__ import annotations

import json
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pool_guest import build_guest
from wasinn import CallResult, GuestPool
from wasinn.runner import HostError


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    return build_guest("pool_probe", tmp_path_factory.mktemp("pool"))


@pytest.fixture(scope="module")
def pool(probe: Path, torch_linear_path: Path):
    with GuestPool(probe, preload=[f"lin:PyTorch:CPU:{torch_linear_path}"]) as pool:
        yield pool


def expected_linear(path: Path, value: float) -> list[float]:
    """The model's answer computed by PyTorch directly, rounded through f32."""
    import torch

    model = torch.jit.load(str(path))
    out = model(torch.full((1, 3), value)).detach().numpy().astype("float32").tolist()[0]
    return list(struct.unpack("<2f", struct.pack("<2f", *out)))


def test_import_wasinn_does_not_load_the_pool_module():
    import subprocess
    import sys

    code = "import sys, wasinn; print('wasinn.pool' in sys.modules, wasinn.GuestPool.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "wasinn.pool"]


def test_preloaded_models_are_compiled_when_the_pool_opens(probe, torch_linear_path):
    with GuestPool(probe, preload=[f"lin:PyTorch:CPU:{torch_linear_path}"]) as pool:
        model = pool.registry.get("lin")
        assert model.reads == 1                                    # before any call
        assert pool._worker is not None and "lin" in pool._worker._named   # compiled there
        for value in (1.0, 2.0):
            result = pool.call(["infer", str(value)])
            assert result.ok, result.stderr.decode()
            assert json.loads(result.stdout) == pytest.approx(expected_linear(torch_linear_path, value))
        assert model.reads == 1                                    # never read or compiled again


def test_the_pool_runs_backends_in_its_confined_worker(probe, torch_linear_path):
    """One worker per pool, started with the pool; `in_process=True` keeps today's path."""
    with GuestPool(probe, preload=[f"lin:PyTorch:CPU:{torch_linear_path}"]) as pool:
        worker = pool._worker
        assert worker is not None and worker.alive and worker.sandbox_problems == {}
        pid = worker.pid
        for value in (1.0, 2.0):
            assert pool.call(["infer", str(value)]).ok
        assert worker.pid == pid                                   # the same worker served both
    assert not worker.alive                                        # closed with the pool
    with GuestPool(probe, preload=[f"lin:PyTorch:CPU:{torch_linear_path}"],
                   in_process=True) as pool:
        assert pool._worker is None and pool.registry.get("lin")._graph is not None
        result = pool.call(["infer", "1.0"])
        assert result.ok and json.loads(result.stdout) == pytest.approx(
            expected_linear(torch_linear_path, 1.0))


def test_a_call_leaves_nothing_for_the_next(pool: GuestPool):
    left = pool.call(["leave"], files={})
    assert left.ok, left.stderr.decode()
    assert json.loads(left.stdout) == {"graph": 0, "context": 0}
    seen = pool.call(["check"], files={})
    assert seen.ok, seen.stderr.decode()
    assert json.loads(seen.stdout) == {
        "mark": False,                    # a Python global (the instance's memory) is gone
        "file": False,                    # a file written into the call's preopened folder
        "env": None,                      # an environment change
        "stale_graph_0": "invalid_argument",   # the earlier call's graph handle does not exist
        "first_graph": 0, "first_context": 0,  # fresh handle tables
    }


def test_the_private_folder_is_removed_after_the_call(pool: GuestPool):
    assert pool.call(["leave"], files={"in/picture.jpg": b"\xff\xd8"}).ok
    root = Path(pool._scratch_root())
    assert list(root.iterdir()) == []


def test_stdin_args_env_and_files_reach_the_guest(pool: GuestPool):
    payload = bytes(range(256)) * 1000
    result = pool.call(["echo", "a b", "ü"], stdin=payload, env={"X": "from the call"})
    assert result.ok and result.stdout == payload
    assert json.loads(result.stderr) == {"argv": ["a b", "ü"], "X": "from the call"}
    assert isinstance(result, CallResult) and result.timings.total_ms >= result.timings.run_ms > 0


def test_per_call_timeout_stops_the_guest_and_the_pool_keeps_working(pool: GuestPool):
    result = pool.call(["spin"], timeout=0.5)
    assert result.exit_code == 124 and result.timed_out and not result.trapped
    assert b"timed out after 0.5 s" in result.stderr
    assert result.timings.run_ms >= 450
    assert pool.call(["echo"], stdin=b"after").stdout == b"after"


def test_a_timeout_in_one_thread_does_not_stop_another_call(pool: GuestPool, torch_linear_path):
    with ThreadPoolExecutor(2) as executor:
        spinning = executor.submit(pool.call, ["spin"], timeout=1.0)
        working = [pool.call(["infer", "3"]) for _ in range(3)]
        assert spinning.result().exit_code == 124
    assert all(r.ok for r in working)


def test_memory_cap(probe: Path, torch_linear_path: Path):
    with GuestPool(probe, preload=[f"lin:PyTorch:CPU:{torch_linear_path}"],
                   max_memory=96 << 20) as capped:
        refused = capped.call(["alloc", "200"])
        assert refused.exit_code != 0 and b"MemoryError" in refused.stderr
        fine = capped.call(["alloc", "8"])
        assert fine.ok and fine.stdout.strip() == str(8 << 20).encode()


def test_a_memory_cap_below_the_module_fails_when_the_pool_opens(probe: Path):
    with pytest.raises(HostError, match="cannot instantiate"):
        GuestPool(probe, max_memory=1 << 20)


def test_a_trap_is_exit_134_with_the_reason(pool: GuestPool):
    result = pool.call(["crash"])
    assert result.exit_code == 134 and result.trapped
    assert b"trapped" in result.stderr and result.error.startswith("wasinn: pool_probe.wasm trapped")
    assert pool.call(["infer", "1"]).ok


def test_exit_now_flushes_runs_atexit_and_keeps_its_code(pool: GuestPool):
    """In wasm, exit_now skips the interpreter's teardown (the `__del__` never runs)."""
    result = pool.call(["quick", "7"])
    assert (result.exit_code, result.stdout, result.error) == (7, b"buffered, no newline", None)
    assert result.stderr == b"atexit ran\n"
    assert pool.call(["quick", "0"]).ok
    assert json.loads(pool.call(["check"]).stdout)["mark"] is False


def test_output_is_capped(probe: Path):
    with GuestPool(probe, max_output=1 << 20) as small:
        result = small.call(["spam", "3"])
    assert result.output_truncated and len(result.stdout) == 1 << 20


def test_concurrent_calls_get_their_own_input_output_and_handles(pool: GuestPool, torch_linear_path):
    def one(i: int) -> tuple[int, CallResult, CallResult]:
        return i, pool.call(["echo", str(i)], stdin=str(i).encode() * 1000), pool.call(["check"], files={})

    with ThreadPoolExecutor(4) as executor:
        results = list(executor.map(one, range(16)))
    for i, echo, check in results:
        assert echo.stdout == str(i).encode() * 1000
        assert json.loads(echo.stderr)["argv"] == [str(i)]
        state = json.loads(check.stdout)
        assert (state["first_graph"], state["first_context"], state["file"]) == (0, 0, False)


@pytest.mark.parametrize("kwargs, error", [
    ({"files": {"../escape": b"x"}}, ValueError),
    ({"files": {"/etc/passwd": b"x"}}, ValueError),
    ({"files": {"": b"x"}}, ValueError),
    ({"files": {"a": "not bytes"}}, TypeError),
    ({"env": {"A=B": "x"}}, ValueError),
    ({"env": {"A": "x\0y"}}, ValueError),
    ({"timeout": -1}, ValueError),
    ({"timeout": float("inf")}, ValueError),
])
def test_bad_call_arguments_are_refused_before_anything_runs(pool: GuestPool, kwargs, error):
    with pytest.raises(error):
        pool.call(["echo"], **kwargs)
    with pytest.raises(ValueError):
        pool.call(["echo\0"])


def test_bad_pool_arguments(probe: Path, tmp_path: Path):
    for bad in ({"max_memory": -1}, {"max_output": 0}, {"timeout": 0}, {"max_graphs": True}):
        with pytest.raises(ValueError):
            GuestPool(probe, **bad)
    with pytest.raises(HostError, match="no such file"):
        GuestPool(probe, preload=["m:OpenVINO:CPU:/nonexistent.xml"])
    with pytest.raises(HostError, match="cannot read module"):
        GuestPool(tmp_path / "missing.wasm")
    hostile = tmp_path / "model.pt"
    hostile.write_bytes(b"PK\x03\x04 not a torchscript archive")
    with pytest.raises(HostError, match="cannot load model 'bad'"):
        GuestPool(probe, preload=[f"bad:PyTorch:CPU:{hostile}"])


def test_a_closed_pool_refuses_calls(probe: Path):
    pool = GuestPool(probe)
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.call(["echo"])
