"""Undo of an edit made by gui/editing/edits.py: the image gets the edit's list, undo the very objects it
had, and a list handed out before (as the autosave snapshot holds) never changes."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QUndoStack

from engine.data import ImageRecord, Instance
from gui.editing import edits
from gui.editing.undo import SetInstances

H, W = 16, 16


def test_set_instances_swaps_lists_and_undo_restores_the_same_objects(qapp) -> None:  # noqa: ANN001
    mask = np.zeros((H, W), dtype=bool)
    mask[2:6, 2:5] = mask[9:12, 8:14] = True
    first, second = Instance.from_mask(mask, 1, id=3), Instance.from_mask(np.eye(H, dtype=bool), 2, id=4)
    record = ImageRecord("a.png", W, H, [first, second], state="predicted")
    handed_out = record.instances
    touched = []
    stack = QUndoStack()

    split = edits.split_connected(record.instances, first, H, W)
    stack.push(SetInstances(record, split.instances, "Split", touched.append))
    assert [i for i in record.instances] == list(split.instances) and record.state == "predicted"
    assert handed_out == [first, second] and handed_out[0] is first  # the old list is left as it was
    merged = edits.merge(record.instances, split.selected, H, W)
    stack.push(SetInstances(record, merged.instances, "Merge", touched.append))
    assert merged.instances[0].id is None and np.array_equal(merged.instances[0].decode_mask(H, W), mask)

    stack.undo()
    assert all(a is b for a, b in zip(record.instances, split.instances)) and len(record.instances) == 3
    stack.undo()
    assert record.instances[0] is first and record.instances[1] is second and record.state == "predicted"
    stack.redo()
    assert all(a is b for a, b in zip(record.instances, split.instances)) and record.state == "predicted"
    assert touched == [record] * 5
