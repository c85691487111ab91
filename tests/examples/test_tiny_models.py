"""The examples end to end with small models generated here: run anywhere, no fixtures needed.

Each test builds the real example with `wasinn build`, runs it with `wasinn run` on a model
made in tmp_path (torch -> TorchScript, torch -> `openvino.convert_model` -> IR) and checks the
printed lines against the same model run natively (torch / OpenVINO called directly) on the
same input tensor. The pictures are lossless (PNG, BMP) so the native tensor is bit-identical
whichever decoder native mode has.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from _example_runs import (EXAMPLES, GUESTS, ok, ranked, run_native, run_wasm, seed_lines)
from _tiny_models import TinyClassifier, picture

torch = pytest.importorskip("torch")
ov = pytest.importorskip("openvino")


def _tensor(picture: Path, preset: str, height: int = 224, width: int = 224) -> np.ndarray:
    """The input tensor the guest computes, computed natively by the same SDK helper."""
    from wasi_nn.image import image_to_tensor

    data = image_to_tensor(str(picture), height, width, preset=preset)
    return np.frombuffer(bytes(data), dtype=np.float32).reshape(1, 3, height, width)


@pytest.fixture(scope="module")
def torchscript_case(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_pt")
    model = TinyClassifier(1000, softmax=False).eval()
    torch.jit.trace(model, torch.zeros(1, 3, 224, 224)).save(str(folder / "mobilenet.pt"))
    picture(folder / "input.png")
    return folder


@pytest.fixture(scope="module")
def openvino_case(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_ov")
    model = TinyClassifier(1001, softmax=True).eval()
    converted = ov.convert_model(model, example_input=torch.zeros(1, 3, 224, 224))
    ov.save_model(converted, str(folder / "mobilenet.xml"))
    picture(folder / "input.bmp", 80, 60)
    from PIL import Image
    Image.open(folder / "input.bmp").save(folder / "input.png")
    return folder


def _torch_lines(folder: Path, picture: str) -> list[str]:
    from wasi_nn.labels import imagenet_labels

    model = torch.jit.load(str(folder / "mobilenet.pt"))
    with torch.no_grad():
        scores = model(torch.from_numpy(_tensor(folder / picture, "pytorch").copy()))[0].numpy()
    return seed_lines(ranked(scores), imagenet_labels(1000))


def _openvino_scores(folder: Path, tensor: np.ndarray, xml: str = "mobilenet.xml") -> np.ndarray:
    compiled = ov.Core().compile_model(str(folder / xml), "CPU")
    return compiled(tensor)[compiled.output(0)][0]


def test_pytorch_example_prints_native_top5(built, torchscript_case: Path) -> None:
    wasm = built(EXAMPLES / "mobilenet_pytorch")
    lines = ok(run_wasm(wasm, ["mobilenet.pt", "input.png"], torchscript_case))
    size = (torchscript_case / "mobilenet.pt").stat().st_size
    assert lines[:5] == [
        f"Read torchscript binaries, size in bytes: {size}",
        "Loaded graph into wasi-nn with ID: 0",
        "Created wasi-nn execution context with ID: 0",
        "Read input tensor, size in bytes: 602112",
        "Executed graph inference",
    ]
    assert lines[5:] == _torch_lines(torchscript_case, "input.png")


def test_openvino_example_prints_native_top5(built, openvino_case: Path) -> None:
    from wasi_nn.labels import imagenet_labels

    wasm = built(EXAMPLES / "mobilenet_openvino")
    lines = ok(run_wasm(wasm, ["mobilenet.xml", "mobilenet.bin", "input.bmp"], openvino_case))
    xml_size = (openvino_case / "mobilenet.xml").stat().st_size
    bin_size = (openvino_case / "mobilenet.bin").stat().st_size
    assert lines[:6] == [
        f"Read graph XML, size in bytes: {xml_size}",
        f"Read graph weights, size in bytes: {bin_size}",
        "Loaded graph into wasi-nn with ID: 0",
        "Created wasi-nn execution context with ID: 0",
        "Read input tensor, size in bytes: 602112",
        "Executed graph inference",
    ]
    scores = _openvino_scores(openvino_case, _tensor(openvino_case / "input.bmp", "openvino"))
    assert lines[6:] == seed_lines(ranked(scores, skip=1), imagenet_labels(1000))


def test_named_model_example_uses_nn_preload(built, torchscript_case: Path) -> None:
    wasm = built(EXAMPLES / "mobilenet_pytorch_named")
    lines = ok(run_wasm(wasm, ["demo", "input.png"], torchscript_case,
                        preload=["demo:PyTorch:CPU:mobilenet.pt"]))
    assert lines[0] == "Loaded graph into wasi-nn with ID: 0"
    assert lines[4:] == _torch_lines(torchscript_case, "input.png")


def test_named_model_unknown_name_is_an_error_not_a_traceback(built, torchscript_case) -> None:
    wasm = built(EXAMPLES / "mobilenet_pytorch_named")
    result = run_wasm(wasm, ["nosuch", "input.png"], torchscript_case,
                      preload=["demo:PyTorch:CPU:mobilenet.pt"])
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") or "\nerror: " in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("example, args", [
    ("mobilenet_pytorch", ["mobilenet.pt", "input.png"]),
    ("mobilenet_openvino", ["mobilenet.xml", "mobilenet.bin", "input.png"]),
])
def test_native_mode_prints_the_same_lines(built, torchscript_case, openvino_case,
                                           example: str, args: list[str]) -> None:
    folder = torchscript_case if example == "mobilenet_pytorch" else openvino_case
    package = EXAMPLES / example
    assert ok(run_native(package, args, folder)) == ok(run_wasm(built(package), args, folder))


def test_missing_model_file_is_a_message(built, torchscript_case: Path) -> None:
    wasm = built(EXAMPLES / "mobilenet_pytorch")
    result = run_wasm(wasm, ["absent.pt", "input.png"], torchscript_case)
    assert result.returncode == 1
    assert "error: absent.pt: No such file or directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_argument_count_prints_usage(built, torchscript_case: Path) -> None:
    result = run_wasm(built(EXAMPLES / "mobilenet_openvino"), ["only-one"], torchscript_case)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: main.py MODEL.xml MODEL.bin IMAGE")


def test_undecodable_image_is_a_message(built, torchscript_case: Path) -> None:
    (torchscript_case / "not-an-image.jpg").write_bytes(b"this is text")
    result = run_wasm(built(EXAMPLES / "mobilenet_pytorch"), ["mobilenet.pt", "not-an-image.jpg"],
                      torchscript_case)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("backend", ["PYTORCH", "OPENVINO"])
def test_guest_output_is_bit_identical_to_native(built, tmp_path: Path, torchscript_case,
                                                 openvino_case, backend: str) -> None:
    """Same model, same input bytes: the wasm guest's output bytes equal a direct native run."""
    rng = np.random.default_rng(3)
    tensor = rng.standard_normal((1, 3, 224, 224), dtype=np.float32)
    (tmp_path / "input.bin").write_bytes(tensor.tobytes())
    if backend == "PYTORCH":
        for name in ("mobilenet.pt",):
            (tmp_path / name).write_bytes((torchscript_case / name).read_bytes())
        models = ["mobilenet.pt"]
        with torch.no_grad():
            expected = torch.jit.load(str(tmp_path / "mobilenet.pt"))(torch.from_numpy(tensor))
        expected = expected.numpy()
    else:
        for name in ("mobilenet.xml", "mobilenet.bin"):
            (tmp_path / name).write_bytes((openvino_case / name).read_bytes())
        models = ["mobilenet.xml", "mobilenet.bin"]
        expected = _openvino_scores(tmp_path, tensor)[None]
    wasm = built(GUESTS / "raw_io")
    lines = ok(run_wasm(wasm, [backend, "F32", "1,3,224,224", "input.bin", "output.bin", *models],
                        tmp_path))
    assert lines == [f"wrote {expected.nbytes} bytes"]
    assert (tmp_path / "output.bin").read_bytes() == np.ascontiguousarray(expected).tobytes()


