"""Load-time checks on TorchScript archives: only tensor math may run, nothing that touches
files, processes, the network or native custom classes.

TorchScript is a programming language, and its standard library includes `aten::from_file`,
`aten::save`, RPC, distributed collectives, threads (`prim::fork`) and user-registered C++
classes. A model a guest hands to `load` must not reach any of that. Two phases:

1. **Before `torch.jit.load`** (loading itself runs code): the archive is opened with torch's
   own zip reader (the one `torch.jit.load` uses, so both see the same records), then
   - every pickle in it (`data.pkl`, `constants.pkl`, the `.debug_pkl`s) may only reference
     the globals torch's TorchScript pickler writes (tensor rebuilders, storages, TorchScript
     classes defined in the archive) — not `torch.classes.*` custom C++ classes, whose
     `__setstate__` would run native code on load, beyond torch's own quantized packed-weight
     holders;
   - no record but tensor data may mention `__setstate__` (in practice: no TorchScript class
     in `code/` may define it): the unpickler calls it while loading, before anyone could
     look at it.
   Loading then reads only the archive's own records (tensors, code); `_extra_files` is never
   asked for, and nothing else is opened.
2. **After loading, before anything runs**: the graph of every method, forward hook and
   pre-hook of every module and submodule, nested blocks of `if`/loops at any depth, with
   every call that is not to a submodule's method inlined (free functions, methods of
   TorchScript classes), may use only ops on the allow-list
   (`torchscript_ops.ALLOWED_OPS`, derived from what real models use; see that module), no
   constant may be a custom-class object, and a call left after inlining (an interface call)
   must go to a submodule, whose methods are checked too.

A refusal is invalid_argument naming the op, global or method; bytes that are not an archive
at all stay runtime_error, as when torch itself fails to parse a model. On EfficientNet-Lite0
both phases cost ~11 + ~22 ms of CPU, next to ~80 ms for `torch.jit.load` (docs/host.md).
"""

from __future__ import annotations

import io
import pickle
from typing import Any, Iterator

from ..errors import Errno, NnError
from .torchscript_ops import ALLOWED_OPS

#: Globals torch's TorchScript pickler writes for tensors and containers (module, name).
_PICKLE_GLOBALS = frozenset({
    ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_qtensor"),
    ("torch._utils", "_rebuild_sparse_tensor"),
    ("collections", "OrderedDict"), ("builtins", "complex"), ("torch", "device"),
    ("torch.jit._pickle", "build_intlist"), ("torch.jit._pickle", "build_tensorlist"),
    ("torch.jit._pickle", "build_doublelist"), ("torch.jit._pickle", "build_boollist"),
    ("torch.jit._pickle", "build_tensor_from_id"), ("torch.jit._pickle", "restore_type_tag"),
    ("torch", "per_tensor_affine"), ("torch", "per_channel_affine"),
    ("torch", "per_tensor_symmetric"), ("torch", "per_channel_symmetric"),
    ("torch", "per_channel_affine_float_qparams"),
})

#: torch's own custom classes that only hold quantized weights (their C++ __setstate__ unpacks
#: the weights: no file, process or network access). Every other custom class is refused.
_CUSTOM_CLASSES = frozenset({
    "__torch__.torch.classes.quantized.LinearPackedParamsBase",
    "__torch__.torch.classes.quantized.Conv2dPackedParamsBase",
    "__torch__.torch.classes.quantized.Conv3dPackedParamsBase",
    "__torch__.torch.classes.quantized.EmbeddingPackedParamsBase",
})
_CUSTOM_PREFIX = "__torch__.torch.classes."

#: Why the most notable refused ops are dangerous (any op off the allow-list is refused).
_REASONS = {
    "aten::from_file": "reads a host file", "aten::save": "writes a host file",
    "debugprims::load_tensor": "reads a host file", "prim::Print": "writes to the host's stdout",
    "prim::fork": "starts threads", "aten::wait": "waits on threads",
    "prim::rpc_sync": "uses the network", "prim::rpc_async": "uses the network",
    "prim::rpc_remote": "uses the network", "aten::manual_seed": "changes process-wide state",
    "prim::PythonOp": "calls Python",
}
_NAMESPACE_REASONS = {"c10d": "uses the network", "_c10d_functional": "uses the network",
                      "symm_mem": "uses the network", "profiler": "records profiles",
                      "debugprims": "reads host files"}

