"""Transforms keep boxes, masks and image aligned, and are reproducible under a seeded generator."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.data.augment.geometric import (
    Compose,
    RandomHorizontalFlip,
    RandomVerticalFlip,
    masks_to_boxes_xyxy,
    resize_sample,
)
from engine.model.transform import resize_scale


def _resized_size(height: int, width: int, short_side: int, long_side_cap: int) -> tuple[int, int]:
    """The size TrainingSamples resizes to: short side ``short_side``, long side at most ``long_side_cap``."""
    scale = resize_scale(height, width, short_side, long_side_cap)
    return max(1, int(height * scale)), max(1, int(width * scale))


def _resize_to_short_side(short_side: int, long_side_cap: int):  # noqa: ANN202
    """A transform that resizes as TrainingSamples does (what the removed, unused ScaleJitter did at one size)."""
    return lambda image, target: resize_sample(
        image, target, _resized_size(*image.shape[-2:], short_side, long_side_cap)
    )


@st.composite
def image_and_target(draw):
    height, width = draw(st.integers(4, 40)), draw(st.integers(4, 40))
    count = draw(st.integers(0, 4))
    masks = torch.zeros((count, height, width), dtype=torch.uint8)
    for index in range(count):
        y0, x0 = draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))
        y1, x1 = draw(st.integers(y0 + 1, height)), draw(st.integers(x0 + 1, width))
        masks[index, y0:y1, x0:x1] = 1
    image = torch.rand((3, height, width), generator=torch.Generator().manual_seed(draw(st.integers(0, 99))))
    target = {"boxes": masks_to_boxes_xyxy(masks), "labels": torch.arange(1, count + 1), "masks": masks}
    return image, target


@settings(max_examples=60, deadline=None)
@given(image_and_target(), st.integers(0, 2**31 - 1), st.integers(8, 48))
def test_boxes_stay_tight_around_masks(sample, seed, short_side):
    image, target = sample
    transform = Compose(
        [
            RandomHorizontalFlip(0.5),
            RandomVerticalFlip(0.5),
            _resize_to_short_side(short_side, 64),
        ]
    )
    torch.manual_seed(seed)
    out_image, out = transform(image, target)
    height, width = out_image.shape[-2:]
    assert min(height, width) <= 48 and max(height, width) <= 64
    assert out["masks"].shape[1:] == (height, width) and out["masks"].dtype == torch.uint8
    assert len(out["boxes"]) == len(out["labels"]) == len(out["masks"])
    assert torch.equal(out["boxes"], masks_to_boxes_xyxy(out["masks"]))
    assert bool(out["masks"].flatten(1).any(dim=1).all())
    assert set(out["labels"].tolist()) <= set(target["labels"].tolist())


@settings(max_examples=40, deadline=None)
@given(image_and_target())
def test_flips_move_boxes_with_masks_and_pixels(sample):
    image, target = sample
    flipped_image, flipped = RandomHorizontalFlip(1.0)(image, target)
    assert torch.equal(flipped_image, image.flip(-1))
    assert torch.equal(flipped["boxes"], masks_to_boxes_xyxy(flipped["masks"]))
    upside_image, upside = RandomVerticalFlip(1.0)(image, target)
    assert torch.equal(upside_image, image.flip(-2))
    assert torch.equal(upside["boxes"], masks_to_boxes_xyxy(upside["masks"]))


def test_seeded_generator_reproduces_the_same_augmentations():
    image = torch.rand(3, 30, 50)
    masks = torch.zeros(1, 30, 50, dtype=torch.uint8)
    masks[0, 3:9, 5:30] = 1
    target = {"boxes": masks_to_boxes_xyxy(masks), "labels": torch.tensor([1]), "masks": masks}

    def run(seed):
        generator = torch.Generator().manual_seed(seed)
        transform = Compose([RandomHorizontalFlip(generator=generator), RandomVerticalFlip(generator=generator)])
        return [transform(image, target)[1]["boxes"] for _ in range(6)]

    first, again, other = run(1), run(1), run(2)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(first, other))


def test_resize_short_side_and_cap():
    assert _resized_size(10, 10, 20, 30) == (20, 20)
    assert _resized_size(10, 100, 20, 30) == (3, 30)


def test_masks_to_boxes_is_exclusive_at_the_far_edge():
    masks = torch.zeros(2, 5, 6, dtype=torch.uint8)
    masks[0, 1:3, 2:5] = 1
    assert masks_to_boxes_xyxy(masks).tolist() == [[2.0, 1.0, 5.0, 3.0], [0.0, 0.0, 0.0, 0.0]]


def test_instances_that_vanish_when_shrinking_are_dropped():
    masks = torch.zeros(2, 40, 40, dtype=torch.uint8)
    masks[0, 1, 1] = 1
    masks[1, 10:30, 10:30] = 1
    target = {"boxes": masks_to_boxes_xyxy(masks), "labels": torch.tensor([3, 4]), "masks": masks}
    image, out = resize_sample(torch.rand(3, 40, 40), target, (4, 4))
    assert image.shape == (3, 4, 4)
    assert out["labels"].tolist() == [4] and out["masks"].shape == (1, 4, 4)
    assert out["boxes"].tolist() == [[1.0, 1.0, 3.0, 3.0]]
