"""Residual blocks (seed section 1) and the normalisation layers they use."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.fastpaths import use as use_fastpath

NormFactory = Callable[[int], nn.Module]


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine parameters (torchvision's, same buffer names)."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        state_dict.pop(prefix + "num_batches_tracked", None)  # written by nn.BatchNorm2d, unused here
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def scale_and_shift(self) -> tuple[Tensor, Tensor]:
        """Per-channel (C,) scale and shift so that y = x * scale + shift."""
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        return scale, self.bias - self.running_mean * scale

    def forward(self, x: Tensor) -> Tensor:
        """(B,C,H,W) -> (B,C,H,W)."""
        scale, shift = self.scale_and_shift()
        return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def conv_norm(x: Tensor, conv: nn.Conv2d, norm: nn.Module) -> Tensor:
    """norm(conv(x)); a frozen BatchNorm (or one in eval mode) is folded into the conv (one pass over the output, not
    three) where that was measured faster on this machine (``engine.fastpaths``, path ``fold_bn``)."""
    frozen = isinstance(norm, FrozenBatchNorm2d) or (isinstance(norm, nn.BatchNorm2d) and not norm.training)
    if frozen and use_fastpath("fold_bn", x.device):
        if isinstance(norm, nn.BatchNorm2d):
            scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
            shift = norm.bias - norm.running_mean * scale
        else:
            scale, shift = norm.scale_and_shift()
        if conv.bias is not None:
            shift = shift + conv.bias * scale
        weight = conv.weight * scale.reshape(-1, 1, 1, 1)
        return F.conv2d(x, weight, shift, conv.stride, conv.padding, conv.dilation, conv.groups)
    return norm(conv(x))


def norm_factory(kind: str, groups: int = 32) -> NormFactory:
    """A callable channels -> norm layer for kind "bn" | "frozen_bn" | "gn"."""
    if kind == "bn":
        return nn.BatchNorm2d
    if kind == "frozen_bn":
        return FrozenBatchNorm2d
    if kind == "gn":
        return lambda channels: nn.GroupNorm(min(groups, channels), channels)
    raise ValueError(f"unknown norm {kind!r}")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """out = ReLU(BN2(Conv3x3(ReLU(BN1(Conv3x3_stride(x))))) + skip(x)); expansion 1 (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int, norm: NormFactory) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = norm(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = norm(channels)
        self.downsample = _downsample(in_channels, channels * self.expansion, stride, norm)

    def forward(self, x: Tensor) -> Tensor:
        """(B,Cin,H,W) -> (B,C,H/stride,W/stride)."""
        identity = x if self.downsample is None else conv_norm(x, self.downsample[0], self.downsample[1])
        out = self.relu(conv_norm(x, self.conv1, self.bn1))
        out = conv_norm(out, self.conv2, self.bn2)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (stride), 1x1 expand x4, plus skip; the block of ResNet-50+ (standard)."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int, norm: NormFactory) -> None:
        super().__init__()
        self.conv1 = conv1x1(in_channels, channels)
        self.bn1 = norm(channels)
        self.conv2 = conv3x3(channels, channels, stride)
        self.bn2 = norm(channels)
        self.conv3 = conv1x1(channels, channels * self.expansion)
        self.bn3 = norm(channels * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_channels, channels * self.expansion, stride, norm)

    def forward(self, x: Tensor) -> Tensor:
        """(B,Cin,H,W) -> (B,4C,H/stride,W/stride)."""
        identity = x if self.downsample is None else conv_norm(x, self.downsample[0], self.downsample[1])
        out = self.relu(conv_norm(x, self.conv1, self.bn1))
        out = self.relu(conv_norm(out, self.conv2, self.bn2))
        out = conv_norm(out, self.conv3, self.bn3)
        return self.relu(out + identity)


def _downsample(in_channels: int, out_channels: int, stride: int, norm: NormFactory) -> nn.Module | None:
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), norm(out_channels))
