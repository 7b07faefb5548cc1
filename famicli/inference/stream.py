"""The streaming loop of temporal inference: frames in, one window at a time; poses and tracks out.

Key frame t is cropped as soon as frame t + max(offsets) has been decoded (or the video has
ended), with the supporting frames of :func:`famicli.data.windows.support_positions`, so memory
holds the window around the next key frame plus the key frames waiting for a batch, never the
video. The persons of consecutive key frames are batched into one forward pass; tracking then
runs frame by frame, in order, with the poses (:class:`famicli.inference.track.GreedyTracker`).
The options come in one :class:`famicli.inference.predictor.PredictConfig`; its ``mode`` picks the
pipeline in :func:`run`: this module's, or the cached streaming one of :mod:`famicli.inference.cached`.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from famicli.data.windows import support_positions
from famicli.inference.detect import Detections
from famicli.inference.track import GreedyTracker

if TYPE_CHECKING:
    from famicli.inference.predictor import PredictConfig  # which imports this module


@dataclass
class FramePoses:
    """The persons of one frame (N of them, K joints)."""

    boxes: np.ndarray  # (N, 4) x, y, w, h
    box_scores: np.ndarray  # (N,)
    track_ids: np.ndarray  # (N,) int64, unique within the frame
    keypoints: np.ndarray  # (N, K, 3) x, y, score from FAMI-Pose's heatmaps
    backbone: np.ndarray  # (N, K, 3) x, y, score from the backbone's heatmaps of the key frame


@dataclass
class _Job:
    key: int  # key frame position
    dets: Detections
    crops: list[np.ndarray] = field(default_factory=list)  # (T, H, W, 3) per person
    centers: list[np.ndarray] = field(default_factory=list)
    scales: list[np.ndarray] = field(default_factory=list)


class Timer:
    """Seconds spent per stage: ``with timer("pose"): ...``."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - t0


class Pipeline:
    """The streaming loop: push decoded frames in order, then :meth:`finish`.

    Key frame t is cropped once frame t + max(offsets) has arrived (or the video ended), so at most
    ``after + before + 1`` frames plus those waiting in the batch are held. ``on_frame(t, frame,
    poses)`` is called for every frame in order once its poses and track ids are known.

    Args:
        estimator: a :class:`famicli.inference.predictor.PoseEstimator` (crop, and call on crops).
        boxes: a box source (``famicli.inference.detect``), called as ``boxes(t, frame)``.
        tracker: assigns track ids when the boxes carry none.
        cfg: the options; read here: ``batch_size`` (persons per forward pass, also the most key frames
            waiting) and ``detect_every`` (call ``boxes`` on every N-th frame only; other frames take
            boxes around the previous frame's poses).
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
        self.before, self.after = max(0, -min(self.offsets, default=0)), max(0, max(self.offsets, default=0))
        self.batch_size, self.detect_every = cfg.batch_size, cfg.detect_every
        self.on_frame, self.timer = on_frame, timer or Timer()
        self.frames: dict[int, np.ndarray | None] = {}
        self.dets: dict[int, Detections] = {}
        self.pending: list[_Job] = []
        self.results: list[FramePoses] = []
        self.next_key = 0
        self.max_buffered = 0

    def needed(self, keys_with_boxes: set[int]) -> Callable[[int], bool]:
        """For sources whose boxes are known in advance: is frame i in the window of a key with boxes?"""
        return lambda i: any(k in keys_with_boxes for k in range(i - self.after, i + self.before + 1))

    def push(self, t: int, frame: np.ndarray | None) -> None:
        """Frame t (in order from 0); None for a frame no window needs."""
        self.frames[t] = frame
        self.max_buffered = max(self.max_buffered, sum(f is not None for f in self.frames.values()))
        if frame is not None and t % self.detect_every == 0:
            with self.timer("detect"):
                self.dets[t] = self.boxes(t, frame)
        if t - self.after >= 0:
            self._stage(t - self.after, t + 1)

    def finish(self, n_frames: int) -> list[FramePoses]:
        """Process the last key frames of a video of ``n_frames`` frames; return every frame's poses."""
        for key in range(self.next_key, n_frames):
            self._stage(key, n_frames)
        self.flush()
        return self.results

    def _stage(self, key: int, n_frames: int) -> None:
        if key % self.detect_every == 0:
            dets = self.dets.pop(key, None) or Detections.empty()
        else:
            self.flush()  # the previous frame's poses are needed
            dets = self._propagate()
        job = _Job(key, dets)
        if len(dets):
            positions = [key, *support_positions(key, n_frames, self.offsets, self.padding)]
            window = [self.frames[p] for p in positions]
            with self.timer("crop"):
                for box in dets.boxes:
                    crops, center, scale = self.estimator.crop(window, box)
                    job.crops.append(crops)
                    job.centers.append(center)
                    job.scales.append(scale)
        self.pending.append(job)
        self.next_key = key + 1
        if sum(len(j.crops) for j in self.pending) >= self.batch_size or len(self.pending) >= self.batch_size:
            self.flush()
        self._release()

    def _propagate(self) -> Detections:
        """Boxes around the previous frame's poses (joints scoring >= 0.3, grown by 20 %), or its boxes."""
        prev = self.results[-1] if self.results else None
        if prev is None or not len(prev.boxes):
            return Detections.empty()
        boxes = prev.boxes.copy()
        for i, pose in enumerate(prev.keypoints):
            ok = pose[:, 2] >= 0.3
            if ok.sum() >= 3:
                lo, hi = pose[ok, :2].min(0), pose[ok, :2].max(0)
                size = np.maximum(hi - lo, 1.0) * 1.2
                boxes[i] = [*((lo + hi) / 2 - size / 2), *size]
        return Detections(boxes, prev.box_scores.copy())

    def flush(self) -> None:
        """Run the model on the waiting persons, then track and hand over their frames in order."""
        if not self.pending:
            return
        jobs, self.pending = self.pending, []
        crops = [c for j in jobs for c in j.crops]
        k = self.estimator.model.cfg.num_joints
        final, backbone = np.zeros((0, k, 3)), np.zeros((0, k, 3))
        if crops:
            centers = np.array([c for j in jobs for c in j.centers])
            scales = np.array([s for j in jobs for s in j.scales])
            parts = []
            with self.timer("pose"):
                for i in range(0, len(crops), self.batch_size):
                    sl = slice(i, i + self.batch_size)
                    parts.append(self.estimator(np.stack(crops[sl]), centers[sl], scales[sl]))
            final = np.concatenate([p[0] for p in parts])
            backbone = np.concatenate([p[1] for p in parts])
        start = 0
        for job in jobs:
            n = len(job.crops)
            kp, bb = final[start : start + n], backbone[start : start + n]
            start += n
            with self.timer("track"):
                ids = job.dets.track_ids if job.dets.track_ids is not None else self.tracker.update(job.dets.boxes, kp)
            poses = FramePoses(
                job.dets.boxes.reshape(-1, 4), job.dets.scores.reshape(-1), np.asarray(ids, np.int64), kp, bb
            )
            self.results.append(poses)
            if self.on_frame is not None:
                self.on_frame(job.key, self.frames.get(job.key), poses)
        self._release()

    def _release(self) -> None:
        low = self.next_key - self.before
        if self.pending:
            low = min(low, self.pending[0].key)
        for p in [p for p in self.frames if p < low]:
            del self.frames[p]


