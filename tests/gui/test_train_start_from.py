"""The Train panel's "Start from" (issue 14, point 2): the current model, the bundled nuclei model, COCO Mask R-CNN,
ImageNet ResNet-18 / ResNet-50 or scratch; what each one keeps, renews and downloads is said under the list, and the
trainer gets the matching ``--weights``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gui.training.process import train_arguments

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def hub_dir(tmp_path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub" / "checkpoints"
    torch.hub.set_dir(old)


def note(app) -> str:  # noqa: ANN001 - Driver
    return app.window.train_panel.start_note.text()


def weights_flag(app, tmp_path: Path) -> list[str]:  # noqa: ANN001 - Driver
    """The --weights the trainer would get for the panel's choice (the command line, as the controller builds it)."""
    args = train_arguments(tmp_path / "a.json", tmp_path / "run", app.weights_path(), app.train_request())
    return [args[i + 1] for i, a in enumerate(args) if a == "--weights"]


def test_each_start_is_listed_explained_and_reaches_the_trainer(ready, tmp_path, hub_dir, weights_file):
    app = ready
    app.open_train_panel()
    choices = [text for _, text in app.train_choices("start_from")]
    assert choices == [
        "the current model",
        "the bundled nuclei model",
        "COCO Mask R-CNN (ResNet-50, ~170 MB)",
        "ImageNet ResNet-18 (~45 MB)",
        "ImageNet ResNet-50 (~100 MB)",
        "scratch (new ResNet-18)",
    ]
    assert app.train_option("start_from") is True
    assert "Fine-tunes the model in use (2 classes: cell, blob)" in note(app)
    assert "class layers (box classifier, box regression, mask outputs) are renewed" in note(app)
    assert weights_flag(app, tmp_path) == [str(Path(weights_file).resolve())]

    bundled = str(ROOT / "resources" / "models" / "nuclei_r18_gn.safetensors")
    app.set_train_option("start_from", bundled)
    assert "Its 1 class: nucleus." in note(app) and "renewed for this project's classes" in note(app)
    assert weights_flag(app, tmp_path) == [bundled]

    app.set_train_option("start_from", "coco")
    assert f"downloaded once (170 MB) into {hub_dir}" in note(app)
    assert "Its 80 classes: person, bicycle, car, motorcycle…" in note(app) and "renewed" in note(app)
    assert weights_flag(app, tmp_path) == ["coco"]

    hub_dir.mkdir(parents=True)
    (hub_dir / "resnet50-0676ba61.pth").write_bytes(b"")  # already downloaded: said so, nothing to fetch
    app.set_train_option("start_from", "imagenet:resnet50")
    assert note(app).startswith(f"ImageNet ResNet-50: in the torch hub cache ({hub_dir})")
    assert "Only the backbone is pretrained: the FPN, RPN and heads start fresh" in note(app)
    assert weights_flag(app, tmp_path) == ["imagenet:resnet50"]

    app.set_train_option("start_from", "imagenet:resnet18")
    assert "downloaded once (45 MB)" in note(app) and weights_flag(app, tmp_path) == ["imagenet:resnet18"]

    app.set_train_option("start_from", False)
    assert note(app).startswith("Every weight starts fresh") and weights_flag(app, tmp_path) == []
    assert app.train_request().from_current is False


def test_a_run_from_imagenet_starts_from_the_file_in_the_hub_cache(ready, tmp_path, monkeypatch):
    """Start from "ImageNet ResNet-18" with its file in torch's hub cache (as a download leaves it; the trainer
    process finds the cache through TORCH_HOME): the new model's backbone is that file's."""
    import torchvision

    from engine.checkpoint import load_checkpoint
    from tests.gui.test_train_panel import TRAIN_TIMEOUT_MS, accept_on_two_images, set_up_panel

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.manual_seed(11)
    resnet = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(resnet, cache / "resnet18-f37072fd.pth")

    app = ready
    accept_on_two_images(app)
    set_up_panel(app, iterations=1)
    app.set_train_option("start_from", "imagenet:resnet18")
    app.set_train_option("lr", 0.0001)  # with the warm-up's first factor (0.001) the one step moves nothing visible
    app.press_train()
    outcome = app.wait_training_ended(TRAIN_TIMEOUT_MS)
    assert outcome == "done", f"{app.train_status()}\n{app.train_run().stderr[-3000:]}"
    trained, info = load_checkpoint(app.weights_path())
    project_classes = [c.name for c in sorted(app.session.project.dataset.categories, key=lambda c: c.id)]
    assert trained.config.backbone == "resnet18" and info.class_names == project_classes
    for name in ("conv1.weight", "layer2.0.conv1.weight", "layer4.1.conv2.weight"):
        weight = trained.backbone.body.get_parameter(name)
        assert torch.allclose(weight, resnet[name], rtol=1e-2, atol=1e-4), name  # (float16 storage)