def test_road_segmentation_mask_matches_native_argmax(built, tmp_path: Path) -> None:
    """A tiny segmentation IR with the real model's shapes: the BMP is the native argmax."""
    from PIL import Image

    torch.manual_seed(11)
    conv = torch.nn.Conv2d(3, 4, kernel_size=1).eval()
    with torch.no_grad():
        conv.weight.mul_(0.05)
    model = torch.nn.Sequential(conv, torch.nn.Softmax(dim=1))
    converted = ov.convert_model(model, example_input=torch.zeros(1, 3, 512, 896))
    ov.save_model(converted, str(tmp_path / "seg.xml"))
    picture(tmp_path / "road.png", 180, 100)

    wasm = built(EXAMPLES / "road_segmentation")
    lines = ok(run_wasm(wasm, ["seg.xml", "seg.bin", "road.png", "mask.bmp"], tmp_path))
    assert lines[:6] == ["Load graph ...done", "Init execution context ...done",
                         "Set input tensor ...done", "Perform graph inference ...done",
                         "Retrieve the output ...done",
                         f"The size of the output buffer is {4 * 4 * 512 * 896} bytes"]
    assert lines[6] == "Wrote the 896x512 segmentation mask to mask.bmp"

    tensor = _tensor(tmp_path / "road.png", "openvino", 512, 896)
    compiled = ov.Core().compile_model(str(tmp_path / "seg.xml"), "CPU")
    classes = compiled(tensor)[compiled.output(0)][0].argmax(axis=0)
    palette = np.array([(68, 1, 84), (49, 104, 142), (53, 183, 121), (253, 231, 37)], np.uint8)
    mask = np.asarray(Image.open(tmp_path / "mask.bmp").convert("RGB"))
    assert mask.shape == (512, 896, 3)
    assert np.array_equal(mask, palette[classes])
    shares = [f"   {name}: {100 * np.count_nonzero(classes == k) / classes.size:.2f}% of pixels"
              for k, name in enumerate(("background", "road", "curb", "mark"))]
    assert lines[7:] == shares


