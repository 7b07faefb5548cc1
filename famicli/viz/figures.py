"""Figures of FAMI-Pose's inner workings (``famipose viz``): alignment offsets, MI terms, heatmaps.

Each figure is made in two steps: ``*_data(model, clip)`` runs the model once and returns the numbers
as a JSON-ready dict (what ``--json`` prints), and ``*_figure(data, clip)`` draws only from that dict
and the clip's crops, so the figure shows exactly the JSON. :func:`visualize` does both for the CLI.

Coordinates: features and heatmaps share one (h, w) grid, "feature pixels"; it is mapped to image
pixels with the crop's decode matrix (:func:`famicli.data.transforms.decode_matrix`), the same map
keypoints are decoded with. Crops are drawn in image coordinates, so every panel's axes are image
pixels. matplotlib runs headless (Agg); files carry no dates, so fixed inputs give identical files.
"""

from __future__ import annotations

import logging
import math
from dataclasses import fields
from pathlib import Path

import numpy as np

from famicli.data.synthtrack import demo
from famicli import keypoints
from famicli.keypoints import JOINT_NAMES
from famicli.data.clip import Clip, ClipSource, load_clip
from famicli.errors import ConfigError, InputError

log = logging.getLogger(__name__)

FORMATS = (".png", ".svg", ".pdf")
KINDS = ("offsets", "mi", "heatmaps")
LAYER_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")  # deformable layers 1-4
# One colour per joint, used for joint names and markers in every figure: left side cool, right warm.
JOINT_COLORS = ("#404040", "#7f7f7f", "#8c8c00", "#9467bd", "#e377c2", "#1f77b4", "#d62728", "#17becf",
                "#ff7f0e", "#2ca02c", "#8c564b", "#393b79", "#ad494a", "#6b6ecf", "#d6616b", "#637939",
                "#843c39")  # fmt: skip
# MI terms: colour by the feature whose information is measured, solid = feature-label, hatched = feature-feature.
TERM_STYLE = {"mi_1": ("#1f77b4", ""), "mi_2": ("#1f77b4", "//"), "mi_3": ("#ff7f0e", ""),
              "mi_4": ("#ff7f0e", "//"), "mi_5": ("#2ca02c", ""), "mi_6": ("#2ca02c", "//")}  # fmt: skip
TERM_LABELS = {"mi_1": r"$T_1\ (\tilde z, \hat Y)$", "mi_2": r"$T_2\ (z_t, \tilde z)$",
               "mi_3": r"$T_3\ (z_{sup}, \hat Y)$", "mi_4": r"$T_4\ (z_{sup}, \tilde z)$",
               "mi_5": r"$T_5\ (z_t, \hat Y)$", "mi_6": r"$T_6\ (z_t, \tilde z)$"}  # fmt: skip
ATTRIBUTION = ("feature-label terms (T1, T3, T5): the term's row of each joint; feature-feature terms (T2, T4, "
               "T6): the term's summands averaged over channels and weighted by the joint's ground-truth "
               "Gaussian heatmap (normalized to sum 1), scaled so that a term spread evenly over the map "
               "gets its scalar value; null where the joint has no ground truth")  # fmt: skip


def joint_index(name: str | None) -> int | None:
    """Index of a joint name, or None for all joints. Raises ConfigError listing the valid names."""
    return None if name is None else keypoints.joint_index(name)


def check_output(path: Path) -> None:
    """Raises ConfigError unless ``path`` ends in .png, .svg or .pdf."""
    if Path(path).suffix.lower() not in FORMATS:
        raise ConfigError(f"--out {path}: unsupported format {Path(path).suffix or '(none)'!r}; "
                          f"choose from: {', '.join(FORMATS)}")  # fmt: skip


