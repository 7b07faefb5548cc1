"""What ``famipose viz`` shows, as numbers: the model run once on a clip, its outputs as JSON-ready dicts.

Each figure is made in two steps: ``*_data(model, clip)`` here runs the model once and returns the
numbers (what ``--json`` prints), and ``*_figure(data, clip)`` (:mod:`famicli.viz.figures`) draws only
from that dict and the clip's crops, so the figure shows exactly the JSON. :func:`visualize` does both
for the CLI.

Coordinates: features and heatmaps share one (h, w) grid, "feature pixels"; it is mapped to image
pixels with the crop's decode matrix (:func:`famicli.data.transforms.decode_matrix`), the same map
keypoints are decoded with.
"""

from __future__ import annotations

import logging
import math
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from famicli import keypoints
from famicli.data.clip import Clip, ClipSource, load_clip  # noqa: F401  (ClipSource: for callers)
from famicli.data.synthtrack import demo
from famicli.errors import ConfigError, InputError
from famicli.keypoints import JOINT_NAMES
from famicli.viz.figures import (
    check_output,
    feature_to_image,
    heatmaps_figure,
    mi_figure,
    offsets_figure,
    save_figure,
)

log = logging.getLogger(__name__)

KINDS = ("offsets", "mi", "heatmaps")
ATTRIBUTION = (
    "feature-label terms (T1, T3, T5): the term's row of each joint; feature-feature terms (T2, T4, "
    "T6): the term's summands averaged over channels and weighted by the joint's ground-truth "
    "Gaussian heatmap (normalized to sum 1), scaled so that a term spread evenly over the map "
    "gets its scalar value; null where the joint has no ground truth"
)


def visualize(
    kind: str,
    source: ClipSource,
    weights: Path | None,
    out: Path,
    joint: str | None = None,
    device: str = "auto",
    heads: str | None = None,
) -> dict:
    """Load the model and the clip, compute the ``kind`` figure's numbers, draw and save it to ``out``.

    ``heads`` (heatmaps): ``fami`` shows the backbone's and FAMI-Pose's heatmaps side by side, ``backbone``
    the single-frame HRNet's alone; default: as the checkpoint
    (:func:`famicli.inference.predictor.resolve_heads`). ``offsets`` and ``mi`` need the temporal modules.

    Returns the numbers (the ``--json`` output) with the clip, the weights and a provenance record.

    Raises:
        ConfigError: unknown kind, joint or output format; no weights; offsets, mi or ``heads="fami"`` of a
        checkpoint whose temporal modules were never trained. InputError: bad clip selection.
        CheckpointError: unreadable weights.
    """
    from famicli.config import DataConfig, LossConfig
    from famicli.inference.predictor import resolve_heads
    from famicli.io import provenance
    from famicli.models.checkpoint import load_model, read_checkpoint
    from famicli.runtime import resolve_device

    if kind not in KINDS:
        raise ConfigError(f"unknown figure {kind!r}; choose from: {', '.join(KINDS)}")
    check_output(out)
    known = dict.fromkeys(n for schema in keypoints.SCHEMAS.values() for n in schema.names)
    if joint is not None and joint not in known:  # a name of any schema, before anything loads
        raise ConfigError(f"unknown joint {joint!r}; choose from: {', '.join(known)}")
    if kind == "mi" and source.root is None:
        raise InputError("viz mi needs ground truth: select the clip with --root DIR --seq NAME")
    weights = Path(weights) if weights is not None else demo.default_weights()
    model = load_model(weights, device=resolve_device(device))
    asked = "--heads fami" if kind == "heatmaps" else f"viz {kind} needs FAMI-Pose's temporal modules"
    heads, _ = resolve_heads(model, "fami" if kind != "heatmaps" else heads, asked)
    names = keypoints.get_schema(model.cfg.schema).names
    if joint is not None and joint not in names:
        raise ConfigError(f"joint {joint!r}: {model.cfg.schema} keypoints have none; they are: {', '.join(names)}")
    k = None if joint is None else names.index(joint)
    checkpoint = read_checkpoint(weights)  # famipose train writes train_state.configs; assets/make_demo.py configs
    configs = checkpoint.get("train_state", {}).get("configs") or checkpoint.get("configs", {})
    # the run's data config, else training's default target width (train_configs): 3 px at 96x72, scaled
    data_cfg = DataConfig(**({"sigma": 3.0 * model.cfg.heatmap_size[1] / 72} | _known(DataConfig, configs, "data")))
    data_cfg = replace(data_cfg, offsets=model.cfg.support_offsets)  # the frames the model was built for
    if kind == "offsets" and not model.cfg.lcm:
        raise ConfigError(
            f"viz offsets: {weights} has no local calibration (trained with --no-lcm): no deformable offsets "
            "to show; viz heatmaps and viz mi work"
        )
    clip = load_clip(source, data_cfg, model.cfg.input_size, model.cfg.heatmap_size)
    if kind == "offsets":
        data = offsets_data(model, clip, k)
    elif kind == "mi":
        data = mi_data(model, clip, LossConfig(**_known(LossConfig, configs, "loss")), k)
    else:
        data = heatmaps_data(model, clip, k, heads)
    data = {
        "figure": kind,
        "clip": clip.describe,
        "checkpoint": {
            "path": str(weights),
            "name": weights.name,
            "sha256": model.checkpoint_info["file_sha256"],
            "variant": model.cfg.variant,
            "schema": model.cfg.schema,
        },
        **data,
    }
    figure = {"offsets": offsets_figure, "mi": mi_figure, "heatmaps": heatmaps_figure}[kind](data, clip)
    save_figure(figure, out)
    log.info("viz %s: wrote %s", kind, out)
    return data | {"out": str(out), "provenance": provenance(device=str(next(model.parameters()).device))}


