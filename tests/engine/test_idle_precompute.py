"""Issue 12.4: after the idle precompute every slider move is a lookup (no network stage runs) and gives what a
fresh prediction at those settings gives; mask quality per detection; the partial result of a cancelled tiled run."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from test_tiling import _fresh, _random_image, _tiny_model

from engine.inference import Cancelled, Predictor
from engine.structures import PredictSettings, Reach

NETWORK = ("backbone", "rpn_head", "box_head", "mask_head")
START = PredictSettings(score_threshold=0.5, box_nms_iou=0.5, rpn_nms_iou=0.7, num_proposals=200, max_detections=100)
REACH = Reach(
    min_score=0.2, box_nms_values=(0.3, 0.5, 0.7), rpn_nms_values=(0.5, 0.7, 0.9), max_proposals=300, max_detections=150
)
MOVES = [
    PredictSettings(0.2, 0.5, 0.7, 200, 0.5, 100),  # the score slider down to the lowest reachable score
    PredictSettings(0.35, 0.5, 0.7, 200, 0.3, 150),  # mask threshold and detection cap
    PredictSettings(0.25, 0.7, 0.7, 200, 0.5, 100),  # box NMS
    PredictSettings(0.3, 0.5, 0.9, 200, 0.5, 100),  # RPN NMS
    PredictSettings(0.3, 0.5, 0.7, 300, 0.5, 100),  # more proposals
    PredictSettings(0.2, 0.3, 0.5, 120, 0.6, 150),  # several at once, none of them the precomputed combination
]


def _idle_until_done(predictor: Predictor, reach: Reach) -> int:
    steps = 0
    while predictor.idle_step(reach):
        steps += 1
        assert steps < 100_000
    return steps


@cache
def _warm(budget: int = 512 * 1024**2) -> tuple[Predictor, np.ndarray]:
    image = _random_image(200, 260)
    predictor = Predictor(_tiny_model(), precompute_budget=budget)
    predictor.predict(image, START, key="a")
    _idle_until_done(predictor, REACH)
    return predictor, image


def _network_runs(predictor: Predictor) -> dict[str, int]:
    return {k: v for k, v in predictor.stage_runs.items() if k.removeprefix("idle_") in NETWORK}


def _same(cached, fresh) -> None:  # noqa: ANN001 - Prediction
    np.testing.assert_array_equal(cached.keys, fresh.keys)
    np.testing.assert_array_equal(cached.labels, fresh.labels)
    np.testing.assert_allclose(cached.boxes, fresh.boxes, atol=1e-4)
    np.testing.assert_allclose(cached.scores, fresh.scores, atol=1e-5)
    np.testing.assert_allclose(cached.mask_quality, fresh.mask_quality, atol=1e-4)
    np.testing.assert_allclose(cached.proposals, fresh.proposals, atol=1e-4)
    for a, b in zip(cached.masks, fresh.masks):
        assert (a.x0, a.y0) == (b.x0, b.y0) and (a.mask != b.mask).mean() < 1e-3


@pytest.mark.parametrize("settings", MOVES)
def test_after_idle_precompute_a_slider_move_runs_no_network_and_equals_a_fresh_run(settings):
    predictor, image = _warm()
    assert len(predictor.tiles) > 1
    assert predictor.stage_runs["idle_mask_head"] > 0 and predictor.stage_runs["idle_box_head"] > 0
    before = _network_runs(predictor)
    cached = predictor.predict(settings=settings)
    assert _network_runs(predictor) == before  # neither the backbone, RPN head, box head nor mask head ran
    fresh = _fresh(*image.shape[:2], settings)
    assert len(fresh) > 0
    _same(cached, fresh)


def test_without_the_precompute_the_same_moves_run_the_mask_head():
    """The reference for the test above: on a predictor that did no idle work these moves need the network."""
    image = _random_image(200, 260)
    predictor = Predictor(_tiny_model())
    predictor.predict(image, START, key="a")
    before = predictor.stage_runs["mask_head"] + predictor.stage_runs["box_head"]
    for settings in MOVES:
        predictor.predict(settings=settings)
    assert predictor.stage_runs["mask_head"] + predictor.stage_runs["box_head"] > before


def test_idle_work_is_done_once_and_a_move_back_finds_it_cached():
    predictor, _ = _warm()
    predictor.predict(settings=START)
    runs = _network_runs(predictor)
    _idle_until_done(predictor, REACH)  # the same settings again: every table and mask is there
    assert _network_runs(predictor) == runs
    assert predictor.idle_step(REACH) is False  # nothing left for these settings


def test_idle_work_stops_at_a_cancel_and_goes_on_from_its_caches():
    image = _random_image(200, 260)
    predictor = Predictor(_tiny_model(), feature_budget=0)  # every idle tile has to run its backbone again
    predictor.predict(image, START, key="a")
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return True

    while not calls:  # the first steps (NMS tables) need no backbone and ask nothing; the first mask step asks
        masks = predictor.held_bytes()["masks"]
        assert predictor.idle_step(REACH, cancel) is True  # the step stopped; work is left
    assert predictor.held_bytes()["masks"] == masks  # the cancelled step kept nothing half-done
    steps = _idle_until_done(predictor, REACH)
    assert steps > 0 and predictor.held_bytes()["masks"] > masks


def test_the_budget_drops_the_lowest_scores_and_keeps_what_is_shown():
    predictor, _ = _warm()
    full = predictor.held_bytes()["masks"]
    image = _random_image(200, 260)
    small = Predictor(_tiny_model(), precompute_budget=full // 3)
    shown = small.predict(image, START, key="a")
    _idle_until_done(small, REACH)
    held = small.held_bytes()["masks"]
    assert held <= full // 3 + sum(m.mask.size * 4 + 200 for m in shown.masks)
    again = small.predict(settings=START)
    np.testing.assert_array_equal(again.keys, shown.keys)  # what is on screen was kept
    assert small._floor > REACH.min_score  # idle work stopped above the lowest reachable score


def test_mask_quality_is_one_value_in_0_1_per_detection_and_stable_across_a_move():
    image = _random_image(200, 260)
    predictor = Predictor(_tiny_model())
    first = predictor.predict(image, PredictSettings(score_threshold=0.3), key="a")
    assert len(first) > 0 and first.mask_quality.shape == (len(first),) and first.mask_quality.dtype == np.float32
    assert ((first.mask_quality >= 0) & (first.mask_quality <= 1)).all() and first.mask_quality.std() > 0
    moved = predictor.predict(settings=PredictSettings(score_threshold=0.3, mask_threshold=0.7))
    np.testing.assert_array_equal(moved.keys, first.keys)  # the same detections ...
    np.testing.assert_array_equal(moved.mask_quality, first.mask_quality)  # ... the same quality
    higher = predictor.predict(settings=PredictSettings(score_threshold=0.6))
    where = {k: q for k, q in zip(first.keys.tolist(), first.mask_quality.tolist())}
    assert higher.mask_quality.tolist() == [where[k] for k in higher.keys.tolist()]


def test_mask_quality_is_engine_quality_of_the_mask_heads_probabilities():
    import torch

    from engine.quality import mask_confidence

    image = _random_image(100, 120)  # one tile
    model = _tiny_model()
    predictor = Predictor(model)
    pred = predictor.predict(image, PredictSettings(score_threshold=0.3), key="b")
    ts = predictor._tiles[0]
    assert len(predictor.tiles) == 1 and len(pred) > 0
    dec = predictor._decoded(ts)
    keys = torch.as_tensor(pred.keys)
    with torch.no_grad():
        probs = model.roi_heads.mask_probs(ts.roi_levels, [dec["boxes"][keys]], [keys % 2 + 1], ts.image_sizes)[0]
    np.testing.assert_allclose(pred.mask_quality, mask_confidence(probs).numpy(), atol=1e-5)


def test_a_cancel_between_tiles_gives_the_detections_of_the_tiles_done():
    image = _random_image(200, 260)
    settings = PredictSettings(score_threshold=0.3)
    full = Predictor(_tiny_model()).predict(image, settings)
    predictor = Predictor(_tiny_model(), feature_budget=0)
    done = []
    with pytest.raises(Cancelled) as stop:
        predictor.predict(image, settings, key="a", cancel=lambda: len(done) >= 3, progress=lambda d, t: done.append(d))
    partial = stop.value.partial
    assert partial is not None and done == [1, 2, 3]
    tiles = partial.keys >> 32
    assert len(partial) > 0 and set(tiles.tolist()) <= {0, 1, 2}  # the finished tiles' detections only
    finished = full.keys[(full.keys >> 32) < 3]
    assert set(finished.tolist()) <= set(partial.keys.tolist())  # ... all of them (a seam with a tile not done
    assert len(partial) <= len(finished) + 5  # may keep one of its duplicates, which the full merge removes)
    assert partial.mask_quality.shape == (len(partial),) and (partial.height, partial.width) == (200, 260)
    with pytest.raises(Cancelled) as early:
        Predictor(_tiny_model()).predict(image, settings, cancel=lambda: True)
    assert early.value.partial is None  # nothing done, nothing to show


def test_tables_stop_at_half_the_budget_and_the_moves_stay_right():
    image = _random_image(200, 260)
    small = Predictor(_tiny_model(), precompute_budget=20_000)
    small.predict(image, START, key="a")
    _idle_until_done(small, REACH)
    assert 0 < small._table_bytes <= 10_000 + 300 * 8  # at most one table past the line
    for settings in MOVES[2:4]:  # box NMS and RPN NMS: what the missing tables would have served
        _same(small.predict(settings=settings), _fresh(*image.shape[:2], settings))


@pytest.mark.parametrize("threshold", [0.3, 0.7, 0.0, 1.0, 0.5])
def test_a_mask_threshold_move_after_the_precompute_gives_a_fresh_runs_masks(threshold):
    """The flat mask buffer (engine.inference._MaskStore): every shown mask at the new threshold is the one a fresh
    prediction at that threshold gives, pixel for pixel within the mask head's float noise; moves in a row do not
    leave crops of an earlier threshold behind."""
    predictor, image = _warm()
    settings = PredictSettings(0.25, 0.5, 0.7, 200, threshold, 150)
    predictor.predict(settings=PredictSettings(0.25, 0.5, 0.7, 200, 0.42, 150))  # another threshold first
    before = _network_runs(predictor)
    cached = predictor.predict(settings=settings)
    assert _network_runs(predictor) == before
    fresh = _fresh(*image.shape[:2], settings)
    assert len(fresh) > 10
    _same(cached, fresh)
    for a, b in zip(cached.masks, fresh.masks):
        assert a.mask.shape == b.mask.shape and a.mask.dtype == bool
    if threshold == 1.0:  # probabilities never exceed 1: nothing is kept
        assert sum(m.area for m in cached.masks) == 0
    if threshold == 0.0:  # everything the pasted probabilities cover, less the exact zeros
        assert sum(m.area for m in cached.masks) >= sum(m.area for m in fresh.masks) - len(fresh)


def _store_with(pasted_chunks):  # noqa: ANN001, ANN202
    from engine.inference import _MaskStore

    store, key = _MaskStore(), 0
    for pasted in pasted_chunks:
        keys = list(range(key, key + len(pasted)))
        store.add(keys, pasted, [0.5] * len(pasted), [0.9 - 0.01 * k for k in keys], idle=False)
        key += len(pasted)
    return store


def test_the_mask_buffer_gives_exactly_the_per_mask_threshold_at_edges():
    """Edge cases of the flat buffer against ``soft > threshold`` per mask: a box outside the image (an empty
    mask), boxes cut by the image border, probabilities of exactly 0 and 1 at thresholds 0 and 1, the span and the
    gather paths, masks dropped and the buffer compacted, crops reused at an unchanged threshold."""
    import torch

    from engine.inference import paste_soft

    gen = torch.Generator().manual_seed(0)
    probs = torch.rand(12, 28, 28, generator=gen)
    probs[0] = 1.0
    probs[1] = 0.0
    probs[2, :14] = 1.0
    boxes = torch.tensor(
        [
            [5, 5, 20, 30],
            [40, 10, 60, 25],
            [-8, -6, 12, 9],  # cut by the top-left border
            [90, 70, 110, 95],  # cut by the bottom-right border (image 100 x 80)
            [200, 200, 230, 240],  # outside: an empty mask
            [30, 30, 30.4, 30.4],  # under a pixel
        ]
        + [[10 * i, 5 * i, 10 * i + 25, 5 * i + 18] for i in range(6)],
        dtype=torch.float32,
    )
    pasted = paste_soft(probs, boxes, 80, 100)
    assert pasted[4][2].size == 0  # the test holds an empty mask
    assert pasted[2][0] == 0 and pasted[3][0] + pasted[3][2].shape[1] == 100  # and masks at the borders
    store = _store_with([pasted[:5], pasted[5:9], pasted[9:]])  # three mask-head chunks
    all_keys = list(range(12))

    def expect(keys, t):  # noqa: ANN001, ANN202
        return [(pasted[k][0], pasted[k][1], pasted[k][2] > np.float32(t)) for k in keys]

    def check(keys, t):  # noqa: ANN001, ANN202
        got = store.crops(keys, t)
        for m, (x0, y0, mask) in zip(got, expect(keys, t)):
            assert (m.x0, m.y0) == (x0, y0) and m.mask.dtype == bool
            np.testing.assert_array_equal(m.mask, mask)
        return got

    for t in (0.0, 1.0, 0.5, 0.999, 1e-6):
        got = check(all_keys, t)
        if t == 1.0:
            assert sum(m.area for m in got) == 0
        if t == 0.0:
            assert got[0].area == pasted[0][2].size and got[1].area == 0
    check([11, 0], 0.3)  # two masks far apart in the buffer: the gather path
    check([4], 0.3)  # only the empty one
    first = check([6, 7, 8], 0.6)
    assert all(a is b for a, b in zip(first, check([6, 7, 8], 0.6)))  # the same threshold: the same crops
    for k in (0, 3, 5, 9):
        store.pop(k)
    store.compact()
    assert store.dead == 0 and len(store.soft) == store.used == sum(pasted[k][2].size for k in store.entries)
    left = [k for k in all_keys if k not in (0, 3, 5, 9)]
    check(left, 0.45)
    check(left[::-1], 0.0)