def visualize(kind: str, source: ClipSource, weights: Path | None, out: Path, joint: str | None = None,
              device: str = "auto") -> dict:  # fmt: skip
    """Load the model and the clip, compute the ``kind`` figure's numbers, draw and save it to ``out``.

    Returns the numbers (the ``--json`` output) with the clip, the weights and a provenance record.

    Raises:
        ConfigError: unknown kind, joint or output format; no weights. InputError: bad clip selection.
        CheckpointError: unreadable weights.
    """
    from famicli.config import DataConfig, LossConfig
    from famicli.io import provenance
    from famicli.models.checkpoint import load_model, read_checkpoint
    from famicli.runtime import resolve_device

    if kind not in KINDS:
        raise ConfigError(f"unknown figure {kind!r}; choose from: {', '.join(KINDS)}")
    check_output(out)
    k = joint_index(joint)
    if kind == "mi" and source.root is None:
        raise InputError("viz mi needs ground truth: select the clip with --root DIR --seq NAME")
    weights = Path(weights) if weights is not None else demo.default_weights()
    model = load_model(weights, device=resolve_device(device))
    checkpoint = read_checkpoint(weights)  # famipose train writes train_state.configs; assets/make_demo.py configs
    configs = checkpoint.get("train_state", {}).get("configs") or checkpoint.get("configs", {})
    # the run's data config, else training's default target width (train_configs): 3 px at 96x72, scaled
    data_cfg = DataConfig(**({"sigma": 3.0 * model.cfg.heatmap_size[1] / 72} | _known(DataConfig, configs, "data")))
    clip = load_clip(source, data_cfg, model.cfg.input_size, model.cfg.heatmap_size)
    if kind == "offsets":
        data = offsets_data(model, clip, k)
    elif kind == "mi":
        data = mi_data(model, clip, LossConfig(**_known(LossConfig, configs, "loss")), k)
    else:
        data = heatmaps_data(model, clip, k)
    data = {"figure": kind, "clip": clip.describe, "checkpoint": {"path": str(weights), "name": weights.name,
            "sha256": model.checkpoint_info["file_sha256"], "variant": model.cfg.variant}, **data}  # fmt: skip
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
def _forward(model, clip: Clip):
    import torch

    dev = next(model.parameters()).device
    with torch.no_grad():
        return model.eval()(clip.key[None].to(dev), clip.support[None].to(dev))


def _decode(clip: Clip, heatmap_size: tuple[int, int]) -> np.ndarray:
    """2x3 matrix feature/heatmap px -> image px."""
    from famicli.data.transforms import decode_matrix

    return decode_matrix(clip.center, clip.scale, heatmap_size, clip.crop)


def _crop_to_image(clip: Clip) -> np.ndarray:
    """2x3 matrix crop (input) px -> image px."""
    from famicli.data.transforms import input_matrix, invert_affine

    return invert_affine(input_matrix(clip.center, clip.scale, 0.0, clip.crops.shape[1:3], clip.crop))


