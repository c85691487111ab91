"""`wasi_nn.llm`: large language models (GGUF on a GGML backend), the Pythonic way.

Works on any host that speaks WasmEdge's GGML protocol: wasinn (in wasm and natively), and
WasmEdge with its GGML plugin. ::

    from wasi_nn.llm import Llm, chat_prompt

    with Llm("default", {"ctx-size": 4096, "temp": 0}) as llm:   # --nn-preload default:GGML:...
        print(llm.generate("The capital of France is", n_predict=16))
        for piece in llm.stream(chat_prompt([{"role": "user", "content": "Hi"}], "llama3")):
            print(piece, end="", flush=True)
        print(llm.embed("a line of text")[:4])                   # needs {"embedding": true}

Options are the backend's config keys, as keyword arguments with ``_`` for ``-``
(``n_predict=16``, ``reverse_prompt="User:"``, ``temp=0``); they are sent with
``set_input(1)`` and stay in force for later calls, as the protocol says.
"""

from __future__ import annotations

import codecs
import json

from ._constants import ERRNO_CONTEXT_FULL, ERRNO_END_OF_SEQUENCE, ERRNO_TOO_LARGE
from ._context import GraphExecutionContext
from ._enums import Errno, ExecutionTarget, GraphEncoding, TensorType
from ._errors import WasiNnError, from_raw
from ._graph import Graph, GraphBuilder
from ._raw import Error as _Error
from ._raw import raw as _r

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__ = ["Llm", "Metadata", "chat_prompt", "strip_stop", "CHAT_TEMPLATES", "STOP_TEXTS"]

#: texts models end a turn with; the backend leaves the one it sampled at the end of the output
STOP_TEXTS = ("</s>", "<|eot_id|>", "<|im_end|>", "<|end_of_text|>", "<|endoftext|>",
              "<|end|>", "<end_of_turn>", "<|eom_id|>")


class Metadata:
    """What `get_output(1)` reports about the last prompt and generation."""

    __slots__ = ("input_tokens", "output_tokens", "llama_build_number", "llama_commit")

    def __init__(self, input_tokens: int, output_tokens: int, llama_build_number: int,
                 llama_commit: str) -> None:
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.llama_build_number = llama_build_number
        self.llama_commit = llama_commit

    @classmethod
    def from_json(cls, data: bytes | bytearray | str) -> Metadata:
        values = json.loads(data)
        return cls(int(values.get("input_tokens", 0)), int(values.get("output_tokens", 0)),
                   int(values.get("llama_build_number", 0)), str(values.get("llama_commit", "")))

    def __repr__(self) -> str:
        return (f"Metadata(input_tokens={self.input_tokens}, output_tokens={self.output_tokens}, "
                f"llama_build_number={self.llama_build_number}, "
                f"llama_commit={self.llama_commit!r})")


def strip_stop(text: str) -> str:
    """`text` without the end-of-turn marker the backend leaves at its end (if any)."""
    for stop in STOP_TEXTS:
        if text.endswith(stop):
            return text[:-len(stop)]
    return text


def _config_keys(options: dict) -> dict:
    """Keyword options as the backend's config keys (``n_predict`` -> ``n-predict``)."""
    return {key.replace("_", "-"): value for key, value in options.items()}


def _options_json(options: dict) -> str:
    return json.dumps(_config_keys(options))