#: Records holding tensor bytes (or extra files torch.jit.load is never asked for): not code.
_DATA_FOLDERS = ("data/", "tensors/", ".data/", "extra/", "traced_inputs/")

MAX_MODULES = 100_000
"""Most submodules checked (a hostile archive may nest them without end)."""


def _refuse(message: str) -> NnError:
    return NnError(Errno.INVALID_ARGUMENT, f"pytorch: {message}")


def _corrupt(message: str) -> NnError:
    """A model that cannot be parsed: runtime_error, as when the library itself fails."""
    return NnError(Errno.RUNTIME_ERROR, f"pytorch load failed: {message}")


def _op_refusal(kind: str, where: str) -> NnError:
    reason = _REASONS.get(kind) or _NAMESPACE_REASONS.get(kind.split("::")[0])
    why = f"it {reason}" if reason else "it is not on wasinn's allow-list of tensor ops"
    return _refuse(f"the model uses the op {kind} in {where}, refused because {why} "
                   "(docs/host.md: TorchScript checks)")


# -- phase 1: the archive, before torch.jit.load ------------------------------------------------
class _Inert:
    """What every global resolves to while the globals of a pickle are listed: calling it,
    building it or filling it does nothing (no code of the archive's choice ever runs)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _GlobalLister(pickle.Unpickler):
    """Runs a pickle with CPython's C unpickler, every global replaced by `_Inert`, to list
    the globals it names (GLOBAL, STACK_GLOBAL, INST, OBJ all go through find_class): the
    same names torch's unpickler would resolve, ~10x faster than pickletools in Python."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.names: list[tuple[str, str]] = []

    def find_class(self, module: str, name: str) -> Any:
        self.names.append((module, name))
        return _Inert

    def persistent_load(self, pid: Any) -> None:
        return None                               # tensor storages: not needed here


def _pickle_globals(data: bytes, record: str) -> list[tuple[str, str]]:
    lister = _GlobalLister(data)
    try:
        lister.load()
    except Exception as error:  # noqa: BLE001 - a malformed pickle
        raise _corrupt(f"{record} is not a valid pickle "
                       f"({type(error).__name__}: {error})") from None
    return lister.names


def _check_global(module: str, name: str, record: str) -> None:
    qualified = f"{module}.{name}"
    if qualified.startswith(_CUSTOM_PREFIX):
        if qualified in _CUSTOM_CLASSES:
            return
        raise _refuse(f"{record} holds an object of the custom C++ class "
                      f"{qualified[len('__torch__.'):]}, whose loading runs native code; "
                      "custom classes are refused")
    if module == "__torch__" or module.startswith("__torch__."):
        return                                    # a TorchScript class from the archive's code
    if (module, name) in _PICKLE_GLOBALS or (module == "torch" and name.endswith("Storage")):
        return
    raise _refuse(f"{record} references the global {qualified}, which TorchScript archives "
                  "do not use; refused")


def check_archive(torch: Any, data: bytes) -> None:
    """Phase 1: invalid_argument unless loading `data` can only rebuild tensors and compile
    code (nothing runs while it loads)."""
    try:
        reader = torch._C.PyTorchFileReader(io.BytesIO(data))
        records = reader.get_all_records()
    except Exception as error:  # noqa: BLE001 - not a zip torch can read
        first = (str(error).strip() or type(error).__name__).splitlines()[0]
        raise _corrupt(f"not a TorchScript archive ({first})") from None
    for record in records:
        if record.endswith("pkl"):                # data.pkl, constants.pkl, *.debug_pkl
            for module, name in _pickle_globals(reader.get_record(record), record):
                _check_global(module, name, record)
        elif (not record.startswith(_DATA_FOLDERS)
              and b"__setstate__" in reader.get_record(record)):
            # code/ in today's format; any other non-tensor record too (legacy layouts)
            raise _refuse(f"{record} defines __setstate__, which torch.jit.load would run "
                          "while loading; refused")


# -- phase 2: the loaded module, before anything runs -------------------------------------------
def _nodes(block: Any) -> Iterator[Any]:
    for node in block.nodes():
        yield node
        for inner in node.blocks():
            yield from _nodes(inner)