def _keypoints(heatmaps, clip: Clip) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decoded joints: (K, 2) heatmap px, (K, 2) image px, (K,) scores from (1, K, h, w) heatmaps."""
    from famicli.data.transforms import heatmap_to_image
    from famicli.inference.decode import decode_heatmaps

    coords, scores = decode_heatmaps(heatmaps)
    image = heatmap_to_image(coords.double().cpu().numpy(), clip.center[None], clip.scale[None],
                             tuple(heatmaps.shape[-2:]), clip.crop)  # fmt: skip
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
    decode = _decode(clip, (h, w))
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
            layers.append({"layer": i + 1, "points_feature_px": pts.tolist(),
                           "points_image_px": apply_affine(pts, decode).tolist(),
                           "modulation": mod.tolist()})  # fmt: skip
        sampling.append({"joint": JOINT_NAMES[k], "position_feature_px": [x, y],
                         "position_image_px": apply_affine(np.array([x, y], float), decode).tolist(),
                         "layers": layers})  # fmt: skip
    magnitude = [np.linalg.norm(o.reshape(-1, 9, 2, h, w), axis=2).mean((0, 1)) for o in offsets]  # (h, w) each
    return {
        "dilation": model.cfg.dcn_dilation,
        "gtm_translation": {"support_offsets": list(clip.offsets), "support_frames": clip.positions[1:],
                            "feature_px": shift.tolist(), "image_px": (shift @ decode[:, :2].T).tolist()},  # fmt: skip
        "keypoints": [{"joint": JOINT_NAMES[k], "heatmap_px": hm_xy[k].tolist(), "image_px": img_xy[k].tolist(),
                       "score": float(scores[k])} for k in range(len(JOINT_NAMES))],  # fmt: skip
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
    return {"joints": [JOINT_NAMES[k] for k in shown], "term_weights": weights, "temperature": model.cfg.mi_temperature,
            "attribution": ATTRIBUTION, "estimators": result}  # fmt: skip


def heatmaps_data(model, clip: Clip, joint: int | None = None) -> dict:
    """Backbone-only and FAMI-Pose heatmaps per joint, their decoded peaks and the ground truth."""
    out = _forward(model, clip)
    shown = _selected(joint)
    peaks = {name: _keypoints(hm, clip) for name, hm in (("fami", out.heatmaps), ("backbone", out.backbone_heatmaps))}
    rows = []
    for k in shown:
        row = {"joint": JOINT_NAMES[k]}
        gt = clip.joints[k] if clip.joints is not None and clip.joints[k, 2] > 0 else None
        row["gt_image_px"] = None if gt is None else gt[:2].tolist()
        for name, (_, xy, score) in peaks.items():
            err = None if gt is None else float(np.hypot(*(xy[k] - gt[:2])))
            row[name] = {"image_px": xy[k].tolist(), "score": float(score[k]), "error_px": err}
        rows.append(row)
    return {"joints": [JOINT_NAMES[k] for k in shown], "peaks": rows,
            "heatmaps": out.heatmaps[0, shown].double().cpu().numpy().tolist(),
            "backbone_heatmaps": out.backbone_heatmaps[0, shown].double().cpu().numpy().tolist()}  # fmt: skip


def _nan_to_none(values: np.ndarray) -> list:
    return [None if math.isnan(v) else float(v) for v in np.asarray(values, dtype=float)]


# ---------------------------------------------------------------------------------------- drawing
def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` atomically as PNG, SVG or PDF (by suffix), without dates: same figure, same bytes."""
    import matplotlib

    from famicli.io import atomic_path

    check_output(path)
    fmt = Path(path).suffix.lower().lstrip(".")
    metadata = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None},
                "pdf": {"CreationDate": None, "ModDate": None, "Creator": None, "Producer": None}}[fmt]  # fmt: skip
    with matplotlib.rc_context({"svg.hashsalt": "famipose"}), atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=110, metadata=metadata)
    return Path(path)


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _show_crop(ax, clip: Clip, index: int, dim: float = 1.0) -> None:
    """Draw crop ``index`` in image coordinates (axes in image pixels)."""
    to_image = _crop_to_image(clip)
    hh, ww = clip.crops.shape[1:3]
    (x0, y0), (x1, y1) = (to_image[:, :2] @ np.array(p) + to_image[:, 2] for p in ((-0.5, -0.5), (ww - 0.5, hh - 0.5)))
    ax.imshow((clip.crops[index] * dim).astype(np.uint8), extent=(x0, x1, y1, y0), interpolation="nearest")
    ax.set_xlim(x0, x1), ax.set_ylim(y1, y0)
    ax.tick_params(labelsize=7)


def _grid_extent(clip: Clip, h: int, w: int) -> tuple[float, float, float, float]:
    """imshow extent of an (h, w) feature/heatmap grid in image pixels."""
    decode = _decode(clip, (h, w))
    (x0, y0), (x1, y1) = (decode[:, :2] @ np.array(p) + decode[:, 2] for p in ((-0.5, -0.5), (w - 0.5, h - 0.5)))
    return (x0, x1, y1, y0)


def _title(data: dict, what: str) -> str:
    c = data["clip"]
    where = c["sequence"] if c["source"] == "dataset" else Path(c["video"]).name
    ckpt = data["checkpoint"]
    return f"{what}\n{where} frame {c['frame']} · person {c['person']} · weights {ckpt['name']} ({ckpt['variant']})"


