"""ResNet (seed section 2.1) with torchvision's parameter names, and ResNetFPN (section 2.2).

``ResNet(...).load_state_dict(torchvision_resnet.state_dict(), strict=True)`` works: the module
tree (conv1, bn1, layer1..layer4, optional fc) is named exactly as torchvision's.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from engine.config import BACKBONE_DEPTHS
from engine.model.blocks import BasicBlock, Bottleneck, NormFactory, conv_norm, norm_factory
from engine.model.fpn import FPN

STAGE_NAMES = ("layer1", "layer2", "layer3", "layer4")


class ResNet(nn.Module):
    """Stem (7x7/2 conv, norm, ReLU, 3x3/2 max-pool) then layer1..4 giving C2..C5 at strides 4..32."""

    def __init__(
        self,
        depth: str = "resnet18",
        norm: NormFactory | None = None,
        num_classes: int | None = None,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        norm = norm or nn.BatchNorm2d
        block = Bottleneck if depth == "resnet50" else BasicBlock
        blocks_per_stage = BACKBONE_DEPTHS[depth]
        self.gradient_checkpointing = gradient_checkpointing
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = norm(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = 64
        self.out_channels: list[int] = []
        for index, (name, n_blocks) in enumerate(zip(STAGE_NAMES, blocks_per_stage)):
            channels = 64 * 2**index
            stride = 1 if index == 0 else 2
            layers = []
            for b in range(n_blocks):
                layers.append(block(in_channels, channels, stride if b == 0 else 1, norm))
                in_channels = channels * block.expansion
            setattr(self, name, nn.Sequential(*layers))
            self.out_channels.append(in_channels)
        if num_classes is not None:  # only to load / use ImageNet classifiers unchanged
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(in_channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: Tensor) -> list[Tensor]:
        """(B,3,H,W) -> [C2 (B,c2,H/4,W/4), C3 (H/8), C4 (H/16), C5 (H/32)]."""
        x = self.maxpool(self.relu(conv_norm(x, self.conv1, self.bn1)))
        outputs = []
        for name in STAGE_NAMES:
            layer = getattr(self, name)
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(
                    layer, x, use_reentrant=False, context_fn=lambda layer=layer: _checkpoint_contexts(layer)
                )
            else:
                x = layer(x)
            outputs.append(x)
        return outputs

    def forward(self, x: Tensor) -> Tensor:
        """ImageNet classification (only with num_classes): (B,3,H,W) -> (B,num_classes)."""
        if not hasattr(self, "fc"):
            raise RuntimeError("this ResNet has no classifier; use features()")
        return self.fc(torch.flatten(self.avgpool(self.features(x)[-1]), 1))

    def freeze_stages(self, frozen_stages: int) -> None:
        """Stop gradients to the stem (frozen_stages >= 1) and layer1..layer(k-1) (frozen_stages = k)."""
        modules: list[nn.Module] = [self.conv1, self.bn1] if frozen_stages >= 1 else []
        modules += [getattr(self, n) for n in STAGE_NAMES[: max(0, frozen_stages - 1)]]
        for module in modules:
            for p in module.parameters():
                p.requires_grad_(False)


def _checkpoint_contexts(layer: nn.Module) -> tuple[contextlib.AbstractContextManager, ...]:
    """Forward runs normally; the recomputation in backward must not advance BN statistics again."""
    return contextlib.nullcontext(), _keep_batchnorm_buffers(layer)


@contextlib.contextmanager
def _keep_batchnorm_buffers(module: nn.Module) -> Iterator[None]:
    saved = [
        (m, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, mean, var, count in saved:
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)


class ResNetFPN(nn.Module):
    """ResNet body + FPN: (B,3,H,W) -> OrderedDict of P2..P5 (and P6 when extra_pool), 256 channels."""

    def __init__(
        self,
        depth: str = "resnet18",
        backbone_norm: str = "bn",
        fpn_channels: int = 256,
        fpn_norm: str = "gn",
        fpn_groups: int = 32,
        extra_pool: bool = False,
        gradient_checkpointing: bool = False,
        frozen_stages: int = 0,
    ) -> None:
        super().__init__()
        self.body = ResNet(depth, norm_factory(backbone_norm), gradient_checkpointing=gradient_checkpointing)
        self.body.freeze_stages(frozen_stages)
        self.fpn = FPN(self.body.out_channels, fpn_channels, fpn_norm, fpn_groups, extra_pool)
        self.out_channels = fpn_channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        """(B,3,H,W) -> {"p2": (B,256,H/4,W/4), ..., "p5": (H/32)[, "p6": (H/64)]}."""
        return self.fpn(self.body.features(x))
