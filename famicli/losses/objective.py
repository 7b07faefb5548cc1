"""The FAMI-Pose training objective: heatmap MSE plus the weighted MI terms."""

from __future__ import annotations

import torch

from famicli.config import LossConfig


def mi_weights(cfg: LossConfig) -> dict[str, float]:
    """The signed weight of each MI term in the objective."""
    a, b = cfg.alpha, cfg.beta
    return {"mi_1": -a * b, "mi_2": a * b, "mi_3": a, "mi_4": -a, "mi_5": a, "mi_6": -a}


def total_loss(terms: dict[str, torch.Tensor], cfg: LossConfig) -> torch.Tensor:
    """Sum ``terms`` (``heatmap`` and ``mi_1``..``mi_6``, unweighted scalars) with their weights.

    MI terms absent from ``terms`` (e.g. in a heatmap-only run) contribute nothing.
    """
    weights = mi_weights(cfg)
    loss = terms["heatmap"]
    for name, weight in weights.items():
        if name in terms and weight != 0.0:
            loss = loss + weight * terms[name]
    return loss