def offsets_figure(data: dict, clip: Clip):
    """Key and supporting frames with GTM arrows; deformable sampling points per joint; |offset| maps."""
    from matplotlib.lines import Line2D

    samp, gtm = data["sampling"], data["gtm_translation"]
    ncol = 6 if len(samp) > 1 else 1
    nrow = math.ceil(len(samp) / ncol)
    fig = _figure(15, 3.6 + 2.9 * nrow * (1 if len(samp) > 1 else 1.6) + 3.4)
    top, mid, bottom = fig.subfigures(3, 1, height_ratios=[3.6, 2.9 * nrow * (1 if len(samp) > 1 else 1.6), 3.4])
    fig.suptitle(_title(data, "FAMI-Pose alignment"), fontsize=12)
    # -- frames in temporal order, GTM translation as an arrow from the crop centre
    order = sorted(range(len(clip.positions)), key=lambda i: 0 if i == 0 else gtm["support_offsets"][i - 1])
    shifts = np.array(gtm["image_px"])
    width = clip.scale[0] * 200
    longest = float(np.abs(shifts).max(initial=0.0)) if len(shifts) else 0.0
    gain = next((g for g in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if g * longest >= 0.12 * width), 1000)
    gain = 1 if longest == 0 else gain
    axes = top.subplots(1, len(order))
    for ax, i in zip(axes, order):
        _show_crop(ax, clip, i)
        if i == 0:
            ax.set_title(f"key t (frame {clip.positions[0]})", fontsize=10, fontweight="bold")
            for k, kp in enumerate(data["keypoints"]):
                ax.plot(*kp["image_px"], "o", ms=4, color=JOINT_COLORS[k], mec="k", mew=0.5)
            if len(samp) == 1:
                color = JOINT_COLORS[JOINT_NAMES.index(samp[0]["joint"])]
                ax.plot(*samp[0]["position_image_px"], "*", ms=13, color=color, mec="k", mew=0.8)
            continue
        off = gtm["support_offsets"][i - 1]
        dx, dy = shifts[i - 1]
        cx, cy = clip.center
        ax.annotate("", xy=(cx + gain * dx, cy + gain * dy), xytext=(cx, cy),
                    arrowprops={"arrowstyle": "-|>", "color": "yellow", "lw": 2.2, "mutation_scale": 14})  # fmt: skip
        ax.plot(cx, cy, "o", color="yellow", ms=4, mec="k")
        ax.set_title(f"t{off:+d} (frame {clip.positions[i]})", fontsize=10)
        ax.set_xlabel(f"GTM shift ({dx:+.2f}, {dy:+.2f}) image px", fontsize=8)
    top.suptitle("Global transformation: each supporting frame's feature is shifted by the arrow to align with the key "
                 f"frame (from the crop centre{'' if gain == 1 else f'; arrows ×{gain}'}); dots: predicted joints",
                 fontsize=9)  # fmt: skip
    # -- deformable sampling points around each predicted joint
    axes = np.atleast_1d(mid.subplots(nrow, ncol, squeeze=False)).ravel()
    for ax, s in zip(axes, samp):
        k = JOINT_NAMES.index(s["joint"])
        _show_crop(ax, clip, 0, dim=0.75)
        pts_all = [s["position_image_px"]]
        largest = max(1e-12, max(float(np.abs(layer["modulation"]).max()) for layer in s["layers"]))
        for layer in s["layers"]:
            pts, mod = np.array(layer["points_image_px"]), np.array(layer["modulation"])
            size = 6 + 60 * np.abs(mod) / largest
            color = LAYER_COLORS[layer["layer"] - 1]
            ax.scatter(pts[mod >= 0, 0], pts[mod >= 0, 1], s=size[mod >= 0], c=color, alpha=0.8, lw=0)
            ax.scatter(pts[mod < 0, 0], pts[mod < 0, 1], s=size[mod < 0], facecolors="none", edgecolors=color, lw=0.8)
            pts_all.extend(pts.tolist())
        ax.plot(*s["position_image_px"], "*", ms=13, color=JOINT_COLORS[k], mec="k", mew=0.8)
        lo, hi = np.min(pts_all, 0), np.max(pts_all, 0)
        c, half = (lo + hi) / 2, max(hi - lo) / 2 * 1.15 + 2
        ax.set_xlim(c[0] - half, c[0] + half), ax.set_ylim(c[1] + half, c[1] - half)
        ax.set_title(s["joint"], fontsize=9, color=JOINT_COLORS[k], fontweight="bold")
    for ax in axes[len(samp):]:
        ax.set_axis_off()
    handles = [Line2D([], [], ls="", marker="o", color=c, label=f"layer {i + 1}") for i, c in enumerate(LAYER_COLORS)]
    handles += [Line2D([], [], ls="", marker="o", mfc="none", mec="grey", label="negative modulation"),
                Line2D([], [], ls="", marker="*", color="grey", mec="k", ms=10, label="predicted joint")]  # fmt: skip
    mid.legend(handles=handles, loc="outside lower center", ncol=6, fontsize=8, frameon=False)
    mid.suptitle(f"Local calibration: where each deformable layer samples for the predicted joint "
                 f"({data['dilation']}-dilated 3×3 kernel + learned offsets, all offset groups); "
                 "marker size ∝ |modulation|", fontsize=9)  # fmt: skip
    # -- offset magnitude per layer, one shared colour scale
    mags = [np.array(m) for m in data["offset_magnitude_feature_px"]]
    vmax = max(float(m.max()) for m in mags) or 1.0
    axes = bottom.subplots(1, 4)
    for i, (ax, m) in enumerate(zip(axes, mags)):
        _show_crop(ax, clip, 0, dim=0.6)
        im = ax.imshow(m, extent=_grid_extent(clip, *m.shape), cmap="viridis", vmin=0, vmax=vmax, alpha=0.75,
                       interpolation="nearest")  # fmt: skip
        ax.set_title(f"layer {i + 1}: mean |offset| (max {m.max():.2f})", fontsize=9, color=LAYER_COLORS[i])
        if len(samp) == 1:
            ax.plot(*samp[0]["position_image_px"], "*", ms=11, color="white", mec="k", mew=0.8)
    bottom.colorbar(im, ax=list(axes), label="mean |offset| (feature px)", shrink=0.9)
    bottom.suptitle("Offset magnitude per deformable layer: length of the learned offsets, averaged over the 3×3 taps "
                    "and offset groups, at each feature pixel (one colour scale)", fontsize=9)  # fmt: skip
    return fig


