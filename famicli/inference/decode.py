"""Heatmaps -> keypoint coordinates and scores, as the official evaluation decodes them."""

from __future__ import annotations

import torch


def decode_heatmaps(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Argmax per joint with the quarter-pixel refinement of HRNet's ``get_final_preds``.

    The peak moves 0.25 px toward the larger neighbour on each axis when it is strictly inside
    (1 < x < w-1 and 1 < y < h-1); joints whose maximum is <= 0 are placed at (0, 0) as officially.

    Args:
        heatmaps: (B, K, h, w).

    Returns:
        coords (B, K, 2) as (x, y) in heatmap pixels, and scores (B, K) = the heatmap maxima.
    """
    b, k, h, w = heatmaps.shape
    flat = heatmaps.detach().float().flatten(2)  # (B, K, h, w) -> (B, K, h*w)
    scores, idx = flat.max(dim=-1)
    x = (idx % w).float()
    y = torch.div(idx, w, rounding_mode="floor").float()
    valid = scores > 0
    x, y = x * valid, y * valid
    xi, yi = x.long(), y.long()
    inside = (xi > 1) & (xi < w - 1) & (yi > 1) & (yi < h - 1)
    hm = heatmaps.detach().float()
    bi = torch.arange(b).view(b, 1).expand(b, k)
    ki = torch.arange(k).view(1, k).expand(b, k)

    def at(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        return hm[bi, ki, yy.clamp(0, h - 1), xx.clamp(0, w - 1)]

    dx = at(yi, xi + 1) - at(yi, xi - 1)
    dy = at(yi + 1, xi) - at(yi - 1, xi)
    x = x + inside * 0.25 * torch.sign(dx)
    y = y + inside * 0.25 * torch.sign(dy)
    return torch.stack((x, y), dim=-1), scores
