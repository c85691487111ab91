"""GGML backend benchmark: a Python guest ÷ llama-cpp-python called directly, same model.

    python benchmarks/llm.py MODEL.gguf [--rounds 5] [--tokens 150] [--threads 1]

Three runs of the same work (prompt = the first lines of the Zen of Python, then greedy
tokens with ignore-eos), each best of `--rounds`:

* direct: llama-cpp-python's low-level API in this process (clear the KV cache, decode the
  prompt; then sample, render the piece, decode one token, as llama.cpp's own examples do);
  prompt processing is timed on a long prompt (19 lines of the Zen, ~200 tokens), generation
  on a short one (7 lines) followed by `--tokens` tokens (the tiny model's context is 256);
* the `Llama` class of llama-cpp-python (`eval`, `generate`), for scale (not the reference);
* the guest `benchmarks/guests/llm_measure` in wasm (wasinn's runner) and natively, both in
  this process so that the three kinds of run alternate under the same machine load,
  timing `compute` with n-predict 0 (prompt processing) and n-predict N (prompt + generation)
  from inside the guest, and N `compute_single` + `get_output_single` calls (streaming).

Prints tokens per second and the ratios guest ÷ direct (≥ 0.95 is the target) for prompt
processing and generation separately (generation timed whole: the short prompt, then the
tokens), and the per-token cost of streaming over `compute`.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
_quiet = None
GUEST = HERE / "guests" / "llm_measure"


def zen_prompt(lines: int = 7) -> str:
    with contextlib.redirect_stdout(io.StringIO()):
        import this  # noqa: F401
    text = "".join(this.d.get(c, c) for c in this.s)
    return "\n".join(text.splitlines()[:lines])


def direct(model: Path, prompt: str, long_prompt: str, tokens: int, threads: int,
           rounds: int) -> dict:
    """Seconds (best of rounds) for prompt processing and prompt + generation, in-process."""
    import llama_cpp as L

    global _quiet
    _quiet = L.llama_log_callback(lambda *a: None)     # kept: llama.cpp holds the pointer
    L.llama_log_set(_quiet, ctypes.c_void_p())
    L.llama_backend_init()
    mparams = L.llama_model_default_params()
    mparams.n_gpu_layers = 0
    handle = L.llama_model_load_from_file(str(model).encode(), mparams)
    vocab = L.llama_model_get_vocab(handle)
    cparams = L.llama_context_default_params()
    cparams.n_ctx = 0
    cparams.n_threads = cparams.n_threads_batch = threads
    cparams.no_perf = True
    ctx = L.llama_init_from_model(handle, cparams)
    memory = L.llama_get_memory(ctx)
    def tokenize(text: str):
        data = text.encode()
        tokens = (L.llama_token * (len(data) + 8))()
        return tokens, L.llama_tokenize(vocab, data, len(data), tokens, len(tokens), True, True)

    buf, count = tokenize(prompt)
    long_buf, long_count = tokenize(long_prompt)
    sampler = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
    L.llama_sampler_chain_add(sampler, L.llama_sampler_init_greedy())
    one = (L.llama_token * 1)()
    piece = ctypes.create_string_buffer(256)

    def run_prompt(tokens=buf, n=count) -> None:
        L.llama_memory_clear(memory, True)
        L.llama_sampler_reset(sampler)
        L.llama_decode(ctx, L.llama_batch_get_one(tokens, n))

    def run_generate() -> int:
        run_prompt()
        out = bytearray()
        for _ in range(tokens):
            token = L.llama_sampler_sample(sampler, ctx, -1)
            size = L.llama_token_to_piece(vocab, token, piece, 256, 0, True)
            out += piece.raw[:size]
            one[0] = token
            L.llama_decode(ctx, L.llama_batch_get_one(one, 1))
        return len(out)

    best = {"long_prompt": 1e9, "prompt": 1e9, "generate": 1e9}
    for _ in range(rounds):
        start = time.perf_counter()
        run_prompt(long_buf, long_count)
        best["long_prompt"] = min(best["long_prompt"], time.perf_counter() - start)
        start = time.perf_counter()
        run_prompt()
        best["prompt"] = min(best["prompt"], time.perf_counter() - start)
        start = time.perf_counter()
        run_generate()
        best["generate"] = min(best["generate"], time.perf_counter() - start)
    best["input_tokens"] = count
    best["long_input_tokens"] = long_count
    L.llama_sampler_free(sampler)
    L.llama_free(ctx)
    L.llama_model_free(handle)
    return best


def high_level(model: Path, prompt: str, long_prompt: str, tokens: int, threads: int,
               rounds: int) -> dict:
    """The same work through llama-cpp-python's `Llama` class (`eval`, `generate`), for scale:
    what most Python code calling llama.cpp uses."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(model), n_ctx=0, n_threads=threads, n_threads_batch=threads,
                verbose=False)
    short = llm.tokenize(prompt.encode(), add_bos=True, special=True)
    long = llm.tokenize(long_prompt.encode(), add_bos=True, special=True)
    best = {"long_prompt": 1e9, "prompt": 1e9, "generate": 1e9}
    for _ in range(rounds):
        for key, ids in (("long_prompt", long), ("prompt", short)):
            start = time.perf_counter()
            llm.reset()
            llm.eval(ids)
            best[key] = min(best[key], time.perf_counter() - start)
        start = time.perf_counter()
        llm.reset()
        for count, _token in enumerate(llm.generate(short, temp=0.0, reset=True), 1):
            if count == tokens:
                break
        best["generate"] = min(best["generate"], time.perf_counter() - start)
    return best


