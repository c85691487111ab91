"""The GGML backend in-process (host core `WasiNn`), on the tiny Zen-of-Python GGUF.

Expected texts and token counts are the ones `shared/tools/tiny_gguf/README.md` lists for
WasmEdge-style compute (greedy): exact, not approximate.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from wasinn.nn import Errno, ModelRegistry, NnError, WasiNn, parse_preload
from wasinn.nn.config import parse_config

pytest.importorskip("llama_cpp", reason="the GGML backend needs llama-cpp-python (extra ggml)")

TAIL_PROMPT = "If the implementation is easy to explain,"
TAIL_TEXT = (" it may be a good idea.\nNamespaces are one honking great idea -- "
             "let's do more of those!</s>")
GREEDY = json.dumps({"temp": 0})


@pytest.fixture(scope="module")
def worker():
    from wasinn.worker import BackendWorker

    process = BackendWorker()
    yield process
    process.close()


def _core(tiny_gguf, worker=None) -> WasiNn:
    return WasiNn(ModelRegistry.from_specs([f"default:GGML:AUTO:{tiny_gguf}"]), worker=worker)


@pytest.fixture(params=["in-process", "worker"])
def nn(request, tiny_gguf) -> WasiNn:
    """The host core on the backend in this process (native mode) and in the confined worker
    (wasm mode's default), which batches round trips and must not change what a guest sees."""
    core = _core(tiny_gguf, request.getfixturevalue("worker")
                 if request.param == "worker" else None)
    yield core
    core.close()


@pytest.fixture()
def local_nn(tiny_gguf) -> WasiNn:
    """In this process only: for tests that look at the backend's own objects or capture
    what it prints."""
    core = _core(tiny_gguf)
    yield core
    core.close()


def text(data: str) -> np.ndarray:
    return np.frombuffer(data.encode(), dtype=np.uint8)


def set_text(nn: WasiNn, ctx: int, index: int, data: str) -> None:
    raw = data.encode()
    nn.set_input(ctx, index, [len(raw)], 3, raw)


def context(nn: WasiNn, config: str = GREEDY) -> int:
    return nn.init_execution_context(nn.load_by_name_with_config("default", config))


def out(nn: WasiNn, ctx: int, index: int = 0) -> str:
    return bytes(nn.get_output(ctx, index)).decode()


def meta(nn: WasiNn, ctx: int) -> tuple[int, int]:
    values = json.loads(out(nn, ctx, 1))
    return values["input_tokens"], values["output_tokens"]


def errno(call, *args) -> int:
    with pytest.raises(NnError) as info:
        call(*args)
    return int(info.value.errno)


def stream(nn: WasiNn, ctx: int) -> list[bytes]:
    """compute_single + get_output_single until the stream ends with end_of_sequence (100):
    the pieces, one per step."""
    pieces = []
    while True:
        try:
            nn.compute_single(ctx)
        except NnError as error:
            assert error.errno == Errno.END_OF_SEQUENCE
            return pieces
        pieces.append(bytes(nn.get_output_single(ctx, 0)))


def test_compute_gives_wasmedge_output_and_counts(nn):
    ctx = context(nn)
    # LlamaEdge sends dims [1] and any type with the whole prompt: GGML ignores both
    nn.set_input(ctx, 0, [1], 1, TAIL_PROMPT.encode())
    nn.compute(ctx)
    assert out(nn, ctx) == TAIL_TEXT
    assert meta(nn, ctx) == (9, 26)
    values = json.loads(out(nn, ctx, 1))
    assert list(values) == ["input_tokens", "output_tokens", "llama_build_number", "llama_commit"]


def test_n_predict_and_reverse_prompt(nn):
    ctx = context(nn, json.dumps({"temp": 0, "n-predict": 5}))
    set_text(nn, ctx, 0, "Beautiful is better than")
    nn.compute(ctx)
    assert (out(nn, ctx), meta(nn, ctx)) == (" ugly.\nExpl", (5, 5))
    set_text(nn, ctx, 1, json.dumps({"n-predict": -1, "reverse-prompt": "implicit."}))
    nn.compute(ctx)
    assert out(nn, ctx).startswith(" ugly.\nExplicit is better than implicit")
    assert out(nn, ctx).endswith("implicit.") or "implicit." in out(nn, ctx)[-12:]


def test_n_predict_0_only_processes_the_prompt(nn):
    """A prompt-only compute (n-predict 0, as prompt-processing benchmarks and LlamaEdge's
    context priming use) decodes the prompt and samples nothing; the next compute with
    n-predict starts over from the prompt as usual."""
    ctx = context(nn, json.dumps({"temp": 0, "n-predict": 0}))
    set_text(nn, ctx, 0, "Beautiful is better than")
    nn.compute(ctx)
    assert (out(nn, ctx), meta(nn, ctx)) == ("", (5, 0))
    set_text(nn, ctx, 1, json.dumps({"n-predict": 5}))
    nn.compute(ctx)
    assert (out(nn, ctx), meta(nn, ctx)) == (" ugly.\nExpl", (5, 5))


def test_context_full_keeps_the_output(nn):
    ctx = context(nn, json.dumps({"temp": 0, "ignore-eos": True}))
    set_text(nn, ctx, 0, "The Zen of Python, by")
    assert errno(nn.compute, ctx) == Errno.CONTEXT_FULL
    assert meta(nn, ctx) == (7, 256 - 7 + 1)
    assert out(nn, ctx).startswith(" Tim Peters\n\nBeautiful is better than ugly.")


def test_a_new_prompt_never_reads_what_the_cache_held_before(local_nn):
    """compute frees the KV cache's cells without zeroing them (ggml._LlamaContext.clear):
    after a compute that filled the whole context, a prompt's logits are bit for bit those of
    a fresh context, whose buffers llama.cpp zeroed."""
    from wasinn.nn.backends import ggml

    def last_logits(ctx: int) -> bytes:
        backend_context = local_nn._contexts[ctx].context
        llama_context = backend_context.graph.llama_context()
        assert not backend_context.graph.model.stateful         # the case this is about
        pointer = llama_context.llama.llama_get_logits_ith(llama_context.handle, -1)
        return bytes((ggml.ctypes.c_float * backend_context.graph.model.n_vocab)
                     .from_address(ggml.ctypes.addressof(pointer.contents)))

    prompt_only = json.dumps({"temp": 0, "n-predict": 0})
    fresh = context(local_nn, prompt_only)
    set_text(local_nn, fresh, 0, TAIL_PROMPT)
    local_nn.compute(fresh)
    expected = last_logits(fresh)

    used = context(local_nn, json.dumps({"temp": 0, "ignore-eos": True}))
    set_text(local_nn, used, 0, "The Zen of Python, by")
    assert errno(local_nn.compute, used) == Errno.CONTEXT_FULL     # every cell written
    set_text(local_nn, used, 1, prompt_only)
    set_text(local_nn, used, 0, TAIL_PROMPT)
    local_nn.compute(used)
    assert last_logits(used) == expected


def test_prompt_too_long_and_empty_prompt(nn):
    ctx = context(nn)
    set_text(nn, ctx, 0, " ".join(["Beautiful is better than ugly."] * 60))
    assert errno(nn.compute, ctx) == Errno.PROMPT_TOO_LONG
    assert out(nn, ctx) == ""
    # unlike WasmEdge, a stream after a failed first step fails the same way again
    assert errno(nn.compute_single, ctx) == Errno.PROMPT_TOO_LONG
    assert errno(nn.compute_single, ctx) == Errno.PROMPT_TOO_LONG
    fresh = context(nn)
    assert errno(nn.compute, fresh) == Errno.INVALID_ARGUMENT


def test_streaming_one_token_per_step(nn):
    ctx = context(nn)
    set_text(nn, ctx, 0, TAIL_PROMPT)
    pieces = stream(nn, ctx)
    assert b"".join(pieces).decode() + "</s>" == TAIL_TEXT
    assert len(pieces) == 25
    assert bytes(nn.get_output_single(ctx, 0)) == b"</s>"
    assert meta(nn, ctx) == (9, 26)
    assert out(nn, ctx) == TAIL_TEXT          # get_output(0): the accumulated text
    nn.fini_single(ctx)
    assert meta(nn, ctx) == (9, 0)
    nn.compute_single(ctx)                    # after fini_single: starts again from the prompt
    assert bytes(nn.get_output_single(ctx, 0)) == b" it"


def test_streamed_and_whole_outputs_read_in_any_order(nn):
    """The worker sends a step's piece along with the next compute_single and a compute's
    text along with the next compute: neither may ever stand in for the other."""
    ctx = context(nn)
    set_text(nn, ctx, 0, TAIL_PROMPT)
    nn.compute(ctx)
    assert out(nn, ctx) == TAIL_TEXT
    nn.compute(ctx)                            # the text comes along with this compute
    nn.compute_single(ctx)
    assert bytes(nn.get_output_single(ctx, 0)) == b" it"
    assert out(nn, ctx) == " it"               # the accumulated text, not the last compute's
    nn.compute_single(ctx)                     # " it" was read: this step brings " may"
    assert out(nn, ctx) == " it may"
    assert bytes(nn.get_output_single(ctx, 0)) == b" may"
    assert meta(nn, ctx) == (9, 2)
    nn.compute_single(ctx)
    assert bytes(nn.get_output_single(ctx, 0)) == b" be"
    assert json.loads(bytes(nn.get_output_single(ctx, 1))) == json.loads(out(nn, ctx, 1))
    nn.fini_single(ctx)
    nn.compute(ctx)
    assert out(nn, ctx) == TAIL_TEXT


def test_a_stream_through_the_worker_takes_few_round_trips(tiny_gguf, worker, requests_of):
    """Each compute_single brings its piece and the steps the worker could make ahead within
    its budget: never more than one round trip per token, never a get_output_single one."""
    core = _core(tiny_gguf, worker)
    calls = requests_of(worker)
    try:
        ctx = context(core)
        set_text(core, ctx, 0, TAIL_PROMPT)
        calls.clear()
        pieces = stream(core, ctx)
        assert b"".join(pieces).decode() + "</s>" == TAIL_TEXT
        assert calls.count("get_output_single") == 1 and calls.count("compute_single") <= 26
        assert bytes(core.get_output_single(ctx, 0)) == b"</s>"
        assert meta(core, ctx) == (9, 26)
    finally:
        core.close()


def test_outputs_read_after_two_computes_in_a_row_come_along_with_the_next(tiny_gguf, worker,
                                                                            requests_of):
    """compute brings back the outputs the guest read after each of the two computes before
    it (no get_output round trip for them); one read once (the metadata at the end of a chat
    turn) does not come along, so the prompt-only computes after it do not pay for it."""
    core = _core(tiny_gguf, worker)
    calls = requests_of(worker)
    try:
        ctx = context(core, json.dumps({"temp": 0, "n-predict": 3}))
        set_text(core, ctx, 0, TAIL_PROMPT)
        core.compute(ctx)
        first = (out(core, ctx), meta(core, ctx))          # asked for: two round trips
        calls.clear()
        core.compute(ctx)
        assert (out(core, ctx), meta(core, ctx)) == first == (" it may be", (9, 3))
        assert calls == ["compute", "get_output", "get_output"]    # read once so far
        calls.clear()
        core.compute(ctx)
        assert (out(core, ctx), meta(core, ctx)) == first
        assert calls == ["compute"]                        # read twice in a row: came along
        core.compute(ctx)
        assert out(core, ctx) == first[0]                  # the metadata left alone once ...
        calls.clear()
        core.compute(ctx)
        assert out(core, ctx) == first[0] and calls == ["compute"]
        assert meta(core, ctx) == first[1]                 # ... so it did not come along
        assert calls == ["compute", "get_output"]
    finally:
        core.close()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs a second CPU")
def test_a_single_threaded_compute_is_waited_for_on_a_forecast(tiny_gguf, worker):
    """With `threads` 1 the worker says its computes run on one thread, and the host waits
    for their replies on a Forecast (asleep until just before, then polling); with more
    threads it sleeps as before. The text is the same either way."""
    from wasinn.worker.transport import Forecast

    core = _core(tiny_gguf, worker)
    try:
        texts = {}
        for threads in (1, 2):
            ctx = context(core, json.dumps({"temp": 0, "n-predict": 3, "threads": threads}))
            set_text(core, ctx, 0, TAIL_PROMPT)
            for _ in range(3):
                core.compute(ctx)
            proxy = core._contexts[ctx].context
            texts[threads] = (out(core, ctx), isinstance(proxy._forecasts.get("compute"),
                                                         Forecast))
        assert texts == {1: (" it may be", True), 2: (" it may be", False)}
    finally:
        core.close()


def test_steps_made_ahead_are_taken_as_if_made_then(local_nn):
    """The backend's read_ahead (what the worker uses): its steps come out of compute_single
    unchanged, the guest sees only the steps taken, and anything that changes the stream
    drops them without changing the text."""
    nn = local_nn
    graph = nn.load_by_name_with_config("default", GREEDY)
    ctx = nn.init_execution_context(graph)
    backend = nn._contexts[ctx].context
    set_text(nn, ctx, 0, TAIL_PROMPT)
    nn.compute_single(ctx)
    assert [piece for piece, _ in backend.read_ahead(10.0, 3)] == [b" may", b" be", b" a"]
    assert out(nn, ctx) == " it" and meta(nn, ctx) == (9, 1)
    assert bytes(nn.get_output_single(ctx, 0)) == b" it"
    nn.compute_single(ctx)
    assert bytes(nn.get_output_single(ctx, 0)) == b" may" and meta(nn, ctx) == (9, 2)
    # another context uses the shared cache; then a config that changes the sampler drops
    # the steps ahead: the stream decodes its own tokens again and goes on as before
    other = nn.init_execution_context(graph)
    set_text(nn, other, 0, "Beautiful is better than")
    nn.compute(other)
    # more steps ahead: the cache is ours again only after decoding the steps taken and ahead
    assert b"".join(piece for piece, _ in backend.read_ahead(10.0, 4)) == b" be a good idea"
    set_text(nn, ctx, 1, json.dumps({"top-k": 7}))
    assert backend.read_ahead(10.0, 64)[-1] == (b"</s>", int(Errno.END_OF_SEQUENCE))
    nn.compute(other)
    backend.take_ahead(2)                       # as the worker does for steps served outside
    assert meta(nn, ctx) == (9, 4) and out(nn, ctx) == " it may be a"
    stream(nn, ctx)
    assert out(nn, ctx) == TAIL_TEXT
    nn.compute_single(ctx)                      # after the end: from the prompt again
    assert bytes(nn.get_output_single(ctx, 0)) == b" it"
    assert backend.read_ahead(10.0, 64, max_bytes=5) == [(b" may", 0), (b" be", 0)]
    set_text(nn, ctx, 0, TAIL_PROMPT)          # a new prompt drops the steps ahead
    assert backend.read_ahead(0.0, 4) == []
    nn.compute_single(ctx)
    assert bytes(nn.get_output_single(ctx, 0)) == b" it" and meta(nn, ctx) == (9, 1)


def test_interleaved_streams_on_one_graph_do_not_corrupt_each_other(nn):
    graph = nn.load_by_name_with_config("default", GREEDY)
    first, second = nn.init_execution_context(graph), nn.init_execution_context(graph)
    set_text(nn, first, 0, TAIL_PROMPT)
    set_text(nn, second, 0, "Beautiful is better than")
    a, b = [], []
    for _ in range(6):
        nn.compute_single(first)
        a.append(bytes(nn.get_output_single(first, 0)))
        nn.compute_single(second)
        b.append(bytes(nn.get_output_single(second, 0)))
    assert b"".join(a).decode() == TAIL_TEXT.encode()[:len(b"".join(a))].decode()
    assert b"".join(b).decode().startswith(" ugly.\nExpl")


def test_set_input_config_updates_and_errors(nn):
    ctx = context(nn)
    assert errno(set_text, nn, ctx, 1, "{not json") == Errno.INVALID_ENCODING
    assert errno(set_text, nn, ctx, 1, '{"n-predict": "5"}') == Errno.INVALID_ARGUMENT
    assert errno(set_text, nn, ctx, 1, '{"n-predict": 5.0}') == Errno.INVALID_ARGUMENT
    assert errno(set_text, nn, ctx, 1, '{"ignore-eos": 1}') == Errno.INVALID_ARGUMENT
    assert errno(set_text, nn, ctx, 1, '{"threads": 99999999999}') == Errno.INVALID_ARGUMENT
    assert errno(set_text, nn, ctx, 1, '{"ctx-size": -1}') == Errno.INVALID_ARGUMENT
    assert errno(set_text, nn, ctx, 1, '{"grammar": 3}') == Errno.INVALID_ARGUMENT
    set_text(nn, ctx, 1, '{"n-predict": 3, "llama3": true, "temp": 0.0}')   # unknown key: ignored
    set_text(nn, ctx, 0, "Beautiful is better than")
    nn.compute(ctx)
    assert meta(nn, ctx) == (5, 3)
    # ctx-size and batch-size changes rebuild the llama context (WasmEdge ignores ctx-size)
    set_text(nn, ctx, 1, '{"ctx-size": 512, "batch-size": 64, "n-predict": 5}')
    nn.compute(ctx)
    assert out(nn, ctx) == " ugly.\nExpl"


def test_grammar_constrains_the_output(nn):
    ctx = context(nn, json.dumps({"temp": 0, "n-predict": 8, "grammar": 'root ::= [a-z ]+'}))
    set_text(nn, ctx, 0, "Beautiful is better than")
    nn.compute(ctx)
    result = out(nn, ctx)
    assert result and all(c in "abcdefghijklmnopqrstuvwxyz " for c in result)
    assert errno(set_text, nn, ctx, 1, '{"grammar": "root ::= ("}') == Errno.INVALID_ARGUMENT
    nn.compute(ctx)                           # the bad grammar changed nothing
    assert out(nn, ctx) == result
    assert errno(nn.load_by_name_with_config, "default",
                 '{"json-schema": "{\\"type\\": 7}"}') == Errno.INVALID_ARGUMENT


def test_embeddings_json(nn):
    ctx = context(nn, '{"embedding": true}')
    set_text(nn, ctx, 0, "Beautiful is better than ugly.")
    nn.compute(ctx)
    raw = out(nn, ctx)
    assert raw.startswith('{"n_embedding": 128, "embedding": [')
    values = json.loads(raw)["embedding"]
    assert len(values) == 128
    assert abs(sum(v * v for v in values) - 1.0) < 1e-6
    assert meta(nn, ctx) == (7, 0)


def test_configs_at_load(nn, tiny_gguf):
    assert errno(nn.load_by_name_with_config, "default", "{x") == Errno.INVALID_ENCODING
    assert errno(nn.load_by_name_with_config, "default", '{"seed": "1"}') == Errno.INVALID_ARGUMENT
    assert errno(nn.load_by_name_with_config, "default", "[" * 10000) == Errno.INVALID_ENCODING
    assert errno(nn.load_by_name_with_config, "default", '{"n-gpu-layers": 99}') == \
        Errno.UNSUPPORTED_OPERATION
    data = tiny_gguf.read_bytes()
    graph = nn.load([data, b'{"temp": 0, "n-predict": 5}'], 6, 3)
    ctx = nn.init_execution_context(graph)
    set_text(nn, ctx, 0, "Beautiful is better than")
    nn.compute(ctx)
    assert out(nn, ctx) == " ugly.\nExpl"
    assert errno(nn.load, [data, b"nope"], 6, 0) == Errno.INVALID_ENCODING
    assert errno(nn.load, [data], 6, 1) == Errno.UNSUPPORTED_OPERATION      # GPU: none here


def test_hostile_and_missing_models(nn, tiny_gguf, tmp_path):
    assert errno(nn.load, [b"preload:/etc/passwd"], 6, 0) == Errno.MODEL_NOT_FOUND
    assert errno(nn.load, [b"hello"], 6, 0) == Errno.INVALID_ARGUMENT
    data = tiny_gguf.read_bytes()
    assert errno(nn.load, [data[:len(data) // 2]], 6, 0) == Errno.INVALID_ARGUMENT
    assert errno(nn.load, [b"GGUF" + bytes(range(256)) * 4], 6, 0) == Errno.INVALID_ARGUMENT
    # a preloaded file that is gone when the guest loads it: model_not_found, as WasmEdge
    copy = tmp_path / "gone.gguf"
    shutil.copy(tiny_gguf, copy)
    registry = ModelRegistry.from_specs([f"gone:GGML:AUTO:{copy}"])
    copy.unlink()
    assert errno(WasiNn(registry).load_by_name, "gone") == Errno.MODEL_NOT_FOUND


def test_unload_and_finalize(nn):
    graph = nn.load_by_name_with_config("default", GREEDY)
    ctx = nn.init_execution_context(graph)
    nn.unload(graph)
    assert errno(nn.unload, graph) == Errno.INVALID_ARGUMENT
    nn.finalize_execution_context(ctx)
    assert errno(nn.finalize_execution_context, ctx) == Errno.INVALID_ARGUMENT
    assert errno(nn.compute, ctx) == Errno.INVALID_ARGUMENT


def test_preload_spec_for_ggml(tiny_gguf):
    model = parse_preload(f"default:GGML:AUTO:{tiny_gguf}")
    assert model.paths == [tiny_gguf]
    assert parse_preload(f"x:ggml:cpu:{tiny_gguf}").encoding == 6


def test_parse_config_bounds():
    assert parse_config("") == {}
    assert parse_config('{"a": 1}') == {"a": 1}
    for bad in ("[1]", "{", '{"a": NaN}', '{"a": ' + "9" * 2000 + "}", "[" * 100 + "]" * 100):
        with pytest.raises(NnError) as info:
            parse_config(bad)
        assert info.value.errno == Errno.INVALID_ARGUMENT


def test_abi_output_rule_for_llamaedge(nn):
    """out_max_len 0 (LlamaEdge's empty Vec) gets the whole output written; a real but short
    length is too_large with the size needed; a null pointer is never written."""
    from host_harness import Guest

    guest = Guest(nn, pages=4)
    errno, ctx = guest.init(nn.load_by_name_with_config("default", GREEDY))
    assert errno == 0
    assert guest.set_input(ctx, 0, [1], 3, TAIL_PROMPT.encode()) == 0
    assert guest.call("compute", ctx) == 0
    needed = len(TAIL_TEXT.encode())
    errno, data, written = guest.get_output(ctx, 0, 0)
    assert (errno, written) == (0, needed)
    out = guest.alloc(needed)
    written_ptr = guest.alloc(4, 4)
    assert guest.call("get_output", ctx, 0, out, 0, written_ptr) == 0
    assert guest.read(out, needed).decode() == TAIL_TEXT
    assert guest.call("get_output", ctx, 0, out, 10, written_ptr) == 7
    assert guest.u32(written_ptr) == needed
    assert guest.call("get_output", ctx, 0, 0, 0, written_ptr) == 7          # null: never
    near_end = guest.size - 8
    assert guest.call("get_output", ctx, 0, near_end, 0, written_ptr) == 7   # would not fit


def test_stream_stdout_and_enable_log(local_nn, capfd, caplog):
    caplog.set_level("INFO", logger="wasinn.ggml")
    ctx = context(local_nn, json.dumps({"temp": 0, "enable-log": True}))
    set_text(local_nn, ctx, 1, json.dumps({"stream-stdout": True, "n-predict": 5}))
    set_text(local_nn, ctx, 0, "Beautiful is better than")
    local_nn.compute(ctx)
    assert capfd.readouterr().out == " ugly.\nExpl"
    local_nn.load_by_name_with_config("default", '{"enable-log": true, "ctx-size": 512}')
    ctx2 = context(local_nn, '{"enable-log": true, "ctx-size": 512, "temp": 0, "n-predict": 1}')
    set_text(local_nn, ctx2, 0, "Beautiful is better than")
    local_nn.compute(ctx2)
    assert "llama.cpp:" in caplog.text


def test_finalize_and_unload_free_llama_memory_at_once(local_nn):
    """No reference cycles: the llama.cpp context (KV cache) is freed when its last handle
    goes, without waiting for the cyclic garbage collector."""
    import gc
    import weakref

    gc.disable()
    try:
        graph = local_nn.load_by_name_with_config("default", GREEDY)
        ctx = local_nn.init_execution_context(graph)
        set_text(local_nn, ctx, 0, TAIL_PROMPT)
        local_nn.compute_single(ctx)
        llama_context = weakref.ref(local_nn._graphs[graph].graph.llama_context())
        local_nn.finalize_execution_context(ctx)
        local_nn.unload(graph)
        assert llama_context() is None
    finally:
        gc.enable()


def test_graph_options_set_through_one_context_reach_the_others(nn):
    graph = nn.load_by_name_with_config("default", json.dumps({"temp": 0, "n-predict": 8}))
    first, second = nn.init_execution_context(graph), nn.init_execution_context(graph)
    set_text(nn, first, 0, "Beautiful is better than")
    nn.compute(first)
    assert "." in out(nn, first)
    set_text(nn, second, 1, json.dumps({"grammar": "root ::= [a-z ]+"}))   # graph-wide option
    nn.compute(first)
    assert out(nn, first) and set(out(nn, first)) <= set("abcdefghijklmnopqrstuvwxyz ")


def test_streamed_pieces_may_split_a_character(nn):
    """get_output_single gives one token's bytes: with byte-fallback tokens, half a character."""
    ctx = context(nn, json.dumps({"temp": 0, "grammar": 'root ::= "é!"'}))
    set_text(nn, ctx, 0, "Beautiful is better than")
    assert stream(nn, ctx) == [b"\xc3", b"\xa9", b"!"]


def test_a_prompt_longer_than_any_context_is_counted_not_kept(local_nn):
    from wasinn.nn.backends import ggml

    ctx = context(local_nn)
    huge = "Beautiful is better than ugly. " * 200_000          # ~1.4 M tokens, 6 MB
    set_text(local_nn, ctx, 0, huge)
    assert isinstance(local_nn._contexts[ctx].context.prompt, ggml._OverlongPrompt)
    assert errno(local_nn.compute, ctx) == Errno.PROMPT_TOO_LONG
    assert meta(local_nn, ctx)[0] > ggml.MAX_PROMPT_TOKENS