class Llm:
    """A loaded language model and one execution context on it (the prompt, the KV cache use).

    `Llm(name, config)` loads a model the host preloaded (``--nn-preload name:GGML:AUTO:file``);
    `Llm.from_bytes(gguf, config)` loads one the guest read itself.
    """

    def __init__(self, name: str = "default", config: dict | None = None, *,
                 graph: Graph | None = None) -> None:
        if graph is None:
            builder = GraphBuilder(GraphEncoding.GGML, ExecutionTarget.AUTO)
            if config:
                builder.config(config)
            graph = builder.build_from_cache(name)
        self.graph = graph
        self.context: GraphExecutionContext = graph.init_execution_context()
        #: why the last generation ended: "stop" (end of sequence, reverse prompt or n-predict)
        #: or "context_full" (the text is what fitted)
        self.finish_reason = "stop"
        self._piece = bytearray(256)
        self._stream_metadata: bytes = b'{}'
        # compute_single does not apply n-predict or reverse-prompt (the protocol leaves them
        # to the guest, as LlamaEdge does): `stream` applies them itself
        self._n_predict = -1
        self._reverse_prompt = ""
        self._remember(config or {})

    @classmethod
    def from_bytes(cls, gguf, config: dict | None = None,
                   target: ExecutionTarget = ExecutionTarget.AUTO) -> Llm:
        """Load a GGUF model from a buffer (e.g. a file's bytes) with an optional config."""
        parts = [gguf]
        if config:
            parts.append(json.dumps(config).encode())
        graph = GraphBuilder(GraphEncoding.GGML, target).build_from_bytes(parts)
        llm = cls(graph=graph)
        llm._remember(config or {})
        return llm

    def _remember(self, config: dict) -> None:
        if "n-predict" in config:
            self._n_predict = int(config["n-predict"])
        if "reverse-prompt" in config:
            self._reverse_prompt = str(config["reverse-prompt"])

    # -- options and input --------------------------------------------------------------------
    def configure(self, **options) -> None:
        """Send options (config keys, ``_`` for ``-``) for this and later calls."""
        if options:
            config = _config_keys(options)
            data = json.dumps(config).encode()
            self.context.set_input(1, TensorType.U8, [len(data)], data)
            self._remember(config)

    def set_prompt(self, prompt: str | bytes) -> None:
        """Tokenize `prompt` on the host (used by generate/stream/embed)."""
        data = prompt.encode() if isinstance(prompt, str) else bytes(prompt)
        self.context.set_input(0, TensorType.U8, [len(data)], data)

    def metadata(self) -> Metadata:
        """Token counts of the last prompt and generation, and llama.cpp's build."""
        return Metadata.from_json(self.context.get_output(1))

    # -- generation --------------------------------------------------------------------------
    def generate(self, prompt: str, *, keep_stop: bool = False, **options) -> str:
        """The model's continuation of `prompt` (without its end-of-turn marker unless
        `keep_stop`). A full context ends the text early: `finish_reason` says so."""
        self.configure(**options)
        self.set_prompt(prompt)
        self.finish_reason = "stop"
        try:
            self.context.compute()
        except WasiNnError as error:
            if error.errno != Errno.CONTEXT_FULL:
                raise
            self.finish_reason = "context_full"
        text = bytes(self.context.get_output(0)).decode("utf-8", errors="replace")
        return text if keep_stop else strip_stop(text)

    def stream(self, prompt: str, **options) -> Iterator[str]:
        """The continuation piece by piece as the host makes it (one `compute_single` per
        token); bytes of a character split across tokens are held back until complete.
        n-predict and reverse-prompt are applied here, as for `generate`."""
        self.configure(**options)
        self.set_prompt(prompt)
        return self._stream()

    def _stream(self) -> Iterator[str]:
        handle = self.context.handle
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        compute_single, get_output_single = _r.compute_single, _r.get_output_single
        self.finish_reason = "stop"
        left = self._n_predict
        stop_text, seen = self._reverse_prompt, ""
        try:
            while left != 0:
                left -= 1
                try:
                    compute_single(handle)
                except _Error as error:
                    code = error.args[0] if error.args else None
                    if code == ERRNO_END_OF_SEQUENCE:
                        break
                    if code == ERRNO_CONTEXT_FULL:
                        self.finish_reason = "context_full"
                        break
                    raise from_raw(error) from None
                text = decoder.decode(self._read_piece(handle, get_output_single))
                if text:
                    yield text
                    if stop_text:
                        seen = (seen + text)[-2 * len(stop_text) - 64:]
                        if stop_text in seen:
                            break
            tail = decoder.decode(b"", final=True)
            if tail:
                yield tail
        finally:
            try:           # read before fini_single, which clears the token counts
                self._stream_metadata = bytes(self.context.get_output(1))
            except WasiNnError:
                pass
            _r.fini_single(handle)

    def _read_piece(self, handle: int, get_output_single) -> bytes:
        buffer = self._piece
        while True:
            try:
                written = get_output_single(handle, 0, buffer)
            except _Error as error:
                if error.args and error.args[0] == ERRNO_TOO_LARGE:
                    needed = error.args[2] if len(error.args) > 2 else 2 * len(buffer)
                    buffer = self._piece = bytearray(max(needed, 2 * len(buffer)))
                    continue
                raise from_raw(error) from None
            return bytes(buffer[:written])

    def stream_metadata(self) -> Metadata:
        """The metadata as it was when the last `stream` ended (fini_single clears it)."""
        return Metadata.from_json(self._stream_metadata)

    def embed(self, text: str) -> list[float]:
        """The embedding of `text` (L2-normalised); the model must be loaded with
        ``{"embedding": true}``."""
        self.set_prompt(text)
        self.context.compute()
        values = json.loads(bytes(self.context.get_output(0)))
        return [float(v) for v in values["embedding"]]

    # -- lifetime ----------------------------------------------------------------------------
    def close(self) -> None:
        """Finalize the context and unload the graph (hosts that refuse either are fine)."""
        from ._errors import release_on_exit

        release_on_exit(self.context.finalize, None)
        release_on_exit(self.graph.unload, None)

    def __enter__(self) -> Llm:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        from ._errors import release_on_exit

        release_on_exit(self.context.finalize, exc_type)
        release_on_exit(self.graph.unload, exc_type)


# -- chat prompt templates ------------------------------------------------------------------
def _llama2(messages: Sequence[dict]) -> str:
    # The backend adds BOS (<s>) itself; later turns open with their own.
    system = ""
    text = ""
    first = True
    for message in messages:
        role, content = message["role"], message["content"]
        if role == "system":
            system = f"<<SYS>>\n{content}\n<</SYS>>\n\n"
        elif role == "user":
            text += ("" if first else "<s>") + f"[INST] {system}{content} [/INST]"
            system, first = "", False
        elif role == "assistant":
            text += f" {content} </s>"
    return text


def _llama3(messages: Sequence[dict]) -> str:
    text = "".join(f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content']}<|eot_id|>"
                   for m in messages)
    return text + "<|start_header_id|>assistant<|end_header_id|>\n\n"


def _chatml(messages: Sequence[dict]) -> str:
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + "<|im_start|>assistant\n"


CHAT_TEMPLATES = {"llama2": _llama2, "llama3": _llama3, "chatml": _chatml}


def chat_prompt(messages: Sequence[dict], template: str = "llama3") -> str:
    """The prompt text for a conversation (``[{"role": "system"|"user"|"assistant",
    "content": ...}, ...]``) in a model family's format, ending where the assistant speaks.

    `template`: ``"llama2"`` (``[INST]``), ``"llama3"`` (header ids) or ``"chatml"``
    (``<|im_start|>``). The backend adds the model's BOS token itself.
    """
    try:
        render = CHAT_TEMPLATES[template]
    except KeyError:
        raise ValueError(f"unknown chat template {template!r} "
                         f"(one of {', '.join(CHAT_TEMPLATES)})") from None
    return render(messages)