def _known(cls, configs: dict, name: str) -> dict:
    """The fields of ``cls`` saved under ``configs[name]`` (lists back to tuples; unknown fields dropped)."""
    names = {f.name for f in fields(cls)}
    saved = configs.get(name) or {}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in names}


# --------------------------------------------------------------------------------------------- clips
# --------------------------------------------------------------------------------------------- clips
def _forward(model, clip: Clip):
    import torch

    dev = next(model.parameters()).device
    with torch.no_grad():
        return model.eval()(clip.key[None].to(dev), clip.support[None].to(dev))


def _keypoints(heatmaps, clip: Clip) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decoded joints: (K, 2) heatmap px, (K, 2) image px, (K,) scores from (1, K, h, w) heatmaps."""
    from famicli.data.transforms import heatmap_to_image
    from famicli.inference.decode import decode_heatmaps

    coords, scores = decode_heatmaps(heatmaps)
    image = heatmap_to_image(
        coords.double().cpu().numpy(), clip.center[None], clip.scale[None], tuple(heatmaps.shape[-2:]), clip.crop
    )
    return coords[0].cpu().numpy(), image[0], scores[0].cpu().numpy()


def sampling_locations(offset, mask, x: int, y: int, dilation: int) -> tuple[np.ndarray, np.ndarray]:
    """Where a 3x3 modulated deformable convolution samples for output pixel (x, y).

    Args:
        offset: (18G, h, w) offsets as torchvision's ``deform_conv2d`` reads them (per group and tap
            k = 3i + j: dy, dx). mask: (9G, h, w) modulation.
        x, y: output position, feature pixels. dilation: kernel dilation (= padding, stride 1).

    Returns:
        (G*9, 2) sampling points (x, y) in feature pixels and (G*9,) modulation values.
    """
    off = np.asarray(offset)[:, y, x].reshape(-1, 9, 2)  # (18G,) -> (G, 9, [dy, dx])
    i, j = np.divmod(np.arange(9), 3)
    px = x + (j - 1) * dilation + off[..., 1]
    py = y + (i - 1) * dilation + off[..., 0]
    return np.stack((px, py), -1).reshape(-1, 2), np.asarray(mask)[:, y, x].reshape(-1)


def _selected(joint: int | None) -> list[int]:
    return list(range(len(JOINT_NAMES))) if joint is None else [joint]


def offsets_data(model, clip: Clip, joint: int | None = None) -> dict:
    """GTM translations, decoded joints, deformable sampling points and offset magnitudes."""
    from famicli.data.transforms import apply_affine

    out = _forward(model, clip)
    h, w = out.heatmaps.shape[-2:]
    decode = feature_to_image(clip, (h, w))
    shift = out.gtm_translation[0].double().cpu().numpy()  # (S, 2) feature px
    hm_xy, img_xy, scores = _keypoints(out.heatmaps, clip)
    offsets = [o[0].double().cpu().numpy() for o in out.offsets]  # 4 x (18G, h, w)
    masks = [m[0].double().cpu().numpy() for m in out.masks]
    sampling = []
    for k in _selected(joint):
        x, y = int(np.clip(round(hm_xy[k, 0]), 0, w - 1)), int(np.clip(round(hm_xy[k, 1]), 0, h - 1))
        layers = []
        for i in range(4):
            pts, mod = sampling_locations(offsets[i], masks[i], x, y, model.cfg.dcn_dilation)
            layers.append(
                {
                    "layer": i + 1,
                    "points_feature_px": pts.tolist(),
                    "points_image_px": apply_affine(pts, decode).tolist(),
                    "modulation": mod.tolist(),
                }
            )
        sampling.append(
            {
                "joint": JOINT_NAMES[k],
                "position_feature_px": [x, y],
                "position_image_px": apply_affine(np.array([x, y], float), decode).tolist(),
                "layers": layers,
            }
        )
    magnitude = [np.linalg.norm(o.reshape(-1, 9, 2, h, w), axis=2).mean((0, 1)) for o in offsets]  # (h, w) each
    return {
        "dilation": model.cfg.dcn_dilation,
        "gtm_translation": {
            "support_offsets": list(clip.offsets),
            "support_frames": clip.positions[1:],
            "feature_px": shift.tolist(),
            "image_px": (shift @ decode[:, :2].T).tolist(),
        },
        "keypoints": [
            {
                "joint": JOINT_NAMES[k],
                "heatmap_px": hm_xy[k].tolist(),
                "image_px": img_xy[k].tolist(),
                "score": float(scores[k]),
            }
            for k in range(len(JOINT_NAMES))
        ],
        "sampling": sampling,
        "offset_magnitude_feature_px": [m.tolist() for m in magnitude],
    }


def mi_data(model, clip: Clip, loss_cfg, joint: int | None = None) -> dict:
    """The six MI terms per joint with both estimators, and their weighted totals per joint."""
    from famicli.losses.mutual_info import ESTIMATORS, TERM_NAMES, MutualInformation
    from famicli.losses.objective import mi_weights

    out = _forward(model, clip)
    f = out.features
    regions = clip.target[None].to(out.heatmaps)  # (1, K, h, w) ground-truth Gaussians
    weights = mi_weights(loss_cfg)
    shown = _selected(joint)
    result = {}
    for est in ESTIMATORS:
        mi = MutualInformation(est, model.cfg.mi_temperature)
        terms = mi.per_joint(model.backbone.final_layer, f["key"], f["support"], f["aggregated"], out.heatmaps, regions)
        values = {t: terms[t][0].double().cpu().numpy()[shown] for t in TERM_NAMES}
        total = sum(weights[t] * values[t] for t in TERM_NAMES)
        result[est] = {"terms": {t: _nan_to_none(v) for t, v in values.items()}, "weighted_total": _nan_to_none(total)}
    return {
        "joints": [JOINT_NAMES[k] for k in shown],
        "term_weights": weights,
        "temperature": model.cfg.mi_temperature,
        "attribution": ATTRIBUTION,
        "estimators": result,
    }


def heatmaps_data(model, clip: Clip, joint: int | None = None, heads: str = "fami") -> dict:
    """Backbone-only and FAMI-Pose heatmaps per joint (``heads="backbone"``: the backbone's alone, run on
    the key crop by itself), their decoded peaks and the ground truth (of the joints the model's schema
    shares with PoseTrack)."""
    import torch

    schema = keypoints.get_schema(model.cfg.schema)
    if heads == "backbone":
        with torch.no_grad():
            maps = {"backbone": model.eval().single_frame(clip.key[None].to(next(model.parameters()).device))}
    else:
        out = _forward(model, clip)
        maps = {"fami": out.heatmaps, "backbone": out.backbone_heatmaps}
    shown = _selected(joint)
    peaks = {name: _keypoints(hm, clip) for name, hm in maps.items()}
    gt_of = {channel: j for j, channel in enumerate(schema.posetrack) if channel >= 0}  # channel -> PoseTrack
    rows = []
    for k in shown:
        row = {"joint": schema.names[k]}
        j = gt_of.get(k)
        gt = clip.joints[j] if j is not None and clip.joints is not None and clip.joints[j, 2] > 0 else None
        row["gt_image_px"] = None if gt is None else gt[:2].tolist()
        for name, (_, xy, score) in peaks.items():
            err = None if gt is None else float(np.hypot(*(xy[k] - gt[:2])))
            row[name] = {"image_px": xy[k].tolist(), "score": float(score[k]), "error_px": err}
        rows.append(row)
    data = {"heads": heads, "joints": [schema.names[k] for k in shown], "keypoints": list(schema.names)}
    data["peaks"] = rows
    if "fami" in maps:
        data["heatmaps"] = maps["fami"][0, shown].double().cpu().numpy().tolist()
    data["backbone_heatmaps"] = maps["backbone"][0, shown].double().cpu().numpy().tolist()
    return data


def _nan_to_none(values: np.ndarray) -> list:
    return [None if math.isnan(v) else float(v) for v in np.asarray(values, dtype=float)]


# ---------------------------------------------------------------------------------------- drawing