def guest(model: Path, prompt: str, long_prompt: str, tokens: int, threads: int, rounds: int,
          workdir: Path, native: bool) -> dict:
    """Run the measuring guest in this process (so its runs alternate with the direct ones
    under the same machine load): in wasm through wasinn's runner, or natively."""
    from wasinn.nn import ModelRegistry

    registry = ModelRegistry.from_specs([f"default:GGML:AUTO:{model}"])
    output = workdir / "figures.json"
    args = ["default", str(rounds), str(tokens), str(threads), prompt, long_prompt]
    if native:
        from wasinn.native.runner import run_native

        code = run_native(GUEST, [*args, str(output)], registry=registry)
    else:
        from wasinn.runner import RunOptions, run

        module = workdir / "llm_measure.wasm"
        if not module.exists():
            subprocess.run([*_wasinn_command(), "build", str(GUEST), "-o", str(module)],
                           check=True, capture_output=True)
        code = run(RunOptions(module=module, args=[*args, "/out/figures.json"],
                              dirs=[("/out", str(workdir))], registry=registry))
    if code != 0:
        raise RuntimeError(f"the {'native' if native else 'wasm'} guest exited with {code}")
    return json.loads(output.read_text())


def _wasinn_command() -> list[str]:
    script = Path(sys.executable).with_name("wasinn")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "wasinn"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="a GGUF model (the tiny Zen model in tests)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=150, help="tokens generated per run")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="alternations of the three runs")
    args = parser.parse_args(argv)
    prompt, long_prompt = zen_prompt(7), zen_prompt(19)
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        # the three alternate, `--repeat` times, and each figure is the best seen: on a shared
        # machine the minimum is the run least disturbed by other work
        for _ in range(args.repeat):
            once = {
                "direct": direct(args.model, prompt, long_prompt, args.tokens, args.threads,
                                 args.rounds),
                "Llama class": high_level(args.model, prompt, long_prompt, args.tokens,
                                          args.threads, args.rounds),
                "wasm": guest(args.model, prompt, long_prompt, args.tokens, args.threads,
                              args.rounds, workdir, native=False),
                "native": guest(args.model, prompt, long_prompt, args.tokens, args.threads,
                                args.rounds, workdir, native=True),
            }
            for name, run in once.items():
                best = runs.setdefault(name, dict(run))
                for key in ("long_prompt", "prompt", "generate", "stream", "call"):
                    if key in run:
                        best[key] = min(best[key], run[key])
    n_prompt = runs["direct"]["input_tokens"]
    n_long = runs["direct"]["long_input_tokens"]
    n = args.tokens
    print(f"model {args.model.name}: prompt processing {n_long} tokens; generation {n} tokens "
          f"after a {n_prompt}-token prompt; "
          f"{args.threads} thread(s), best of {args.rounds} x {args.repeat}")
    print("| run | prompt processing, tok/s | generation, tok/s | prompt ratio | generation ratio "
          "| streaming − compute, µs/token | one streaming call, µs |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    base = runs["direct"]
    for name, run in runs.items():
        # generation is timed whole (its short prompt included): a difference of two noisy
        # minima (generate − prompt) can come out far off on a busy machine
        stream = (f"{(run['stream'] - run['generate']) / n * 1e6:.1f} | {run['call'] * 1e6:.1f}"
                  if "stream" in run else "— | —")
        print(f"| {name} | {n_long / run['long_prompt']:.0f} ({run['long_prompt'] * 1e3:.2f} ms) "
              f"| {n / run['generate']:.0f} ({run['generate'] * 1e3:.1f} ms) "
              f"| {base['long_prompt'] / run['long_prompt']:.3f} "
              f"| {base['generate'] / run['generate']:.3f} | {stream} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
