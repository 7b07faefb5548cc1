"""The six mutual-information terms of FAMI-Pose, with the official and a corrected estimator.

Each term compares two tempered spatial distributions (softmax over the h*w positions of a row, at
temperature tau). Rows are joints for the feature-label terms and channels for the feature-feature
terms. The first argument's distribution is detached, as in the official code.

- ``official``: ``kl_div(input=softmax(p / tau), target=softmax(y / tau), reduction="mean")``, i.e.
  probabilities where ``kl_div`` expects log-probabilities. Bit-compatible with the release; its value
  reduces to a function of the target alone, so T1 = T3 = T5 and T2 = T4 = T6.
- ``corrected``: the true KL(target || input) between the two distributions per row (log-softmax input),
  summed over positions and averaged over rows.

Both are computed in log space (``log_target=True``): the same value as the official call, but finite
gradients where a softmax entry underflows to 0 (pytorch issue 89558).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from famicli.errors import ConfigError

ESTIMATORS = ("official", "corrected")
TERM_NAMES = tuple(f"mi_{i}" for i in range(1, 7))
# Sign of each term in the objective, before alpha and beta (see famicli.losses.objective).
FEATURE_LABEL_TERMS = ("mi_1", "mi_3", "mi_5")


class MutualInformation(nn.Module):
    """The six MI terms as unweighted values.

    Args:
        estimator: ``"official"`` or ``"corrected"`` (see the module docstring).
        temperature: softmax temperature tau (0.05 in the paper).
    """

    def __init__(self, estimator: str = "official", temperature: float = 0.05):
        super().__init__()
        if estimator not in ESTIMATORS:
            raise ConfigError(f"unknown MI estimator {estimator!r}; choose from: {', '.join(ESTIMATORS)}")
        self.estimator = estimator
        self.temperature = temperature

    def divergence(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-row divergence between ``source`` (detached) and ``target`` distributions.

        Args:
            source, target: (B, R, h, w); R rows (joints or channels).

        Returns:
            (B, R): the official estimator's mean over positions, or the corrected KL per row.
        """
        tau = self.temperature
        log_t = F.log_softmax(target.flatten(2) / tau, dim=-1)  # (B, R, h, w) -> (B, R, h*w)
        if self.estimator == "official":
            inp = F.softmax(source.detach().flatten(2) / tau, dim=-1)
            return F.kl_div(inp, log_t, reduction="none", log_target=True).mean(-1)
        inp = F.log_softmax(source.detach().flatten(2) / tau, dim=-1)
        return F.kl_div(inp, log_t, reduction="none", log_target=True).sum(-1)

    def per_row(
        self,
        head: nn.Module,
        key: torch.Tensor,
        fused_support: torch.Tensor,
        aggregated: torch.Tensor,
        heatmaps: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Every term per row: ``mi_1``, ``mi_3``, ``mi_5`` (B, K) per joint; the others (B, C).

        Args:
            head: the backbone's 1x1 heatmap layer, mapping (B, C, h, w) -> (B, K, h, w).
            key: z_t (B, C, h, w); fused_support: z_sup; aggregated: z~ (all (B, C, h, w)).
            heatmaps: final heatmaps Y^ (B, K, h, w), the "label" of the feature-label terms.
        """
        d = self.divergence
        return {
            "mi_1": d(head(aggregated), heatmaps),
            "mi_2": d(key, aggregated),
            "mi_3": d(head(fused_support), heatmaps),
            "mi_4": d(fused_support, aggregated),
            "mi_5": d(head(key), heatmaps),
            "mi_6": d(key, aggregated),
        }

    def forward(self, head, key, fused_support, aggregated, heatmaps) -> dict[str, torch.Tensor]:
        """The six terms as scalars (mean over rows of :meth:`per_row`)."""
        return {k: v.mean() for k, v in self.per_row(head, key, fused_support, aggregated, heatmaps).items()}