def test_bmp_header_is_what_readers_expect(tmp_path: Path) -> None:
    """encode_bmp: PIL reads it back pixel for pixel, with and without row padding."""
    import importlib.util

    from PIL import Image

    spec = importlib.util.spec_from_file_location("bmp", EXAMPLES / "road_segmentation" / "bmp.py")
    bmp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bmp)
    for width, height in ((4, 2), (5, 3), (1, 1)):
        rgb = np.arange(width * height * 3, dtype=np.uint8).reshape(height, width, 3)
        data = bmp.encode_bmp(width, height, rgb[..., ::-1].tobytes())
        assert data[:2] == b"BM" and struct.unpack("<I", data[2:6])[0] == len(data)
        (tmp_path / "x.bmp").write_bytes(data)
        assert np.array_equal(np.asarray(Image.open(tmp_path / "x.bmp").convert("RGB")), rgb)
    with pytest.raises(ValueError, match="BMP needs 2x2x3 bytes"):
        bmp.encode_bmp(2, 2, b"\0" * 11)


@pytest.mark.parametrize("backend", ["OPENVINO", "PYTORCH"])
def test_model_bytes_may_be_freed_after_load(built, tmp_path: Path, backend: str) -> None:
    """The examples free the model bytes once `load` returns; the host must not read them later.

    The guest frees its copy of the model, fills the heap with other data, then infers: the
    output must still equal the model run natively. The shape is road segmentation's and the IR's
    weights are f16 (`save_model`'s default): OpenVINO's CPU plugin then still reads the weights
    buffer after `compile_model` has returned, so a host must give it memory of its own.
    """
    torch.manual_seed(5)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, kernel_size=1), torch.nn.Softmax(dim=1))
    model.eval()
    with torch.no_grad():
        model[0].weight.mul_(0.01)  # keep the softmax away from saturation: every bit counts
    example = torch.zeros(1, 3, 512, 896)
    tensor = np.random.default_rng(1).random((1, 3, 512, 896), dtype=np.float32) * 255
    (tmp_path / "input.bin").write_bytes(tensor.tobytes())
    if backend == "OPENVINO":
        ov.save_model(ov.convert_model(model, example_input=example), str(tmp_path / "m.xml"),
                      compress_to_fp16=True)
        models = ["m.xml", "m.bin"]
        expected = _openvino_scores(tmp_path, tensor, "m.xml")[None]
    else:
        torch.jit.trace(model, example).save(str(tmp_path / "m.pt"))
        models = ["m.pt"]
        with torch.no_grad():
            expected = torch.jit.load(str(tmp_path / "m.pt"))(torch.from_numpy(tensor)).numpy()
    lines = ok(run_wasm(built(GUESTS / "free_after_load"),
                        [backend, "1,3,512,896", "input.bin", "output.bin", *models], tmp_path))
    assert lines[0].startswith(f"wrote {expected.nbytes} bytes")
    got = np.frombuffer((tmp_path / "output.bin").read_bytes(), np.float32)
    np.testing.assert_array_equal(got, np.ascontiguousarray(expected).ravel())
