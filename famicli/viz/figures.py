"""Figures of FAMI-Pose's inner workings (``famipose viz``): alignment offsets, MI terms, heatmaps.

Each ``*_figure(data, clip)`` draws only from the numbers :mod:`famicli.viz.inspect` computed (the
``--json`` output) and the clip's crops. Crops are drawn in image coordinates, so every panel's axes
are image pixels. matplotlib runs headless (Agg); files carry no dates, so fixed inputs give identical
files.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from famicli.data.clip import Clip
from famicli.errors import ConfigError
from famicli.keypoints import JOINT_NAMES

FORMATS = (".png", ".svg", ".pdf")
LAYER_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")  # deformable layers 1-4
# One colour per joint, used for joint names and markers in every figure: left side cool, right warm.
# One colour per joint, used for joint names and markers in every figure: left side cool, right warm.
JOINT_COLORS = (
    "#404040",
    "#7f7f7f",
    "#8c8c00",
    "#9467bd",
    "#e377c2",
    "#1f77b4",
    "#d62728",
    "#17becf",
    "#ff7f0e",
    "#2ca02c",
    "#8c564b",
    "#393b79",
    "#ad494a",
    "#6b6ecf",
    "#d6616b",
    "#637939",
    "#843c39",
)
# MI terms: colour by the feature whose information is measured, solid = feature-label, hatched = feature-feature.
# MI terms: colour by the feature whose information is measured, solid = feature-label, hatched = feature-feature.
TERM_STYLE = {
    "mi_1": ("#1f77b4", ""),
    "mi_2": ("#1f77b4", "//"),
    "mi_3": ("#ff7f0e", ""),
    "mi_4": ("#ff7f0e", "//"),
    "mi_5": ("#2ca02c", ""),
    "mi_6": ("#2ca02c", "//"),
}
TERM_LABELS = {
    "mi_1": r"$T_1\ (\tilde z, \hat Y)$",
    "mi_2": r"$T_2\ (z_t, \tilde z)$",
    "mi_3": r"$T_3\ (z_{sup}, \hat Y)$",
    "mi_4": r"$T_4\ (z_{sup}, \tilde z)$",
    "mi_5": r"$T_5\ (z_t, \hat Y)$",
    "mi_6": r"$T_6\ (z_t, \tilde z)$",
}


def check_output(path: Path) -> None:
    """Raises ConfigError unless ``path`` ends in .png, .svg or .pdf."""
    if Path(path).suffix.lower() not in FORMATS:
        raise ConfigError(
            f"--out {path}: unsupported format {Path(path).suffix or '(none)'!r}; choose from: {', '.join(FORMATS)}"
        )


def feature_to_image(clip: Clip, heatmap_size: tuple[int, int]) -> np.ndarray:
    """2x3 matrix feature/heatmap px -> image px."""
    from famicli.data.transforms import decode_matrix

    return decode_matrix(clip.center, clip.scale, heatmap_size, clip.crop)


def _crop_to_image(clip: Clip) -> np.ndarray:
    """2x3 matrix crop (input) px -> image px."""
    from famicli.data.transforms import input_matrix, invert_affine

    return invert_affine(input_matrix(clip.center, clip.scale, 0.0, clip.crops.shape[1:3], clip.crop))


# ---------------------------------------------------------------------------------------- drawing
def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` atomically as PNG, SVG or PDF (by suffix), without dates: same figure, same bytes."""
    import matplotlib

    from famicli.io import atomic_path

    check_output(path)
    fmt = Path(path).suffix.lower().lstrip(".")
    metadata = {
        "png": {"Software": None},
        "svg": {"Date": None, "Creator": None},
        "pdf": {"CreationDate": None, "ModDate": None, "Creator": None, "Producer": None},
    }[fmt]
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
    decode = feature_to_image(clip, (h, w))
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
        ax.annotate(
            "",
            xy=(cx + gain * dx, cy + gain * dy),
            xytext=(cx, cy),
            arrowprops={"arrowstyle": "-|>", "color": "yellow", "lw": 2.2, "mutation_scale": 14},
        )
        ax.plot(cx, cy, "o", color="yellow", ms=4, mec="k")
        ax.set_title(f"t{off:+d} (frame {clip.positions[i]})", fontsize=10)
        ax.set_xlabel(f"GTM shift ({dx:+.2f}, {dy:+.2f}) image px", fontsize=8)
    top.suptitle(
        "Global transformation: each supporting frame's feature is shifted by the arrow to align with the key "
        f"frame (from the crop centre{'' if gain == 1 else f'; arrows ×{gain}'}); dots: predicted joints",
        fontsize=9,
    )
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
    for ax in axes[len(samp) :]:
        ax.set_axis_off()
    handles = [Line2D([], [], ls="", marker="o", color=c, label=f"layer {i + 1}") for i, c in enumerate(LAYER_COLORS)]
    handles += [
        Line2D([], [], ls="", marker="o", mfc="none", mec="grey", label="negative modulation"),
        Line2D([], [], ls="", marker="*", color="grey", mec="k", ms=10, label="predicted joint"),
    ]
    mid.legend(handles=handles, loc="outside lower center", ncol=6, fontsize=8, frameon=False)
    mid.suptitle(
        f"Local calibration: where each deformable layer samples for the predicted joint "
        f"({data['dilation']}-dilated 3×3 kernel + learned offsets, all offset groups); "
        "marker size ∝ |modulation|",
        fontsize=9,
    )
    # -- offset magnitude per layer, one shared colour scale
    mags = [np.array(m) for m in data["offset_magnitude_feature_px"]]
    vmax = max(float(m.max()) for m in mags) or 1.0
    axes = bottom.subplots(1, 4)
    for i, (ax, m) in enumerate(zip(axes, mags)):
        _show_crop(ax, clip, 0, dim=0.6)
        im = ax.imshow(
            m,
            extent=_grid_extent(clip, *m.shape),
            cmap="viridis",
            vmin=0,
            vmax=vmax,
            alpha=0.75,
            interpolation="nearest",
        )
        ax.set_title(f"layer {i + 1}: mean |offset| (max {m.max():.2f})", fontsize=9, color=LAYER_COLORS[i])
        if len(samp) == 1:
            ax.plot(*samp[0]["position_image_px"], "*", ms=11, color="white", mec="k", mew=0.8)
    bottom.colorbar(im, ax=list(axes), label="mean |offset| (feature px)", shrink=0.9)
    bottom.suptitle(
        "Offset magnitude per deformable layer: length of the learned offsets, averaged over the 3×3 taps "
        "and offset groups, at each feature pixel (one colour scale)",
        fontsize=9,
    )
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
            bars.bar(
                np.arange(n) - 0.4 + width * (i + 0.5),
                np.nan_to_num(values[i]),
                width,
                color=color,
                hatch=hatch,
                edgecolor="white" if hatch else color,
                lw=0,
                label=TERM_LABELS[t],
            )
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
            table.text(
                c,
                r,
                txt,
                ha="center",
                va="center",
                fontsize=6.5,
                color="white" if not np.isnan(v) and abs(scaled[r, c]) > 0.6 else "k",
            )
        table.set_xticks(range(7), [TERM_LABELS[t] for t in terms] + ["weighted\ntotal"], fontsize=7, rotation=30)
        table.set_yticks(range(n), joints, fontsize=7)
        table.axvline(5.5, color="k", lw=1.5)
        table.set_title(f"value per joint (colour: ÷ {across} max |value|)", fontsize=9)
        fig.colorbar(im, ax=table, label=f"value / {across} max |value|", shrink=0.8)
    w = data["term_weights"]
    total = " ".join(f"{w[t]:+g}·T{t[-1]}" for t in terms)
    handles = [
        Patch(facecolor=TERM_STYLE[t][0], hatch=TERM_STYLE[t][1], edgecolor="white", label=TERM_LABELS[t])
        for t in terms
    ]
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=6,
        fontsize=9,
        frameon=False,
        title=f"solid: feature–label, hatched: feature–feature (restricted to the joint's GT region); "
        f"weighted total = {total}",
        title_fontsize=8,
    )
    return fig


