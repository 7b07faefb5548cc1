"""Configuration as small frozen dataclasses, and the named model presets (``VARIANTS``).

No torch import here: the CLI reads these to validate options before anything heavy loads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from famicli.errors import ConfigError


@dataclass(frozen=True)
class HRNetConfig:
    """Depth and widths of the pose-HRNet backbone."""

    stem_width: int = 64  # channels of the two stride-2 stem convolutions and layer1's bottleneck planes
    layer1_blocks: int = 4  # Bottleneck blocks in layer1 (output = 4 * stem_width channels)
    widths: tuple[int, int, int, int] = (48, 96, 192, 384)  # branch widths of stages 2-4
    modules: tuple[int, int, int] = (1, 4, 3)  # HighResolutionModules in stages 2, 3, 4
    blocks: tuple[int, int, int] = (4, 4, 4)  # BasicBlocks per branch in stages 2, 3, 4


@dataclass(frozen=True)
class ModelConfig:
    """Everything that shapes a FAMI-Pose model; saved inside every checkpoint."""

    variant: str = "w48"  # preset name this config came from (informational once built)
    hrnet: HRNetConfig = field(default_factory=HRNetConfig)  # backbone depth and widths
    input_size: tuple[int, int] = (384, 288)  # crop size (H, W) fed to the backbone
    num_joints: int = 17  # heatmap channels (COCO order, see famicli.keypoints.JOINT_NAMES)
    num_support: int = 4  # supporting frames per key frame, ordered [t-2, t-1, t+1, t+2]
    gtm_channels: int = 16  # channels inside the global transformation's regression branch
    gtm_hidden: int = 64  # width of the two hidden Linear layers regressing the translation
    dcn_dilation: int = 3  # dilation (= padding) of the offset/mask convs and deformable convs
    support_fusion_blocks: int = 2  # BasicBlocks fusing the S warped supporting features
    combine_blocks: int = 1  # BasicBlocks combining the fused support with the key feature
    aggregation_blocks: int = 3  # BasicBlocks aggregating key and aligned support features
    freeze_backbone_bn: bool = True  # frozen backbone keeps BN in eval mode (False: official, batch stats)
    mi_estimator: str = "official"  # "official" (bit-compatible) or "corrected" (true KL)
    mi_temperature: float = 0.05  # softmax temperature of the mutual-information terms
    schema: str = "posetrack"  # which 17 keypoints the heatmaps are: posetrack or coco (famicli.keypoints)
    # ablations (train --no-gtm, --no-lcm, --support-offsets); every command builds the checkpoint's model
    gtm: bool = True  # global transformation; False: the supporting features are fused unshifted
    lcm: bool = True  # local calibration; False: the fused supporting feature is aggregated as it is
    support_offsets: tuple[int, ...] = (-2, -1, 1, 2)  # supporting frames relative to t, model order

    def __post_init__(self):
        offsets = tuple(self.support_offsets)
        if not offsets or 0 in offsets or len(set(offsets)) != len(offsets):
            raise ConfigError(
                f"support offsets {list(offsets)}: expected distinct non-zero frame offsets, e.g. -2,-1,1,2"
            )
        if len(self.support_offsets) != self.num_support:
            raise ConfigError(
                f"support_offsets {list(self.support_offsets)} list {len(self.support_offsets)} frames, "
                f"but num_support is {self.num_support}"
            )

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(H, W) of heatmaps and features: the input downsampled 4x by the stem."""
        return (self.input_size[0] // 4, self.input_size[1] // 4)

    @property
    def width(self) -> int:
        """Channels of the highest-resolution backbone feature (48 for w48)."""
        return self.hrnet.widths[0]

    @property
    def dcn_offset_groups(self) -> int:
        """Offset groups of the deformable convolutions: one per 4 channels (12 for w48)."""
        return max(1, self.width // 4)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Rebuild from :meth:`to_dict` output, checking every field's type and range.

        Raises:
            ConfigError: one line naming the field (``hrnet.widths``, ``input_size``, ...), the bad value
                and what is expected; unknown fields too.
        """
        return config_from_dict(cls, data)


@dataclass(frozen=True)
class DataConfig:
    """How training/inference windows are cut from videos (official behaviour by default)."""

    offsets: tuple[int, ...] = (-2, -1, 1, 2)  # supporting frames relative to the key frame, in model order
    padding: str = "official"  # supporting frames past the video's ends: "official" or "clamp" (see docs/data.md)
    aspect_ratio: float = 0.75  # crop box width / height (288 / 384)
    box_enlarge: float = 1.25  # key-frame box enlargement before cropping
    sigma: float = 3.0  # std of the Gaussian targets, heatmap pixels
    scale_factor: float = 0.35  # training scale jitter: x clip(1 + f*N(0,1), 1-f, 1+f)
    rotation_factor: float = 45.0  # training rotation: clip(f*N(0,1), -2f, 2f) degrees ...
    rotation_prob: float = 0.6  # ... applied with this probability
    flip_prob: float = 0.5  # horizontal flip with left/right joint swap
    half_body_prob: float = 0.3  # probability of a half-body crop (when enough joints are visible)
    half_body_min_joints: int = 8  # visible joints needed for a half-body crop
    half_body_enlarge: float = 1.5  # enlargement of half-body boxes (instead of box_enlarge)
    crop: str = "unbiased"  # affine convention of crops and decoding: "unbiased", "standard" or "official"


@dataclass(frozen=True)
class LossConfig:
    """Weights of the objective L = MSE + alpha * (-beta*T1 + beta*T2 + T3 - T4 + T5 - T6)."""

    alpha: float = 0.5  # weight of the whole MI part (0 trains with the heatmap loss only)
    beta: float = 0.1  # weight of the terms on the aggregated feature (T1, T2)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation schedule and run options of ``famipose train``."""

    epochs: int = 21  # total epochs
    batch_size: int = 48  # global batch (split evenly across torchrun processes)
    lr: float = 1e-3  # Adam learning rate
    lr_steps: tuple[int, ...] = (8, 12, 16)  # epochs at which the LR is multiplied by lr_factor
    lr_factor: float = 0.1  # MultiStepLR gamma
    freeze_backbone: bool = True  # no gradient to the HRNet (needs --backbone weights)
    grad_clip: float = 0.0  # max gradient norm; 0 disables clipping
    amp: bool = True  # mixed precision (bf16 autocast) on CUDA; ignored on CPU
    workers: int = 2  # DataLoader worker processes per rank
    seed: int = 0  # seeds data order, augmentation and initialisation
    validate: bool = True  # PoseTrack AP on the val split after every epoch (when it exists)
    single_frame: bool = False  # train the HRNet alone on key frames (the single-frame baseline, stage 1)


# The official recipe for the paper's model, and a from-scratch schedule for the CPU-sized variant.
TRAIN_PRESETS: dict[str, TrainConfig] = {
    "w48": TrainConfig(),
    "w32": TrainConfig(),
    "tiny": TrainConfig(epochs=3, batch_size=16, lr_steps=(2,), freeze_backbone=False),
}


VARIANTS: dict[str, ModelConfig] = {
    # The paper's model: HRNet-W48 at 384x288, official-checkpoint compatible.
    "w48": ModelConfig(variant="w48"),
    # Lighter: HRNet-W32 at 256x192.
    "w32": ModelConfig(variant="w32", hrnet=HRNetConfig(widths=(32, 64, 128, 256)), input_size=(256, 192)),
    # Tests and CPU demo: narrow HRNet, one module per stage, one block per branch, 128x96.
    "tiny": ModelConfig(
        variant="tiny",
        hrnet=HRNetConfig(
            stem_width=32, layer1_blocks=1, widths=(16, 32, 64, 128), modules=(1, 1, 1), blocks=(1, 1, 1)
        ),
        input_size=(128, 96),
        gtm_channels=8,
        gtm_hidden=32,
        support_fusion_blocks=1,
        aggregation_blocks=1,
    ),
}


def get_variant(name: str, **overrides) -> ModelConfig:
    """The preset ``name`` with fields replaced by ``overrides``.

    Raises:
        ConfigError: unknown variant name, with the valid choices.
    """
    if name not in VARIANTS:
        raise ConfigError(f"unknown variant {name!r}; choose from: {', '.join(sorted(VARIANTS))}")
    return replace(VARIANTS[name], **overrides) if overrides else VARIANTS[name]


def ablation_label(cfg: ModelConfig | dict) -> str:
    """How ``cfg`` departs from the paper's model: ``"no GTM, offsets -1,1"``; ``""`` for the full model."""
    get = cfg.get if isinstance(cfg, dict) else lambda k, d=None: getattr(cfg, k, d)
    parts = [name for name, key in (("no GTM", "gtm"), ("no LCM", "lcm")) if get(key, True) is False]
    offsets = tuple(get("support_offsets", (-2, -1, 1, 2)))
    if offsets != (-2, -1, 1, 2):
        parts.append("offsets " + ",".join(str(o) for o in offsets))
    return ", ".join(parts)


def default_offsets(n: int) -> tuple[int, ...]:
    """``n`` supporting frames around the key frame, nearest first on each side: 4 -> (-2, -1, 1, 2)."""
    before = n // 2
    return tuple(range(-before, 0)) + tuple(range(1, n - before + 1))


def train_configs(
    variant: str,
    *,
    mi_estimator: str = "official",
    alpha: float = 0.5,
    beta: float = 0.1,
    sigma: float | None = None,
    gtm: bool = True,
    lcm: bool = True,
    support_offsets: tuple[int, ...] | None = None,
    **train_overrides,
) -> tuple[ModelConfig, DataConfig, LossConfig, TrainConfig]:
    """The configuration of a training run: the variant's presets with the given overrides.

    ``None`` overrides keep the preset. The default target sigma is 3 heatmap pixels at the paper's
    96x72 heatmaps, scaled with the heatmap width (2 at 64x48, 1 at 32x24). ``gtm``, ``lcm`` and
    ``support_offsets`` are the ablations: they shape the model (and the training windows).

    Raises:
        ConfigError: an offset of 0 or listed twice (checked by :class:`ModelConfig`).
    """
    offsets = tuple(support_offsets) if support_offsets is not None else VARIANTS[variant].support_offsets
    model = get_variant(
        variant, mi_estimator=mi_estimator, gtm=gtm, lcm=lcm, support_offsets=offsets, num_support=len(offsets)
    )
    if sigma is None:
        sigma = 3.0 * model.heatmap_size[1] / 72
    train = replace(TRAIN_PRESETS[variant], **{k: v for k, v in train_overrides.items() if v is not None})
    return model, DataConfig(sigma=sigma, offsets=offsets), LossConfig(alpha=alpha, beta=beta), train


# Ranges checked on reading (config_from_dict) beyond the annotated type: strings with a fixed set of
# values; numbers that may be 0; probabilities. Every other number must be > 0.
_CHOICES = {
    "mi_estimator": ("official", "corrected"),
    "schema": ("posetrack", "coco"),
    "padding": ("official", "clamp"),
    "crop": ("unbiased", "standard", "official"),
}
_NONNEG = {"seed", "workers", "grad_clip", "half_body_min_joints", "alpha", "beta", "scale_factor"}
_NONNEG |= {"rotation_factor", "lr_factor"}
_PROBABILITIES = {"rotation_prob", "flip_prob", "half_body_prob"}
_NONZERO_TUPLES = {"offsets", "support_offsets"}  # supporting-frame offsets: any int but 0 (the key frame)


def config_from_dict(cls, data, where: str = ""):
    """Build the config dataclass ``cls`` from plain data (JSON/checkpoint form: lists for tuples).

    Every field's type is checked against its annotation (``bool`` is not an ``int``; an ``int`` is a
    valid ``float``) and its range: counts and sizes are positive, crop sizes are multiples of 32 (the
    HRNet's stride), probabilities lie in [0, 1], strings are one of their choices. Missing fields keep
    their defaults.

    Raises:
        ConfigError: ``field 'input_size': expected 2 positive multiples of 32, got 'abc'`` (one line).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"field {where.rstrip('.') or cls.__name__!r}: expected a mapping, got {_show(data)}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(str(k) for k in set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} fields: {', '.join(where + k for k in unknown)}")
    values = {}
    for name, value in data.items():
        kind = known[name].type
        if kind == "HRNetConfig":
            values[name] = config_from_dict(HRNetConfig, value, f"{where}{name}.")
        else:
            values[name] = _check_field(f"{where}{name}", name, kind, value)
    return cls(**values)


def _check_field(label: str, name: str, kind: str, value):
    if kind.startswith("tuple["):
        item = kind[len("tuple[") : -1].split(", ")
        size = None if item[-1] == "..." else len(item)
        ok = isinstance(value, (list, tuple)) and (size is None or len(value) == size)
        ok = ok and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        if name in _NONZERO_TUPLES:
            ok, want = ok and all(v != 0 for v in value), "non-zero integers"
        elif name == "input_size":
            ok, want = ok and all(v > 0 and v % 32 == 0 for v in value), "positive multiples of 32"
        else:
            ok, want = ok and all(v > 0 for v in value), "positive integers"
        if not ok:
            count = "a list of" if size is None else f"{size}"
            raise ConfigError(f"field {label!r}: expected {count} {want}, got {_show(value)}")
        return tuple(value)
    if kind == "str":
        choices = _CHOICES.get(name)
        if not isinstance(value, str) or (choices and value not in choices):
            want = f"one of: {', '.join(choices)}" if choices else "a string"
            raise ConfigError(f"field {label!r}: expected {want}, got {_show(value)}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"field {label!r}: expected true or false, got {_show(value)}")
        return value
    number = int if kind == "int" else float
    ok = isinstance(value, (int, float) if number is float else int) and not isinstance(value, bool)
    if number is float and ok:
        ok = value == value and abs(value) != float("inf")  # finite
    if name in _PROBABILITIES:
        ok, want = ok and 0 <= value <= 1, "a number in [0, 1]"
    elif name in _NONNEG:
        ok, want = ok and value >= 0, f"{'an integer' if number is int else 'a number'} >= 0"
    else:
        ok, want = ok and value > 0, f"{'an integer' if number is int else 'a number'} > 0"
    if not ok:
        raise ConfigError(f"field {label!r}: expected {want}, got {_show(value)}")
    return number(value)


def _show(value) -> str:
    text = repr(value) if isinstance(value, (str, int, float, list, tuple, type(None))) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."
