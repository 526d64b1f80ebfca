"""Intensity augmentations for training: gamma, contrast, brightness, inversion, grayscale, blur.

They change pixel values only, never geometry, so targets pass through untouched. Microscopy sets
vary more in exposure, stain and focus than in anything else: a model trained on a few bright,
crisp images fails on a dim, blurred one that a person reads at a glance. Drawing these per sample
teaches the network the shapes rather than one exposure.

Every draw comes from the ``generator`` given (else torch's global RNG), so a seeded sample is
reproducible. Images are float (3,H,W) in [0, 1] in and out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class PhotometricSettings:
    """How strong each draw is; 0 turns that part off.

    gamma: log-range, gamma = exp(U(-gamma, gamma)) (0.7 -> gamma in [0.50, 2.01]);
    contrast: factor U(1 - contrast, 1 + contrast) around the image's mean;
    brightness: offset U(-brightness, brightness);
    invert: probability of 1 - image (bright objects on dark and the reverse);
    grayscale: probability of replacing the colours by their mean (stained and fluorescent images alike);
    blur: probability of a Gaussian blur with sigma U(0.5, blur_sigma).
    """

    gamma: float = 0.0
    contrast: float = 0.0
    brightness: float = 0.0
    invert: float = 0.0
    grayscale: float = 0.0
    blur: float = 0.0
    blur_sigma: float = 1.5

    def __post_init__(self) -> None:
        for name in ("gamma", "contrast", "brightness", "invert", "grayscale", "blur"):
            if not 0.0 <= getattr(self, name) <= (5.0 if name == "gamma" else 1.0):
                raise ValueError(f"photometric {name} out of range: {getattr(self, name)}")
        if self.blur_sigma < 0.5:
            raise ValueError(f"blur_sigma must be >= 0.5, got {self.blur_sigma}")

    @property
    def active(self) -> bool:
        return any((self.gamma, self.contrast, self.brightness, self.invert, self.grayscale, self.blur))


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
    """``transform(image, target) -> (image, target)``: the draws of ``settings`` applied in a fixed order
    (grayscale, invert, gamma, contrast, brightness, blur); the target is returned as it came."""

    def __init__(self, settings: PhotometricSettings, generator: torch.Generator | None = None) -> None:
        self.settings = settings
        self.generator = generator

    def __call__(self, image: torch.Tensor, target: Any) -> tuple[torch.Tensor, Any]:
        """(3,H,W) float in [0,1] -> (3,H,W) float in [0,1]."""
        s, g = self.settings, self.generator
        if not s.active:
            return image, target
        # Every draw is made whether or not it is used, so one setting does not shift the others' randomness.
        grayscale = _uniform(0.0, 1.0, g) < s.grayscale
        invert = _uniform(0.0, 1.0, g) < s.invert
        gamma = math.exp(_uniform(-s.gamma, s.gamma, g))
        contrast = _uniform(1.0 - s.contrast, 1.0 + s.contrast, g)
        brightness = _uniform(-s.brightness, s.brightness, g)
        blur = _uniform(0.0, 1.0, g) < s.blur
        sigma = _uniform(0.5, s.blur_sigma, g)
        out = image.clamp(0.0, 1.0)
        if grayscale:
            out = out.mean(dim=0, keepdim=True).expand_as(out)
        if invert:
            out = 1.0 - out
        if s.gamma:
            out = out.pow(gamma)
        if s.contrast:
            mean = out.mean()
            out = (out - mean) * contrast + mean
        if s.brightness:
            out = out + brightness
        out = out.clamp(0.0, 1.0)
        if blur:
            out = gaussian_blur(out, sigma).clamp(0.0, 1.0)
        return out, target
