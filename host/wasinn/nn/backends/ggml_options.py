"""The GGML backend's options: WasmEdge's config keys, their JSON types and where they apply.

A guest sends options as a JSON object (`load` builder 1, `load_by_name_with_config`,
`set_input(1)`). WasmEdge's rules (shared/design/GGML_PROTOCOL.md §3) are kept: an absent key
leaves the value as it was, an unknown key is ignored (real guests send keys of their own),
an int key needs a JSON integer, a float key takes any number, a bool key needs true/false,
a string key needs a string; a wrong type is invalid_argument. Unlike WasmEdge, values that
cannot work (a negative context size, a 40-bit thread count) are invalid_argument too rather
than handed to llama.cpp, which would abort or try to allocate terabytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from typing import Any

from ..errors import Errno, NnError

I32_MAX = 2**31 - 1
#: llama.cpp pads the context to 256; a million tokens is past every released model
MAX_CTX = 1 << 20
MAX_THREADS = 512


@dataclass(frozen=True)
class GraphOptions:
    """Options shared by every context of a graph (WasmEdge: the graph's llama params)."""

    enable_log: bool = False
    n_gpu_layers: int = 0
    main_gpu: int = 0
    embedding: bool = False
    ctx_size: int = 0             # 0: the model's training context
    batch_size: int = 2048
    ubatch_size: int = 512
    threads: int = 0              # 0: the CPUs this process may use
    temp: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    last_n_penalty: int = 64
    seed: int = 0xFFFFFFFF        # llama.cpp's LLAMA_DEFAULT_SEED: a random seed per sampler
    ignore_eos: bool = False
    grammar: str = ""
    json_schema: str = ""


@dataclass(frozen=True)
class RunOptions:
    """Options of one execution context (WasmEdge keeps these per context)."""

    n_predict: int = -1           # < 0: until end of sequence or a full context
    reverse_prompt: str = ""
    stream_stdout: bool = False


def _int(lo: int, hi: int):
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(key, value, "an integer")
        if not lo <= value <= hi:
            raise NnError(Errno.INVALID_ARGUMENT, f"config {key!r}: {value} is out of range "
                                                  f"({lo}..{hi})")
        return value
    return check


def _float(clamp_at_zero: bool):
    def check(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(key, value, "a number")
        number = float(value)
        return max(number, 0.0) if clamp_at_zero else number
    return check


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _type_error(key, value, "true or false")
    return value


def _str(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _type_error(key, value, "a string")
    return value


def _type_error(key: str, value: Any, wanted: str) -> NnError:
    return NnError(Errno.INVALID_ARGUMENT,
                   f"config {key!r} must be {wanted}, got {json.dumps(value)[:40]}")


# key -> (field name, which options object, checker); the order is WasmEdge's table's.
_KEYS: dict[str, tuple[str, type, Any]] = {
    "enable-log": ("enable_log", GraphOptions, _bool),
    "n-gpu-layers": ("n_gpu_layers", GraphOptions, _int(-1, I32_MAX)),
    "main-gpu": ("main_gpu", GraphOptions, _int(0, 1024)),
    "embedding": ("embedding", GraphOptions, _bool),
    "ctx-size": ("ctx_size", GraphOptions, _int(0, MAX_CTX)),
    "batch-size": ("batch_size", GraphOptions, _int(1, MAX_CTX)),
    "ubatch-size": ("ubatch_size", GraphOptions, _int(1, MAX_CTX)),
    "threads": ("threads", GraphOptions, _int(0, MAX_THREADS)),
    "temp": ("temp", GraphOptions, _float(True)),
    "top-p": ("top_p", GraphOptions, _float(True)),
    "top-k": ("top_k", GraphOptions, _int(-I32_MAX, I32_MAX)),
    "min-p": ("min_p", GraphOptions, _float(False)),
    "repeat-penalty": ("repeat_penalty", GraphOptions, _float(True)),
    "presence-penalty": ("presence_penalty", GraphOptions, _float(True)),
    "frequency-penalty": ("frequency_penalty", GraphOptions, _float(True)),
    "last-n-penalty": ("last_n_penalty", GraphOptions, _int(-1, MAX_CTX)),
    "seed": ("seed", GraphOptions, _int(-2**31, 2**32 - 1)),
    "ignore-eos": ("ignore_eos", GraphOptions, _bool),
    "grammar": ("grammar", GraphOptions, _str),
    "json-schema": ("json_schema", GraphOptions, _str),
    "n-predict": ("n_predict", RunOptions, _int(-2**31, I32_MAX)),
    "reverse-prompt": ("reverse_prompt", RunOptions, _str),
    "stream-stdout": ("stream_stdout", RunOptions, _bool),
}

#: fields whose change needs a new llama context (the KV cache is sized by them)
CONTEXT_FIELDS = frozenset({"embedding", "ctx_size", "batch_size", "ubatch_size"})


def apply(config: dict, graph: GraphOptions, run: RunOptions) -> tuple[GraphOptions, RunOptions]:
    """`graph` and `run` with the config's known keys applied; all keys checked first, so a
    bad value changes nothing."""
    changes: dict[type, dict[str, Any]] = {GraphOptions: {}, RunOptions: {}}
    for key, value in config.items():
        entry = _KEYS.get(key)
        if entry is None:
            continue                       # WasmEdge ignores keys it does not know
        name, owner, check = entry
        changes[owner][name] = check(key, value)
    graph_changes = changes[GraphOptions]
    if "seed" in graph_changes:
        graph_changes["seed"] &= 0xFFFFFFFF   # -1 means random, as llama.cpp's u32 seed does
    return replace(graph, **graph_changes), replace(run, **changes[RunOptions])


def changed_fields(old: GraphOptions, new: GraphOptions) -> set[str]:
    return {f.name for f in fields(GraphOptions) if getattr(old, f.name) != getattr(new, f.name)}


KNOWN_KEYS = tuple(_KEYS)
