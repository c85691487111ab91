"""Test guest: WasmEdge's GGML protocol step by step, on the tiny Zen-of-Python model.

    main.py MODEL.gguf          (with --nn-preload default:GGML:AUTO:MODEL.gguf)

Prints one JSON object: for each scenario, the errnos, output bytes and token counts the
guest saw. The test runs it in wasm and natively and checks both against the model's
documented outputs, so the two modes must agree exactly.
"""

import json
import sys

import wasi_nn
from wasi_nn.llm import Llm, Metadata, chat_prompt

U8 = wasi_nn.TENSOR_TYPE_U8
GGML, AUTO = wasi_nn.GRAPH_ENCODING_GGML, wasi_nn.EXECUTION_TARGET_AUTO
GREEDY = json.dumps({"temp": 0})


def errno_of(call, *args):
    try:
        call(*args)
    except wasi_nn.WasiNnError as error:
        return int(error.errno)
    return 0


def set_text(ctx, index, text):
    data = text.encode()
    wasi_nn.set_input(ctx, index, wasi_nn.Tensor([len(data)], U8, data))


def output(ctx, index=0, single=False):
    buffer = bytearray(65536)
    read = wasi_nn.get_output_single if single else wasi_nn.get_output
    return bytes(buffer[:read(ctx, index, buffer)]).decode("utf-8", "replace")


def metadata(ctx):
    meta = json.loads(output(ctx, 1))
    return [meta["input_tokens"], meta["output_tokens"]]


def run_compute(ctx, prompt, config=None):
    if config is not None:
        set_text(ctx, 1, json.dumps(config))
    set_text(ctx, 0, prompt)
    code = errno_of(wasi_nn.compute, ctx)
    return {"errno": code, "text": output(ctx), "tokens": metadata(ctx)}


def main(argv):
    results = {}
    graph = wasi_nn.load_by_name_with_config("default", GREEDY)
    ctx = wasi_nn.init_execution_context(graph)

    # metadata right after set_input, before any compute (the llama example reads it there)
    set_text(ctx, 0, "If the implementation is easy to explain,")
    results["metadata_keys"] = sorted(json.loads(output(ctx, 1)))
    results["metadata_before_compute"] = metadata(ctx)

    results["tail"] = run_compute(ctx, "If the implementation is easy to explain,")
    results["n_predict"] = run_compute(ctx, "Beautiful is better than", {"n-predict": 5})
    results["reverse_prompt"] = run_compute(ctx, "Beautiful is better than",
                                            {"n-predict": -1, "reverse-prompt": "Simple"})
    set_text(ctx, 1, json.dumps({"reverse-prompt": ""}))
    results["context_full"] = run_compute(ctx, "The Zen of Python, by", {"ignore-eos": True})
    set_text(ctx, 1, json.dumps({"ignore-eos": False}))
    long_prompt = " ".join(["Beautiful is better than ugly."] * 60)
    results["prompt_too_long"] = run_compute(ctx, long_prompt)
    results["prompt_too_long_single"] = errno_of(wasi_nn.compute_single, ctx)

    # streaming: one token per compute_single until end_of_sequence
    set_text(ctx, 0, "If the implementation is easy to explain,")
    pieces, code = [], 0
    while True:
        code = errno_of(wasi_nn.compute_single, ctx)
        if code:
            break
        pieces.append(output(ctx, 0, single=True))
    results["stream"] = {"errno": code, "pieces": len(pieces), "text": "".join(pieces),
                         "eos_piece": output(ctx, 0, single=True), "tokens": metadata(ctx)}
    results["fini_single"] = errno_of(wasi_nn.fini_single, ctx)
    results["after_fini"] = metadata(ctx)

    # bad configs: not JSON -> invalid_encoding (2), a wrong type -> invalid_argument (1)
    results["set_input_bad_json"] = errno_of(set_text, ctx, 1, "{not json")
    results["set_input_wrong_type"] = errno_of(set_text, ctx, 1, '{"n-predict": "5"}')
    results["load_bad_json"] = errno_of(wasi_nn.load_by_name_with_config, "default", "[1,")
    results["load_wrong_type"] = errno_of(wasi_nn.load_by_name_with_config, "default",
                                          '{"ctx-size": 1.5}')
    results["load_unknown_key"] = errno_of(wasi_nn.load_by_name_with_config, "default",
                                           '{"llama3": true, "include_usage": 1}')
    results["unknown_name"] = errno_of(wasi_nn.load_by_name, "nope")
    results["model_not_found"] = errno_of(wasi_nn.load, [b"preload:/no/such/model.gguf"],
                                          GGML, AUTO)
    results["not_gguf"] = errno_of(wasi_nn.load, [b"not a model at all"], GGML, AUTO)

    # embeddings
    embed_graph = wasi_nn.load_by_name_with_config("default", '{"embedding": true}')
    embed_ctx = wasi_nn.init_execution_context(embed_graph)
    set_text(embed_ctx, 0, "Beautiful is better than ugly.")
    wasi_nn.compute(embed_ctx)
    embedding = json.loads(output(embed_ctx))
    results["embedding"] = {"n": embedding["n_embedding"], "len": len(embedding["embedding"]),
                            "norm": round(sum(v * v for v in embedding["embedding"]), 4),
                            "tokens": metadata(embed_ctx)}

    # unload / finalize
    results["finalize"] = [errno_of(wasi_nn.finalize_execution_context, embed_ctx),
                           errno_of(wasi_nn.finalize_execution_context, embed_ctx),
                           errno_of(wasi_nn.compute, embed_ctx)]
    results["unload"] = [errno_of(wasi_nn.unload, embed_graph),
                         errno_of(wasi_nn.unload, embed_graph)]

    # the Pythonic layer: the same model from the guest's own bytes
    with open(argv[1], "rb") as file:
        gguf = file.read()
    with Llm.from_bytes(gguf, {"temp": 0}) as llm:
        text = llm.generate("If the implementation is easy to explain,")
        streamed = "".join(llm.stream("If the implementation is easy to explain,"))
        meta = llm.stream_metadata()
        results["llm"] = {"generate": text, "stream_equal": streamed == text,
                          "stream_tokens": [meta.input_tokens, meta.output_tokens],
                          "n_predict": llm.generate("Errors should never", n_predict=3),
                          "stream_n_predict": list(llm.stream("Errors should never")),
                          "stream_reverse": "".join(llm.stream(
                              "Beautiful is better than", n_predict=-1,
                              reverse_prompt="implicit")),
                          "finish": llm.finish_reason,
                          "metadata_type": type(llm.metadata()) is Metadata}
        # a grammar forces "é", which this ASCII model can only write as two byte tokens:
        # the stream must hold the first byte back and yield the whole character
        results["stream_utf8"] = list(llm.stream("Beautiful is better than",
                                                 grammar='root ::= "é!"', n_predict=8))
    with Llm("default", {"embedding": True}) as llm:
        vector = llm.embed("Now is better than never.")
        results["llm_embed"] = [len(vector), round(sum(v * v for v in vector), 4)]
    results["chat_prompt"] = chat_prompt([{"role": "user", "content": "Hi"}], "chatml")
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
