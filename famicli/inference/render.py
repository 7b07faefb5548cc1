"""Overlays: each person's box, track id and skeleton drawn on a video frame, coloured by track."""

from __future__ import annotations

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


def draw_poses(frame: np.ndarray, boxes, track_ids, poses, min_score: float = 0.2) -> np.ndarray:
    """A copy of ``frame`` (H, W, 3) uint8 with each person's box, track id and skeleton drawn in the
    track's colour; joints scoring below ``min_score`` are left out.

    Args:
        boxes: (N, 4) x, y, w, h. track_ids: (N,). poses: (N, 17, 3) x, y, score.
    """
    from PIL import Image, ImageDraw

    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    radius = max(2.0, min(frame.shape[:2]) / 160)  # at least 2 px: visible on small (320x240) videos
    for box, tid, pose in zip(boxes, track_ids, poses, strict=True):
        colour = TRACK_COLOURS[int(tid) % len(TRACK_COLOURS)]
        x, y, w, h = (float(v) for v in box)
        draw.rectangle([x, y, x + w, y + h], outline=colour, width=max(1, int(radius) // 2))
        draw.text((x + 2, y + 1), str(int(tid)), fill=colour)
        ok = pose[:, 2] >= min_score
        for a, b in LIMBS:
            if ok[a] and ok[b]:
                draw.line([tuple(pose[a, :2]), tuple(pose[b, :2])], fill=colour, width=max(2, int(radius)))
        for j in np.flatnonzero(ok):
            px, py = pose[j, :2]
            draw.ellipse([px - radius, py - radius, px + radius, py + radius], fill=colour)
    return np.asarray(image)