def mi_figure(data: dict, clip: Clip | None = None):
    """Grouped bars and a joints x terms table of the six MI terms, for both estimators."""
    from matplotlib.colors import Normalize
    from matplotlib.patches import Patch

    joints, ests = data["joints"], data["estimators"]
    terms = list(TERM_LABELS)
    n = len(joints)
    fig = _figure(max(10.0, 4 + 0.62 * n + 5), 1.2 + 2 * max(2.4, 1.2 + 0.28 * n))
    fig.suptitle(_title(data, "FAMI-Pose mutual-information terms per joint"), fontsize=12)
    axes = fig.subplots(2, 2, width_ratios=[max(2.0, 0.62 * n), 5])
    norm = Normalize(-1, 1)
    for row, (est, res) in enumerate(ests.items()):
        bars, table = axes[row]
        values = np.array([[np.nan if v is None else v for v in res["terms"][t]] for t in terms])  # (6, n)
        width = 0.8 / len(terms)
        for i, t in enumerate(terms):
            color, hatch = TERM_STYLE[t]
            bars.bar(np.arange(n) - 0.4 + width * (i + 0.5), np.nan_to_num(values[i]), width, color=color,
                     hatch=hatch, edgecolor="white" if hatch else color, lw=0, label=TERM_LABELS[t])  # fmt: skip
        bars.axhline(0, color="k", lw=0.6)
        bars.set_xticks(np.arange(n), joints, rotation=40, ha="right", fontsize=8)
        for tick, name in zip(bars.get_xticklabels(), joints):
            tick.set_color(JOINT_COLORS[JOINT_NAMES.index(name)])
        bars.set_ylabel("term value (unweighted)")
        bars.set_title(f"{est} estimator", fontsize=11, fontweight="bold", loc="left")
        bars.grid(axis="y", alpha=0.3)
        # table: colour = value / max |value| of its column, numbers = values
        total = np.array([np.nan if v is None else v for v in res["weighted_total"]])
        cells = np.vstack([values, total[None]]).T  # (n, 7)
        across = "column" if n > 1 else "row"  # one joint: compare the terms with each other
        peak = np.nanmax(np.abs(cells), axis=0 if n > 1 else 1, keepdims=True)
        scaled = cells / np.where(peak > 0, peak, 1)
        im = table.imshow(np.ma.masked_invalid(scaled), cmap="RdBu_r", norm=norm, aspect="auto")
        table.set_facecolor("#d9d9d9")
        for (r, c), v in np.ndenumerate(cells):
            txt = "no GT" if np.isnan(v) else f"{v:.3g}"
            table.text(c, r, txt, ha="center", va="center", fontsize=6.5,
                       color="white" if not np.isnan(v) and abs(scaled[r, c]) > 0.6 else "k")  # fmt: skip
        table.set_xticks(range(7), [TERM_LABELS[t] for t in terms] + ["weighted\ntotal"], fontsize=7, rotation=30)
        table.set_yticks(range(n), joints, fontsize=7)
        table.axvline(5.5, color="k", lw=1.5)
        table.set_title(f"value per joint (colour: ÷ {across} max |value|)", fontsize=9)
        fig.colorbar(im, ax=table, label=f"value / {across} max |value|", shrink=0.8)
    w = data["term_weights"]
    total = " ".join(f"{w[t]:+g}·T{t[-1]}" for t in terms)
    handles = [Patch(facecolor=TERM_STYLE[t][0], hatch=TERM_STYLE[t][1], edgecolor="white", label=TERM_LABELS[t])
               for t in terms]  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncol=6, fontsize=9, frameon=False,
               title=f"solid: feature–label, hatched: feature–feature (restricted to the joint's GT region); "
                     f"weighted total = {total}", title_fontsize=8)  # fmt: skip
    return fig


