"""One rule for what trains (engine.training.subsets): the Train panel's counts, the image list's "annotated" state
and the trainer agree; and the modules the app reads them from do not load torch."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
from synthetic import make_dataset

from engine.__main__ import main
from engine.data import read_dataset, write_coco
from engine.training.subsets import in_subset, subset_counts, training_ids, trains


def _mixed_project(folder):  # noqa: ANN001, ANN202
    """Six images, one of each case: the rule's answer is in the comments (reviewed / annotated)."""
    dataset = make_dataset(folder, n_images=6, size=64)
    im = dataset.images

    def origin(record, value, first=None):  # noqa: ANN001, ANN202
        out = [dataclasses.replace(i, origin=value) for i in record.instances]
        if first is not None:
            out[0] = dataclasses.replace(out[0], origin=first)
        return out

    im[0].state = "reviewed"  # yes / yes: the user's own instances
    im[1].state, im[1].instances = "predicted", origin(im[1], "predicted")  # no / no: predictions nobody accepted
    im[2].state = "predicted"  # no / no: crowd regions only
    im[2].instances = [dataclasses.replace(i, iscrowd=True) for i in im[2].instances]
    im[3].state, im[3].instances = "not_run", origin(im[3], "accepted")  # no / yes: accepted predictions
    im[4].instances = []  # yes / no: reviewed, nothing there (a negative)
    im[5].state, im[5].instances = "predicted", origin(im[5], "predicted", first="manual")  # no / yes: one drawn
    return dataset


def test_the_rule():
    from engine.data import Instance

    assert trains(Instance(1, [[0, 0, 4, 0, 4, 4]]))
    assert not trains(Instance(1, [[0, 0, 4, 0, 4, 4]], origin="predicted"))
    assert not trains(Instance(1, [[0, 0, 4, 0, 4, 4]], iscrowd=True))


def test_the_panel_counts_what_the_trainer_trains(tmp_path, capsys):
    dataset = _mixed_project(tmp_path / "data")
    counts = subset_counts(dataset.images)
    assert counts == {"reviewed": 2, "annotated": 3}
    write_coco(dataset, tmp_path / "data" / "annotations.json")
    saved = read_dataset(tmp_path / "data" / "annotations.json").images  # what the trainer process reads
    assert subset_counts(saved) == counts and training_ids(saved, "annotated") == [1, 4, 6]
    for subset in ("reviewed", "annotated"):
        out = tmp_path / f"run_{subset}"
        args = ["train", "--data", str(tmp_path / "data"), "--out", str(out), "--subset", subset, "--events-jsonl"]
        args += ["--iters", "1", "--input-size", "64", "--max-size", "64", "--warmup", "1", "--threads", "2"]
        assert main(args) == 0
        start = json.loads(capsys.readouterr().out.splitlines()[0])
        assert start["kind"] == "start" and start["train_images"] == counts[subset], subset


def test_only_the_instances_that_train_reach_the_model(tmp_path):
    from engine.training.samples import TrainingSamples

    dataset = _mixed_project(tmp_path)
    samples = TrainingSamples(dataset, training_ids(dataset.images, "annotated"), 64, 64)
    sizes = [len(samples.sample(i, seed=0)[1]["labels"]) for i in range(len(samples))]
    assert sizes[-1] == 1 and sizes[:2] == [len(dataset.images[0].instances), len(dataset.images[3].instances)]
    assert all(in_subset(r, "annotated") == (r.id in (1, 4, 6)) for r in dataset.images)
    with pytest.raises(ValueError, match="subset must be one of"):
        in_subset(dataset.images[0], "everything")


@pytest.mark.parametrize("module", ["engine.training.events", "engine.training.subsets", "engine.cli.flags"])
def test_what_the_app_reads_the_trainer_with_does_not_import_torch(module):
    code = f"import {module}, sys; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_events_round_trip_through_their_json_lines():
    from engine.training.events import TrainEvent

    events = [
        TrainEvent("start", train_images=3, class_names=["disc"]),
        TrainEvent("step", 1, 4, epoch=0.5, losses={"loss": 1.5}, lr=0.01, images_per_s=2.0, eta_s=3.0),
        TrainEvent("validation", 4, 4, metrics={"mask_AP": 0.1}),
        TrainEvent("checkpoint", 4, 4, path="m.safetensors"),
        TrainEvent("cancelled", 2, 4, message="cancelled", path="m.safetensors"),
    ]
    assert [TrainEvent.from_json(e.to_json()) for e in events] == events
    assert json.loads(events[0].to_json()) == {
        "kind": "start",
        "train_images": 3,
        "val_images": 0,
        "class_names": ["disc"],
    }
    assert TrainEvent.from_json(b"progress 50%") is None and TrainEvent.from_json('{"kind": "later"}') is None
    assert TrainEvent.from_json('{"kind": "done", "iteration": 4, "a_later_field": 1}') == TrainEvent("done", 4)
