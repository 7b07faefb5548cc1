"""The FAMI-Pose training objective: heatmap MSE plus the weighted MI terms.

:class:`FamiPoseCriterion` computes the unweighted terms from a model output (outside the model's
``forward``, which returns only what the network computes); :func:`total_loss` weights and sums them
with the training config's ``alpha`` and ``beta``.
"""

from __future__ import annotations

import torch
from torch import nn

from famicli.config import LossConfig
from famicli.losses.heatmap import JointsMSELoss
from famicli.losses.mutual_info import MutualInformation


class FamiPoseCriterion(nn.Module):
    """The training terms of one FAMI-Pose output: ``heatmap`` and, with ``mi``, ``mi_1``..``mi_6``.

    Args:
        head: the backbone's 1x1 heatmap head (``model.backbone.final_layer``), which the MI terms
            apply to features; it is used, not owned (its parameters are the model's).
        estimator, temperature: of the MI terms (:class:`famicli.losses.mutual_info.MutualInformation`).
        mi: compute the MI terms (False when their weight is 0: they cost a forward of the head).
    """

    def __init__(self, head: nn.Module, estimator: str = "official", temperature: float = 0.05, mi: bool = True):
        super().__init__()
        self.heatmap = JointsMSELoss()
        self.mi = MutualInformation(estimator, temperature) if mi else None
        self._head = (head,)  # a tuple: not registered as a sub-module, so its parameters stay the model's

    def forward(self, out, target: torch.Tensor, target_weight: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unweighted scalar terms of ``out`` (a :class:`famicli.models.famipose.FamiPoseOutput`).

        Args:
            out: heatmaps (B, K, h, w) and features ``key`` (B, C, h, w), ``support`` (B, C, h, w) (the
                fused supporting feature) and ``aggregated`` (B, C, h, w).
            target: (B, K, h, w) Gaussian heatmaps. target_weight: (B, K).
        """
        terms = {"heatmap": self.heatmap(out.heatmaps.float(), target, target_weight)}
        if self.mi is not None:
            f = out.features
            mi = self.mi(self._head[0], f["key"], f["support"], f["aggregated"], out.heatmaps)
            terms |= {k: v.float() for k, v in mi.items()}
        return terms


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
