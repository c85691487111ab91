"""GGML backend: GGUF language models on llama.cpp (llama-cpp-python's low-level API),
speaking WasmEdge's wasi-nn GGML protocol (shared/design/GGML_PROTOCOL.md; docs/host.md).

    load([gguf bytes, optional JSON config], target)       -> GgmlGraph
    graph.configure(config)                                 -> a new graph sharing the weights
    ctx.set_input(0, prompt bytes) / set_input(1, JSON)     -> tokenize / update options
    ctx.compute()                                           -> the whole generation
    ctx.compute_single() + get_output_single(0)             -> one token at a time
    ctx.get_output(0) text or embedding JSON, get_output(1) metadata JSON

Each graph owns one llama.cpp context (the KV cache), as in WasmEdge. Unlike WasmEdge, a
context that streams while another context of the same graph used the cache gets its tokens
decoded again instead of sampling from someone else's cache. The generation loop is a few
C calls per token: sampling, a cached piece lookup, one-token decode into a reused batch.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import threading
import time
from collections import deque
from typing import Any, Sequence

import numpy as np

from ..errors import Errno, NnError
from ..types import ExecutionTarget
from . import ggml_options
from .base import Backend, Context, Graph, guest_stdout, model_file
from .ggml_options import GraphOptions, RunOptions

log = logging.getLogger("wasinn.ggml")

#: llama.cpp commits vendored by the llama-cpp-python releases we support (its CHANGELOG);
#: a build from the sdist has no git history, so llama.cpp's own build number is 0
_LLAMA_COMMITS = {"0.3.36": "0c1e57098"}

_llama: Any = None            # the llama_cpp module, bound on first load
_init_lock = threading.Lock()
_log_to_host = False          # set by any graph's "enable-log": true (llama.cpp logs globally)
_log_callback: Any = None     # kept alive: llama.cpp holds a pointer to it


def _library(backend: Backend) -> Any:
    """Import llama_cpp and initialise llama.cpp once (its log goes to wasinn's log)."""
    global _llama, _log_callback
    with _init_lock:
        if _llama is None:
            llama = backend.library()

            def forward(level: int, text: bytes, _user: Any) -> None:
                if _log_to_host and text:
                    log.info("llama.cpp: %s", text.decode("utf-8", "replace").rstrip("\n"))

            _log_callback = llama.llama_log_callback(forward)
            llama.llama_log_set(_log_callback, ctypes.c_void_p())
            llama.llama_backend_init()
            _llama = llama
    return _llama


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _free(owner: Any, function: str) -> None:
    """Free `owner.handle` with llama.cpp's `function`, once. At interpreter exit the module
    may already be torn down (its functions None): the process is ending, nothing to free."""
    handle, owner.handle = getattr(owner, "handle", None), None
    free = getattr(getattr(owner, "llama", None), function, None)
    if handle and callable(free):
        free(handle)


#: no context holds more (ggml_options.MAX_CTX): longer prompts are prompt_too_long anyway
MAX_PROMPT_TOKENS = ggml_options.MAX_CTX


class _OverlongPrompt:
    """A prompt counted but not kept: longer than any context, so it always fails with 102."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count


class _Model:
    """Loaded weights and vocabulary, shared by every graph made from them."""

    def __init__(self, llama: Any, path: str, n_gpu_layers: int, main_gpu: int) -> None:
        self.llama = llama
        params = llama.llama_model_default_params()
        params.n_gpu_layers = n_gpu_layers
        params.main_gpu = main_gpu
        self.handle = llama.llama_model_load_from_file(path.encode(), params)
        if not self.handle:
            raise NnError(Errno.INVALID_ARGUMENT,
                          "llama.cpp could not load the model (not a GGUF file it supports, "
                          "or a damaged one; set \"enable-log\": true to see why)")
        self.vocab = llama.llama_model_get_vocab(self.handle)
        self.n_ctx_train = llama.llama_model_n_ctx_train(self.handle)
        self.n_embd = llama.llama_model_n_embd(self.handle)
        self.n_vocab = llama.llama_vocab_n_tokens(self.vocab)
        #: a recurrent or hybrid model (Mamba, RWKV, Jamba...) keeps a running state in its
        #: memory that a new prompt must start from zero; a transformer's KV cache does not
        self.stateful = bool(llama.llama_model_is_recurrent(self.handle)
                             or llama.llama_model_is_hybrid(self.handle))
        self._pieces: list[bytes | None] = [None] * self.n_vocab
        self._piece_buffer = ctypes.create_string_buffer(256)

    def piece(self, token: int) -> bytes:
        """The token's text as llama.cpp renders it with special=True (cached per token)."""
        cached = self._pieces[token]
        if cached is None:
            size = self.llama.llama_token_to_piece(self.vocab, token, self._piece_buffer,
                                                   len(self._piece_buffer), 0, True)
            if size < 0:
                self._piece_buffer = ctypes.create_string_buffer(-size)
                size = self.llama.llama_token_to_piece(self.vocab, token, self._piece_buffer,
                                                       len(self._piece_buffer), 0, True)
            cached = self._pieces[token] = self._piece_buffer.raw[:max(size, 0)]
        return cached

    def tokenize(self, text: bytes) -> Any:
        """The prompt's tokens (BOS as the GGUF says, special tokens parsed) as a ctypes array;
        a prompt of more tokens than any context holds is only counted (`_OverlongPrompt`), so
        a hostile 1 GB prompt never costs 4 GB of token arrays."""
        llama = self.llama
        capacity = min(len(text) + 8, MAX_PROMPT_TOKENS + 1)
        tokens = (llama.llama_token * capacity)()
        count = llama.llama_tokenize(self.vocab, text, len(text), tokens, capacity, True, True)
        if count < 0:
            if -count > MAX_PROMPT_TOKENS:
                return _OverlongPrompt(-count)
            capacity = -count
            tokens = (llama.llama_token * capacity)()
            count = llama.llama_tokenize(self.vocab, text, len(text), tokens, capacity, True, True)
        if count < 0:
            raise NnError(Errno.INVALID_ARGUMENT, "llama.cpp could not tokenize the prompt")
        return (llama.llama_token * count).from_buffer_copy(tokens, 0) if count else \
            (llama.llama_token * 0)()

    def __del__(self, _free: Any = _free) -> None:   # bound now: globals are gone at exit
        _free(self, "llama_model_free")


class _LlamaContext:
    """One llama.cpp context: the KV cache and its decode calls."""

    def __init__(self, model: _Model, options: GraphOptions) -> None:
        llama = self.llama = model.llama
        self.model = model
        params = llama.llama_context_default_params()
        params.n_ctx = options.ctx_size or model.n_ctx_train
        params.n_batch = options.batch_size
        params.n_ubatch = min(options.ubatch_size, options.batch_size)
        threads = options.threads or _default_threads()
        params.n_threads = params.n_threads_batch = threads
        params.embeddings = options.embedding
        params.no_perf = True
        self.handle = llama.llama_init_from_model(model.handle, params)
        if not self.handle:
            raise NnError(Errno.INVALID_ARGUMENT,
                          f"llama.cpp could not create a context of {params.n_ctx} tokens "
                          "(out of memory, or a bad ctx-size/batch-size)")
        self.n_ctx = llama.llama_n_ctx(self.handle)
        self.n_batch = options.batch_size
        self.memory = llama.llama_get_memory(self.handle)
        #: a token of the execution context whose tokens the cache holds (not the context
        #: itself: no reference cycle through the graph), and how many tokens
        self.owner: Any = None
        self.used = 0
        self._one = (llama.llama_token * 1)()
        self._one_batch = llama.llama_batch_get_one(self._one, 1)

    def clear(self, owner: Any) -> None:
        """Forget every token the cache holds (a new prompt starts at position 0).

        A transformer's KV cache needs only its cells marked free, as llama.cpp's server
        does between tasks: cells past the tokens decoded are masked out of attention, so
        what they held is never read. Zeroing them too cost a memset of the whole cache on
        every compute: ~0.25 ms for the tiny test model at ctx 1024, ~2 ms for a 21M-param
        one, and a 7-8B model's cache at ctx 4096 is 0.5-2 GB. A recurrent or hybrid
        model's state is zeroed, as llama-cpp-python does for them."""
        self.llama.llama_memory_clear(self.memory, self.model.stateful)
        self.owner, self.used = owner, 0

    def decode(self, tokens: Any, start: int = 0) -> None:
        """Decode `tokens[start:]` in batch-size chunks after what the cache holds (a prompt
        that fits one batch, the usual case, is passed as it is)."""
        llama = self.llama
        total = len(tokens)
        while start < total:
            count = min(self.n_batch, total - start)
            if start == 0 and count == total:
                chunk = tokens
            else:
                chunk = (llama.llama_token * count).from_buffer(
                    tokens, start * ctypes.sizeof(llama.llama_token))
            self._check(llama.llama_decode(self.handle, llama.llama_batch_get_one(chunk, count)))
            start += count
            self.used += count

    def decode_one(self, token: int) -> None:
        self._one[0] = token
        self._check(self.llama.llama_decode(self.handle, self._one_batch))
        self.used += 1

    @staticmethod
    def _check(status: int) -> None:
        if status != 0:
            raise NnError(Errno.RUNTIME_ERROR, f"llama_decode failed (status {status})")

    def embedding(self, n_embd: int) -> np.ndarray:
        llama = self.llama
        if llama.llama_pooling_type(self.handle) != llama.LLAMA_POOLING_TYPE_NONE:
            pointer = llama.llama_get_embeddings_seq(self.handle, 0)
        else:
            pointer = llama.llama_get_embeddings_ith(self.handle, -1)
        if not pointer:
            raise NnError(Errno.RUNTIME_ERROR, "llama.cpp returned no embedding")
        return np.ctypeslib.as_array(pointer, shape=(n_embd,)).astype(np.float64)

    def __del__(self, _free: Any = _free) -> None:   # bound now: globals are gone at exit
        _free(self, "llama_free")


class GgmlGraph(Graph):
    """A model with its graph-wide options and (created on first use) its llama context."""

    def __init__(self, model: _Model, options: GraphOptions,
                 run_defaults: RunOptions = RunOptions()) -> None:
        self.model = model
        self.options = options
        #: n-predict / reverse-prompt / stream-stdout given at load: each new context's start
        self.run_defaults = run_defaults
        self.lock = threading.RLock()      # one graph's operations are serialised
        self._context: _LlamaContext | None = None
        _check_devices(model.llama, options)
        if options.grammar or options.json_schema:
            _Sampler(model, options)            # a grammar that does not parse fails the load

    def configure(self, config: dict) -> "GgmlGraph":
        options, run = ggml_options.apply(config, self.options, self.run_defaults)
        _note_logging(options)
        return GgmlGraph(self.model, options, run)

    def init_execution_context(self) -> Context:
        return GgmlContext(self)

    def llama_context(self) -> _LlamaContext:
        if self._context is None:
            self._context = _LlamaContext(self.model, self.options)
        return self._context

    def update(self, options: GraphOptions) -> None:
        """New graph-wide options (set_input(1)); the llama context is rebuilt if its size or
        mode changed, else only the thread count is passed on."""
        _check_devices(self.model.llama, options)
        changed = ggml_options.changed_fields(self.options, options)
        self.options = options
        _note_logging(options)
        if self._context is None:
            return
        if changed & ggml_options.CONTEXT_FIELDS:
            self._context = None
        elif "threads" in changed:
            threads = options.threads or _default_threads()
            self.model.llama.llama_set_n_threads(self._context.handle, threads, threads)


def _check_devices(llama: Any, options: GraphOptions) -> None:
    if options.n_gpu_layers > 0 and not llama.llama_supports_gpu_offload():
        raise NnError(Errno.UNSUPPORTED_OPERATION,
                      f"n-gpu-layers {options.n_gpu_layers}: this llama.cpp build has no GPU "
                      "backend (CPU only)")


def _note_logging(options: GraphOptions) -> None:
    global _log_to_host
    if options.enable_log:
        _log_to_host = True


class _Sampler:
    """A llama.cpp sampler chain built from the graph's options (WasmEdge's common sampler
    order: grammar, penalties, top-k, top-p, min-p, temperature, then a draw or argmax)."""

    def __init__(self, model: _Model, options: GraphOptions) -> None:
        llama = self.llama = model.llama
        self.model = model           # a grammar sampler uses the vocabulary: free it first
        self.options = options
        self.handle = llama.llama_sampler_chain_init(llama.llama_sampler_chain_default_params())
        grammar = options.grammar or _schema_grammar(options.json_schema)
        if grammar:
            sampler = llama.llama_sampler_init_grammar(model.vocab, grammar.encode(), b"root")
            if not sampler:
                llama.llama_sampler_free(self.handle)
                self.handle = None
                raise NnError(Errno.INVALID_ARGUMENT, "the grammar does not parse (GBNF)")
            self._add(sampler)
        if (options.repeat_penalty, options.frequency_penalty,
                options.presence_penalty) != (1.0, 0.0, 0.0) and options.last_n_penalty != 0:
            self._add(llama.llama_sampler_init_penalties(
                model.n_vocab, options.last_n_penalty, options.repeat_penalty,
                options.frequency_penalty, options.presence_penalty))
        if options.temp <= 0:
            self._add(llama.llama_sampler_init_greedy())
            return
        if options.top_k > 0:
            self._add(llama.llama_sampler_init_top_k(options.top_k))
        self._add(llama.llama_sampler_init_top_p(options.top_p, 1))
        self._add(llama.llama_sampler_init_min_p(options.min_p, 1))
        self._add(llama.llama_sampler_init_temp(options.temp))
        self._add(llama.llama_sampler_init_dist(options.seed))

    def _add(self, sampler: Any) -> None:
        self.llama.llama_sampler_chain_add(self.handle, sampler)

    def sample(self, context: _LlamaContext) -> int:
        return self.llama.llama_sampler_sample(self.handle, context.handle, -1)

    def __del__(self, _free: Any = _free) -> None:   # bound now: globals are gone at exit
        _free(self, "llama_sampler_free")


def _schema_grammar(schema: str) -> str:
    if not schema:
        return ""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        return json_schema_to_gbnf(schema)
    except Exception as error:  # noqa: BLE001 - the converter raises many kinds on bad schemas
        raise NnError(Errno.INVALID_ARGUMENT, f"json-schema cannot be used: {error}") from None


def _as_bytes(array: np.ndarray) -> bytes:
    return array.tobytes() if array.dtype.itemsize == 1 else array.view(np.uint8).tobytes()


class GgmlContext(Context):
    """One execution context: the prompt, the per-context options, the generated tokens."""

    #: get_output(1) (the metadata) is readable after set_input, before any compute
    readable_before_compute = True

    def __init__(self, graph: GgmlGraph) -> None:
        self.graph = graph
        self.run = graph.run_defaults
        self.prompt: Any = None          # ctypes token array of the last set_input(0)
        self.output = bytearray()        # the generated text (or the embedding JSON)
        self.tokens: list[int] = []      # the generated tokens
        self.piece = b""                 # the last token's text (get_output_single)
        self.streaming = False           # a compute_single stream is under way
        #: steps made ahead of the guest (`read_ahead`) and not yet taken by compute_single:
        #: (token, piece, errno of the step or None); their tokens are in the KV cache
        self._ahead: deque[tuple[int, bytes, Errno | None]] = deque()
        self._sampler: _Sampler | None = None
        self._cache_token = object()     # marks the shared KV cache as holding our tokens

    # -- inputs -----------------------------------------------------------------------------
    def set_input(self, index: int, array: np.ndarray) -> None:
        data = _as_bytes(array)
        if index == 1:
            self._configure(data)
            return
        with self.graph.lock:
            self.prompt = self.graph.model.tokenize(data)
            self._ahead.clear()
        self.streaming = False

    def _configure(self, data: bytes) -> None:
        from ..config import parse_config

        try:
            config = parse_config(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise NnError(Errno.INVALID_ENCODING, "config is not UTF-8 text") from None
        except NnError as error:
            raise NnError(Errno.INVALID_ENCODING, error.message) from None
        with self.graph.lock:
            options, run = ggml_options.apply(config, self.graph.options, self.run)
            if options != self.graph.options:
                sampler = _Sampler(self.graph.model, options)   # a bad grammar fails here
                self.graph.update(options)
                self._sampler = sampler
                self._drop_ahead()       # made with the old options: the next step resamples
            self.run = run

    # -- generation -------------------------------------------------------------------------
    def _start(self) -> _LlamaContext:
        """Clear the cache and the output, check the prompt and decode it (compute's steps 1-4)."""
        graph = self.graph
        context = graph.llama_context()
        context.clear(self._cache_token)
        self._ahead.clear()
        self.output.clear()
        self.tokens.clear()
        self.piece = b""
        sampler = self._sampler
        if sampler is None or (sampler.options is not graph.options
                               and sampler.options != graph.options):
            # new, or another context of this graph changed the graph's options since
            self._sampler = _Sampler(graph.model, graph.options)
        else:
            graph.model.llama.llama_sampler_reset(self._sampler.handle)
        prompt = self.prompt
        if prompt is None or len(prompt) == 0:
            raise NnError(Errno.INVALID_ARGUMENT, "no prompt: set_input(0) with the prompt text "
                                                  "first")
        limit = context.n_ctx - 4
        if len(prompt) > limit:
            raise NnError(Errno.PROMPT_TOO_LONG, f"the prompt is {len(prompt)} tokens, the "
                                                 f"context holds {context.n_ctx} ({limit} for "
                                                 "a prompt)")
        context.decode(prompt)
        return context

    def single_threaded(self) -> bool:
        return (self.graph.options.threads or _default_threads()) == 1

    def compute(self) -> None:
        with self.graph.lock:
            self.streaming = False
            if self.graph.options.embedding:
                self._embed()
                return
            context = self._start()
            if self.run.n_predict != 0:      # 0: prompt processing only (nothing to sample)
                self._generate(context)

    def _generate(self, context: _LlamaContext) -> None:
        """Sample until n-predict, a reverse prompt, end of generation or a full context."""
        graph, run = self.graph, self.run
        model, sampler = graph.model, self._sampler
        llama, vocab = model.llama, model.vocab
        is_eog, piece_of = llama.llama_vocab_is_eog, model.piece
        sample, decode_one = sampler.sample, context.decode_one
        output, tokens = self.output, self.tokens
        ignore_eos = graph.options.ignore_eos
        stop_text = run.reverse_prompt.encode()
        stdout = guest_stdout() if run.stream_stdout else None
        n_ctx = context.n_ctx
        remaining = run.n_predict if run.n_predict >= 0 else -1
        while remaining != 0:
            token = sample(context)
            piece = piece_of(token)
            tokens.append(token)
            output += piece
            if stdout is not None:
                stdout.write(piece)
                stdout.flush()
            if stop_text and output.find(stop_text, max(0, len(output) - len(piece)
                                                        - len(stop_text))) >= 0:
                return
            if not ignore_eos and is_eog(vocab, token):
                return
            if context.used + 1 > n_ctx:
                raise NnError(Errno.CONTEXT_FULL, f"the context is full ({n_ctx} tokens)")
            decode_one(token)
            remaining -= 1

    def compute_single(self) -> None:
        """One token: the first call decodes the prompt; 100 after end of generation, 101 when
        the context is full (both end the stream: the next call starts again). A step made
        ahead (`read_ahead`) is taken as it is: same token, same outcome."""
        with self.graph.lock:
            if self.streaming and self._ahead:
                token, piece, error = self._ahead.popleft()
            else:
                if not self.streaming:
                    self._start()
                    self.streaming = True
                token, piece, error = self._step()
            self.piece = piece
            self.tokens.append(token)
            self.output += piece
            if error is not None:
                self.streaming = False
                self._ahead.clear()
                raise NnError(error, "end of generation" if error is Errno.END_OF_SEQUENCE
                              else f"the context is full ({self.graph.llama_context().n_ctx} "
                                   "tokens)")

    def read_ahead(self, budget: float, limit: int,
                   max_bytes: int = 1 << 16) -> list[tuple[bytes, int]]:
        """Make the next steps of a stream now, while they take less than `budget` seconds
        in all (at most `limit` steps and about `max_bytes` of text — a hostile GGUF's tokens
        can be long —, none after a step that ends the stream), so that a host that
        reaches this context through a process boundary can serve them without a round trip
        each. They are taken by compute_single in order, exactly as if made then: the KV
        cache holds their tokens, the sampler drew them in the same order; what the guest can
        read (outputs, metadata) covers only the steps taken. Returns every step still ahead,
        as (piece, errno or 0)."""
        with self.graph.lock:
            if self.streaming:
                start = time.perf_counter()
                size = sum(len(piece) for _, piece, _ in self._ahead)
                while len(self._ahead) < limit and size < max_bytes and (
                        not self._ahead or self._ahead[-1][2] is None):
                    before = time.perf_counter()
                    self._ahead.append(self._step())
                    size += len(self._ahead[-1][1])
                    now = time.perf_counter()
                    if now - start + (now - before) > budget:   # the next would overrun
                        break
            return [(piece, int(error or 0)) for _, piece, error in self._ahead]

    def take_ahead(self, count: int) -> None:
        """Take `count` steps made ahead, as compute_single would (a host that served them
        to the guest itself says so with its next request); their errors were reported."""
        with self.graph.lock:
            while count > 0 and self.streaming and self._ahead:
                count -= 1
                try:
                    self.compute_single()
                except NnError:
                    pass

    def _step(self) -> tuple[int, bytes, Errno | None]:
        """Sample the token after what the cache holds and decode it (unless it ends the
        stream): (token, its piece, the errno that ends the stream or None)."""
        graph = self.graph
        context = graph.llama_context()
        if context.owner is not self._cache_token:
            self._replay(context)
        token = self._sampler.sample(context)
        piece = graph.model.piece(token)
        if not graph.options.ignore_eos and graph.model.llama.llama_vocab_is_eog(
                graph.model.vocab, token):
            return token, piece, Errno.END_OF_SEQUENCE
        if context.used + 1 > context.n_ctx:
            return token, piece, Errno.CONTEXT_FULL
        context.decode_one(token)
        return token, piece, None

    def _drop_ahead(self) -> None:
        """Forget the steps made ahead: the cache is decoded again up to the last step taken
        when the stream goes on."""
        if self._ahead:
            self._ahead.clear()
            context = self.graph._context
            if context is not None and context.owner is self._cache_token:
                context.owner = None

    def _replay(self, context: _LlamaContext) -> None:
        """Another context used the shared cache since our last step (or steps made ahead
        were dropped): decode ours again, with the steps still ahead."""
        context.clear(self._cache_token)
        context.decode(self.prompt)
        generated = self.tokens + [token for token, _, error in self._ahead if error is None]
        if generated:
            context.decode((context.llama.llama_token * len(generated))(*generated))

    def close(self) -> None:
        """Free the sampler now (finalize_execution_context), not at garbage collection."""
        with self.graph.lock:
            self._sampler = None
            self._ahead.clear()
            self.prompt = None
            self.output = bytearray()
            self.tokens = []

    def fini_single(self) -> None:
        with self.graph.lock:
            self.output.clear()
            self.tokens.clear()
            self.piece = b""
            self.streaming = False
            self._ahead.clear()
            if self._sampler is not None:
                self.graph.model.llama.llama_sampler_reset(self._sampler.handle)

    def _embed(self) -> None:
        graph = self.graph
        prompt = self.prompt
        batch = graph.options.batch_size
        if prompt is not None and len(prompt) > batch:
            raise NnError(Errno.PROMPT_TOO_LONG, f"the prompt is {len(prompt)} tokens, more than "
                                                 f"batch-size {batch} for an embedding")
        context = self._start()
        vector = context.embedding(graph.model.n_embd)
        norm = float(np.sqrt(np.dot(vector, vector)))
        if norm > 0:
            vector = vector / norm
        values = ",".join(format(float(np.float32(v)), ".10g") for v in vector)
        self.output[:] = (f'{{"n_embedding": {len(vector)}, "embedding": [{values}]}}').encode()
        self.tokens.clear()

    # -- outputs ----------------------------------------------------------------------------
    def _metadata(self) -> np.ndarray:
        llama = self.graph.model.llama
        text = json.dumps({
            "input_tokens": 0 if self.prompt is None else len(self.prompt),
            "output_tokens": len(self.tokens),
            "llama_build_number": 0,
            "llama_commit": _LLAMA_COMMITS.get(getattr(llama, "__version__", ""), "unknown"),
        })
        return np.frombuffer(text.encode(), dtype=np.uint8)

    def get_output(self, index: int) -> np.ndarray:
        if index == 1:
            return self._metadata()
        return np.frombuffer(bytes(self.output), dtype=np.uint8)

    def get_output_single(self, index: int) -> np.ndarray:
        if index == 1:
            return self._metadata()
        return np.frombuffer(self.piece, dtype=np.uint8)


class GgmlBackend(Backend):
    name = "ggml"
    extra = "ggml"
    module = "llama_cpp"
    bad_config_errno = Errno.INVALID_ENCODING

    def load(self, builders: Sequence[memoryview], target: ExecutionTarget) -> Graph:
        if not 1 <= len(builders) <= 2:
            raise NnError(Errno.INVALID_ARGUMENT, f"ggml expects the GGUF model and an optional "
                                                  f"JSON config, got {len(builders)} parts")
        llama = _library(self)
        model_part = builders[0]
        if model_part[:8] == b"preload:":
            raise NnError(Errno.MODEL_NOT_FOUND,
                          "wasinn does not open host paths named by a guest ('preload:…'); "
                          "preload the model with --nn-preload NAME:GGML:AUTO:PATH and use "
                          "load_by_name")
        if model_part[:4] != b"GGUF":
            raise NnError(Errno.INVALID_ARGUMENT, "the model is not a GGUF file (no 'GGUF' magic)")
        config: dict = {}
        if len(builders) == 2 and builders[1].nbytes:
            from ..config import parse_config

            try:
                config = parse_config(bytes(builders[1]).decode("utf-8"))
            except (NnError, UnicodeDecodeError) as error:
                raise NnError(Errno.INVALID_ENCODING,
                              getattr(error, "message", "config is not UTF-8 text")) from None
        options, run = ggml_options.apply(config, GraphOptions(), RunOptions())
        if target is ExecutionTarget.TPU or (target is ExecutionTarget.GPU
                                             and not llama.llama_supports_gpu_offload()):
            raise NnError(Errno.UNSUPPORTED_OPERATION,
                          f"ggml: execution target {target.name.lower()} is not available "
                          "(this llama.cpp build runs on the CPU)")
        _check_devices(llama, options)
        _note_logging(options)
        layers = options.n_gpu_layers if target is ExecutionTarget.GPU or options.n_gpu_layers \
            else 0
        with model_file(model_part) as path:
            model = _Model(llama, path, layers, options.main_gpu)
        return GgmlGraph(model, options, run)


BACKEND = GgmlBackend()
