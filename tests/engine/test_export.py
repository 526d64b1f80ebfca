"""``python -m engine export``: the bundled nuclei model (GroupNorm ResNet-18, exact anchors, pixel scale x2) written
as a torchvision MaskRCNN, TorchScript and ONNX gives the same detections as our model on a sample image: the
torchvision and TorchScript files in a Python that cannot import this package, the ONNX file in onnxruntime."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from engine.__main__ import main
from engine.checkpoint import load_weights
from engine.data.io.images import load_image

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "resources" / "models" / "nuclei_r18_gn.safetensors"
IMAGE = ROOT / "resources" / "sample" / "0a7d30b252359a10fd298b638b90cb9ada3acced4e0c0e5a3692013f432ee4e9.png"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """(image file as .npy (3,H,W) float32, our model's detections on it: boxes, labels, scores, masks)."""
    pixels = load_image(IMAGE)
    image = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    model, _ = load_weights(BUNDLED)
    with torch.no_grad():
        ours = {k: v.numpy() for k, v in model([image])[0].items()}
    path = tmp_path_factory.mktemp("export") / "image.npy"
    np.save(path, image.numpy())
    assert len(ours["boxes"]) > 50  # a real image with many nuclei: a meaningful comparison
    return path, ours


def assert_same_detections(ours: dict, theirs: dict) -> None:
    """The same detections up to float rounding: pair by box IoU (two detections of equal score may swap places),
    then boxes, labels, scores and mask probabilities agree."""
    assert len(theirs["boxes"]) == len(ours["boxes"])
    iou = box_iou(torch.as_tensor(ours["boxes"]), torch.as_tensor(theirs["boxes"])).numpy()
    iou[ours["labels"][:, None] != theirs["labels"][None, :]] = 0
    match = iou.argmax(1)
    assert len(set(match.tolist())) == len(match)  # one to one
    assert iou.max(1).min() > 0.999
    np.testing.assert_allclose(theirs["boxes"][match], ours["boxes"], atol=0.01)
    np.testing.assert_allclose(theirs["scores"][match], ours["scores"], atol=1e-4)
    masks_ours, masks_theirs = ours["masks"], np.asarray(theirs["masks"])[match]
    assert masks_theirs.shape == masks_ours.shape
    assert np.abs(masks_theirs - masks_ours).max() < 1e-3
    assert ((masks_theirs > 0.5) == (masks_ours > 0.5)).mean() > 0.9999


# Run in a Python where `import engine` fails: the exported files need torch and torchvision only.
NO_ENGINE = "import sys; sys.modules['engine'] = None  # importing this package now raises ImportError\n"


def run_without_engine(script: str, cwd: Path) -> dict:
    code = NO_ENGINE + textwrap.dedent(script)
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(cwd / "out.npz") as out:
        return {k: out[k] for k in out.files}


def test_torchvision_state_dict_and_its_lines_run_without_this_package(tmp_path, reference, capsys):
    image, ours = reference
    assert (
        main(["export", "--weights", str(BUNDLED), "--to", str(tmp_path / "nuclei.pth"), "--format", "torchvision"])
        == 0
    )
    printed = capsys.readouterr().out
    code = (tmp_path / "nuclei.py").read_text()
    assert code in printed and "def build() -> MaskRCNN:" in code  # the lines are printed and written beside the file
    assert 'CLASSES = ["__background__", "nucleus"]' in code
    theirs = run_without_engine(
        f"""
        import numpy as np, torch
        from nuclei import build
        model = build()
        model.load_state_dict(torch.load("nuclei.pth", weights_only=True))
        model.eval()
        with torch.no_grad():
            out = model([torch.from_numpy(np.load({str(image)!r}))])[0]
        np.savez("out.npz", **{{k: v.numpy() for k, v in out.items()}})
        """,
        tmp_path,
    )
    assert_same_detections(ours, theirs)


def test_torchscript_runs_without_this_package(tmp_path, reference, capsys):
    image, ours = reference
    assert (
        main(["export", "--weights", str(BUNDLED), "--to", str(tmp_path / "nuclei.pt"), "--format", "torchscript"]) == 0
    )
    assert "torch.jit.load" in capsys.readouterr().out
    theirs = run_without_engine(
        f"""
        import warnings
        warnings.simplefilter("ignore")
        import numpy as np, torch
        import torchvision  # registers the torchvision::nms and roi_align operators the scripted model calls
        extra = {{"classes.json": ""}}
        model = torch.jit.load("nuclei.pt", _extra_files=extra)
        assert extra["classes.json"] == b'["nucleus"]', extra
        with torch.no_grad():
            losses, out = model([torch.from_numpy(np.load({str(image)!r}))])
        np.savez("out.npz", **{{k: v.numpy() for k, v in out[0].items()}})
        """,
        tmp_path,
    )
    assert_same_detections(ours, theirs)


@pytest.mark.slow  # tracing the model takes ~1 min on a loaded 2-core CPU, and onnxruntime pastes masks one by one
def test_onnx_gives_the_same_detections_in_onnxruntime(tmp_path, reference, capsys):
    ort = pytest.importorskip("onnxruntime")
    image, ours = reference
    pixels = np.load(image)
    size = [str(s) for s in pixels.shape[1:]]
    target = tmp_path / "nuclei.onnx"
    assert (
        main(["export", "--weights", str(BUNDLED), "--to", str(target), "--format", "onnx", "--image-size", *size]) == 0
    )
    assert f"input 'image' (3, {size[0]}, {size[1]}) float32" in capsys.readouterr().out
    options = ort.SessionOptions()
    options.log_severity_level = 3  # onnxruntime's notes on the masks' loop shapes
    session = ort.InferenceSession(str(target), options, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert session.get_inputs()[0].shape == [3, *map(int, size)]
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["classes"]) == ["__background__", "nucleus"] and json.loads(meta["input_size"]) == [
        int(s) for s in size
    ]
    boxes, labels, scores, masks = session.run(None, {"image": pixels})
    assert_same_detections(ours, {"boxes": boxes, "labels": labels, "scores": scores, "masks": masks})


def test_export_refuses_what_it_cannot_do_in_one_line(tmp_path, capsys):
    args = ["export", "--weights", str(BUNDLED), "--to", str(tmp_path / "m.pt"), "--format", "torchscript"]
    assert main([*args, "--image-size", "256", "256"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --image-size is for --format onnx (TorchScript and torchvision take any size)"
    )
    assert main(["export", "--weights", str(tmp_path / "none.safetensors"), "--to", "x.onnx", "--format", "onnx"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()


def test_a_torchvision_model_comes_back_as_the_same_torchvision_model():
    """torchvision's own architecture (frozen BatchNorm, plain FPN with P6, rounded anchors, short-side resize):
    imported (engine.interop) and exported again, it gives torchvision's detections exactly."""
    from torchvision.models.detection import MaskRCNN as TorchvisionMaskRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    from engine.cli.bench import randomise
    from engine.export import to_torchvision
    from engine.interop import from_torchvision

    torch.manual_seed(0)
    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None)
    original = TorchvisionMaskRCNN(backbone, num_classes=4, min_size=160, max_size=256)
    randomise(original, seed=2, probe_hw=(120, 160))
    again = to_torchvision(from_torchvision(original.eval()), ["a", "b", "c"])
    image = torch.rand(3, 120, 150, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected, got = original([image])[0], again([image])[0]
    assert len(expected["boxes"]) > 10
    for key in ("boxes", "labels", "scores", "masks"):
        assert torch.equal(got[key], expected[key]), key
