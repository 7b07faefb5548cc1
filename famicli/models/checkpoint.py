"""Loading and saving checkpoints: famipose's own, official FAMI-Pose, DCPose and pose-HRNet.

``load_model`` recognises, by their keys:

- famipose checkpoints (``{"format": "famipose", "config", "state_dict", "sha256", ...}``);
- official FAMI-Pose state dicts (``hrnet.*``, ``feat_global_offset_layers.*``, ...), bare or wrapped in
  ``{"state_dict": ...}``, with or without DataParallel's ``module.`` prefix; the HRNet depth is read
  off the keys;
- pose-HRNet checkpoints (HRNet's COCO models, DCPose's ``rough_pose_estimation_net.*``), which
  initialize only the backbone.
"""

from __future__ import annotations

import hashlib
import logging
import re
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from famicli import __version__
from famicli.config import VARIANTS, HRNetConfig, ModelConfig, default_offsets, get_variant
from famicli.errors import CheckpointError, ConfigError
from famicli.io import atomic_path
from famicli.models.famipose import FamiPose

log = logging.getLogger(__name__)

FORMAT = "famipose"
# official key prefix -> famipose module path (the rest of each key is unchanged)
OFFICIAL_PREFIXES = [
    (r"hrnet\.", "backbone."),
    (r"feat_global_offset_layers\.", "global_transform.offset_layers."),
    (r"sup_agg_block\.", "global_transform.support_fusion."),
    (r"combined_feat_layers\.", "local_calibration.combine."),
    (r"dcn_offset_([1-4])\.", "local_calibration.offsets.{}."),
    (r"dcn_mask_([1-4])\.", "local_calibration.masks.{}."),
    (r"dcn_([1-4])\.", "local_calibration.dcns.{}."),
    (r"init_feature_agg_block\.", "aggregation."),
    (r"agg_final_layer\.", "head."),
]
_OFFICIAL_RE = [(re.compile(p), r) for p, r in OFFICIAL_PREFIXES]
_BACKBONE_PREFIXES = ("rough_pose_estimation_net.", "backbone.", "hrnet.")
_MAX_NAMES = 8
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since PyTorch 1.6
_PICKLE_MAGIC = b"\x80"  # legacy torch.save: a pickle, protocol 2 or later


