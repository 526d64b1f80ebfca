"""The instance list after an edit (issue 12.5): it remakes only the part of its rows whose inputs changed
(the annotations' on a delete, the predictions' when the delete uncovers one) and makes annotation rows
only when drawn. What it shows must be what a list built from scratch shows, row for row."""

from __future__ import annotations

from PySide6.QtCore import Qt

from gui.panels.instance_list import InstanceList

SHIFT = Qt.KeyboardModifier.ShiftModifier
CTRL = Qt.KeyboardModifier.ControlModifier


def listed(listing: InstanceList) -> tuple[list, str]:
    rows = [(*listing.row(r), listing.source(r)) for r in range(listing.row_count())]
    return rows, listing.summary.text()


def from_scratch(app) -> tuple[list, str]:  # noqa: ANN001
    fresh = InstanceList()
    fresh.show_prediction(app.session)
    return listed(fresh)


def test_delete_and_undo_list_what_a_fresh_list_lists(ready):
    app = ready
    listing = app.window.instances
    predicted = app.shown_count()
    assert predicted > 1
    app.press(Qt.Key.Key_A, SHIFT)  # every shown prediction accepted: they are listed as annotations
    accepted = listed(listing)
    assert accepted == from_scratch(app)
    assert [row[3] for row in accepted[0]] == ["annotation"] * predicted
    target = app.project.annotations(app.index)[1]
    app.session.select((target,))
    assert app.selected_row() == 1
    app.press(Qt.Key.Key_Delete)  # its prediction is uncovered: listed again, first
    after = listed(listing)
    assert after == from_scratch(app)
    sources = [row[3] for row in after[0]]
    assert sources.count("annotation") == predicted - 1 and sources[0] == "prediction"
    app.press(Qt.Key.Key_Z, CTRL)
    assert listed(listing) == accepted == from_scratch(app)
    listing.class_filter.setCurrentIndex(1)  # a class filter: the rows of that class only, as from scratch
    filtered = listed(listing)
    fresh = InstanceList()
    fresh.set_classes([listing.class_filter.itemText(i) for i in range(1, listing.class_filter.count())])
    fresh.class_filter.setCurrentIndex(1)
    fresh.show_prediction(app.session)
    assert filtered == listed(fresh)
