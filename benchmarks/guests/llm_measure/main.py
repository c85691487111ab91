"""Benchmark guest: LLM prompt processing, generation and streaming timed inside the guest.

    main.py MODEL_NAME ROUNDS GEN_TOKENS THREADS CTX_SIZE PROMPT LONG_PROMPT GEN_PROMPT [OUT.json]

Prints one JSON object of per-round seconds (lists of ROUNDS values, after one warm-up round): `prompt` and
`long_prompt` (a `compute` with n-predict 0 that only decodes PROMPT / LONG_PROMPT: prompt
processing), `generate` (GEN_PROMPT then GEN_TOKENS greedy tokens by one `compute`, and its
`get_output`), `stream` (the same tokens by GEN_TOKENS `compute_single` + `get_output_single`
pairs), and the token counts (to OUT.json when given, else to stdout). Each prompt is set
(tokenised on the host) just before the `compute` that uses it, untimed, as any application
does it; benchmarks/llm.py's direct run does the same.

ROUNDS `stdin` is the stepped mode (benchmarks/timing.paired_steps): after the warm-up round,
every line read from stdin runs one round and prints its times (seconds, one JSON object per
line), until stdin ends. A line naming one measure (`prompt`, `long_prompt`, `generate`,
`stream`) runs only that one, set up as in a round, and prints only its time.
"""

import json
import sys
import time

import wasi_nn

U8 = wasi_nn.TENSOR_TYPE_U8


def set_text(ctx, index, text):
    data = text.encode()
    wasi_nn.set_input(ctx, index, wasi_nn.Tensor([len(data)], U8, data))


def timed(function, *args):
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def main(argv):
    name, gen_tokens = argv[1], int(argv[3])
    stepped = argv[2] == "stdin"
    rounds = 0 if stepped else int(argv[2])
    threads, ctx_size = int(argv[4]), int(argv[5])
    prompt, long_prompt, gen_prompt = argv[6], argv[7], argv[8]
    config = {"temp": 0, "ignore-eos": True, "threads": threads, "ctx-size": ctx_size}
    graph = wasi_nn.load_by_name_with_config(name, json.dumps(config))
    ctx = wasi_nn.init_execution_context(graph)
    buffer = bytearray(1 << 16)
    times = {"prompt": [], "long_prompt": [], "generate": [], "stream": []}
    counts = {}

    def generate():
        wasi_nn.compute(ctx)
        counts["text_bytes"] = wasi_nn.get_output(ctx, 0, buffer)

    def stream():
        for _ in range(gen_tokens):
            wasi_nn.compute_single(ctx)
            wasi_nn.get_output_single(ctx, 0, buffer)

    def prompt_only(key, text):
        set_text(ctx, 1, '{"n-predict": 0}')
        set_text(ctx, 0, text)
        times[key].append(timed(wasi_nn.compute, ctx))

    def generation(key, work):
        set_text(ctx, 1, json.dumps({"n-predict": gen_tokens}))
        set_text(ctx, 0, gen_prompt)
        times[key].append(timed(work))

    measures = {"long_prompt": lambda: prompt_only("long_prompt", long_prompt),
                "prompt": lambda: prompt_only("prompt", prompt),
                "generate": lambda: generation("generate", generate),
                "stream": lambda: generation("stream", stream)}

    def one_round():
        for measure in measures.values():
            measure()
        meta = bytearray(256)
        counts["metadata"] = json.loads(bytes(meta[:wasi_nn.get_output(ctx, 1, meta)]))
        wasi_nn.fini_single(ctx)

    for _ in range(rounds + 1):
        one_round()
    if stepped:
        while line := sys.stdin.readline():
            name = line.strip()
            if name in measures:
                measures[name]()
                wasi_nn.fini_single(ctx)
                print(json.dumps({name: times[name][-1]}), flush=True)
                continue
            one_round()
            print(json.dumps({key: values[-1] for key, values in times.items()}), flush=True)
        return 0
    # the first round warms up (llama.cpp sizes its buffers on the first decodes), unrecorded
    result = {**{key: values[1:] for key, values in times.items()}, **counts}
    if len(argv) > 9:
        with open(argv[9], "w") as file:
            file.write(json.dumps(result))
    else:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