def heatmaps_figure(data: dict, clip: Clip):
    """Backbone-only vs FAMI-Pose heatmap per joint over the key crop, with the GT and the decoded peaks."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D

    joints, peaks = data["joints"], data["peaks"]
    maps = {"backbone": np.array(data["backbone_heatmaps"]), "fami": np.array(data["heatmaps"])}
    ncol = min(6, len(joints))
    nrow = math.ceil(len(joints) / ncol)
    one = len(joints) == 1
    fig = _figure(7.5 if one else 2.4 * ncol + 0.6, (4.2 if one else 5.0 * nrow) + 1.1)
    fig.suptitle(_title(data, "Backbone-only vs FAMI-Pose heatmaps"), fontsize=12)
    *rows, key = fig.subfigures(nrow + 1, 1, height_ratios=[4.2 if one else 5.0] * nrow + [1.1])
    axes = [r.subplots(1 if one else 2, 2 if one else ncol, squeeze=False) for r in rows]
    grey = clip.crops[0].mean(-1, keepdims=True).repeat(3, -1).astype(np.uint8)  # key crop in grey
    crop = Clip(**{**vars(clip), "crops": grey[None]})
    for j, (name, row) in enumerate(zip(joints, peaks)):
        k = JOINT_NAMES.index(name)
        for m, model in enumerate(("backbone", "fami")):
            ax = axes[0][0, m] if one else axes[j // ncol][m, j % ncol]
            _show_crop(ax, crop, 0, dim=0.8)
            hm = maps[model][j]
            rel = np.clip(hm / hm.max(), 0, 1) if hm.max() > 0 else np.zeros_like(hm)  # each panel ÷ its peak
            rgba = colormaps["inferno"](rel)
            rgba[..., 3] = 0.85 * rel**0.6  # transparent where the heatmap is low
            ax.imshow(rgba, extent=_grid_extent(clip, *hm.shape), interpolation="bilinear")
            p = row[model]
            ax.plot(*p["image_px"], "x", color="cyan", ms=8, mew=2)
            if row["gt_image_px"] is not None:
                ax.plot(*row["gt_image_px"], "+", color="lime", ms=11, mew=2)
            err = "" if p["error_px"] is None else f", err {p['error_px']:.1f} px"
            label = "backbone only" if model == "backbone" else "FAMI-Pose"
            head = f"{name}\n" if m == 0 or one else ""
            ax.set_title(f"{head}{label}: peak {p['score']:.2f}{err}", fontsize=8, color=JOINT_COLORS[k])
            ax.tick_params(labelsize=6)
    if not one:
        for ax in axes[-1][:, len(joints) - (nrow - 1) * ncol:].ravel():
            ax.set_axis_off()
    bar_ax, legend_ax = key.subplots(1, 2, width_ratios=[1, 1])
    cbar = key.colorbar(ScalarMappable(Normalize(0, 1), "inferno"), cax=bar_ax, orientation="horizontal")
    cbar.set_label("heatmap ÷ the panel's peak (title: peak value); low and negative values transparent", fontsize=8)
    legend_ax.set_axis_off()
    handles = [Line2D([], [], ls="", marker="+", color="lime", mew=2, ms=10, label="ground truth"),
               Line2D([], [], ls="", marker="x", color="cyan", mew=2, ms=8, label="decoded peak")]
    legend_ax.legend(handles=handles, loc="center", ncol=2, fontsize=9, frameon=False,
                     title="axes: image pixels; err: distance to the ground truth", title_fontsize=8)  # fmt: skip
    return fig
