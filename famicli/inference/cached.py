"""Cached streaming inference (``famipose predict --mode fast``): each (track, frame) feature once.

Exact mode crops the window of key frame t with t's own box, so every frame goes through the
backbone five times per person: once as a key frame and once as a support of each of its four
neighbours. Here the crops are made shareable:

1. boxes are tracked *before* the poses, frame by frame as frames arrive (the box source's own
   track ids, e.g. ground truth, or :class:`famicli.inference.track.GreedyTracker` on IoU alone);
2. the video is cut into chunks of ``chunk`` consecutive frames, and each crop the chunk's windows
   need is made once, with one of two sharing schemes (``share``):

   - ``own`` (the default): every frame is cut with the person's own box in that frame. A key
     frame's crop is exact mode's; a supporting frame's is the same track's own crop there, or the
     frame cut with the key frame's box where the track has no box in it (exact mode's crop). The
     alignment modules see the box motion removed; measured, this loses no accuracy;
   - ``union``: each track's key frames in a chunk form runs that share one crop box, the union of
     the run's boxes (then aspect 3:4 and x1.25 as in training,
     :func:`famicli.data.transforms.box_to_center_scale`); a run ends where the union's centre would
     lie more than ``max_shift`` box heights from one of its boxes' centres. Larger, off-centre key
     crops cost accuracy (docs/predict.md, "Fast mode");
3. every crop goes through the backbone once (the official padding at the video's ends:
   :func:`famicli.data.windows.support_positions`);
4. each key frame's heatmaps come from its own feature and its supporting features through the
   temporal modules (``FamiPose.forward_features``), decoded with the key crop's centre and scale.

A person that stands still keeps one box, and the result is exact mode's to float rounding with
either scheme. Frames in a chunk's 2-frame margins are cropped again for the neighbouring chunk: at
best (chunk + 4) / chunk backbone passes per key frame instead of 5 (``union`` at worst, with
``max_shift`` 0 and everybody moving, exact mode's crops). The accuracy and speed are measured by
``benchmarks/fast_mode.py``.

Memory stays bounded: a chunk is processed once its last frame's window has arrived, so at most
``chunk + before + after`` frames (plus the chunk's crops and features) are held.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from famicli.data.windows import support_positions
from famicli.inference.detect import Detections
from famicli.inference.stream import FramePoses, Timer
from famicli.inference.track import GreedyTracker

if TYPE_CHECKING:
    from famicli.inference.predictor import PredictConfig  # which imports this module

# default largest offset of a shared crop's centre from a person's own, in box heights (measured:
# docs/predict.md, "Fast mode")
MAX_SHIFT = 0.02
SHARES = ("own", "union")  # how crops are shared: see the module docstring
SHARE = "own"
CHUNK = 16  # default frames per chunk (crops per key frame: (CHUNK + 4) / CHUNK at most with share "own")


def union_box(boxes: np.ndarray) -> np.ndarray:
    """The smallest box (x, y, w, h) holding every box of ``boxes`` (N, 4) x, y, w, h: (4,)."""
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    lo = boxes[:, :2].min(axis=0)
    hi = (boxes[:, :2] + boxes[:, 2:]).max(axis=0)
    return np.concatenate([lo, hi - lo])  # (2,) + (2,) -> (4,)


class CachedPipeline:
    """The streaming loop of fast mode, with :class:`famicli.inference.stream.Pipeline`'s interface:
    push decoded frames in order, then :meth:`finish`.

    Args:
        estimator: a :class:`famicli.inference.predictor.PoseEstimator` (``crop_box``, ``warp``,
            ``features``, ``from_features``).
        boxes: a box source called as ``boxes(t, frame)``.
        tracker: assigns track ids, on IoU alone, when the boxes carry none.
        cfg: the options (validated when made); read here: ``chunk`` (frames per chunk), ``share``
            (``own``: each (track, frame) cut with its own box; ``union``: a track's key frames of a
            chunk in runs sharing one box, within ``max_shift``) and ``batch_size`` (key frames per
            pass through the temporal modules; the backbone takes ``batch_size * (1 + S)`` crops per
            pass, as in exact mode).
        on_frame: called as ``on_frame(t, frame, poses)`` for every frame, in order.
    """

    def __init__(
        self,
        estimator,
        boxes,
        tracker: GreedyTracker,
        cfg: PredictConfig,
        on_frame: Callable | None = None,
        timer: Timer | None = None,
    ):
        window = estimator.cfg
        self.estimator, self.boxes, self.tracker = estimator, boxes, tracker
        self.offsets, self.padding = tuple(window.offsets), window.padding
        self.before, self.after = max(0, -min(self.offsets)), max(0, max(self.offsets))
        self.chunk, self.batch_size, self.max_shift, self.share = cfg.chunk, cfg.batch_size, cfg.max_shift, cfg.share
        self.on_frame, self.timer = on_frame, timer or Timer()
        self.frames: dict[int, np.ndarray | None] = {}
        self.dets: dict[int, tuple[Detections, np.ndarray]] = {}  # frame -> (boxes, track ids)
        self.results: list[FramePoses] = []
        self.next_start = 0  # first frame of the next chunk
        self.max_buffered = 0
        self.backbone_crops = 0  # crops that went through the backbone
        self.key_frames = 0  # person key frames predicted

    def needed(self, keys_with_boxes: set[int]) -> Callable[[int], bool]:
        """For sources whose boxes are known in advance: is frame i in the window of a key with boxes?"""
        return lambda i: any(k in keys_with_boxes for k in range(i - self.after, i + self.before + 1))

    def push(self, t: int, frame: np.ndarray | None) -> None:
        """Frame t (in order from 0); None for a frame no window needs."""
        self.frames[t] = frame
        self.max_buffered = max(self.max_buffered, sum(f is not None for f in self.frames.values()))
        dets = Detections.empty()
        if frame is not None:
            with self.timer("detect"):
                dets = self.boxes(t, frame)
        with self.timer("track"):
            ids = dets.track_ids if dets.track_ids is not None else self.tracker.update(dets.boxes)
        self.dets[t] = (dets, np.asarray(ids, np.int64).reshape(-1))
        # the chunk is ready once the window of its last frame has arrived
        while self.next_start + self.chunk - 1 + self.after <= t:
            self._process(self.next_start, self.next_start + self.chunk, t + 1)

    def finish(self, n_frames: int) -> list[FramePoses]:
        """Process the last chunks of a video of ``n_frames`` frames; return every frame's poses."""
        while self.next_start < n_frames:
            self._process(self.next_start, min(self.next_start + self.chunk, n_frames), n_frames)
        return self.results

    def _process(self, start: int, end: int, n_known: int) -> None:
        """Predict the key frames start..end-1; frames up to ``n_known - 1`` have arrived (support
        positions only look ``after`` frames ahead, so they are final)."""
        est = self.estimator
        crops, rows_t, rows_s, centers, scales, where = [], [], [], [], [], []
        with self.timer("crop"):
            if self.share == "own":
                self._own_crops(start, end, n_known, crops, rows_t, rows_s, centers, scales, where)
            else:
                self._union_crops(start, end, n_known, crops, rows_t, rows_s, centers, scales, where)
        poses = {k: self._empty(k) for k in range(start, end)}
        if crops:
            with self.timer("pose"):
                per_pass = self.batch_size * (1 + len(self.offsets))
                parts = [est.features(np.stack(crops[i : i + per_pass])) for i in range(0, len(crops), per_pass)]
                feats = parts[0] if len(parts) == 1 else _cat(parts)  # (N, C, h, w), one row per crop
                rows_t, rows_s = np.array(rows_t), np.array(rows_s).reshape(len(rows_t), len(self.offsets))
                centers, scales = np.array(centers), np.array(scales)
                for i in range(0, len(rows_t), self.batch_size):
                    sl = slice(i, i + self.batch_size)
                    # (B,) rows -> (B, C, h, w); (B, S) rows -> (B, S, C, h, w)
                    final, backbone = est.from_features(feats[rows_t[sl]], feats[rows_s[sl]], centers[sl], scales[sl])
                    for (k, j), kp, bb in zip(where[sl], final, backbone, strict=True):
                        poses[k].keypoints[j], poses[k].backbone[j] = kp, bb
            self.backbone_crops += len(crops)
            self.key_frames += len(rows_t)
        for k in range(start, end):
            self.results.append(poses[k])
            if self.on_frame is not None:
                self.on_frame(k, self.frames.get(k), poses[k])
        self.next_start = end
        for p in [p for p in self.frames if p < end - self.before]:
            del self.frames[p]
        for p in [p for p in self.dets if p < end - self.before]:  # the next chunk's supports need the rest
            del self.dets[p]

    def _union_crops(
        self,
        start: int,
        end: int,
        n_known: int,
        crops: list,
        rows_t: list,
        rows_s: list,
        centers: list,
        scales: list,
        where: list,
    ) -> None:
        """``share="union"``: each track's key frames of the chunk in runs sharing one crop box
        (:meth:`_groups`); each frame a run's windows need is cropped once with it."""
        est = self.estimator
        # persons of the chunk per track: (frame, index in the frame's boxes)
        tracks: dict[tuple, list[tuple[int, int]]] = {}
        for k in range(start, end):
            for i, tid in enumerate(self.dets[k][1]):
                key = (int(tid),)
                if any(k == f for f, _ in tracks.get(key, [])):  # a repeated id in one frame: on its own
                    key = (int(tid), k, i)
                tracks.setdefault(key, []).append((k, i))
        for members, box in (g for m in tracks.values() for g in self._groups(m)):
            first = self.frames[members[0][0]]
            center, scale = est.crop_box(box, first.shape[1], first.shape[0])
            windows = [(k, support_positions(k, n_known, self.offsets, self.padding)) for k, _ in members]
            positions = sorted({p for k, sup in windows for p in (k, *sup)})
            row = {p: len(crops) + j for j, p in enumerate(positions)}
            crops.extend(est.warp([self.frames[p] for p in positions], center, scale))
            for (k, sup), (_, i) in zip(windows, members, strict=True):
                rows_t.append(row[k])
                rows_s.append([row[p] for p in sup])
                centers.append(center)
                scales.append(scale)
                where.append((k, i))

    def _own_crops(
        self,
        start: int,
        end: int,
        n_known: int,
        crops: list,
        rows_t: list,
        rows_s: list,
        centers: list,
        scales: list,
        where: list,
    ) -> None:
        """``share="own"``: every (frame, box) is cropped once with that box. A key frame's crop is its
        own box's (exact mode's key crop); a supporting frame's is the same track's own crop there, or,
        where the track has no box in that frame, the frame cut with the key frame's box (exact mode's)."""
        est = self.estimator
        row: dict[tuple, tuple] = {}  # (frame, box) -> (row in crops, crop centre, crop scale)

        def crop(p: int, box: np.ndarray) -> tuple:
            key = (p, *np.asarray(box, dtype=float).tolist())
            if key not in row:
                frame = self.frames[p]
                center, scale = est.crop_box(box, frame.shape[1], frame.shape[0])
                row[key] = (len(crops), center, scale)
                crops.extend(est.warp([frame], center, scale))
            return row[key]

        for k in range(start, end):
            dets, ids = self.dets[k]
            for i, tid in enumerate(ids):
                box = np.asarray(dets.boxes[i], dtype=float)
                key_row, center, scale = crop(k, box)
                rows_t.append(key_row)
                rows_s.append(
                    [
                        crop(p, self._track_box(p, int(tid), box))[0]
                        for p in support_positions(k, n_known, self.offsets, self.padding)
                    ]
                )
                centers.append(center)
                scales.append(scale)
                where.append((k, i))

    def _track_box(self, p: int, tid: int, fallback: np.ndarray) -> np.ndarray:
        """Track ``tid``'s box in frame ``p``, or ``fallback`` where it has none."""
        dets, ids = self.dets[p]
        hits = np.flatnonzero(ids == tid)
        return np.asarray(dets.boxes[hits[0]], dtype=float) if len(hits) else fallback

    def _groups(self, members: list[tuple[int, int]]) -> list[tuple[list[tuple[int, int]], np.ndarray]]:
        """Split one track's persons of a chunk (in frame order) into runs sharing one crop box: a
        person joins the run while the union box's centre stays within ``max_shift`` of every
        member's box height from the member's own centre. Returns (members, union box) per run."""
        boxes = {(k, i): np.asarray(self.dets[k][0].boxes[i], dtype=float) for k, i in members}
        runs, run = [], []
        for m in members:
            if run and not self._fits(np.array([boxes[r] for r in (*run, m)])):
                runs.append(run)
                run = []
            run.append(m)
        runs.append(run)
        return [(run, union_box(np.array([boxes[m] for m in run]))) for run in runs]

    def _fits(self, boxes: np.ndarray) -> bool:
        """Is the centre of the union of ``boxes`` (N, 4) within ``max_shift`` box heights of every box's
        centre? Heights are those of the boxes widened or heightened to the crop's aspect ratio."""
        union = union_box(boxes)
        mid = union[:2] + union[2:] / 2
        centers = boxes[:, :2] + boxes[:, 2:] / 2  # (N, 2)
        heights = np.maximum(np.maximum(boxes[:, 3], boxes[:, 2] / self.estimator.cfg.aspect_ratio), 1e-6)
        return bool((np.abs(centers - mid).max(axis=1) <= self.max_shift * heights).all())

    def _empty(self, k: int) -> FramePoses:
        dets, ids = self.dets[k]
        n, joints = len(dets), self.estimator.model.cfg.num_joints
        return FramePoses(
            dets.boxes.reshape(-1, 4), dets.scores.reshape(-1), ids, np.zeros((n, joints, 3)), np.zeros((n, joints, 3))
        )


def _cat(parts: list):
    import torch

    return torch.cat(parts) if isinstance(parts[0], torch.Tensor) else np.concatenate(parts)
