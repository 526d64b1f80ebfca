"""Intensity augmentations for training: gamma, contrast, brightness, inversion, grayscale, blur.

They change pixel values only, never geometry, so targets pass through untouched. Microscopy sets
vary more in exposure, stain and focus than in anything else: a model trained on a few bright,
crisp images fails on a dim, blurred one that a person reads at a glance. Drawing these per sample
teaches the network the shapes rather than one exposure.

The strengths are engine.config.AugmentConfig's fields (0 turns a part off):
gamma_jitter: log-range, gamma = exp(U(-x, x)) (0.7 -> gamma in [0.50, 2.01]);
contrast_jitter: factor U(1 - x, 1 + x) around the image's mean;
brightness_jitter: offset U(-x, x);
invert: probability of 1 - image (bright objects on dark and the reverse);
grayscale: probability of replacing the colours by their mean (stained and fluorescent images alike);
blur: probability of a Gaussian blur with sigma U(0.5, blur_sigma).

Every draw comes from the ``generator`` given (else torch's global RNG), so a seeded sample is
reproducible. Images are float (3,H,W) in [0, 1] in and out.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from engine.config import AugmentConfig


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """(C,H,W) float -> (C,H,W) blurred with a separable Gaussian (reflect padding)."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = image.shape[0]
    radius_h = min(radius, image.shape[-2] - 1)
    radius_w = min(radius, image.shape[-1] - 1)
    out = image[None]
    if radius_w > 0:
        k = kernel[radius - radius_w : radius + radius_w + 1].view(1, 1, 1, -1).expand(channels, 1, 1, -1)
        out = F.conv2d(F.pad(out, (radius_w, radius_w, 0, 0), mode="reflect"), k, groups=channels)
    if radius_h > 0:
        k = kernel[radius - radius_h : radius + radius_h + 1].view(1, 1, -1, 1).expand(channels, 1, -1, 1)
        out = F.conv2d(F.pad(out, (0, 0, radius_h, radius_h), mode="reflect"), k, groups=channels)
    return out[0]


class PhotometricJitter:
    """``transform(image, target) -> (image, target)``: the intensity draws of ``augment`` applied in a fixed order
    (grayscale, invert, gamma, contrast, brightness, blur); the target is returned as it came."""

    def __init__(self, augment: AugmentConfig, generator: torch.Generator | None = None) -> None:
        self.augment = augment
        self.generator = generator

    def __call__(self, image: torch.Tensor, target: Any) -> tuple[torch.Tensor, Any]:
        """(3,H,W) float in [0,1] -> (3,H,W) float in [0,1]."""
        a, g = self.augment, self.generator
        if not a.photometric:
            return image, target
        # Every draw is made whether or not it is used, so one setting does not shift the others' randomness.
        grayscale = _uniform(0.0, 1.0, g) < a.grayscale
        invert = _uniform(0.0, 1.0, g) < a.invert
        gamma = math.exp(_uniform(-a.gamma_jitter, a.gamma_jitter, g))
        contrast = _uniform(1.0 - a.contrast_jitter, 1.0 + a.contrast_jitter, g)
        brightness = _uniform(-a.brightness_jitter, a.brightness_jitter, g)
        blur = _uniform(0.0, 1.0, g) < a.blur
        sigma = _uniform(0.5, a.blur_sigma, g)
        out = image.clamp(0.0, 1.0)
        if grayscale:
            out = out.mean(dim=0, keepdim=True).expand_as(out)
        if invert:
            out = 1.0 - out
        if a.gamma_jitter:
            out = out.pow(gamma)
        if a.contrast_jitter:
            mean = out.mean()
            out = (out - mean) * contrast + mean
        if a.brightness_jitter:
            out = out + brightness
        out = out.clamp(0.0, 1.0)
        if blur:
            out = gaussian_blur(out, sigma).clamp(0.0, 1.0)
        return out, target
