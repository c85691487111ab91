"""Start-up cost: a guest that never calls wasi-nn must not pay for numpy (~85 ms of ~155 ms).

Each check runs a fresh interpreter, since this test process has imported numpy long ago.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

WAT = Path(__file__).parent / "wat"


def _python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_importing_the_host_does_not_import_numpy():
    assert _python("import wasinn.cli, wasinn.runner, wasinn.abi, wasinn.native.raw; import sys; "
                   "print('numpy' in sys.modules)") == "False"


def test_running_a_guest_without_wasi_nn_calls_does_not_import_numpy():
    # The whole `wasinn run` path: engine, module load, linker with every wasi_ephemeral_nn
    # import defined, WASI, the guest's run and exit.
    code = ("import sys; from wasinn.cli import main; "
            f"code = main(['run', '--no-cache', {str(WAT / 'echo_args_env.wat')!r}, 'x']); "
            "print(code, 'numpy' in sys.modules)")
    assert _python(code).splitlines()[-1] == "7 False"


def test_a_fresh_core_binds_numpy_at_its_first_load():
    # set_input relies on numpy being bound when the first graph was added.
    code = ("import sys, io, torch; from wasinn.nn import WasiNn; "
            "nn = WasiNn(); buffer = io.BytesIO(); "
            "torch.jit.save(torch.jit.script(torch.nn.Identity()), buffer); "
            "ctx = nn.init_execution_context(nn.load([buffer.getvalue()], 3, 0)); "
            "import array; nn.set_input(ctx, 0, [2], 1, array.array('f', [1.5, 2.5])); "
            "nn.compute(ctx); print(bytes(nn.get_output(ctx, 0)) == array.array('f', [1.5, 2.5]).tobytes())")
    assert _python(code) == "True"


def test_the_cli_module_imports_no_engine_abi_or_backend():
    # `wasinn build` and `wasinn --help` never need them; `run` imports them when it runs.
    loaded = _python("import sys, wasinn.cli; print(sorted(m for m in ('wasmtime', "
                     "'wasinn.runner', 'wasinn.nn', 'wasinn.abi', 'logging') if m in sys.modules))")
    assert loaded == "[]"


def test_a_warm_run_imports_only_what_it_needs(tmp_path):
    import wasmtime

    module = tmp_path / "echo.wasm"
    module.write_bytes(wasmtime.wat2wasm((WAT / "echo_args_env.wat").read_text()))
    run = f"from wasinn.cli import main; code = main(['run', {str(module)!r}, 'x'])"
    _python(run)  # fills the module cache (the conftest's private WASINN_CACHE_DIR)
    # Only what the run itself imports counts (this Python's site may import some of them).
    loaded = _python(f"import sys; before = set(sys.modules); {run}; print(code, sorted(m for m "
                     "in ('logging', 'json', 'tempfile', 'hashlib', '_hashlib') "
                     "if m in sys.modules and m not in before))")
    assert loaded.splitlines()[-1] == "7 []"


def _echo_module(tmp_path: Path) -> Path:
    import wasmtime

    module = tmp_path / "echo.wasm"
    module.write_bytes(wasmtime.wat2wasm((WAT / "echo_args_env.wat").read_text()))
    return module


def _as_the_program(tmp_path: Path, module: Path, before_run: str) -> subprocess.CompletedProcess:
    """Run `wasinn run MODULE x` as the process's own entry point (main() without argv, as the
    console script and `python -m wasinn` call it), after `before_run`; stdout is a pipe, so
    Python block-buffers it."""
    script = tmp_path / "program.py"
    script.write_text(
        "import atexit, os, sys, threading, time\n"
        "# called by a normal interpreter shutdown (threading._shutdown), never by os._exit\n"
        "threading._register_atexit(lambda: os.write(2, b'interpreter teardown\\n'))\n"
        "import gc\n"
        "atexit.register(lambda: print('collector on' if gc.isenabled() else 'collector off',"
        " 'frozen' if gc.get_freeze_count() else 'nothing frozen', file=sys.stderr))\n"
        "atexit.register(lambda: print('atexit handler ran', file=sys.stderr))\n"
        "sys.stdout.write('buffered before the run|')\n"
        f"{before_run}\n"
        f"sys.argv = ['wasinn', 'run', {str(module)!r}, 'x']\n"
        "from wasinn.cli import main\n"
        "sys.exit(main())\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, env=env)


def test_a_finished_run_skips_only_the_teardown(tmp_path):
    ran = _as_the_program(tmp_path, _echo_module(tmp_path), "")
    assert ran.returncode == 7, ran.stderr                      # the guest's exit code
    assert ran.stdout.startswith("buffered before the run|")    # Python's buffer was flushed
    assert "echo.wasm\0x\0\n" in ran.stdout                     # the guest's own output
    assert "atexit handler ran" in ran.stderr
    assert "interpreter teardown" not in ran.stderr             # os._exit: no module teardown
    assert "collector on frozen" in ran.stderr                  # back on for the guest's run


def test_a_running_thread_keeps_the_normal_exit(tmp_path):
    thread = ("threading.Thread(target=lambda: (time.sleep(0.5), "
              "print('thread finished', file=sys.stderr))).start()")
    ran = _as_the_program(tmp_path, _echo_module(tmp_path), thread)
    assert ran.returncode == 7, ran.stderr
    assert "thread finished" in ran.stderr and "atexit handler ran" in ran.stderr
    assert "interpreter teardown" in ran.stderr


def test_run_builds_only_its_own_parser(tmp_path):
    import time

    module = _echo_module(tmp_path)
    time.sleep(2.1)   # past the racy window (module_cache.RACY_NS): the next run indexes it
    run = f"from wasinn.cli import main; code = main(['run', {str(module)!r}])"
    _python(run)  # fills the caches (a miss reads the module with the toolchain's parser)
    loaded = _python(f"import gc, sys; before = set(sys.modules); {run}; print(code, sorted(m "
                     "for m in ('wasinn.serving_cli', 'wasinn.inspect_module', 'wasinn.scaffold', "
                     "'wasinn.code_split') if m in sys.modules and m not in before), "
                     "gc.isenabled())")
    # a library call of main(argv) leaves the caller's collector alone (only the program
    # pauses it while importing the engine, and freezes what it holds)
    assert loaded.splitlines()[-1] == "7 [] True"
    listed = subprocess.run([sys.executable, "-m", "wasinn", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert all(command in listed.stdout for command in ("run", "build", "inspect", "serve"))
