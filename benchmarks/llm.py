"""GGML backend benchmark: a Python guest ÷ llama-cpp-python called directly, same model.

    python benchmarks/llm.py MODEL.gguf [--rounds 3] [--repeat 10] [--tokens 150]
                             [--threads 1] [--ctx-size 1024]

The same work four ways, alternating `--repeat` times, each run in a fresh process (`--rounds`
measurements each time, after one unrecorded warm-up round), greedy, `--threads` llama.cpp
threads, a `--ctx-size` context:

* direct: llama-cpp-python's low-level API (tokenise the prompt, clear the KV cache, decode
  it; then sample, render the piece, decode one token, as llama.cpp's own examples do);
* the `Llama` class of llama-cpp-python (`eval`, `generate`), for scale (not the reference);
* the guest `benchmarks/guests/llm_measure` in wasm (wasinn's runner: the backend in the
  confined worker process) and natively (the backend in this process), timing from inside
  the guest `compute` with n-predict 0 (prompt processing), `compute` with n-predict N and
  `get_output` (generation), and N `compute_single` + `get_output_single` (streaming).

Prompts (the Zen of Python): prompt processing on the whole Zen (186 tokens with the tiny
model) and on a realistic chat-sized prompt, the Zen four times (745 tokens, hence the
1024-token context); generation: 7 lines (52 tokens), then `--tokens` tokens. Each prompt is
tokenised right before the decode that uses it, untimed, on both sides (a guest's set_input;
direct: llama_tokenize), as an application does it: a decode that runs straight after
another decode finds its weights hot in the CPU caches, one after any other work does not.

Prints the medians of all `rounds x repeat` measurements as tokens per second, the ratios
guest ÷ direct (≥ 0.95 is the target) for prompt processing and generation separately, and
the per-token cost of streaming.

    python benchmarks/llm.py MODEL.gguf --paired 120 [--sets 6]

is steadier where the machine's speed drifts within seconds (RESULTS.md, "Session 6"): direct,
wasm and native mode stay up as long-lived processes in a stepped mode and run one measure
each in turn per step (timing.paired_steps; STEPS of each measure: the short prompt, the long
one, generation, streaming), and every ratio is taken step by step (median, with the
interquartile range). One measure per step, not a whole round, keeps the two sides of a ratio
close in time even for a real-sized model, whose round takes seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from timing import speed_probe  # noqa: E402
_quiet = None
GUEST = HERE / "guests" / "llm_measure"
MEASURES = ("prompt", "long_prompt", "generate", "stream")


def zen_prompt(lines: int = 7) -> str:
    with contextlib.redirect_stdout(io.StringIO()):
        import this  # noqa: F401
    text = "".join(this.d.get(c, c) for c in this.s)
    return "\n".join(text.splitlines()[:lines])


def prompts() -> dict[str, str]:
    """The three prompts: prompt processing (short and long), and generation's."""
    zen = zen_prompt(19)
    return {"prompt": zen, "long_prompt": "\n\n".join([zen] * 4), "gen_prompt": zen_prompt(7)}


