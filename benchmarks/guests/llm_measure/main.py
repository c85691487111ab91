"""Benchmark guest: LLM prompt processing, generation and streaming timed inside the guest.

    main.py MODEL_NAME ROUNDS GEN_TOKENS THREADS PROMPT LONG_PROMPT [OUTPUT.json]

Prints one JSON object of best-of-ROUNDS seconds: `long_prompt` (a compute that only decodes
LONG_PROMPT, n-predict 0: prompt processing), `prompt` (the same for PROMPT), `generate` (PROMPT
then GEN_TOKENS greedy tokens), `stream` (the same tokens through compute_single +
get_output_single), `call` (one get_output_single alone, the per-call cost of streaming), and
the token counts (to OUTPUT.json when given, else to stdout).
"""

import json
import sys
import time

import wasi_nn

U8 = wasi_nn.TENSOR_TYPE_U8


def set_text(ctx, index, text):
    data = text.encode()
    wasi_nn.set_input(ctx, index, wasi_nn.Tensor([len(data)], U8, data))


def main(argv):
    name, rounds, gen_tokens, threads = argv[1], int(argv[2]), int(argv[3]), int(argv[4])
    prompt, long_prompt = argv[5], argv[6]
    config = {"temp": 0, "ignore-eos": True, "threads": threads}
    graph = wasi_nn.load_by_name_with_config(name, json.dumps(config))
    ctx = wasi_nn.init_execution_context(graph)
    set_text(ctx, 0, prompt)
    buffer = bytearray(1 << 16)
    best = {"long_prompt": 1e9, "prompt": 1e9, "generate": 1e9, "stream": 1e9}
    for _ in range(rounds):
        set_text(ctx, 1, '{"n-predict": 0}')
        set_text(ctx, 0, long_prompt)
        start = time.perf_counter()
        wasi_nn.compute(ctx)
        best["long_prompt"] = min(best["long_prompt"], time.perf_counter() - start)
        set_text(ctx, 0, prompt)
        start = time.perf_counter()
        wasi_nn.compute(ctx)
        best["prompt"] = min(best["prompt"], time.perf_counter() - start)

        set_text(ctx, 1, json.dumps({"n-predict": gen_tokens}))
        start = time.perf_counter()
        wasi_nn.compute(ctx)
        written = wasi_nn.get_output(ctx, 0, buffer)
        best["generate"] = min(best["generate"], time.perf_counter() - start)

        start = time.perf_counter()
        for _ in range(gen_tokens):
            wasi_nn.compute_single(ctx)
            wasi_nn.get_output_single(ctx, 0, buffer)
        best["stream"] = min(best["stream"], time.perf_counter() - start)
        # one streaming host call with no llama.cpp work in it: what each token's two calls
        # (compute_single + get_output_single) cost beyond the generation itself
        calls = 2000
        start = time.perf_counter()
        for _ in range(calls):
            wasi_nn.get_output_single(ctx, 0, buffer)
        best["call"] = min(best.get("call", 1e9), (time.perf_counter() - start) / calls)
        wasi_nn.fini_single(ctx)
    meta = bytearray(256)
    meta_len = wasi_nn.get_output(ctx, 1, meta)
    best["metadata"] = json.loads(bytes(meta[:meta_len]))
    best["text_bytes"] = written
    if len(argv) > 7:
        with open(argv[7], "w") as file:
            file.write(json.dumps(best))
    else:
        print(json.dumps(best))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