def _receiver_path(node: Any, self_value: Any) -> list[str] | None:
    """Attribute names leading from `self` to the receiver of a call, or None if the receiver
    is not `self.a.b…` (e.g. taken out of a list)."""
    names: list[str] = []
    value = node.inputsAt(0)
    while value.debugName() != self_value.debugName():
        producer = value.node()
        if producer.kind() != "prim::GetAttr":
            return None
        names.insert(0, producer.s("name"))
        value = producer.inputsAt(0)
    return names


def _interface_target_is_a_module(torch: Any, owner: Any, path: list[str]) -> bool:
    """Whether `owner.<path>` is a submodule (whose methods are checked with every module)."""
    target = owner
    try:
        for name in path:
            target = target.getattr(name)
    except Exception:  # noqa: BLE001 - torch cannot even hand the object to Python
        return False
    return isinstance(target, torch._C.ScriptModule)


def _check_graph(torch: Any, graph: Any, where: str, owner: Any,
                 module_types: frozenset[str], inline: bool = False) -> None:
    """Check one function's graph.

    Calls to methods of modules are left as they are (every module's methods are checked on
    their own, once); any other call — a free function, a TorchScript class's method — makes
    the graph checked again with every call inlined, so the callee's ops are seen too.
    """
    if inline:
        graph = graph.copy()
        torch._C._jit_pass_inline(graph)
    inputs = list(graph.inputs())
    for node in _nodes(graph.block()):
        kind = node.kind()
        if kind not in ALLOWED_OPS:
            raise _op_refusal(kind, where)
        if kind == "prim::Constant":
            type_name = str(node.output().type())
            if type_name.startswith(_CUSTOM_PREFIX) and type_name not in _CUSTOM_CLASSES:
                raise _refuse(f"{where} has a constant of the custom C++ class {type_name}; "
                              "custom classes are refused")
        elif kind == "prim::CallMethod":
            receiver = node.inputsAt(0).type()
            if str(receiver) in module_types:
                continue                          # a submodule's method: checked on its own
            if not inline and not receiver.is_interface_type():
                return _check_graph(torch, graph, where, owner, module_types, inline=True)
            # An interface call (all that inlining leaves): fine when the object is a
            # submodule, refused for anything the walk cannot see.
            path = _receiver_path(node, inputs[0]) if inputs else None
            if path is None or not _interface_target_is_a_module(torch, owner, path):
                raise _refuse(f"{where} calls a method through an interface on something "
                              "that is not a submodule; refused (the checks cannot follow it)")
        elif kind == "prim::CallFunction":
            if not inline:
                return _check_graph(torch, graph, where, owner, module_types, inline=True)
            raise _refuse(f"{where} calls a function value that cannot be resolved; refused")
    return None


def _functions(torch: Any, module: Any) -> Iterator[tuple[str, Any]]:
    """(name, graph) of every method and forward (pre-)hook of one module."""
    for name in module._method_names():
        yield name, module._get_method(name).graph
    for hook in [*module._get_forward_pre_hooks(), *module._get_forward_hooks()]:
        yield hook.name, hook.graph


def check_module(torch: Any, module: Any) -> None:
    """Phase 2: invalid_argument unless every function of the loaded `module` (a
    RecursiveScriptModule) and of its submodules uses only allowed ops."""
    modules = list(module.named_modules())
    if len(modules) > MAX_MODULES:
        raise _refuse(f"{len(modules)} submodules (at most {MAX_MODULES}); refused")
    module_types = frozenset(str(sub._c._type()) for _, sub in modules)
    for name, sub in reversed(modules):           # leaves first: a refusal names the
        owner = sub._c                            # submodule that holds the op
        qualified = owner._type().qualified_name()
        for method, graph in _functions(torch, owner):
            _check_graph(torch, graph, f"{name or 'the model'}.{method} ({qualified})", owner,
                         module_types)


def ops_of(torch: Any, module: Any) -> set[str]:
    """Every op kind the checks would see in `module` (for scripts/torchscript_allowlist.py)."""
    kinds: set[str] = set()
    for _, sub in module.named_modules():
        for _, graph in _functions(torch, sub._c):
            inlined = graph.copy()
            torch._C._jit_pass_inline(inlined)
            kinds.update(node.kind() for node in _nodes(inlined.block()))
    return kinds