def state_dict_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 over key names, dtypes, shapes and raw bytes, in sorted key order."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(model: FamiPose, path: str | Path, **extra) -> Path:
    """Write ``model`` as a famipose checkpoint (atomically: temp file in the folder, then rename).

    ``extra`` entries (e.g. training state) are stored alongside; they must be tensors or plain data.
    """
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "famipose_version": __version__,
        "config": model.cfg.to_dict(),
        "state_dict": state,
        "sha256": state_dict_sha256(state),
        **extra,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_checkpoint(path: str | Path) -> dict:
    """``torch.load(weights_only=True)`` with every failure turned into one :class:`CheckpointError`.

    A file that is neither a zip archive nor a pickle is named as not a PyTorch checkpoint before torch
    reads it; ``train_state``, ``train_state.configs`` and ``configs``, where present, are mappings.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: cannot read checkpoint: the file is empty")
    with open(path, "rb") as f:
        head = f.read(8)
    if not head.startswith((_ZIP_MAGIC, _PICKLE_MAGIC)):
        looks = " (it looks like JSON or text)" if head.lstrip()[:1] in (b"{", b"[", b'"') else ""
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint: neither a zip archive (torch.save) nor a pickle file{looks}"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about pickle protocols before refusing
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, OSError, ...
            text = str(exc)
            if "weights_only" in text or "Unsupported global" in text:
                reason = "it contains Python objects, not only tensors (refused by weights_only loading)"
            else:
                detail = text.strip().splitlines()[0][:160] if text.strip() else type(exc).__name__
                reason = f"truncated, or not written by torch.save ({detail})"
            raise CheckpointError(f"{path}: cannot read checkpoint: {reason}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: not a state dict: the file holds a {type(obj).__name__}")
    # the plain-data parts that readers look into (train_state.configs, configs) are mappings or absent
    for key, value in (("train_state", obj.get("train_state")), ("configs", obj.get("configs"))):
        if value is not None and not isinstance(value, dict):
            raise CheckpointError(f"{path}: field {key!r} is a {type(value).__name__}, not a mapping")
    configs = obj.get("train_state", {}).get("configs")
    if configs is not None and not isinstance(configs, dict):
        raise CheckpointError(f"{path}: field 'train_state.configs' is a {type(configs).__name__}, not a mapping")
    return obj


def saved_configs(obj: dict) -> dict:
    """The data/loss/train configs saved in a checkpoint read by :func:`read_checkpoint` (``famipose
    train`` writes them under ``train_state.configs``, other writers under ``configs``); ``{}`` if none."""
    return obj.get("train_state", {}).get("configs") or obj.get("configs") or {}


def load_model(
    path: str | Path,
    variant: str | ModelConfig | None = None,
    device: str | torch.device = "cpu",
    schema: str | None = None,
) -> FamiPose:
    """Build a :class:`FamiPose` and load weights from ``path`` (any format in the module docstring).

    Args:
        path: checkpoint file.
        variant: preset name or config; ``None`` reads the architecture from the checkpoint.
        device: where to put the model.
        schema: which 17 keypoints a backbone-only checkpoint's heatmaps are (``posetrack`` or ``coco``,
            :data:`famicli.keypoints.SCHEMAS`); default: ``coco`` for pose-HRNet checkpoints, ``posetrack``
            for DCPose's. famipose and official FAMI-Pose checkpoints carry their own (PoseTrack's).

    Returns:
        The model in eval mode, ``model.cfg.schema`` its keypoints; ``model.checkpoint_info`` says what was
        loaded: ``format`` (famipose, official, dcpose, hrnet), ``initialized`` (``all``, or ``backbone``
        when only the single-frame HRNet holds trained weights: pose-HRNet and DCPose checkpoints, and
        famipose checkpoints of ``train --single-frame``), ``schema``, the file's sha256.

    Raises:
        CheckpointError: unreadable file, not a state dict, missing/unexpected keys, shape mismatches,
            weights that are not finite, a schema that contradicts the checkpoint's.
    """
    path = Path(path)
    obj = read_checkpoint(path)
    initialized = "all"
    if obj.get("format") == FORMAT:
        model, kind = _load_famipose(path, obj, variant), "famipose"
        if saved_configs(obj).get("train", {}).get("single_frame") is True:
            initialized = "backbone"  # train --single-frame: the temporal modules never trained
    else:
        state = _unwrap(path, obj)
        if any(k.startswith(p) for k in state for p in ("feat_global_offset_layers.", "agg_final_layer.")):
            cfg = _resolve(variant) or infer_config(state, path)
            model, kind = FamiPose(cfg), "official"
            load_strict(model, to_famipose_keys(state), path)
        else:
            backbone, prefix = _backbone_state(state, path)
            cfg = _resolve(variant) or infer_config({f"hrnet.{k}": v for k, v in backbone.items()}, path)
            kind = "dcpose" if prefix == "rough_pose_estimation_net." else "hrnet"
            cfg = replace(cfg, schema=schema or ("posetrack" if kind == "dcpose" else "coco"))
            model, initialized = FamiPose(cfg), "backbone"
            load_strict(model.backbone, backbone, path, what="backbone")
    if schema is not None and schema != model.cfg.schema:  # pose-HRNet and DCPose took it above
        raise CheckpointError(
            f"{path}: a {kind} checkpoint of {model.cfg.schema} keypoints; --schema {schema} applies to "
            "pose-HRNet and DCPose checkpoints only"
        )
    _refuse_non_finite(model, path)
    model.checkpoint_info = {
        "path": str(path),
        "format": kind,
        "file_sha256": file_sha256(path),
        "initialized": initialized,
        "schema": model.cfg.schema,
    }
    return model.to(device).eval()


def _refuse_non_finite(model: torch.nn.Module, path: Path) -> None:
    """A CheckpointError naming the first weight or buffer holding NaN or infinity: the model's every
    output would be NaN (a run that diverged, a corrupt conversion)."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(
                f"{path}: state_dict: {name}: {bad} of {tensor.numel()} values are NaN or infinite; "
                "the model would output NaN (a diverged run or a corrupt file?)"
            )


def _resolve(variant: str | ModelConfig | None) -> ModelConfig | None:
    if variant is None or isinstance(variant, ModelConfig):
        return variant
    return get_variant(variant)


def verified_parts(path: Path, obj: dict) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """The model config and weights of a famipose checkpoint, the weights checked against the recorded
    sha256 and the config's every field against its type and range.

    Raises:
        CheckpointError: one line naming the file and the field.
    """
    state = obj.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: famipose checkpoint without a 'state_dict'")
    _check_tensors(state, path)
    if obj.get("sha256") != state_dict_sha256(state):
        raise CheckpointError(f"{path}: sha256 of the weights does not match the one recorded (corrupt file?)")
    if "config" not in obj:
        raise CheckpointError(f"{path}: famipose checkpoint without a 'config'")
    try:
        cfg = ModelConfig.from_dict(obj["config"])
    except ConfigError as exc:
        raise CheckpointError(f"{path}: unreadable model config: {exc}") from None
    return cfg, state


def _load_famipose(path: Path, obj: dict, variant) -> FamiPose:
    cfg, state = verified_parts(path, obj)
    wanted = _resolve(variant)
    if wanted is not None and wanted != cfg:
        raise CheckpointError(f"{path}: checkpoint is variant {cfg.variant!r}, not {wanted.variant!r}")
    model = FamiPose(cfg)
    load_strict(model, state, path)
    return model


