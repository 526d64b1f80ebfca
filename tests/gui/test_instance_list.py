"""Issue 13, bug 4: the Instances panel lists the annotations as well as the predictions, marked, with right
counts; picking an annotation's row selects it, picking a prediction's row selects the prediction."""

from __future__ import annotations

from PySide6.QtCore import Qt

from tests.gui.test_editing import SHIFT, undo


def sources(app) -> list[str]:  # noqa: ANN001
    instances = app.window.instances
    return [instances.source(r) for r in range(instances.row_count())]


def summary(app) -> str:  # noqa: ANN001
    return app.window.instances.summary.text()


def test_after_accept_all_the_list_shows_the_annotations_not_zero_instances(ready):
    app = ready
    app.set_slider("max_detections", 4)
    app.wait_until(lambda: len(app.prediction) == 4 and app.is_idle(), timeout=10000)
    app.filter_class("")  # All classes
    predicted = [row[0] for row in app.instance_rows()]
    app.press(Qt.Key.Key_A, SHIFT)
    app.wait_idle()
    accepted = len(app.project.records[0].instances)
    assert accepted == len(predicted) == 4
    assert app.shown_count() == accepted and sources(app) == ["annotation"] * accepted
    assert sorted(row[0] for row in app.instance_rows()) == sorted(predicted)  # their classes
    assert all(int(row[2]) > 0 for row in app.instance_rows())  # their areas
    assert summary(app).startswith(f"{accepted} instances: {accepted} annotations, 0 predictions")
    assert "hidden by the filter" not in summary(app)

    app.pick_row(1)  # an annotation's row selects that annotation, as a click on its mask would
    assert app.selected_annotations() == [app.project.records[0].instances[1]]
    assert app.selected_prediction() == -1 and "1 selected" in app.edit_status()

    undo(app)  # back to predictions only
    app.wait_idle()
    assert sources(app) == ["prediction"] * 4 and summary(app).startswith("4 instances: 0 annotations, 4 predictions")


def test_predictions_and_annotations_are_listed_together_and_each_row_selects_its_own(ready):
    app = ready
    app.set_slider("max_detections", 4)
    app.wait_until(lambda: len(app.prediction) == 4 and app.is_idle(), timeout=10000)
    app.pick_row(0)
    app.press(Qt.Key.Key_Space)  # accept the first prediction
    app.wait_idle()
    rows = sources(app)
    left = rows.count("prediction")
    assert rows == ["prediction"] * left + ["annotation"] and 1 <= left <= 3
    plural = "" if left == 1 else "s"
    assert summary(app).startswith(f"{left + 1} instances: 1 annotation, {left} prediction{plural}")

    app.pick_row(0)  # a prediction's row: the prediction is selected, as before
    assert app.selected_prediction() == 0 and app.selected_annotations() == []
    app.pick_row(left)  # the annotation's row
    (annotation,) = app.project.records[0].instances
    assert app.selected_annotations() == [annotation] and app.selected_prediction() == -1
    assert app.selected_row() == left


def test_the_class_filter_applies_to_annotations_too(ready):
    app = ready
    app.press(Qt.Key.Key_A, SHIFT)
    app.wait_idle()
    names = [row[0] for row in app.instance_rows()]
    assert "blob" in names and "cell" in names  # the tiny model predicts both
    app.filter_class("blob")
    app.wait_idle()
    assert [row[0] for row in app.instance_rows()] == [n for n in names if n == "blob"]
    assert set(sources(app)) == {"annotation"}
    cells = names.count("cell")
    assert f"(hidden by the filter: {cells} annotations, {cells} predictions of other classes)" in summary(app)
    app.filter_class("")
    app.wait_idle()
    assert len(app.instance_rows()) == len(names) and "hidden by the filter" not in summary(app)


def test_the_list_is_a_model_view_table_and_an_edit_keeps_the_selection_highlighted(ready):
    """Issue 15, item 11: rows are values in a model (no widget item per cell); an edit resets the model and
    the Session's selection is highlighted again, without the reset picking anything itself."""
    from PySide6.QtGui import QColor

    from gui.panels.instance_list import InstanceModel

    app = ready
    instances = app.window.instances
    assert isinstance(instances.table.model(), InstanceModel)
    app.set_slider("max_detections", 4)
    app.wait_until(lambda: len(app.prediction) == 4 and app.is_idle(), timeout=10000)
    app.pick_row(1)
    app.press(Qt.Key.Key_Space)  # accept it: an edit, the list is rebuilt
    app.wait_idle()
    (annotation,) = app.project.records[0].instances
    row = sources(app).index("annotation")
    assert app.selected_annotations() == [annotation] and app.selected_row() == row  # still highlighted
    model = instances.model
    swatch = model.data(model.index(row, 0), Qt.ItemDataRole.DecorationRole)
    assert isinstance(swatch, QColor) and model.data(model.index(row, 3)) == "annotation"
    assert model.headerData(0, Qt.Orientation.Horizontal) == "class"
    app.pick_row(0)  # a prediction again
    assert app.selected_prediction() == 0 and app.selected_annotations() == [] and app.selected_row() == 0
