"""FAMI-Pose's coarse-to-fine feature alignment: global transformation and local calibration."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from famicli.models.blocks import ChainOfBasicBlocks, ConvBNReLU
from famicli.ops import DeformConv2d


def _halved(n: int, times: int) -> int:
    """Side length after ``times`` stride-2 3x3 convolutions with padding 1."""
    for _ in range(times):
        n = (n - 1) // 2 + 1
    return n


def translate(feature: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Warp ``feature`` by a translation, as kornia's ``warp_affine`` does in the official code.

    The output at pixel (x, y) is the bilinear sample of the input at (x - tx, y - ty), zero outside
    (``align_corners=True`` pixel convention).

    Args:
        feature: (N, C, H, W).
        shift: (N, 2) translation (tx, ty) in feature-map pixels.

    Returns:
        (N, C, H, W) warped feature.
    """
    n, _, h, w = feature.shape
    ys = torch.arange(h, dtype=feature.dtype, device=feature.device)
    xs = torch.arange(w, dtype=feature.dtype, device=feature.device)
    # (N, H, W) source coordinates, normalized to [-1, 1] with align_corners=True
    gx = (xs.view(1, 1, w) - shift[:, 0].view(n, 1, 1)) * (2.0 / (w - 1)) - 1.0
    gy = (ys.view(1, h, 1) - shift[:, 1].view(n, 1, 1)) * (2.0 / (h - 1)) - 1.0
    grid = torch.stack((gx.expand(n, h, w), gy.expand(n, h, w)), dim=-1)  # (N, H, W, 2)
    return F.grid_sample(feature, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


class GlobalTransformation(nn.Module):
    """Coarse alignment: regress one translation per supporting frame from the feature difference,
    warp the supporting feature by it, and fuse the S warped features.

    Args:
        width: feature channels C.
        heatmap_size: (H, W) of the features; sets the regression's Linear input size.
        num_support: S, supporting frames.
        channels: channels of the regression branch (16 in the paper).
        hidden: width of the two hidden Linear layers (64 in the paper).
        fusion_blocks: BasicBlocks fusing the warped features (2 in the paper).
        regress: False for the "no GTM" ablation: no translation is regressed (no ``offset_layers``), the
            supporting features are fused unshifted (translations reported as 0).
    """

    def __init__(
        self,
        width: int,
        heatmap_size: tuple[int, int],
        num_support: int,
        channels: int,
        hidden: int,
        fusion_blocks: int,
        regress: bool = True,
    ):
        super().__init__()
        h, w = (_halved(n, 5) for n in heatmap_size)
        # indices matter: they are the official checkpoint keys (6 = Flatten has no weights)
        self.offset_layers = (
            nn.Sequential(
                ChainOfBasicBlocks(width, channels, 1),
                *(ConvBNReLU(channels, channels, stride=2) for _ in range(5)),
                nn.Flatten(),
                nn.Linear(channels * h * w, hidden),
                nn.Linear(hidden, hidden),
                nn.Linear(hidden, 2),
            )
            if regress
            else None
        )
        self.support_fusion = ChainOfBasicBlocks(num_support * width, width, fusion_blocks)

    def forward(self, key: torch.Tensor, support: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            key: (B, C, H, W) key-frame feature z_t.
            support: (B, S, C, H, W) supporting features z_{t+d}.

        Returns:
            fused (B, C, H, W) feature z_sup, and translations (B, S, 2) as (tx, ty) feature pixels.
        """
        b, s, c, h, w = support.shape
        if self.offset_layers is None:  # the "no GTM" ablation: fused as they are
            return self.support_fusion(support.reshape(b, s * c, h, w)), support.new_zeros(b, s, 2)
        flat = support.reshape(b * s, c, h, w)  # (B, S, C, H, W) -> (B*S, C, H, W)
        # one regression per supporting frame (in train mode BN statistics are per frame, as official)
        shift = torch.stack([self.offset_layers(support[:, i] - key) for i in range(s)], dim=1)  # (B, S, 2)
        shift = shift.reshape(b * s, 2)  # (B, S, 2) -> (B*S, 2)
        warped = translate(flat, shift).reshape(b, s * c, h, w)  # (B*S, C, H, W) -> (B, S*C, H, W)
        return self.support_fusion(warped), shift.reshape(b, s, 2)


class LocalCalibration(nn.Module):
    """Fine alignment: a cascade of four modulated deformable convolutions (official wiring).

    Offsets and masks come from dilated 3x3 convs; the masks are used raw (no sigmoid), and the third
    deformable conv samples the fused support feature z_sup with offsets computed from the cascade.

    Args:
        width: feature channels C.
        offset_groups: deformable offset groups G (12 for C = 48).
        dilation: dilation and padding of all 3x3 kernels here (3 in the paper).
        combine_blocks: BasicBlocks combining z_sup and z_t (1 in the paper).
    """

    def __init__(self, width: int, offset_groups: int, dilation: int, combine_blocks: int):
        super().__init__()
        self.combine = ChainOfBasicBlocks(2 * width, width, combine_blocks)
        taps = 9 * offset_groups
        self.offsets = nn.ModuleList(
            ConvBNReLU(width, 2 * taps, dilation=dilation, bn=False, relu=False) for _ in range(4)
        )
        self.masks = nn.ModuleList(ConvBNReLU(width, taps, dilation=dilation, bn=False, relu=False) for _ in range(4))
        self.dcns = nn.ModuleList(DeformConv2d(width, width, 3, padding=dilation, dilation=dilation) for _ in range(4))

    def forward(self, key: torch.Tensor, fused_support: torch.Tensor):
        """
        Args:
            key: (B, C, H, W) key feature z_t.
            fused_support: (B, C, H, W) z_sup from the global transformation.

        Returns:
            aligned (B, C, H, W) support feature, offsets [4 x (B, 18G, H, W)], masks [4 x (B, 9G, H, W)].
        """
        offsets, masks = [], []

        def step(i: int, source: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            offsets.append(self.offsets[i](source))
            masks.append(self.masks[i](source))
            return self.dcns[i](x, offsets[-1], masks[-1])

        c = self.combine(torch.cat((fused_support, key), dim=1))  # (B, 2C, H, W) -> (B, C, H, W)
        c = step(0, c, c)
        c = step(1, c, c)
        a = step(2, c, fused_support)  # official: deforms z_sup with offsets from the cascade
        a = step(3, a, a)
        return a, offsets, masks
