"""Re-matching after an edit (issue 12.5): ``gui.editing.masks.matched`` called again with the same
predictions and references that differ by a few crops redoes only the predictions near those crops; its
answers must stay those of a full match, whatever sequence of adds and removes came before."""

from __future__ import annotations

import numpy as np
import pytest

from engine.structures import InstanceMask
from gui.editing import masks
from tests.gui.test_edit_stall import brute_force, random_crop


@pytest.mark.parametrize("iou", [0.0, 0.5, 0.9])
def test_matching_again_after_edits_gives_the_brute_force_answers(iou: float) -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        refs = [random_crop(rng) for _ in range(int(rng.integers(1, 30)))]
        preds = [random_crop(rng) for _ in range(10)] + refs[:5]  # some exact copies: they match until removed
        assert (masks.matched(preds, refs, iou) == brute_force(preds, refs, iou)).all()
        for _ in range(15):  # a delete, an undo (the same crop back), a repaint (a new crop), several at once
            refs = list(refs)
            for _ in range(int(rng.integers(1, 4))):
                action = rng.integers(0, 3)
                if action == 0 and refs:
                    refs.pop(int(rng.integers(len(refs))))
                elif action == 1:
                    refs.append(preds[int(rng.integers(len(preds)))])
                else:
                    refs.insert(int(rng.integers(len(refs) + 1)), random_crop(rng))
            assert (masks.matched(preds, refs, iou) == brute_force(preds, refs, iou)).all()


def test_a_deleted_annotation_uncovers_its_prediction_and_undo_covers_it_again(monkeypatch) -> None:
    """5,000 references; a delete then its undo: the answers flip for the one prediction under it, and the
    re-match agrees with a full one."""
    rng = np.random.default_rng(1)
    refs = []
    for _ in range(5000):
        r = int(rng.integers(4, 10))
        y0, x0 = (int(v) for v in rng.integers(0, 2000 - 2 * r, 2))
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        refs.append(InstanceMask(x0, y0, yy**2 + xx**2 <= r * r))
    preds = list(refs)
    gone = refs[1234]
    fewer = refs[:1234] + refs[1235:]
    expected = masks.matched(list(preds), fewer, 0.5)  # a full match (another list: nothing to start from)
    assert expected[1234] == any(masks.crop_iou(gone, r) >= 0.5 for r in fewer) and expected.sum() < 5000
    assert masks.matched(preds, refs, 0.5).all()  # every prediction is one of the references
    calls = [0]
    real = masks.crop_intersection

    def counting(a: InstanceMask, b: InstanceMask) -> int:
        calls[0] += 1
        return real(a, b)

    monkeypatch.setattr(masks, "crop_intersection", counting)
    assert (masks.matched(preds, fewer, 0.5) == expected).all()  # the delete
    assert masks.matched(preds, refs, 0.5).all()  # its undo
    assert calls[0] < 50, calls[0]
