"""Greedy IoU (+ OKS) tracking: a track id for every person box, frame after frame.

Each frame's boxes are matched one-to-one to the live tracks by a greedy pass over their
similarities, highest first: the box IoU, or, when both the box and the track carry a pose, the
mean of IoU and OKS (object keypoint similarity with COCO's sigmas over the joints both poses are
confident about). A pair below ``threshold`` never matches. Unmatched boxes start new tracks;
tracks unseen for more than ``max_age`` frames are dropped. One-to-one matching makes track ids
unique within a frame, which the PoseTrack evaluator requires.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from famicli.errors import ConfigError
from famicli.keypoints import OKS_SIGMAS


@dataclass
class _Track:
    track_id: int
    box: np.ndarray  # (4,) x, y, w, h when last seen
    pose: np.ndarray | None  # (K, 3) x, y, score when last seen
    unseen: int = 0  # frames since last matched


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4), boxes as x, y, w, h: (N, M)."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def pose_oks(a: np.ndarray, b: np.ndarray, area: float, min_score: float = 0.2) -> float:
    """OKS between two poses (K, 3) = (x, y, score) over the joints both score >= ``min_score``;
    0 when there is none. ``area`` is the object area (COCO's s^2)."""
    both = (a[:, 2] >= min_score) & (b[:, 2] >= min_score)
    if not both.any() or area <= 0:
        return 0.0
    k2 = (2 * np.asarray(OKS_SIGMAS[: len(a)])) ** 2
    d2 = ((a[:, :2] - b[:, :2]) ** 2).sum(-1)
    return float(np.exp(-d2 / (2 * area * k2 + np.finfo(float).eps))[both].mean())


class GreedyTracker:
    """Assigns track ids frame by frame (call :meth:`update` once per frame, in order).

    Args:
        threshold: minimum similarity (IoU, or mean of IoU and OKS) for a box to continue a track.
        max_age: frames a track may go unmatched before it is dropped.
        oks_weight: weight of OKS against IoU when both poses are known (0: IoU only).
        min_score: joints scoring below this are left out of OKS.
    """

    def __init__(self, threshold: float = 0.3, max_age: int = 30, oks_weight: float = 0.5, min_score: float = 0.2):
        if not 0 <= threshold <= 1 or max_age < 0 or not 0 <= oks_weight <= 1:
            raise ConfigError(
                f"tracker: threshold {threshold} and oks_weight {oks_weight} must be in [0, 1], max_age {max_age} >= 0"
            )
        self.threshold, self.max_age, self.oks_weight, self.min_score = threshold, max_age, oks_weight, min_score
        self.tracks: list[_Track] = []
        self.next_id = 0

    def similarity(self, boxes: np.ndarray, poses: np.ndarray | None) -> np.ndarray:
        """(N, M) similarity of ``boxes`` (N, 4) (with ``poses`` (N, K, 3)) to the live tracks."""
        sim = box_iou(boxes, np.array([t.box for t in self.tracks]).reshape(-1, 4))
        if poses is None or self.oks_weight == 0:
            return sim
        for j, track in enumerate(self.tracks):
            if track.pose is None:
                continue
            for i in range(len(boxes)):
                area = 0.5 * (boxes[i, 2] * boxes[i, 3] + track.box[2] * track.box[3])
                oks = pose_oks(poses[i], track.pose, area, self.min_score)
                sim[i, j] = (1 - self.oks_weight) * sim[i, j] + self.oks_weight * oks
        return sim

    def update(self, boxes: np.ndarray, poses: np.ndarray | None = None) -> np.ndarray:
        """Track ids (N,) int64 for this frame's ``boxes`` (N, 4) x, y, w, h (and ``poses`` (N, K, 3))."""
        boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
        ids = np.full(len(boxes), -1, dtype=np.int64)
        if len(boxes) and self.tracks:
            sim = self.similarity(boxes, poses)
            # greedy: highest similarity first; stable order breaks ties by box, then track index
            for flat in np.argsort(-sim, axis=None, kind="stable"):
                i, j = divmod(int(flat), sim.shape[1])
                if sim[i, j] < self.threshold or sim[i, j] <= 0:
                    break
                if ids[i] >= 0 or self.tracks[j].unseen < 0:
                    continue
                ids[i] = self.tracks[j].track_id
                self.tracks[j].unseen = -1  # matched in this frame
                self.tracks[j].box = boxes[i]
                self.tracks[j].pose = None if poses is None else poses[i]
        for i in np.flatnonzero(ids < 0):
            ids[i] = self.next_id
            self.tracks.append(_Track(self.next_id, boxes[i], None if poses is None else poses[i], -1))
            self.next_id += 1
        for t in self.tracks:
            t.unseen += 1
        self.tracks = [t for t in self.tracks if t.unseen <= self.max_age]
        return ids