def heatmaps_figure(data: dict, clip: Clip):
    """Backbone-only vs FAMI-Pose heatmap per joint over the key crop, with the GT and the decoded peaks."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D

    joints, peaks = data["joints"], data["peaks"]
    maps = {"backbone": np.array(data["backbone_heatmaps"])}
    if "heatmaps" in data:
        maps["fami"] = np.array(data["heatmaps"])
    names = data.get("keypoints", JOINT_NAMES)  # the model's schema (COCO's eyes for a pose-HRNet)
    ncol = min(6, len(joints))
    nrow = math.ceil(len(joints) / ncol)
    one = len(joints) == 1
    m_rows = len(maps)  # panels per joint: the backbone's, and FAMI-Pose's unless it runs alone
    height = (4.2 if one else 2.5 * m_rows * nrow) + 1.1
    fig = _figure(3.75 * m_rows if one else 2.4 * ncol + 0.6, height)
    title = "Backbone-only vs FAMI-Pose heatmaps" if "fami" in maps else "Single-frame HRNet heatmaps"
    fig.suptitle(_title(data, title), fontsize=12)
    *rows, key = fig.subfigures(nrow + 1, 1, height_ratios=[4.2 if one else 2.5 * m_rows] * nrow + [1.1])
    axes = [r.subplots(1 if one else m_rows, m_rows if one else ncol, squeeze=False) for r in rows]
    grey = clip.crops[0].mean(-1, keepdims=True).repeat(3, -1).astype(np.uint8)  # key crop in grey
    crop = Clip(**{**vars(clip), "crops": grey[None]})
    for j, (name, row) in enumerate(zip(joints, peaks)):
        k = names.index(name)
        for m, model in enumerate(maps):
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
        for ax in axes[-1][:, len(joints) - (nrow - 1) * ncol :].ravel():
            ax.set_axis_off()
    bar_ax, legend_ax = key.subplots(1, 2, width_ratios=[1, 1])
    cbar = key.colorbar(ScalarMappable(Normalize(0, 1), "inferno"), cax=bar_ax, orientation="horizontal")
    cbar.set_label("heatmap ÷ the panel's peak (title: peak value); low and negative values transparent", fontsize=8)
    legend_ax.set_axis_off()
    handles = [
        Line2D([], [], ls="", marker="+", color="lime", mew=2, ms=10, label="ground truth"),
        Line2D([], [], ls="", marker="x", color="cyan", mew=2, ms=8, label="decoded peak"),
    ]
    legend_ax.legend(
        handles=handles,
        loc="center",
        ncol=2,
        fontsize=9,
        frameon=False,
        title="axes: image pixels; err: distance to the ground truth",
        title_fontsize=8,
    )
    return fig
