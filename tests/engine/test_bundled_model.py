"""The bundled model (the generalist nuclei model, issue 14) scores on the held-out sample images what its README
says, and at least the 0.5 mask AP50 the first bundled model was made to reach (the issue: first run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.checkpoint import load_checkpoint
from engine.data import read_dataset
from engine.evaluate import evaluate_model

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "resources" / "models" / "nuclei_r18_gn.safetensors"
VAL = REPO / "resources" / "sample" / "splits" / "val.json"


def _readme_row(kind: str) -> list[float]:
    """The held-out table's row for ``kind`` (box | mask) in resources/models/README.md, as fractions."""
    lines = (MODEL.parent / "README.md").read_text(encoding="utf-8").splitlines()
    row = next(line for line in lines if line.replace(" ", "").startswith(f"|{kind}|"))
    return [float(cell.strip(" *")) / 100 for cell in row.strip("|").split("|")[1:]]


@pytest.mark.slow
def test_the_bundled_model_scores_what_its_readme_says():
    model, info = load_checkpoint(MODEL)
    result = evaluate_model(model, read_dataset(VAL), class_names=info.class_names)
    assert result["images"] == 4 and result["max_detections"] == 400
    mask, box = result["segm"], result["bbox"]
    print(f"held-out mask AP {mask['AP']:.3f} AP50 {mask['AP50']:.3f}; box AP {box['AP']:.3f} AP50 {box['AP50']:.3f}")
    assert mask["AP50"] >= 0.5
    written = {"mask": _readme_row("mask"), "box": _readme_row("box")}
    for kind, stats in (("mask", mask), ("box", box)):
        measured = [stats[name] for name in ("AP", "AP50", "AP75", "APs", "APm")]
        for name, got, want in zip(("AP", "AP50", "AP75", "APs", "APm"), measured, written[kind]):
            assert abs(got - want) <= 0.0015, (kind, name, got, want)  # the README rounds to 0.1 percent


def test_the_readme_lists_the_validation_split_it_reports_on():
    """Issue 14: the generalist's validation ids are listed in the model README, the same as the split file's."""
    import json
    import re

    split = json.loads((REPO / "resources" / "splits" / "dsb2018_generalist.json").read_text(encoding="utf-8"))
    text = (MODEL.parent / "README.md").read_text(encoding="utf-8")
    listed = re.findall(r"^- `([0-9a-f]{64})`$", text.split("## Validation ids", 1)[1], flags=re.M)
    assert sorted(listed) == sorted(split["val"]) and len(listed) == 77
    assert not set(listed) & (set(split["train"]) | set(split["unseen_kind"]) | set(split["excluded"]))


def test_the_bundled_model_carries_its_scale_policy():
    from engine.checkpoint import read_info

    config = read_info(MODEL).config
    assert (config.scale_policy, config.scale_factor, config.object_size) == ("pixel-scale", 2.0, 40)
    assert MODEL.stat().st_size <= 64 * 2**20  # float16, within the bundled model's budget
