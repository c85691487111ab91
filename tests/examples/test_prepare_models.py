"""The offline `prepare` step: models with the seeds' conventions, made without a network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def test_unknown_fixture_folder_is_a_clear_message(prepare_models, tmp_path: Path, capsys) -> None:
    assert prepare_models.main(["road_segmentation", "--fixtures", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "prepare road_segmentation:" in err and "road-segmentation-adas-0001.xml is missing" in err


def test_unknown_example_name_is_rejected(prepare_models, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        prepare_models.main(["no_such_example"])
    assert exit_.value.code == 2
    assert "unknown example no_such_example" in capsys.readouterr().err


@pytest.mark.fixtures
def test_openvino_ir_takes_the_seed_tensor_and_gives_probabilities(real_models) -> None:
    import openvino as ov

    model = ov.Core().read_model(str(real_models["mobilenet_openvino"] / "mobilenet.xml"))
    (inp,), (out,) = model.inputs, model.outputs
    assert (inp.get_element_type(), list(inp.get_shape())) == (ov.Type.f32, [1, 3, 224, 224])
    assert (out.get_element_type(), list(out.get_shape())) == (ov.Type.f32, [1, 1001])


@pytest.mark.fixtures
def test_openvino_ir_agrees_with_the_tflite_model(real_models, fixtures_dir: Path) -> None:
    """BGR NCHW f32 into the IR == RGB NHWC u8 into the TFLite original, dequantised."""
    import openvino as ov
    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image

    rgb = np.asarray(Image.open(fixtures_dir / "images" / "banana.jpg").convert("RGB")
                     .resize((224, 224), Image.BILINEAR), dtype=np.uint8)
    tflite = Interpreter(model_path=str(fixtures_dir / "models" /
                                        "mobilenet_v2_1.0_224_quant.tflite"))
    tflite.allocate_tensors()
    tflite.set_tensor(tflite.get_input_details()[0]["index"], rgb[None])
    tflite.invoke()
    expected = tflite.get_tensor(tflite.get_output_details()[0]["index"])[0] / 256.0

    compiled = ov.Core().compile_model(
        str(real_models["mobilenet_openvino"] / "mobilenet.xml"), "CPU")
    bgr_nchw = rgb[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32)
    got = compiled(bgr_nchw)[compiled.output(0)][0]
    assert got.argmax() == expected.argmax() == 955  # banana, background at 0
    assert np.abs(got - expected).max() <= 3 / 256


@pytest.mark.fixtures
def test_torchscript_model_is_an_imagenet_classifier(real_models) -> None:
    import torch
    from wasi_nn.image import image_to_tensor

    folder = real_models["mobilenet_pytorch"]
    tensor = np.frombuffer(bytes(image_to_tensor(str(folder / "input.jpg"), 224, 224,
                                                 preset="pytorch")), np.float32)
    with torch.no_grad():
        scores = torch.jit.load(str(folder / "mobilenet.pt"))(
            torch.from_numpy(tensor.reshape(1, 3, 224, 224).copy()))
    assert tuple(scores.shape) == (1, 1000)
    assert int(scores.argmax()) == 954


@pytest.mark.fixtures
def test_prepare_is_idempotent(prepare_models, real_models, fixtures_dir: Path) -> None:
    files = [f for name in prepare_models.PREPARERS
             for f in prepare_models.PREPARERS[name](fixtures_dir, False)]
    before = {f: f.stat().st_mtime_ns for f in files}
    again = [f for name in prepare_models.PREPARERS
             for f in prepare_models.PREPARERS[name](fixtures_dir, False)]
    assert again == files
    assert {f: f.stat().st_mtime_ns for f in again} == before
