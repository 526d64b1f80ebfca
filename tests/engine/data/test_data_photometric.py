"""Intensity augmentation: each part does what it says, pixels stay in [0, 1], geometry never moves."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from synthetic import make_dataset
from torchvision.transforms.v2 import functional as TF

from engine.config import AugmentConfig, TrainConfig
from engine.data.augment.photometric import PhotometricJitter, gaussian_blur
from engine.training.samples import TrainingSamples


def _image(seed: int = 0, size: tuple[int, int] = (24, 30)) -> torch.Tensor:
    return torch.rand((3, *size), generator=torch.Generator().manual_seed(seed))


def _draws(seed: int, count: int) -> list[float]:
    g = torch.Generator().manual_seed(seed)
    return [float(torch.rand((), generator=g)) for _ in range(count)]


def test_all_off_returns_the_same_tensor_and_target():
    image, target = _image(), {"boxes": torch.zeros(0, 4)}
    out, out_target = PhotometricJitter(AugmentConfig())(image, target)
    assert out is image and out_target is target


def test_gamma_is_the_drawn_power():
    image = _image(1)
    out, _ = PhotometricJitter(AugmentConfig(gamma_jitter=0.7), torch.Generator().manual_seed(5))(image, None)
    _, _, u_gamma, *_ = _draws(5, 6)  # grayscale, invert, gamma, contrast, brightness, blur draws in that order
    gamma = math.exp(-0.7 + 1.4 * u_gamma)
    assert torch.allclose(out, image.pow(gamma), atol=1e-6)
    assert abs(gamma - 1.0) > 0.05  # the seed draws a gamma that actually changes the image


def test_invert_and_grayscale_at_probability_one():
    image = _image(2)
    inverted, _ = PhotometricJitter(AugmentConfig(invert=1.0))(image, None)
    assert torch.equal(inverted, 1.0 - image)
    gray, _ = PhotometricJitter(AugmentConfig(grayscale=1.0))(image, None)
    assert torch.allclose(gray, image.mean(0, keepdim=True).expand_as(image))


def test_contrast_keeps_the_mean_and_scales_deviations():
    image = _image(3) * 0.5 + 0.25  # no clamping at +-30 %
    out, _ = PhotometricJitter(AugmentConfig(contrast_jitter=0.3), torch.Generator().manual_seed(9))(image, None)
    factor = 0.7 + 0.6 * _draws(9, 6)[3]
    assert torch.allclose(out.mean(), image.mean(), atol=1e-5)
    assert torch.allclose(out - out.mean(), (image - image.mean()) * factor, atol=1e-5)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 1.5])
def test_blur_matches_torchvision(sigma):
    image = _image(4, (20, 33))
    radius = math.ceil(3 * sigma)
    reference = TF.gaussian_blur(image, kernel_size=[2 * radius + 1] * 2, sigma=[sigma, sigma])
    assert torch.allclose(gaussian_blur(image, sigma), reference, atol=1e-5)


def test_blur_of_a_one_pixel_image_is_the_image():
    image = _image(5, (1, 1))
    assert torch.allclose(gaussian_blur(image, 1.5), image)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 12), st.integers(1, 12))
def test_strongest_settings_stay_in_range_and_are_reproducible(seed, height, width):
    strong = AugmentConfig(
        gamma_jitter=2.0, contrast_jitter=1.0, brightness_jitter=1.0, invert=0.5, grayscale=0.5, blur=1.0
    )
    image = _image(seed % 1000, (height, width))
    first, _ = PhotometricJitter(strong, torch.Generator().manual_seed(seed))(image, None)
    again, _ = PhotometricJitter(strong, torch.Generator().manual_seed(seed))(image, None)
    assert first.shape == image.shape and torch.equal(first, again)
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0


@pytest.mark.parametrize("field", ["contrast_jitter", "invert", "grayscale", "blur", "gamma_jitter"])
def test_out_of_range_settings_are_refused(field):
    with pytest.raises(ValueError, match="out of range"):
        TrainConfig(augment=AugmentConfig(**{field: 7.0}))


def test_training_samples_keep_geometry_and_flips(tmp_path):
    dataset = make_dataset(tmp_path, n_images=2, size=48)
    ids = [im.id for im in dataset.images]
    plain = TrainingSamples(dataset, ids, 48, 48, AugmentConfig(hflip=0.5, vflip=0.5))
    jitter = TrainingSamples(dataset, ids, 48, 48, AugmentConfig(hflip=0.5, vflip=0.5, gamma_jitter=0.7, invert=1.0))
    changed = 0
    for seed in range(6):
        image, target = plain.sample(seed % 2, seed)
        image_j, target_j = jitter.sample(seed % 2, seed)
        assert torch.equal(target["masks"], target_j["masks"]) and torch.equal(target["boxes"], target_j["boxes"])
        changed += int(not torch.allclose(image, image_j))
    assert changed == 6  # inverted every time, so the pixels always differ
