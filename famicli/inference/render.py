"""Overlays: each person's box, track id and skeleton drawn on a video frame, coloured by track.

Everything scales with the frame: at 320x240 lines are 1-2 px and the id is set in 16 px type, at
1920x1080 lines are 4-6 px and the type 54 px. Coordinates are clipped to a margin around the frame
before PIL sees them, so off-frame or absurd values (1e6 px) draw what is visible and never overflow.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from famicli.keypoints import LIMBS

# The colours tracks are drawn with (Tableau 10).
TRACK_COLOURS = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)


def draw_poses(
    frame: np.ndarray,
    boxes,
    track_ids,
    poses,
    *,
    limbs: tuple[tuple[int, int], ...] = LIMBS,
    min_score: float = 0.2,
) -> np.ndarray:
    """A copy of ``frame`` (H, W, 3) uint8 with each person's box, track id and skeleton drawn in the
    track's colour; joints scoring below ``min_score`` (or not finite) are left out.

    Args:
        boxes: (N, 4) x, y, w, h in pixels. track_ids: (N,). poses: (N, K, 3) x, y, score.
        limbs: the skeleton, pairs of 0-based joint indices (``famicli.keypoints.LIMBS`` for
            PoseTrack-schema models, ``COCO_LIMBS`` for COCO-schema ones).
        min_score: joints scoring below it are not drawn, nor the limbs that touch them.
    """
    from PIL import Image, ImageDraw

    height, width = frame.shape[:2]
    side = min(height, width)
    box_width = max(1, round(side / 300))  # 1 px at 240p, 4 px at 1080p
    limb_width = max(2, round(side / 180))  # 2 px at 240p, 6 px at 1080p
    radius = max(2.0, side / 150)  # 2 px at 240p, 7 px at 1080p
    font = _font(max(16, round(side / 20)))  # 16 px at 240p, 54 px at 1080p
    # Coordinates are clipped to the frame grown by a margin: far enough that clipped lines start
    # off-frame, near enough that PIL's integer arithmetic cannot overflow.
    margin = float(max(height, width))
    lo, hi = np.array([-margin, -margin]), np.array([width + margin, height + margin])

    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return frame.copy()
    poses = np.asarray(poses, dtype=np.float64)
    limbs_ab = np.asarray(limbs, dtype=np.intp).reshape(-1, 2)
    ok = (poses[..., 2] >= min_score) & np.isfinite(poses[..., :2]).all(axis=-1)  # (N, K)
    drawn = ok & (poses[..., :2] >= lo).all(axis=-1) & (poses[..., :2] <= hi).all(axis=-1)
    # (N, L, 2) limb ends -> clipped to the margin box; (N, L) whether any of it is left
    starts, ends, limb_ok = _clip_segments(poses[:, limbs_ab[:, 0], :2], poses[:, limbs_ab[:, 1], :2], lo, hi)
    limb_ok &= ok[:, limbs_ab[:, 0]] & ok[:, limbs_ab[:, 1]]

    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    for i, tid in enumerate(track_ids):
        colour = TRACK_COLOURS[int(tid) % len(TRACK_COLOURS)]
        for (xa, ya), (xb, yb) in zip(starts[i, limb_ok[i]].tolist(), ends[i, limb_ok[i]].tolist(), strict=True):
            draw.line([(xa, ya), (xb, yb)], fill=colour, width=limb_width)
        for px, py in poses[i, drawn[i], :2].tolist():
            draw.ellipse([px - radius, py - radius, px + radius, py + radius], fill=colour)
    # Boxes and labels last, so that no skeleton covers an id.
    for box, tid in zip(boxes, track_ids, strict=True):
        if not np.isfinite(box).all():
            continue
        colour = TRACK_COLOURS[int(tid) % len(TRACK_COLOURS)]
        x0, y0 = np.clip(box[:2], lo, hi)
        x1, y1 = np.clip(box[:2] + box[2:], lo, hi)
        x0, x1 = min(x0, x1), max(x0, x1)
        y0, y1 = min(y0, y1), max(y0, y1)
        if x1 < 0 or y1 < 0 or x0 > width - 1 or y0 > height - 1:
            continue  # nothing of it in the frame
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=box_width)
        _label(draw, font, str(int(tid)), colour, x0, y0, width, height)
    return np.asarray(image)


def _label(draw, font, text: str, colour, x0: float, y0: float, width: int, height: int) -> None:
    """``text`` on a filled box in the track's colour above the box's top-left corner, or inside the
    box when it touches the frame's top edge; always inside the frame."""
    left, top, right, bottom = font.getbbox(text)
    pad = max(2, (bottom - top) // 5)
    w, h = right - left + 2 * pad, bottom - top + 2 * pad
    lx = min(max(x0, 0), width - w)
    ly = y0 - h if y0 - h >= 0 else max(y0, 0)
    ly = min(ly, height - h)
    draw.rectangle([lx, ly, lx + w - 1, ly + h - 1], fill=colour)
    ink = (0, 0, 0) if 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2] > 150 else (255, 255, 255)
    draw.text((lx + pad - left, ly + pad - top), text, fill=ink, font=font)


@lru_cache(maxsize=8)
def _font(size: int):
    """PIL's default font at ``size`` px (scalable from Pillow 10.1); its ~11 px bitmap font where
    Pillow is older or built without FreeType."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def _clip_segments(a: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Liang-Barsky: the segments ``a``-``b`` (..., 2) cut to the rectangle ``lo``-``hi`` (2,).

    Returns the cut ends (..., 2), (..., 2) and (...,) whether anything of each segment is left in it;
    where nothing is (or an end is not finite), the ends are meaningless.
    """
    d = b - a
    t0, t1 = np.zeros(a.shape[:-1]), np.ones(a.shape[:-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        for p, q in ((-d, a - lo), (d, hi - a)):  # a + t d >= lo, a + t d <= hi, per axis
            for axis in range(2):
                pa, qa = p[..., axis], q[..., axis]
                t = qa / pa
                t0 = np.where(pa < 0, np.maximum(t0, t), t0)
                t1 = np.where(pa > 0, np.minimum(t1, t), t1)
                t0 = np.where((pa == 0) & (qa < 0), 2.0, t0)  # parallel to this edge and outside it
    keep = np.isfinite(a).all(axis=-1) & np.isfinite(b).all(axis=-1) & (t0 <= t1)
    return a + t0[..., None] * d, a + t1[..., None] * d, keep
