"""Bugs found driving the whole loop under Xvfb on a folder of stained-tissue images (issue 13, last item;
docs/GUI.md "The whole loop on another folder"): after rejecting predictions in the review queue, the
Instances panel said "N predictions matched by annotations" on an image with no annotation, and its longer
summary line widened the left dock, shrinking the image view by ~85 px (at 1280x800; in the tests' window a
summary with a class filter made the panel wider than the window)."""

from __future__ import annotations

from PySide6.QtCore import Qt


def reject_first_prediction(app) -> int:  # noqa: ANN001
    """Pick the first prediction's row and press Delete (reject it for this session); the predictions left."""
    before = len(app.shown)
    app.pick_row(0)
    app.press(Qt.Key.Key_Delete)
    app.wait_until(lambda: len(app.shown) == before - 1 and app.is_idle(), timeout=10000)
    return len(app.shown)


def test_a_rejected_prediction_is_not_called_matched_by_annotations(ready):
    app = ready
    app.filter_class("")  # All classes
    assert len(app.shown) >= 2 and app.project.records[0].instances == []
    left = reject_first_prediction(app)
    text = app.window.instances.summary.text()
    assert app.project.records[0].instances == []  # no annotation anywhere on this image
    assert text.startswith(f"{left} instances: 0 annotations, ")
    assert "matched by annotations" not in text, text
    assert "1 prediction hidden" in text and "rejected" in text, text


def test_a_long_summary_does_not_widen_the_instances_dock(ready):
    app = ready
    app.filter_class("")
    app.qtbot.wait(300)  # the layout settles (the docks take their sizes from the widgets' size hints)
    canvas_width = app.window.canvas.width()
    panel_width = app.window.instances.width()
    reject_first_prediction(app)
    app.window.instances.summary.setText(  # the longest the panel says: a filter and hidden predictions
        "40 instances: 12 annotations, 28 predictions (hidden by the filter: 3 annotations, 5 predictions of"
        " other classes); 17 predictions hidden (matched by an annotation, rejected, or of a class the folder lacks)"
    )
    app.qtbot.wait(300)
    assert app.window.instances.width() == panel_width
    assert app.window.canvas.width() == canvas_width