def run(
    source,
    boxes,
    estimator,
    tracker: GreedyTracker,
    cfg: PredictConfig | None = None,
    *,
    on_frame: Callable | None = None,
    progress: Callable | None = None,
    skip_unneeded: bool = False,
) -> tuple[list[FramePoses], dict]:
    """Stream ``source`` (a :class:`famicli.data.video.VideoSource`) through the pipeline of ``cfg.mode``.

    Args:
        cfg: a :class:`famicli.inference.predictor.PredictConfig` (default: ``PredictConfig()``). Mode
            ``exact``: a :class:`Pipeline`; ``fast``: the cached streaming mode
            (:class:`famicli.inference.cached.CachedPipeline`: ``chunk``, ``share``, ``max_shift``).
            Both read ``batch_size``; exact mode ``detect_every``. The estimator and the box source
            are made by the caller (``device``, ``dtype``, ``flip``, ``boxes``, ...).
        on_frame: called as ``on_frame(t, frame, poses, timer)`` for every frame, in order.
        progress: called with (frames done, frames in all).
        skip_unneeded: do not read frames outside every window with boxes (image folders with a
            boxes file or ground truth; nothing is rendered then).

    Returns:
        Each frame's :class:`FramePoses` and the timings: seconds per stage (decode, detect, crop,
        pose, track, plus whatever ``on_frame`` recorded in the pipeline's timer), frames, the most
        frames held at once; in fast mode also the crops through the backbone and the key frames.
    """
    from famicli.inference.cached import CachedPipeline  # imports this module

    if cfg is None:
        from famicli.inference.predictor import PredictConfig  # imports this module

        cfg = PredictConfig()
    timer = Timer()
    total = source.info.frames
    done = [0]

    def handed_over(t, frame, poses):
        if on_frame is not None:
            on_frame(t, frame, poses, timer)
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    # the single-frame backbone crops each person's key frame once in either mode: no cache to keep
    pipeline = CachedPipeline if cfg.mode == "fast" and getattr(estimator, "heads", "fami") == "fami" else Pipeline
    pipe = pipeline(estimator, boxes, tracker, cfg, handed_over, timer)
    needed = pipe.needed(boxes.frames()) if skip_unneeded and hasattr(boxes, "frames") else None
    frames, end = source.frames(needed), object()
    n = 0
    while True:
        with timer("decode"):
            frame = next(frames, end)
        if frame is end:
            break
        pipe.push(n, frame)
        n += 1
    results = pipe.finish(n)
    timings = {k: round(v, 4) for k, v in timer.seconds.items()}
    record = {"seconds": timings, "frames": n, "frames_buffered_max": pipe.max_buffered}
    if cfg.mode == "fast":
        record.update(key_frames=pipe.key_frames, backbone_crops=pipe.backbone_crops)
    return results, record
