"""The six mutual-information terms of FAMI-Pose, with the official and a corrected estimator.

Each term compares two tempered spatial distributions (softmax over the h*w positions of a row, at
temperature tau). Rows are joints for the feature-label terms and channels for the feature-feature
terms. The first argument's distribution is detached, as in the official code.

- ``official``: ``kl_div(input=softmax(p / tau), target=softmax(y / tau), reduction="mean")``, i.e.
  probabilities where ``kl_div`` expects log-probabilities. Bit-compatible with the release; its value
  reduces to a function of the target alone, so T1 = T3 = T5 and T2 = T4 = T6.
- ``corrected``: the true KL(target || input) between the two distributions per row (log-softmax input),
  summed over positions and averaged over rows.

:meth:`MutualInformation.per_joint` breaks every term down per joint (feature-feature terms are
restricted to each joint's ground-truth region); ``famipose viz mi`` plots it.

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
        pointwise = self.pointwise(source, target)
        return pointwise.mean(-1) if self.estimator == "official" else pointwise.sum(-1)

    def pointwise(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The summands of :meth:`divergence` per row and position, (B, R, h, w) -> (B, R, h*w)."""
        tau = self.temperature
        log_t = F.log_softmax(target.flatten(2) / tau, dim=-1)  # (B, R, h, w) -> (B, R, h*w)
        if self.estimator == "official":
            inp = F.softmax(source.detach().flatten(2) / tau, dim=-1)
        else:
            inp = F.log_softmax(source.detach().flatten(2) / tau, dim=-1)
        return F.kl_div(inp, log_t, reduction="none", log_target=True)

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

    def per_joint(
        self,
        head: nn.Module,
        key: torch.Tensor,
        fused_support: torch.Tensor,
        aggregated: torch.Tensor,
        heatmaps: torch.Tensor,
        regions: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Every term per joint, (B, K) each (what ``famipose viz mi`` plots).

        The feature-label terms ``mi_1``, ``mi_3``, ``mi_5`` are their rows (:meth:`per_row`). A
        feature-feature term has one row per channel, so it is attributed to joint k by restricting
        it to the joint's region: the term's summands averaged over channels, weighted by
        ``regions[:, k]`` (normalized to sum 1 over positions) and scaled so that a term spread
        evenly over the map gets its scalar value: ``(h*w if corrected else 1) * sum_p w_k(p) u(p)``
        with ``u(p)`` the channel mean of :meth:`pointwise`. With uniform regions it equals the
        scalar term. Joints whose region is empty (no ground truth) get NaN.

        Args:
            head, key, fused_support, aggregated, heatmaps: as :meth:`per_row`.
            regions: (B, K, h, w) non-negative joint regions, e.g. the ground-truth Gaussian targets.
        """
        rows = self.per_row(head, key, fused_support, aggregated, heatmaps)
        mass = regions.flatten(2).sum(-1, keepdim=True)  # (B, K, h, w) -> (B, K, 1)
        weights = regions.flatten(2) / mass.clamp_min(torch.finfo(regions.dtype).tiny)  # (B, K, h*w)
        scale = 1.0 if self.estimator == "official" else float(weights.shape[-1])
        pairs = {"mi_2": (key, aggregated), "mi_4": (fused_support, aggregated), "mi_6": (key, aggregated)}
        out = {}
        for name in TERM_NAMES:
            if name in FEATURE_LABEL_TERMS:
                out[name] = rows[name]
                continue
            source, target = pairs[name]  # the same pairs as per_row
            density = self.pointwise(source, target).mean(1)  # (B, C, h*w) -> (B, h*w)
            value = scale * torch.einsum("bkp,bp->bk", weights, density)  # (B, K)
            out[name] = value.masked_fill(mass.squeeze(-1) <= 0, float("nan"))
        return out

    def forward(self, head, key, fused_support, aggregated, heatmaps) -> dict[str, torch.Tensor]:
        """The six terms as scalars (mean over rows of :meth:`per_row`)."""
        return {k: v.mean() for k, v in self.per_row(head, key, fused_support, aggregated, heatmaps).items()}