def direct(model: Path, texts: dict[str, str], tokens: int, threads: int, ctx_size: int,
           rounds: int | None) -> dict:
    """Seconds per round (lists) for prompt processing and prompt + generation, in-process;
    with `rounds` None, stepped (timing.paired_steps): a round per line of stdin, printed."""
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
    cparams.n_ctx = ctx_size
    cparams.n_threads = cparams.n_threads_batch = threads
    cparams.no_perf = True
    ctx = L.llama_init_from_model(handle, cparams)
    memory = L.llama_get_memory(ctx)

    def tokenize(text: str):
        data = text.encode()
        ids = (L.llama_token * (len(data) + 8))()
        return ids, L.llama_tokenize(vocab, data, len(data), ids, len(ids), True, True)

    sampler = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
    L.llama_sampler_chain_add(sampler, L.llama_sampler_init_greedy())
    one = (L.llama_token * 1)()
    piece = ctypes.create_string_buffer(256)

    def decode_prompt(ids, count: int) -> None:
        L.llama_memory_clear(memory, False)    # cells freed, as the backend and llama.cpp's server do
        L.llama_sampler_reset(sampler)
        L.llama_decode(ctx, L.llama_batch_get_one(ids, count))

    def generate(ids, count: int) -> int:
        decode_prompt(ids, count)
        out = bytearray()
        for _ in range(tokens):
            token = L.llama_sampler_sample(sampler, ctx, -1)
            size = L.llama_token_to_piece(vocab, token, piece, 256, 0, True)
            out += piece.raw[:size]
            one[0] = token
            L.llama_decode(ctx, L.llama_batch_get_one(one, 1))
        return len(out)

    times: dict[str, list[float]] = {key: [] for key in ("prompt", "long_prompt", "generate")}
    counts = {}

    measures = {"long_prompt": (texts["long_prompt"], decode_prompt),
                "prompt": (texts["prompt"], decode_prompt),
                "generate": (texts["gen_prompt"], generate)}

    def measure(key: str) -> None:
        text, work = measures[key]
        ids, counts[key] = tokenize(text)          # untimed, as the guest's set_input
        start = time.perf_counter()
        work(ids, counts[key])
        times[key].append(time.perf_counter() - start)

    def one_round() -> None:
        for key in measures:
            measure(key)

    for _ in range(1 + (rounds or 0)):             # as the guest: one unrecorded round first
        one_round()
    times = {key: values[1:] for key, values in times.items()}
    if rounds is None:        # stepped: a round per line of stdin, or the one measure it names
        while line := sys.stdin.readline():
            name = line.strip()
            if name in MEASURES:
                answer: dict = {"tokens": counts}
                if name in measures:               # "stream" is the guests' alone: no time
                    measure(name)
                    answer[name] = times[name][-1]
                print(json.dumps(answer), flush=True)
                continue
            one_round()
            print(json.dumps({**{key: values[-1] for key, values in times.items()},
                              "tokens": counts}), flush=True)
    L.llama_sampler_free(sampler)
    L.llama_free(ctx)
    L.llama_model_free(handle)
    return {**times, "tokens": counts}


