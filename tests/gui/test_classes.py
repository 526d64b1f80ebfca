"""Issue 13, bug 10: a class can be deleted from the Classes panel, undoably, with its instances or moving
them to another class (asked when it has instances); label-image imports name their class after the mask
folder."""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt

from engine.data import read_dataset
from gui.panels import class_list
from tests.gui.conftest import write_images
from tests.gui.test_editing import SHIFT, category_names, file_annotations, undo


def choose_class(app, name: str) -> None:  # noqa: ANN001
    """Click the class's row in the Classes panel (nothing selected first: a click would relabel it)."""
    app.press(Qt.Key.Key_Escape)
    classes = app.window.classes
    row = app.class_names_listed().index(name)
    classes.list.setCurrentRow(row)


def answer(monkeypatch, choice) -> list:  # noqa: ANN001
    """The delete question answered with ``choice``; returns the questions asked."""
    asked = []

    def ask(_parent, name, count, images, others):  # noqa: ANN001, ANN202
        asked.append((name, count, images, [n for n, _ in others]))
        return choice

    monkeypatch.setattr(class_list, "ask_delete_choice", ask)
    return asked


def accept_all(app) -> dict:  # noqa: ANN001
    app.press(Qt.Key.Key_A, SHIFT)
    doc = app.saved()
    names = category_names(doc)
    assert sorted(names.values()) == ["blob", "cell"]
    return doc


def test_deleting_a_class_with_its_instances_and_undo(ready, monkeypatch):
    app = ready
    doc = accept_all(app)
    names = category_names(doc)
    blobs = sum(names[a["category_id"]] == "blob" for a in file_annotations(doc))
    total = len(file_annotations(doc))
    assert 0 < blobs < total
    asked = answer(monkeypatch, ("delete", None))
    choose_class(app, "blob")
    app.window.classes.delete_button.click()
    assert asked == [("blob", blobs, 1, ["cell"])]  # it asked, with the right count
    doc = app.saved()
    assert list(category_names(doc).values()) == ["cell"] and app.class_names_listed() == ["cell"]
    assert len(file_annotations(doc)) == total - blobs
    assert {category_names(doc)[a["category_id"]] for a in file_annotations(doc)} == {"cell"}
    assert app.annotations_drawn() == total - blobs

    undo(app)  # the class and its instances come back
    doc = app.saved()
    assert sorted(category_names(doc).values()) == ["blob", "cell"] and len(file_annotations(doc)) == total
    assert sorted(app.class_names_listed()) == ["blob", "cell"] and app.annotations_drawn() == total


def test_deleting_a_class_can_keep_its_instances_under_another_class(ready, monkeypatch):
    app = ready
    doc = accept_all(app)
    total = len(file_annotations(doc))
    cell = next(c.id for c in app.project.dataset.categories if c.name == "cell")
    answer(monkeypatch, ("move", cell))
    choose_class(app, "blob")
    app.window.classes.delete_button.click()
    doc = app.saved()
    assert list(category_names(doc).values()) == ["cell"]
    assert len(file_annotations(doc)) == total and {a["category_id"] for a in file_annotations(doc)} == {cell}


def test_a_class_without_instances_is_deleted_without_a_question(ready, monkeypatch):
    app = ready
    asked = answer(monkeypatch, None)
    app.window.editor.add_category("spare")
    assert "spare" in app.class_names_listed()
    choose_class(app, "spare")
    app.window.classes.delete_button.click()
    assert asked == [] and "spare" not in app.class_names_listed()
    assert "spare" not in category_names(app.saved()).values()


def test_label_images_name_their_class_after_the_mask_folder(tmp_path):
    write_images(tmp_path / "images", 1)
    labels = np.zeros((96, 128), np.uint16)
    labels[5:20, 5:20] = 1
    (tmp_path / "nuclei_masks").mkdir()
    Image.fromarray(labels).save(tmp_path / "nuclei_masks" / "img_0.tif")
    dataset = read_dataset(tmp_path)
    assert dataset.source_format == "label_images" and [c.name for c in dataset.categories] == ["nuclei"]
    assert len(dataset.images[0].instances) == 1
