"""LLM guests on the GGML backend, through wasm and natively, on the tiny Zen-of-Python GGUF.

One protocol guest (`guests/llm_protocol`) walks through every part of WasmEdge's GGML protocol
and prints what it saw as JSON; it must print the same in wasm and natively, and match the
model's documented outputs (shared/tools/tiny_gguf/README.md). The examples `llama_chat` and
`llama_embedding` run as a user runs them, and the Rust stand-in of WasmEdge's llama guests
must print exactly what `llama_chat` prints.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from _example_runs import EXAMPLES, GUESTS, build, ok, run_native, run_wasm, wasinn

pytest.importorskip("llama_cpp", reason="the GGML backend needs llama-cpp-python (extra ggml)")
pytestmark = pytest.mark.runtime

TAIL_PROMPT = "If the implementation is easy to explain,"
TAIL = " it may be a good idea.\nNamespaces are one honking great idea -- let's do more of those!"
PRELOAD = ["default:GGML:AUTO:zen.gguf"]

EXPECTED = {
    "metadata_keys": ["input_tokens", "llama_build_number", "llama_commit", "output_tokens"],
    "metadata_before_compute": [9, 0],
    "tail": {"errno": 0, "text": TAIL + "</s>", "tokens": [9, 26]},
    "n_predict": {"errno": 0, "text": " ugly.\nExpl", "tokens": [5, 5]},
    "prompt_too_long_single": 102,
    "stream": {"errno": 100, "pieces": 25, "text": TAIL, "eos_piece": "</s>", "tokens": [9, 26]},
    "fini_single": 0,
    "after_fini": [9, 0],
    "set_input_bad_json": 2,
    "set_input_wrong_type": 1,
    "load_bad_json": 2,
    "load_wrong_type": 1,
    "load_unknown_key": 0,
    "unknown_name": 8,
    "model_not_found": 103,
    "not_gguf": 1,
    "finalize": [0, 1, 1],
    "unload": [0, 1],
    "chat_prompt": "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_gguf) -> Path:
    folder = tmp_path_factory.mktemp("llm")
    shutil.copy(tiny_gguf, folder / "zen.gguf")
    return folder


@pytest.fixture(scope="module")
def protocol_outputs(workdir) -> dict[str, dict]:
    module = build(GUESTS / "llm_protocol", workdir / "llm_protocol.wasm")
    outputs = {}
    for mode, result in (("wasm", run_wasm(module, ["zen.gguf"], workdir, PRELOAD)),
                         ("native", run_native(GUESTS / "llm_protocol", ["zen.gguf"], workdir,
                                               PRELOAD))):
        outputs[mode] = json.loads(ok(result)[-1])
    return outputs


@pytest.mark.parametrize("mode", ["wasm", "native"])
def test_protocol_guest_sees_the_documented_outputs(protocol_outputs, mode):
    seen = protocol_outputs[mode]
    for key, expected in EXPECTED.items():
        assert seen[key] == expected, key
    assert seen["reverse_prompt"]["errno"] == 0
    assert seen["reverse_prompt"]["text"] == " ugly.\nExplicit is better than implicit.\nSimple"
    full = seen["context_full"]
    assert (full["errno"], full["tokens"]) == (101, [7, 250])
    assert full["text"].startswith(" Tim Peters\n\nBeautiful is better than ugly.")
    too_long = seen["prompt_too_long"]
    assert (too_long["errno"], too_long["text"]) == (102, "")
    assert too_long["tokens"][0] > 252
    assert seen["embedding"] == {"n": 128, "len": 128, "norm": 1.0,
                                 "tokens": [seen["embedding"]["tokens"][0], 0]}
    llm = seen["llm"]
    assert llm["generate"] == TAIL and llm["stream_equal"] and llm["stream_tokens"] == [9, 26]
    assert llm["n_predict"] == " pass silently." and llm["finish"] == "stop"
    assert "".join(llm["stream_n_predict"]) == " pass silently."      # n-predict 3 still on
    assert len(llm["stream_n_predict"]) == 3
    assert llm["stream_reverse"] == " ugly.\nExplicit is better than implicit"
    assert llm["metadata_type"] is True
    assert seen["stream_utf8"] == ["é", "!"]
    assert seen["llm_embed"] == [128, 1.0]


def test_wasm_and_native_agree_exactly(protocol_outputs):
    assert protocol_outputs["wasm"] == protocol_outputs["native"]


@pytest.fixture(scope="module")
def llama_chat(workdir) -> Path:
    return build(EXAMPLES / "llama_chat", workdir / "llama_chat.wasm")


CHAT_LINES = [
    "Prompt:", TAIL_PROMPT, "Response:", '[INFO] llama_commit: "0c1e57098"',
    "[INFO] llama_build_number: 0", "[INFO] Number of input tokens: 9",
]


def _chat(module_or_package: Path, workdir: Path, *args: str, native: bool = False):
    if native:
        return wasinn("run", "--env", "temp=0", "--nn-preload", PRELOAD[0], "--native",
                      module_or_package, *args, cwd=workdir)
    return wasinn("run", "--dir", ".:.", "--env", "temp=0", "--nn-preload", PRELOAD[0],
                  module_or_package, *args, cwd=workdir)


def test_llama_chat_one_shot_and_stream(llama_chat, workdir):
    lines = ok(_chat(llama_chat, workdir, "default", TAIL_PROMPT))
    assert lines == CHAT_LINES + [TAIL.strip().split("\n")[0], TAIL.split("\n")[1] + "</s>",
                                  "[INFO] Number of input tokens: 9",
                                  "[INFO] Number of output tokens: 26"]
    streamed = ok(_chat(llama_chat, workdir, "default", TAIL_PROMPT, "--stream"))
    assert streamed == CHAT_LINES + [TAIL.split("\n")[0], TAIL.split("\n")[1],
                                     "[INFO] Number of input tokens: 9",
                                     "[INFO] Number of output tokens: 26"]


def test_llama_chat_loop_on_stdin(llama_chat, workdir):
    import subprocess

    from _example_runs import wasinn_command

    result = subprocess.run(
        [*wasinn_command(), "run", "--dir", ".:.", "--env", "temp=0", "--env", "n_predict=4",
         "--nn-preload", PRELOAD[0], str(llama_chat), "default"],
        input="Errors should never\n", cwd=workdir, capture_output=True, text=True, timeout=300)
    lines = ok(result)
    assert lines[0] == "USER:" and lines[1] == "ASSISTANT:" and lines[-1] == "USER:"


def test_llama_chat_unknown_model_is_exit_1(llama_chat, workdir):
    result = _chat(llama_chat, workdir, "nope", "hello")
    assert result.returncode == 1 and "not_found" in result.stderr


def test_rust_stand_in_prints_what_llama_chat_prints(llama_chat, workdir):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import rust_reference

    try:
        rust = rust_reference.build(workdir / "rust", rust_reference.HERE / "rust_ggml")
    except rust_reference.RustUnavailable as error:
        pytest.skip(str(error))
    for extra in ([], ["--stream"]):
        python = ok(_chat(llama_chat, workdir, "default", TAIL_PROMPT, *extra))
        rust_lines = ok(_chat(rust, workdir, "default", TAIL_PROMPT, *extra))
        assert rust_lines == python


def test_llama_embedding_example(workdir):
    (workdir / "lines.txt").write_text("Beautiful is better than ugly.\n\n"
                                       "Explicit is better than implicit.\n")
    module = build(EXAMPLES / "llama_embedding", workdir / "llama_embedding.wasm")
    wasm = ok(run_wasm(module, ["default", "lines.txt"], workdir, PRELOAD))
    native = ok(run_native(EXAMPLES / "llama_embedding", ["default", "lines.txt"], workdir,
                           PRELOAD))
    assert wasm == native and len(wasm) == 2
    assert wasm[0].startswith("line 1: 128 values [") and wasm[0].endswith("line 1: 1.0000")
    assert wasm[1].startswith("line 2: 128 values [")


def test_llm_benchmark_script_runs(tiny_gguf):
    """benchmarks/llm.py end to end with few tokens (figures are printed, never asserted)."""
    import subprocess

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "llm.py"
    result = subprocess.run([sys.executable, str(script), str(tiny_gguf), "--rounds", "1",
                             "--repeat", "1", "--tokens", "8"],
                            capture_output=True, text=True, timeout=600, check=False)
    lines = ok(result)
    rows = [line for line in lines if line.startswith(("| direct", "| Llama", "| wasm",
                                                       "| native"))]
    assert len(rows) == 4 and "generation 8 tokens after a 52-token prompt" in lines[0]
    probe = [line for line in lines if line.startswith("speed probe before / after: ")]
    assert len(probe) == 1 and probe[0].endswith(" ms (timing.speed_probe)")


def test_llm_benchmark_paired_mode_interleaves_long_lived_processes(tiny_gguf):
    """`llm.py --paired`: direct, wasm and native mode as stepped processes (one measure
    per line of stdin), ratios step by step; a bad step count is one line and exit 2."""
    import subprocess

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "llm.py"
    result = subprocess.run([sys.executable, str(script), str(tiny_gguf), "--paired", "4",
                             "--sets", "2", "--tokens", "8"],
                            capture_output=True, text=True, timeout=600, check=False)
    lines = ok(result)
    assert "4 steps of each measure in 2 sets of processes, interleaved" in lines[0]
    rows = [line for line in lines if line.startswith(("| direct", "| wasm", "| native"))]
    assert len(rows) == 3 and rows[0].count("1.000 (1.000–1.000)") == 3
    for steps in ("2", "0"):
        bad = subprocess.run([sys.executable, str(script), str(tiny_gguf), "--paired", steps],
                             capture_output=True, text=True, timeout=60, check=False)
        assert bad.returncode == 2 and "--paired needs at least 4 steps" in bad.stderr


STREAMER = '''
import json
import wasi_nn

ctx = wasi_nn.init_execution_context(wasi_nn.load_by_name_with_config(
    "default", json.dumps({"temp": 0, "n-predict": 5, "stream-stdout": True})))
prompt = %r.encode()
wasi_nn.set_input(ctx, 0, wasi_nn.Tensor([len(prompt)], wasi_nn.TENSOR_TYPE_U8, prompt))
wasi_nn.compute(ctx)
out = bytearray(4096)
print("|" + bytes(out[:wasi_nn.get_output(ctx, 0, out)]).decode() + "|")
'''


@pytest.mark.parametrize("where", [(), ("--in-process",)], ids=["worker", "in-process"])
def test_stream_stdout_goes_to_the_guests_stdout(workdir, tmp_path, where):
    """WasmEdge prints stream-stdout pieces on stdout; through the worker too (whose own
    stdout is the host's stderr)."""
    guest = tmp_path / "streamer"
    guest.mkdir()
    (guest / "main.py").write_text(STREAMER % TAIL_PROMPT)
    module = build(guest, tmp_path / "streamer.wasm")
    result = wasinn("run", *where, "--nn-preload", PRELOAD[0], module, cwd=workdir)
    ok(result)
    streamed, _, printed = result.stdout.partition("|")
    assert streamed and printed == streamed + "|\n"          # the pieces, then the whole output
    assert TAIL.startswith(streamed) and streamed not in result.stderr