def high_level(model: Path, texts: dict[str, str], tokens: int, threads: int, ctx_size: int,
               rounds: int) -> dict:
    """The same work through llama-cpp-python's `Llama` class (`eval`, `generate`), for scale:
    what most Python code calling llama.cpp uses."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(model), n_ctx=ctx_size, n_threads=threads,
                n_threads_batch=threads, verbose=False)
    times: dict[str, list[float]] = {key: [] for key in ("prompt", "long_prompt", "generate")}
    for warm_up in [True] + [False] * rounds:
        for key in ("long_prompt", "prompt"):
            ids = llm.tokenize(texts[key].encode(), add_bos=True, special=True)
            start = time.perf_counter()
            llm.reset()
            llm.eval(ids)
            times[key].append(time.perf_counter() - start)
        ids = llm.tokenize(texts["gen_prompt"].encode(), add_bos=True, special=True)
        start = time.perf_counter()
        llm.reset()
        for count, _token in enumerate(llm.generate(ids, temp=0.0, reset=True), 1):
            if count == tokens:
                break
        times["generate"].append(time.perf_counter() - start)
        if warm_up:
            times = {key: [] for key in times}
    return times


def guest(model: Path, texts: dict[str, str], tokens: int, threads: int, ctx_size: int,
          rounds: int, workdir: Path, native: bool) -> dict:
    """Run the measuring guest in this process: in wasm through wasinn's runner (the backend
    in its worker process), or natively (the backend in this process)."""
    from wasinn.nn import ModelRegistry

    registry = ModelRegistry.from_specs([f"default:GGML:AUTO:{model}"])
    output = workdir / "figures.json"
    args = ["default", str(rounds), str(tokens), str(threads), str(ctx_size),
            texts["prompt"], texts["long_prompt"], texts["gen_prompt"]]
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


RUNS = ("direct", "Llama class", "wasm", "native")


def one_run(args: argparse.Namespace, texts: dict[str, str], name: str, workdir: Path) -> dict:
    common = (args.model, texts, args.tokens, args.threads, args.ctx_size, args.rounds)
    if name == "direct":
        return direct(*common)
    if name == "Llama class":
        return high_level(*common)
    return guest(*common, workdir, native=name == "native")


def in_a_fresh_process(args: argparse.Namespace, name: str, workdir: Path) -> dict:
    """One run of `name` in a new Python process, as the wasm run's backend worker always is.

    How fast the same decode runs differs from process to process by more than what is
    measured here (the tiny model's 186-token decode called directly took 4.01-4.40 ms in six
    fresh processes, and within one process 3.96-4.01 ms over eight contexts): where the
    process's buffers and the model's pages land in the caches. Were direct and native mode
    always in this one process and the worker a new one each time, the ratios would compare
    one draw against many; each run in a process of its own draws alike on both sides.
    """
    out = workdir / "run.json"
    # the child works in `workdir` too: the wasm guest is built there once, not per run
    command = [sys.executable, str(Path(__file__).resolve()), str(args.model), "--one", name,
               "--workdir", str(workdir), "--out", str(out), "--rounds", str(args.rounds),
               "--tokens", str(args.tokens), "--threads", str(args.threads),
               "--ctx-size", str(args.ctx_size)]
    subprocess.run(command, check=True)
    return json.loads(out.read_text())


def paired(args: argparse.Namespace, texts: dict[str, str]) -> str:
    """The `--paired` report: direct, wasm and native mode as long-lived processes, one
    measure each in turn per step (timing.paired_steps), ratios taken step by step."""
    from timing import Stepper, paired_ratio, paired_steps

    with tempfile.TemporaryDirectory() as folder:
        module = Path(folder) / "llm_measure.wasm"
        subprocess.run([*_wasinn_command(), "build", str(GUEST), "-o", str(module)],
                       check=True, capture_output=True)
        settings = [str(args.tokens), str(args.threads), str(args.ctx_size)]
        guest_args = ["default", "stdin", *settings, texts["prompt"], texts["long_prompt"],
                      texts["gen_prompt"]]
        preload = ["--nn-preload", f"default:GGML:AUTO:{args.model.resolve()}"]
        steppers = {
            "direct": Stepper([sys.executable, str(Path(__file__).resolve()), str(args.model),
                               "--one", "direct", "--stepped", "--tokens", settings[0],
                               "--threads", settings[1], "--ctx-size", settings[2]]),
            "wasm": Stepper([*_wasinn_command(), "run", *preload, str(module), *guest_args]),
            "native": Stepper([*_wasinn_command(), "run", "--native", *preload, str(GUEST),
                               *guest_args]),
        }
        # one measure per step: a real-sized model's whole round takes seconds
        answers = paired_steps(steppers, args.paired * len(MEASURES), args.sets,
                               requests=MEASURES)
    counts = answers["direct"][-1]["tokens"]
    base = answers["direct"]
    lines = [
        f"model {args.model.name}: prompt processing {counts['prompt']} and "
        f"{counts['long_prompt']} tokens; generation {args.tokens} tokens after a "
        f"{counts['generate']}-token prompt; {args.threads} thread(s), context "
        f"{args.ctx_size}; {args.paired} steps of each measure in {args.sets} sets of "
        "processes, interleaved "
        "(medians; ratios step by step, interquartile range in brackets)",
        "| run | prompt processing, tok/s (short / long prompt) | generation, tok/s "
        "| prompt ratio, short | prompt ratio, long | generation ratio | one streamed token, µs |",
        "| --- | --- | --- | --- | --- | --- | --- |"]

    def ratio(name: str, key: str) -> str:
        pairs = [(mine[key], theirs[key]) for mine, theirs in zip(base, answers[name])
                 if key in mine]
        middle, low, high = paired_ratio(*zip(*pairs))
        return f"{middle:.3f} ({low:.3f}–{high:.3f})"

    for name, steps in answers.items():
        median = {key: statistics.median(step[key] for step in steps if key in step)
                  for key in MEASURES if any(key in step for step in steps)}
        stream = f"{median['stream'] / args.tokens * 1e6:.1f}" if "stream" in median else "—"
        lines.append(
            f"| {name} | {counts['prompt'] / median['prompt']:.0f} / "
            f"{counts['long_prompt'] / median['long_prompt']:.0f} "
            f"| {args.tokens / median['generate']:.0f} | {ratio(name, 'prompt')} "
            f"| {ratio(name, 'long_prompt')} | {ratio(name, 'generate')} | {stream} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="a GGUF model (the tiny Zen model in tests)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="measurements per run (after one unrecorded warm-up round)")
    parser.add_argument("--repeat", type=int, default=10,
                        help="alternations of the four runs: short runs alternating often see "
                             "the same machine load")
    parser.add_argument("--tokens", type=int, default=150, help="tokens generated per run")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ctx-size", type=int, default=1024,
                        help="context for every run (the long prompt needs ~750 tokens)")
    parser.add_argument("--paired", type=int, metavar="STEPS",
                        help="instead: direct, wasm and native mode as long-lived processes, "
                             "one measure of each in turn per step, STEPS of each measure, "
                             "ratios step by step (steadier on a machine whose speed drifts)")
    parser.add_argument("--sets", type=int, default=4,
                        help="with --paired: fresh processes for each of this many sets of steps")
    parser.add_argument("--one", choices=RUNS, help=argparse.SUPPRESS)   # a child's one run
    parser.add_argument("--stepped", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    texts = prompts()
    if args.one == "direct" and args.stepped:
        direct(args.model, texts, args.tokens, args.threads, args.ctx_size, None)
        return 0
    if args.paired is not None:
        if args.paired < 4 or args.sets < 1 or args.sets > args.paired:
            parser.error("--paired needs at least 4 steps and 1..STEPS sets")
        print_probed(lambda: paired(args, texts))
        return 0
    if args.one:
        args.out.write_text(json.dumps(one_run(args, texts, args.one, args.workdir)))
        return 0
    print_probed(lambda: fresh_processes(args, texts))
    return 0


def print_probed(make_report: Callable[[], str]) -> None:
    """Print a report, then the speed probe taken before and after making it."""
    before = speed_probe()
    report_text = make_report()
    after = speed_probe()
    print(report_text)
    print(f"speed probe before / after: {before:.0f} / {after:.0f} ms (timing.speed_probe)")


def fresh_processes(args: argparse.Namespace, texts: dict[str, str]) -> str:
    """The default report: the four runs alternating `--repeat` times, each in a fresh process."""
    samples: dict[str, dict[str, list[float]]] = {}
    counts: dict = {}
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        # the four alternate, `--repeat` times, so that each sees the same mix of machine load,
        # and each run is a fresh process (see `in_a_fresh_process`)
        for _ in range(args.repeat):
            once = {name: in_a_fresh_process(args, name, workdir) for name in RUNS}
            counts = once["direct"]["tokens"]
            for name, run in once.items():
                kept = samples.setdefault(name, {})
                for key in MEASURES:
                    kept.setdefault(key, []).extend(run.get(key, ()))
    median = {name: {key: statistics.median(values) for key, values in run.items() if values}
              for name, run in samples.items()}
    return report(median, counts, args)


def report(median: dict[str, dict[str, float]], counts: dict, args: argparse.Namespace) -> str:
    n = args.tokens
    lines = [
        f"model {args.model.name}: prompt processing {counts['prompt']} and "
        f"{counts['long_prompt']} tokens; generation {n} tokens after a "
        f"{counts['generate']}-token prompt; {args.threads} thread(s), context "
        f"{args.ctx_size}; medians of {args.rounds} x {args.repeat}",
        "| run | prompt processing, tok/s (short / long prompt) | generation, tok/s "
        "| prompt ratio (short / long) | generation ratio | one streamed token, µs "
        "| streaming − compute, µs/token |",
        "| --- | --- | --- | --- | --- | --- | --- |"]
    base = median["direct"]
    for name, run in median.items():
        short, long, gen = run["prompt"], run["long_prompt"], run["generate"]
        # generation is timed whole (its short prompt included) on both sides
        stream = (f"{run['stream'] / n * 1e6:.1f} | {(run['stream'] - gen) / n * 1e6:.1f}"
                  if "stream" in run else f"{gen / n * 1e6:.1f} (compute) | —")
        lines.append(
            f"| {name} | {counts['prompt'] / short:.0f} ({short * 1e3:.2f} ms) / "
            f"{counts['long_prompt'] / long:.0f} ({long * 1e3:.2f} ms) "
            f"| {n / gen:.0f} ({gen * 1e3:.1f} ms) "
            f"| {base['prompt'] / short:.3f} / {base['long_prompt'] / long:.3f} "
            f"| {base['generate'] / gen:.3f} | {stream} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
