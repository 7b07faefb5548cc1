"""Pose-HRNet backbone (Sun et al., 2019) as used by FAMI-Pose, with the official key names."""

from __future__ import annotations

import torch
from torch import nn

from famicli.config import HRNetConfig
from famicli.models.blocks import BN_MOMENTUM, BasicBlock, Bottleneck, conv1x1_bn


def _conv_bn(in_ch: int, out_ch: int, stride: int, relu: bool) -> nn.Sequential:
    layers = [
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_ch, momentum=BN_MOMENTUM),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks followed by SUM fusion across resolutions."""

    def __init__(self, widths: list[int], num_blocks: int, multi_scale_output: bool):
        super().__init__()
        self.num_branches = len(widths)
        self.branches = nn.ModuleList(nn.Sequential(*(BasicBlock(w, w) for _ in range(num_blocks))) for w in widths)
        self.fuse_layers = nn.ModuleList()
        if self.num_branches > 1:
            for i in range(self.num_branches if multi_scale_output else 1):
                self.fuse_layers.append(nn.ModuleList(self._fuse(widths, i, j) for j in range(self.num_branches)))
        self.relu = nn.ReLU(inplace=True)

    @staticmethod
    def _fuse(widths: list[int], i: int, j: int) -> nn.Module | None:
        """Layer bringing branch j to branch i's resolution and width."""
        if j == i:
            return None
        if j > i:  # lower resolution: 1x1 conv + BN, nearest upsampling
            return nn.Sequential(
                nn.Conv2d(widths[j], widths[i], 1, bias=False),
                nn.BatchNorm2d(widths[i], momentum=BN_MOMENTUM),
                nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
            )
        steps = i - j  # higher resolution: chain of stride-2 3x3 convs, last without ReLU
        return nn.Sequential(
            *(
                _conv_bn(widths[j], widths[i] if k == steps - 1 else widths[j], 2, relu=k < steps - 1)
                for k in range(steps)
            )
        )

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if self.num_branches == 1:
            return xs
        out = []
        for i, fuse in enumerate(self.fuse_layers):
            y = xs[0] if i == 0 else fuse[0](xs[0])
            for j in range(1, self.num_branches):
                y = y + (xs[j] if i == j else fuse[j](xs[j]))
            out.append(self.relu(y))
        return out


class PoseHRNet(nn.Module):
    """HRNet returning the highest-resolution feature and its 1x1-conv heatmaps.

    Args:
        cfg: backbone depth and widths.
        num_joints: heatmap channels of ``final_layer``.

    Shapes: (N, 3, H, W) -> feature (N, widths[0], H/4, W/4), heatmaps (N, num_joints, H/4, W/4).
    """

    def __init__(self, cfg: HRNetConfig, num_joints: int):
        super().__init__()
        stem = cfg.stem_width
        self.conv1 = nn.Conv2d(3, stem, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(stem, stem, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(stem, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        out1 = stem * Bottleneck.expansion
        self.layer1 = nn.Sequential(
            Bottleneck(stem, stem, downsample=conv1x1_bn(stem, out1)),
            *(Bottleneck(out1, stem) for _ in range(cfg.layer1_blocks - 1)),
        )
        previous = [out1]
        for s, (modules, blocks) in enumerate(zip(cfg.modules, cfg.blocks), start=2):
            widths = list(cfg.widths[:s])
            setattr(self, f"transition{s - 1}", self._transition(previous, widths))
            last = s == len(cfg.widths)
            stage = nn.Sequential(
                *(
                    HighResolutionModule(widths, blocks, multi_scale_output=not (last and m == modules - 1))
                    for m in range(modules)
                )
            )
            setattr(self, f"stage{s}", stage)
            previous = widths
        self.final_layer = nn.Conv2d(cfg.widths[0], num_joints, 1)
        self.num_stages = len(cfg.widths)
        self.init_weights()

    def init_weights(self) -> None:
        """The official pose-HRNet initialization: convolutions N(0, 0.001) with zero bias, BN (1, 0).

        Training from scratch depends on it: with PyTorch's default initialization the tiny variant
        stays near the all-zero-heatmap plateau several times longer (docs/training.md).
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _transition(previous: list[int], current: list[int]) -> nn.ModuleList:
        layers: list[nn.Module | None] = []
        for i, width in enumerate(current):
            if i < len(previous):
                same = width == previous[i]
                layers.append(None if same else _conv_bn(previous[i], width, 1, relu=True))
            else:  # a new branch: stride-2 convs from the lowest-resolution branch
                n = i + 1 - len(previous)
                layers.append(
                    nn.Sequential(
                        *(_conv_bn(previous[-1], width if k == n - 1 else previous[-1], 2, True) for k in range(n))
                    )
                )
        return nn.ModuleList(layers)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> highest-resolution feature (N, widths[0], H/4, W/4)."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        ys = [self.layer1(x)]
        for s in range(2, self.num_stages + 1):
            transition = getattr(self, f"transition{s - 1}")
            xs = [
                (ys[i] if i < len(ys) else ys[-1]) if layer is None else layer(ys[i] if i < len(ys) else ys[-1])
                for i, layer in enumerate(transition)
            ]
            ys = xs
            for module in getattr(self, f"stage{s}"):
                ys = module(ys)
        return ys[0]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature = self.features(x)
        return feature, self.final_layer(feature)
