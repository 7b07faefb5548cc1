"""Heatmap regression loss with per-joint weights (the standard ``JointsMSELoss``)."""

from __future__ import annotations

import torch
from torch import nn


class JointsMSELoss(nn.Module):
    """0.5 * mean over joints of MSE(w_k * pred_k, w_k * target_k).

    Shapes: pred, target (B, K, H, W); weights (B, K) or (B, K, 1); returns a scalar.
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        w = weights.reshape(weights.shape[0], weights.shape[1], 1)  # (B, K) -> (B, K, 1)
        p = pred.flatten(2) * w  # (B, K, H, W) -> (B, K, H*W)
        t = target.flatten(2) * w
        # per joint: mean over (B, H*W); then mean over joints; x 0.5
        return 0.5 * ((p - t) ** 2).mean(dim=(0, 2)).mean()