def _unwrap(path: Path, obj: dict) -> dict[str, torch.Tensor]:
    """Strip ``{"state_dict": ...}`` / ``{"model": ...}`` wrappers and DataParallel ``module.``."""
    for key in ("state_dict", "model"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    _check_tensors(obj, path)
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def _check_tensors(state: dict, path: Path) -> None:
    if not state:
        raise CheckpointError(f"{path}: not a state dict: it is empty")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: not a state dict: entry {key!r} is a {type(value).__name__}, not a tensor")


def to_famipose_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename official FAMI-Pose keys to famipose module paths; unknown keys pass through."""
    out = {}
    for key, value in state.items():
        for pattern, repl in _OFFICIAL_RE:
            m = pattern.match(key)
            if m:
                new = repl.format(int(m.group(1)) - 1) if m.groups() else repl
                key = new + key[m.end() :]
                break
        out[key] = value
    return out


def _backbone_state(state: dict[str, torch.Tensor], path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The pose-HRNet part of a backbone checkpoint, keys relative to the HRNet, and the prefix it had."""
    for prefix in _BACKBONE_PREFIXES:
        part = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if part:
            ignored = len(state) - len(part)
            if ignored:
                log.info("%s: ignoring %d keys outside %s*", path, ignored, prefix)
            return part, prefix
    if "conv1.weight" in state and any(k.startswith("stage2.") for k in state):
        return state, ""
    names = ", ".join(sorted(state)[:_MAX_NAMES])
    raise CheckpointError(f"{path}: not a FAMI-Pose, DCPose or pose-HRNet checkpoint (keys: {names}, ...)")


def _count(state: dict, prefix: str) -> int:
    """Number of distinct integer indices directly after ``prefix``."""
    idx = {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return len(idx)


def infer_config(state: dict[str, torch.Tensor], path: str | Path = "checkpoint") -> ModelConfig:
    """Read the architecture off official-format keys (``hrnet.*`` and, if present, the rest).

    The crop size is not stored in a state dict: it is the preset of the same backbone width.
    """
    try:
        stem = state["hrnet.conv1.weight"].shape[0]
        widths = tuple(state[f"hrnet.stage4.0.branches.{b}.0.conv1.weight"].shape[0] for b in range(4))
        hrnet = HRNetConfig(
            stem_width=stem,
            layer1_blocks=_count(state, "hrnet.layer1."),
            widths=widths,
            modules=tuple(_count(state, f"hrnet.stage{s}.") for s in (2, 3, 4)),
            blocks=tuple(_count(state, f"hrnet.stage{s}.0.branches.0.") for s in (2, 3, 4)),
        )
        num_joints = state["hrnet.final_layer.weight"].shape[0]
    except KeyError as exc:
        raise CheckpointError(f"{path}: missing backbone key {exc.args[0]!r}") from None
    presets = [v for v in VARIANTS.values() if v.width == widths[0]]
    if not presets:
        raise CheckpointError(f"{path}: no preset has backbone width {widths[0]}; pass variant= with a ModelConfig")
    base = presets[0]
    fields = {"hrnet": hrnet, "num_joints": num_joints, "variant": f"{base.variant}-checkpoint"}
    if "feat_global_offset_layers.7.weight" in state:
        fields.update(
            gtm_channels=state["feat_global_offset_layers.0.layers.0.conv1.weight"].shape[0],
            gtm_hidden=state["feat_global_offset_layers.7.weight"].shape[0],
            num_support=(n := state["sup_agg_block.layers.0.conv1.weight"].shape[1] // widths[0]),
            support_offsets=default_offsets(n),
            support_fusion_blocks=_count(state, "sup_agg_block.layers."),
            combine_blocks=_count(state, "combined_feat_layers.layers."),
            aggregation_blocks=_count(state, "init_feature_agg_block.layers."),
        )
    if stem == base.hrnet.stem_width and hrnet == base.hrnet:
        fields["variant"] = base.variant
    return get_variant(base.variant, **fields)


def load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, what: str = "model") -> None:
    """``load_state_dict(strict=True)`` with every problem named in one :class:`CheckpointError`."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k} (checkpoint {tuple(state[k].shape)}, {what} {tuple(own[k].shape)})"
        for k in sorted(set(own) & set(state))
        if state[k].shape != own[k].shape
    ]
    problems = []
    for label, names in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatch", shapes)):
        if names:
            more = f" (+{len(names) - _MAX_NAMES} more)" if len(names) > _MAX_NAMES else ""
            problems.append(f"{label}: {', '.join(names[:_MAX_NAMES])}{more}")
    if problems:
        raise CheckpointError(f"{path}: does not fit the {what}: " + "; ".join(problems))
    module.load_state_dict(state, strict=True)
