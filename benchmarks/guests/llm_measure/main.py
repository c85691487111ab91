"""Benchmark guest: LLM prompt processing, generation and streaming timed inside the guest.

    main.py MODEL_NAME ROUNDS GEN_TOKENS THREADS

Prints one JSON object of best-of-ROUNDS seconds: `prompt` (a compute that only decodes the
prompt, n-predict 0), `generate` (the same prompt then GEN_TOKENS greedy tokens), `stream`
(the same tokens through compute_single + get_output_single), and the token counts.
"""

import json
import sys
import time

import wasi_nn

U8 = wasi_nn.TENSOR_TYPE_U8
PROMPT_LINES = 7   # lines of the Zen as the prompt: long, but well inside the 256-token context


def set_text(ctx, index, text):
    data = text.encode()
    wasi_nn.set_input(ctx, index, wasi_nn.Tensor([len(data)], U8, data))


def main(argv):
    name, rounds, gen_tokens, threads = argv[1], int(argv[2]), int(argv[3]), int(argv[4])
    prompt = argv[5]
    config = {"temp": 0, "ignore-eos": True, "threads": threads}
    graph = wasi_nn.load_by_name_with_config(name, json.dumps(config))
    ctx = wasi_nn.init_execution_context(graph)
    set_text(ctx, 0, prompt)
    buffer = bytearray(1 << 16)
    best = {"prompt": 1e9, "generate": 1e9, "stream": 1e9}
    for _ in range(rounds):
        set_text(ctx, 1, '{"n-predict": 0}')
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
        wasi_nn.fini_single(ctx)
    meta = bytearray(256)
    meta_len = wasi_nn.get_output(ctx, 1, meta)
    best["metadata"] = json.loads(bytes(meta[:meta_len]))
    best["text_bytes"] = written
    print(json.dumps(best))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
