"""Feature Pyramid Network (seed section 3): GroupNorm laterals and outputs, or torchvision's plain convs."""

from __future__ import annotations

from collections import OrderedDict

import torch.nn.functional as F
from torch import Tensor, nn


class FPN(nn.Module):
    """L_i = N(Conv1x1(C_i)); M5 = L5, M_i = L_i + up2_nearest(M_{i+1}); P_i = N(Conv3x3(M_i)).

    With ``norm="gn"`` N is GroupNorm and the convs have no bias (the seed); with ``norm="none"`` N is the
    identity and the convs carry a bias (torchvision). ``extra_pool`` adds P6 = maxpool(P5, 1, stride 2).
    """

    def __init__(
        self,
        in_channels: list[int],
        out_channels: int = 256,
        norm: str = "gn",
        groups: int = 32,
        extra_pool: bool = False,
    ) -> None:
        super().__init__()
        use_gn = norm == "gn"
        self.lateral = nn.ModuleList(_conv_norm(c, out_channels, 1, use_gn, groups) for c in in_channels)
        self.output = nn.ModuleList(_conv_norm(out_channels, out_channels, 3, use_gn, groups) for _ in in_channels)
        self.extra_pool = extra_pool
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, features: list[Tensor]) -> OrderedDict[str, Tensor]:
        """[C2..C5] -> {"p2".."p5"[, "p6"]}, each (B,out_channels,h_i,w_i)."""
        merged = self.lateral[-1](features[-1])
        outputs = [self.output[-1](merged)]
        for i in range(len(features) - 2, -1, -1):
            lateral = self.lateral[i](features[i])
            merged = lateral + F.interpolate(merged, size=lateral.shape[-2:], mode="nearest")
            outputs.insert(0, self.output[i](merged))
        names = [f"p{i + 2}" for i in range(len(outputs))]
        result = OrderedDict(zip(names, outputs))
        if self.extra_pool:
            result[f"p{len(outputs) + 2}"] = outputs[-1][..., ::2, ::2]  # = max_pool2d(kernel 1, stride 2)
        return result


def _conv_norm(in_channels: int, out_channels: int, kernel: int, use_gn: bool, groups: int) -> nn.Sequential:
    conv = nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=not use_gn)
    if use_gn:
        return nn.Sequential(conv, nn.GroupNorm(groups, out_channels))
    return nn.Sequential(conv)
