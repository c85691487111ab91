"""The examples end to end with the real models from ../shared/fixtures (skip without them).

`prepare_models` makes the models (MobileNetV2 IR from the TFLite fixture, EfficientNet-Lite0
TorchScript from its wheel), `wasinn build` builds each example and `wasinn run` runs it in the
model folder exactly as the seed's README does. banana.jpg must come out as banana.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from _example_runs import EXAMPLES, ok, ranked, run_native, run_wasm, seed_lines
from conftest import exact_native_images

pytestmark = pytest.mark.fixtures


def _banana_first(lines: list[str]) -> None:
    top = [line for line in lines if line.startswith("   1.) ")]
    assert len(top) == 1 and top[0].startswith("   1.) [954](") and top[0].endswith(")banana")


def test_openvino_mobilenet_says_banana(built, real_models) -> None:
    folder = real_models["mobilenet_openvino"]
    lines = ok(run_wasm(built(EXAMPLES / "mobilenet_openvino"),
                        ["mobilenet.xml", "mobilenet.bin", "input.jpg"], folder))
    assert lines[0] == f"Read graph XML, size in bytes: {(folder / 'mobilenet.xml').stat().st_size}"
    assert lines[4] == "Read input tensor, size in bytes: 602112"
    assert len(lines) == 11
    _banana_first(lines)


def test_pytorch_mobilenet_says_banana(built, real_models) -> None:
    folder = real_models["mobilenet_pytorch"]
    lines = ok(run_wasm(built(EXAMPLES / "mobilenet_pytorch"), ["mobilenet.pt", "input.jpg"],
                        folder))
    assert len(lines) == 10
    _banana_first(lines)


def test_pytorch_named_model_says_banana(built, real_models) -> None:
    folder = real_models["mobilenet_pytorch"]
    lines = ok(run_wasm(built(EXAMPLES / "mobilenet_pytorch_named"), ["demo", "input.jpg"],
                        folder, preload=["demo:PyTorch:CPU:mobilenet.pt"]))
    plain = ok(run_wasm(built(EXAMPLES / "mobilenet_pytorch"), ["mobilenet.pt", "input.jpg"],
                        folder))
    assert lines == plain[1:]  # the same inference, without the "Read torchscript" line
    _banana_first(lines)


def test_pytorch_output_equals_torch_on_the_guest_tensor(built, real_models) -> None:
    """The printed scores are what torch itself gives for the tensor the guest computed."""
    if not exact_native_images():
        pytest.skip("native mode decodes JPEG with Pillow here (no native _wasinn_image)")
    import torch
    from wasi_nn.image import image_to_tensor
    from wasi_nn.labels import imagenet_labels

    folder = real_models["mobilenet_pytorch"]
    lines = ok(run_wasm(built(EXAMPLES / "mobilenet_pytorch"), ["mobilenet.pt", "input.jpg"],
                        folder))
    tensor = np.frombuffer(bytes(image_to_tensor(str(folder / "input.jpg"), 224, 224,
                                                 preset="pytorch")), np.float32)
    with torch.no_grad():
        scores = torch.jit.load(str(folder / "mobilenet.pt"))(
            torch.from_numpy(tensor.reshape(1, 3, 224, 224).copy()))[0].numpy()
    assert lines[5:] == seed_lines(ranked(scores), imagenet_labels(1000))


@pytest.mark.parametrize("example, args", [
    ("mobilenet_openvino", ["mobilenet.xml", "mobilenet.bin", "input.jpg"]),
    ("mobilenet_pytorch", ["mobilenet.pt", "input.jpg"]),
    ("birds_tflite", ["lite-model_aiy_vision_classifier_birds_V1_3.tflite", "bird.jpg"]),
])
def test_native_mode_agrees_with_wasm(built, real_models, example, args) -> None:
    folder = real_models[example]
    wasm_lines = ok(run_wasm(built(EXAMPLES / example), args, folder))
    native_lines = ok(run_native(EXAMPLES / example, args, folder))
    if exact_native_images():
        assert native_lines == wasm_lines
    else:  # Pillow's JPEG decoder differs from stb's in the last bits: same answer, not digits
        assert native_lines[:-5] == wasm_lines[:-5]
        assert native_lines[-5].split("(")[0] == wasm_lines[-5].split("(")[0]


def test_native_road_segmentation_writes_the_same_mask(built, real_models, tmp_path) -> None:
    if not exact_native_images():
        pytest.skip("native mode decodes JPEG with Pillow here (no native _wasinn_image)")
    work = tmp_path / "road"
    shutil.copytree(real_models["road_segmentation"], work)
    args = ["road-segmentation-adas-0001.xml", "road-segmentation-adas-0001.bin", "road.jpg"]
    wasm_lines = ok(run_wasm(built(EXAMPLES / "road_segmentation"), [*args, "wasm.bmp"], work))
    native_lines = ok(run_native(EXAMPLES / "road_segmentation", [*args, "native.bmp"], work))
    assert [line.replace("wasm.bmp", "native.bmp") for line in wasm_lines] == native_lines
    assert (work / "wasm.bmp").read_bytes() == (work / "native.bmp").read_bytes()


def test_road_segmentation_finds_the_road(built, real_models, tmp_path: Path) -> None:
    import openvino as ov
    from PIL import Image
    from wasi_nn.image import image_to_tensor

    folder = real_models["road_segmentation"]
    work = tmp_path / "road"
    shutil.copytree(folder, work)
    lines = ok(run_wasm(built(EXAMPLES / "road_segmentation"),
                        ["road-segmentation-adas-0001.xml", "road-segmentation-adas-0001.bin",
                         "road.jpg", "mask.bmp"], work))
    assert lines[5] == f"The size of the output buffer is {4 * 4 * 512 * 896} bytes"
    shares = {line.split(":")[0].strip(): float(line.split(":")[1].split("%")[0])
              for line in lines[7:]}
    assert set(shares) == {"background", "road", "curb", "mark"}
    assert 12.0 < shares["road"] < 40.0 and shares["background"] > 50.0
    mask = np.asarray(Image.open(work / "mask.bmp").convert("RGB"))
    assert mask.shape == (512, 896, 3)
    assert tuple(mask[-1, 448]) == (49, 104, 142)  # bottom centre: the road
    assert tuple(mask[0, 448]) == (68, 1, 84)      # top centre: sky, background

    if exact_native_images():
        tensor = np.frombuffer(bytes(image_to_tensor(str(work / "road.jpg"), 512, 896,
                                                     preset="openvino")), np.float32)
        compiled = ov.Core().compile_model(str(work / "road-segmentation-adas-0001.xml"), "CPU")
        classes = compiled(tensor.reshape(1, 3, 512, 896))[compiled.output(0)][0].argmax(axis=0)
        palette = np.array([(68, 1, 84), (49, 104, 142), (53, 183, 121), (253, 231, 37)],
                           np.uint8)
        assert np.array_equal(mask, palette[classes])


def test_birds_tflite_names_the_mandarin_duck(built, real_models) -> None:
    folder = real_models["birds_tflite"]
    lines = ok(run_wasm(built(EXAMPLES / "birds_tflite"),
                        ["lite-model_aiy_vision_classifier_birds_V1_3.tflite", "bird.jpg"], folder))
    assert lines[3] == "Read input tensor, size in bytes: 150528"
    top = lines[5]
    assert top.startswith("   1.) [166](") and top.endswith(")Aix galericulata")
    assert 150 <= int(top.split("(")[1].split(")")[0]) <= 255
