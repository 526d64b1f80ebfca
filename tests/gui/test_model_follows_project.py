"""Issue 13, bug 2: the model follows the project, and a class mismatch is never silent.

A folder remembers its model (the last one chosen or trained there, in ``<folder>/models/project.json``, relative
when it lies in the folder); opening the folder loads it, or the Model panel says the folder has none and which model
is in use. A model whose classes the folder lacks shows its predictions of those classes only once the user chooses
(map them, show only the folder's, add them, or train a new head): Shift+A with a pedestrian model on a nuclei
folder added "person", "bicycle" and hundreds of junk annotations. A run from a model of other classes says that
the class layers are renewed."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PySide6.QtCore import Qt

from engine.checkpoint import save_checkpoint
from engine.config import ModelConfig
from engine.model.mask_rcnn import MaskRCNN
from tests.gui.conftest import TINY, Driver, tiny_model, write_images

SHIFT, CTRL = Qt.KeyboardModifier.ShiftModifier, Qt.KeyboardModifier.ControlModifier


def coco_folder(folder: Path, classes: list[str], count: int = 3) -> Path:
    """``count`` images, a COCO file with ``classes`` and one square of each class on image 0."""
    write_images(folder, count)
    images = [{"id": i + 1, "file_name": f"img_{i}.png", "width": 128, "height": 96} for i in range(count)]
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(classes)]
    annotations = []
    for k in range(len(classes)):
        x = 10 + 40 * k
        square = [x, 10, x + 30, 10, x + 30, 40, x, 40]
        annotations.append(
            {"id": k + 1, "image_id": 1, "category_id": k + 1, "segmentation": [square], "area": 900.0,
             "bbox": [x, 10, 30, 30], "iscrowd": 0}
        )  # fmt: skip
    doc = {"images": images, "categories": categories, "annotations": annotations}
    (folder / "annotations.json").write_text(json.dumps(doc))
    return folder


def saved_doc(folder: Path) -> dict:
    return json.loads((folder / "annotations.json").read_text())


def model_file(path: Path, classes: list[str], seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(classes) == 2:
        model = tiny_model(seed)
    else:
        torch.manual_seed(seed)
        model = MaskRCNN(ModelConfig(**{**TINY, "num_classes": len(classes) + 1})).eval()
    save_checkpoint(model, path, class_names=classes)
    return path


def memory(folder: Path) -> dict:
    return json.loads((folder / "models" / "project.json").read_text())


def test_opening_a_folder_brings_its_own_model_back(driver: Driver, tmp_path):
    app = driver
    nuclei = coco_folder(tmp_path / "nuclei", ["nucleus", "blob"])
    people = coco_folder(tmp_path / "people", ["person", "bicycle"])
    run = model_file(nuclei / "models" / "20260101-000000" / "model.safetensors", ["nucleus", "blob"], seed=1)
    pedestrian = model_file(tmp_path / "pedestrian.safetensors", ["person", "bicycle"])

    app.load_model(pedestrian)
    assert app.open(nuclei, wait_for_prediction=True)
    # no model of its own yet: said, with the model in use
    note = "This folder has no model of its own yet; in use: pedestrian.safetensors (train one, or choose one)"
    assert app.model_note() == note
    assert "This folder has no model of its own yet; the model in use: pedestrian.safetensors" in app.status()

    # the folder's run chosen in the Model panel: loaded, and remembered for the folder (relative: it lies in it)
    assert app.runs_listed()[0].startswith("20260101-000000  ")
    app.choose_run(0)
    app.press_use_run()
    app.wait_until(lambda: app.model_path() == str(run) and app.is_idle(), timeout=30000)
    assert app.model_note() == "This folder's model"
    assert memory(nuclei)["model"] == "models/20260101-000000/model.safetensors"
    assert app.runs_listed()[0].endswith("(in use)")

    # another folder: it has no model of its own, the nuclei run stays in use until the user picks the pedestrian one
    assert app.open(people, wait_for_prediction=True)
    assert (
        app.model_path() == str(run)
        and "no model of its own yet; in use: run 20260101-000000 of nuclei" in app.model_note()
    )
    app.load_model(pedestrian)
    app.wait_until(lambda: app.model_path() == str(pedestrian) and app.is_idle(), timeout=30000)
    assert memory(people)["model"] == str(pedestrian)  # outside the folder: absolute

    # back to the nuclei folder: its model comes back by itself; and back to the people folder: theirs
    assert app.open(nuclei, wait_for_prediction=True)
    app.wait_until(lambda: app.model_path() == str(run) and app.is_idle(), timeout=30000)
    assert app.weights_path() == str(run) and app.model_note() == "This folder's model"
    assert app.open(people, wait_for_prediction=True)
    app.wait_until(lambda: app.model_path() == str(pedestrian) and app.is_idle(), timeout=30000)
    assert app.model_note() == "This folder's model"

    # the remembered model gone from the disk: said, and the model in use stays
    (tmp_path / "gone.safetensors").write_bytes(pedestrian.read_bytes())
    app.load_model(tmp_path / "gone.safetensors")
    app.wait_until(lambda: app.model_path() == str(tmp_path / "gone.safetensors") and app.is_idle(), timeout=30000)
    (tmp_path / "gone.safetensors").unlink()
    assert app.open(nuclei, wait_for_prediction=True)
    app.wait_until(lambda: app.model_path() == str(run) and app.is_idle(), timeout=30000)
    assert app.open(people, wait_for_prediction=True)
    assert "This folder's model gone.safetensors is missing; in use: run 20260101-000000 of nuclei" == app.model_note()


def test_shift_a_with_a_model_of_other_classes_adds_nothing_foreign(driver: Driver, tmp_path):
    app = driver
    nuclei = coco_folder(tmp_path / "nuclei", ["nucleus"])
    pedestrian = model_file(tmp_path / "pedestrian.safetensors", ["person", "bicycle"])
    app.load_model(pedestrian)
    assert app.open(nuclei, wait_for_prediction=True)
    detections = app.prediction
    assert len(detections) > 0

    before, status = saved_doc(nuclei), app.status()
    app.press(Qt.Key.Key_A, SHIFT)  # accept all, before any choice: nothing foreign comes in
    app.wait_idle()
    assert app.class_names_listed() == ["nucleus"] and not app.unsaved()
    assert saved_doc(nuclei) == before
    # seen: the Classes box and the status line name the classes; the predictions are hidden until the user chooses
    assert len(app.shown) == 0  # no prediction drawn or listed
    box = app.classes_box()
    assert "person, bicycle are not this folder's (nucleus)" in box and "hidden until you choose" in box
    assert "person, bicycle are not this folder's" in status  # (said when the image came; Shift+A said its word since)

    # the user's choice: person -> nucleus, bicycle hidden; Shift+A now files person's masks as nuclei
    app.choose_class_mode("map")
    app.map_class("person", "nucleus")
    app.wait_until(lambda: len(app.shown) > 0, timeout=5000)
    persons = len(app.shown)
    assert all(app.prediction.labels[i] == 1 for i in app.shown)  # person's only, now listed as nuclei
    assert {row[0] for row in app.instance_rows()} == {"nucleus"}
    app.press(Qt.Key.Key_A, SHIFT)
    doc = app.saved()
    assert [c["name"] for c in doc["categories"]] == ["nucleus"] and app.class_names_listed() == ["nucleus"]
    assert len(doc["annotations"]) == len(before["annotations"]) + persons
    assert {a["category_id"] for a in doc["annotations"]} == {1}
    choice = next(iter(memory(nuclei)["classes"].values()))
    assert choice == {"mode": "map", "map": {"person": "nucleus", "bicycle": ""}}

    # "only this folder's classes": none of the model's is, so nothing is shown; "train a new head": said so
    app.choose_class_mode("matching")
    app.wait_until(lambda: len(app.shown) == 0, timeout=5000)
    assert "Only this folder's classes are shown" in app.classes_box()
    app.press_train_new_head()
    assert app.train_panel_shown()
    assert "class layers (box classifier, box regression and mask outputs) are renewed" in app.train_status()


def test_training_a_one_class_model_on_two_classes_says_the_class_layers_are_renewed(driver: Driver, tmp_path):
    app = driver
    folder = coco_folder(tmp_path / "cells", ["nucleus", "cell"])
    one_class = model_file(tmp_path / "nuclei.safetensors", ["nucleus"])
    app.load_model(one_class)
    assert app.open(folder, wait_for_prediction=True)
    app.open_train_panel()
    app.set_train_option("subset", "annotated")
    app.set_train_option("unit", "iterations")
    app.set_train_option("length", 500)
    app.set_train_option("input_size", 64)
    app.set_train_option("max_size", 96)
    app.set_train_option("threads", 1)
    app.set_train_option("val_split", 0.0)
    app.set_train_option("device", "cpu")
    app.press_train()
    said = "the model has 1 class (nucleus), the data 2 classes (nucleus, cell): the class layers"
    assert said in app.train_status().lower() and said in app.status().lower()
    run = app.train_run()
    app.wait_until(lambda: any(e.kind == "warning" for e in run.events) or not app.training(), timeout=180_000)
    warning = next((e for e in run.events if e.kind == "warning"), None)
    assert warning is not None, run.stderr[-3000:]
    assert "renewed" in warning.message  # the trainer's own word, the same rule
    app.press_cancel_training()
    assert app.wait_training_ended(180_000) == "cancelled"
    assert "the class layers were renewed" in app.train_status()
    # a cancelled run: marked in the Model panel's list, its state kept to resume it
    run = app.train_run().out_dir
    assert "cancelled at" in app.runs_listed()[0] and app.runs_listed()[0].startswith(run.name)
    assert (run / "train_state.safetensors").is_file()


def test_a_model_loaded_after_the_folder_ends_the_note_that_none_is_in_use(driver: Driver, tmp_path):
    """Opened with no model, the status line says what to do; once the user loads one, the first result's status line
    must not repeat "the model in use: none" (it did, until the next message)."""
    app = driver
    folder = coco_folder(tmp_path / "nuclei", ["nucleus", "blob"])
    assert app.open(folder)
    app.wait_until(lambda: app.image is not None and app.is_idle(), timeout=30000)
    assert "No model" in app.status()
    model = model_file(tmp_path / "nuclei.safetensors", ["nucleus", "blob"])
    app.load_model(model)
    app.wait_until(lambda: app.prediction is not None and app.is_idle(), timeout=30000)
    assert "the model in use: none" not in app.status()
    assert memory(folder)["model"] == str(model)  # chosen with the folder open: the folder's model now
