"""FAMI-Pose (Liu et al., CVPR 2022): the model of the paper's Fig. 2, and ``build_model``."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from famicli.config import ModelConfig, get_variant
from famicli.errors import InputError
from famicli.models.alignment import GlobalTransformation, LocalCalibration
from famicli.models.blocks import ChainOfBasicBlocks
from famicli.models.hrnet import PoseHRNet


@dataclass
class FamiPoseOutput:
    """What one forward pass returns (B persons, S supporting frames, K joints, C channels).

    Attributes:
        heatmaps: (B, K, h, w) final heatmaps.
        backbone_heatmaps: (B, K, h, w) the single-frame backbone's heatmaps of the key frame.
        gtm_translation: (B, S, 2) global translation (tx, ty) per supporting frame, feature pixels.
        offsets: four (B, 18G, h, w) deformable offsets, in the cascade's order.
        masks: four (B, 9G, h, w) raw modulation masks.
        features: ``key`` z_t, ``support`` z_sup, ``aggregated`` z~, each (B, C, h, w); the training
            objective's MI terms are computed from them (:class:`famicli.losses.FamiPoseCriterion`).
    """

    heatmaps: torch.Tensor
    backbone_heatmaps: torch.Tensor
    gtm_translation: torch.Tensor
    offsets: list[torch.Tensor]
    masks: list[torch.Tensor]
    features: dict[str, torch.Tensor] = field(default_factory=dict)


class FamiPose(nn.Module):
    """Backbone -> global transformation -> local calibration -> aggregation -> head.

    Args:
        cfg: the model configuration (see :data:`famicli.config.VARIANTS`).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.width
        self.backbone = PoseHRNet(cfg.hrnet, cfg.num_joints)
        self.global_transform = GlobalTransformation(
            c,
            cfg.heatmap_size,
            cfg.num_support,
            cfg.gtm_channels,
            cfg.gtm_hidden,
            cfg.support_fusion_blocks,
            regress=cfg.gtm,
        )
        # the "no LCM" ablation has none: the fused supporting feature is aggregated as it is
        self.local_calibration = (
            LocalCalibration(c, cfg.dcn_offset_groups, cfg.dcn_dilation, cfg.combine_blocks) if cfg.lcm else None
        )
        self.aggregation = ChainOfBasicBlocks(2 * c, c, cfg.aggregation_blocks)
        self.head = nn.Conv2d(c, cfg.num_joints, 3, padding=1)
        self.backbone_frozen = False

    def forward(self, key: torch.Tensor, support: torch.Tensor) -> FamiPoseOutput:
        """
        Args:
            key: (B, 3, H, W) normalized crop of the key frame.
            support: (B, S, 3, H, W) crops of the supporting frames [t-2, t-1, t+1, t+2], cut with
                the key frame's box.
        """
        b, s = self._check_inputs(key, support)
        crops = torch.cat((key.unsqueeze(1), support), dim=1).flatten(0, 1)  # (B, 1+S, 3, H, W) -> (B*T, 3, H, W)
        feats = self.features(crops).unflatten(0, (b, 1 + s))  # (B*T, C, h, w) -> (B, T, C, h, w)
        return self.forward_features(feats[:, 0], feats[:, 1:])

    def features(self, crops: torch.Tensor) -> torch.Tensor:
        """Backbone features (N, C, h, w) of N normalized crops (N, 3, H, W)."""
        return self.backbone.features(crops)

    def single_frame(self, crops: torch.Tensor) -> torch.Tensor:
        """The single-frame HRNet alone: heatmaps (N, K, h, w) of N normalized crops (N, 3, H, W), the
        ``backbone_heatmaps`` :meth:`forward` gives for key crops (``predict --heads backbone``)."""
        return self.backbone.final_layer(self.features(crops))

    def forward_features(self, z_t: torch.Tensor, z_s: torch.Tensor) -> FamiPoseOutput:
        """The temporal part of :meth:`forward`, from backbone features already computed (the same numbers).

        Cached inference (``famicli.inference.cached``) computes each frame's feature once and passes
        it to several key frames here.

        Args:
            z_t: (B, C, h, w) backbone feature of the key frame's crop.
            z_s: (B, S, C, h, w) backbone features of the supporting crops, in model order.
        """
        z_sup, translation = self.global_transform(z_t, z_s)
        aligned, offsets, masks = (
            self.local_calibration(z_t, z_sup) if self.local_calibration is not None else (z_sup, [], [])
        )
        z_agg = self.aggregation(torch.cat((z_t, aligned), dim=1))  # (B, 2C, h, w) -> (B, C, h, w)
        heatmaps = self.head(z_agg)
        out = FamiPoseOutput(
            heatmaps=heatmaps,
            backbone_heatmaps=self.backbone.final_layer(z_t),
            gtm_translation=translation,
            offsets=offsets,
            masks=masks,
            features={"key": z_t, "support": z_sup, "aggregated": z_agg},
        )
        return out

    def _check_inputs(self, key: torch.Tensor, support: torch.Tensor) -> tuple[int, int]:
        h, w = self.cfg.input_size
        s = self.cfg.num_support
        if key.ndim != 4 or tuple(key.shape[1:]) != (3, h, w):
            raise InputError(f"key: expected shape (B, 3, {h}, {w}), got {tuple(key.shape)}")
        if support.ndim != 5 or tuple(support.shape[1:]) != (s, 3, h, w) or support.shape[0] != key.shape[0]:
            raise InputError(f"support: expected shape ({key.shape[0]}, {s}, 3, {h}, {w}), got {tuple(support.shape)}")
        return key.shape[0], s

    def freeze_backbone(self, frozen: bool = True) -> FamiPose:
        """Stop (or restart) gradients to the backbone, as in the official recipe.

        With ``cfg.freeze_backbone_bn`` the frozen backbone's BatchNorm also stays in eval mode
        (running statistics) during training; the official code keeps updating them.
        """
        self.backbone_frozen = frozen
        self.backbone.requires_grad_(not frozen)
        return self.train(self.training)

    def train(self, mode: bool = True) -> FamiPose:
        super().train(mode)
        if mode and self.backbone_frozen and self.cfg.freeze_backbone_bn:
            self.backbone.eval()
        return self

    def parameter_groups(self) -> dict[str, int]:
        """Parameter count per module, in the paper's order."""
        parts = {
            "backbone": self.backbone,
            "global_transformation": self.global_transform,
            "local_calibration": self.local_calibration,
            "aggregation": self.aggregation,
            "head": self.head,
        }
        return {name: sum(p.numel() for p in m.parameters()) if m is not None else 0 for name, m in parts.items()}


def variant_summary() -> dict[str, dict]:
    """Input and heatmap size and parameter counts per module of every preset in ``VARIANTS``."""
    from famicli.config import VARIANTS

    summary = {}
    with torch.device("meta"):  # no memory, no init cost: only shapes are needed
        for name, cfg in VARIANTS.items():
            groups = FamiPose(cfg).parameter_groups()
            summary[name] = {
                "input_size": list(cfg.input_size),
                "heatmap_size": list(cfg.heatmap_size),
                "parameters": {**groups, "total": sum(groups.values())},
            }
    return summary


def build_model(variant: str | ModelConfig = "w48") -> FamiPose:
    """A randomly initialized FAMI-Pose.

    Args:
        variant: a preset name (``"w48"``, ``"w32"``, ``"tiny"``) or a :class:`ModelConfig`.

    Raises:
        ConfigError: unknown variant name.
    """
    cfg = variant if isinstance(variant, ModelConfig) else get_variant(variant)
    return FamiPose(cfg)
