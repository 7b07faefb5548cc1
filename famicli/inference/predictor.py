"""Temporal inference on a video, streamed: boxes -> FAMI-Pose windows -> keypoints -> tracks.

For each key frame t and each person box of t, the window of training (``famicli.data.windows``:
the supporting frames [t-2, t-1, t+1, t+2] with the official padding at the ends) is cropped with
the *key frame's* box (``famicli.data.transforms``: box -> centre/scale, affine crop, ImageNet
normalization), the model predicts the key frame's heatmaps, and the peaks are decoded back to
image coordinates (argmax + quarter-pixel step, inverse affine). The backbone's own heatmaps of the
key frame are decoded too: the single-frame baseline the paper compares with.

Frames stream through :mod:`famicli.inference.stream` with bounded memory; persons of
consecutive key frames are batched together (``batch_size`` persons per forward pass) and tracked
frame by frame with their poses (IoU + OKS, :mod:`famicli.inference.track`).

Every option is a field of one :class:`PredictConfig`. ``mode="fast"`` runs the cached streaming
mode of :mod:`famicli.inference.cached` instead: boxes are tracked first, and each (track, frame) is
cropped once (with the person's own box, ``share="own"``, the default; or with a box shared by a
track's frames of a chunk, ``share="union"``), its backbone feature computed once and shared by the
neighbouring key frames.

``heads="backbone"`` runs the single-frame HRNet alone (:class:`BackboneEstimator`): one crop per person,
no supporting frames, for checkpoints that hold a trained backbone only (pose-HRNet, DCPose). The
default follows the checkpoint (:func:`resolve_heads`). The keypoints a model outputs are those of its
schema (``model.cfg.schema``, :data:`famicli.keypoints.SCHEMAS`): a COCO model's flip test swaps the eyes.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from famicli.config import DataConfig
from famicli.data import transforms as T
from famicli.errors import ConfigError
from famicli.inference.cached import CHUNK, MAX_SHIFT, SHARE, SHARES
from famicli.inference.decode import decode_heatmaps
from famicli.inference.stream import run
from famicli.inference.track import GreedyTracker
from famicli.keypoints import get_schema
from famicli.runtime import DTYPES, check_dtype, resolve_device, resolve_dtype

log = logging.getLogger(__name__)

MODES = ("exact", "fast")  # predict --mode
HEADS = ("fami", "backbone")  # predict --heads: the temporal model, or its single-frame HRNet alone


@dataclass(frozen=True)
class PredictConfig:
    """How poses are computed: the options of ``famipose predict`` (:func:`predict_video`) and of
    ``famipose eval --weights`` (:func:`famicli.engine.validator.evaluate_model`).

    Checked when made: a bad value raises :class:`famicli.errors.ConfigError` naming it and the choices.
    """

    detector: str | None = None  # torchvision, torchvision-mobilenet, full-frame; None: torchvision or the boxes file
    boxes: str | None = None  # detections JSON (famicli.inference.detect.BoxFile); replaces the detector
    box_threshold: float | None = None  # minimum box score; None: 0.2 for a boxes file, 0.5 for a detector
    detect_every: int = 1  # run the detector on every N-th frame; in between, boxes follow the last poses
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    dtype: str = "fp32"  # fp32, or bf16 / fp16 autocast (not exact; docs/speed.md measures the cost)
    flip: bool = False  # flip test: average the heatmaps of the crops and of their mirror images
    batch_size: int = 16  # persons per forward pass, gathered over consecutive key frames
    max_age: int = 30  # frames a track survives without a matching box
    track_threshold: float = 0.3  # minimum similarity (IoU, or mean of IoU and OKS) to continue a track
    fps: float | None = None  # frame rate of an image folder (videos carry their own)
    mode: str = "exact"  # exact: every window cropped with its key frame's box; fast: cached features (cached.py)
    chunk: int = CHUNK  # fast mode: frames processed together (and held); share union: most sharing one box
    max_shift: float = MAX_SHIFT  # fast mode, share union: largest offset of a shared crop's centre, box heights
    share: str = SHARE  # fast mode: own (each frame cut once with its own box) or union (boxes shared in a chunk)
    heads: str | None = None  # fami (temporal model) or backbone (single-frame HRNet); None: as the checkpoint
    kpt_threshold: float = 0.2  # overlays: joints scoring below it are not drawn

    def __post_init__(self):
        if self.boxes is not None:  # a Path: kept as text, as run.json records it
            object.__setattr__(self, "boxes", str(self.boxes))
        self.validate()

    def validate(self) -> None:
        """Raises ConfigError for a bad option or combination (also run when the config is made)."""
        if self.batch_size < 1 or self.detect_every < 1:
            raise ConfigError(f"batch_size ({self.batch_size}) and detect_every ({self.detect_every}) must be >= 1")
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}; choose from: {', '.join(MODES)}")
        if isinstance(self.chunk, bool) or not isinstance(self.chunk, int) or self.chunk < 1:
            raise ConfigError(f"chunk {self.chunk!r} must be an integer >= 1 (frames processed together in fast mode)")
        if not 0 <= self.max_shift < float("inf"):
            raise ConfigError(f"max_shift {self.max_shift} must be >= 0 (box heights)")
        if self.share not in SHARES:
            raise ConfigError(f"unknown share {self.share!r}; choose from: {', '.join(SHARES)}")
        if self.heads is not None and self.heads not in HEADS:
            raise ConfigError(f"unknown heads {self.heads!r}; choose from: {', '.join(HEADS)}")
        if not 0 <= self.kpt_threshold <= 1:
            raise ConfigError(f"kpt_threshold {self.kpt_threshold} must be in [0, 1] (a heatmap score)")
        if self.dtype not in DTYPES:
            raise ConfigError(f"unknown dtype {self.dtype!r}; choose from: {', '.join(DTYPES)}")
        if self.mode == "fast" and self.detect_every > 1:
            raise ConfigError(
                f"detect_every {self.detect_every} needs mode exact: fast mode tracks the boxes before "
                "the poses, so boxes cannot follow the poses"
            )
        if self.detect_every > 1 and (self.boxes is not None or self.detector == "full-frame"):
            raise ConfigError(
                f"detect_every {self.detect_every} needs a detector (--detector torchvision), "
                "not a boxes file or full-frame boxes"
            )


def resolve_heads(model, heads: str | None, asked: str = "--heads fami") -> tuple[str, str | None]:
    """Which heads run (``fami`` or ``backbone``) for ``heads`` (None: as the checkpoint), and a note to
    show when the checkpoint chose.

    A checkpoint whose temporal modules were never trained (``model.checkpoint_info["initialized"] ==
    "backbone"``: pose-HRNet, DCPose, ``train --single-frame``) runs its backbone alone by default.

    Raises:
        ConfigError: ``fami`` asked of such a checkpoint (``asked`` names what asked), with the command that
        trains the temporal modules.
    """
    info = getattr(model, "checkpoint_info", None) or {}
    if info.get("initialized") != "backbone":
        return heads or "fami", None
    path, kind = info.get("path", "the checkpoint"), info.get("format", "backbone")
    what = {"hrnet": "a pose-HRNet", "dcpose": "a DCPose", "famipose": "a single-frame"}.get(kind, "a backbone-only")
    if heads == "fami":
        coco = info.get("schema") == "coco"  # its heatmaps are COCO's: stage 1 on PoseTrack comes first
        how = (
            f"fine-tune it on PoseTrack (famipose train --single-frame --backbone {path}), then train them: "
            "famipose train --backbone RUN/last.pt --freeze-backbone"
            if coco
            else f"train them first: famipose train --backbone {path} --freeze-backbone --dataset posetrack18 "
            "--root DATA"
        )
        of = " of COCO keypoints" if coco else ""
        raise ConfigError(
            f"{asked}: {path} is {what} checkpoint{of}; only its single-frame HRNet is trained, not FAMI-Pose's "
            f"temporal modules; {how}" + (" (or use --heads backbone)" if asked.startswith("--heads") else "")
        )
    note = None
    if heads is None:
        note = (
            f"Note: {path} is {what} checkpoint ({info.get('schema', 'posetrack')} keypoints): running its "
            "single-frame HRNet alone (--heads backbone)"
        )
    return "backbone", note


class PoseEstimator:
    """Crops windows with the key frame's box and decodes FAMI-Pose's (and the backbone's) heatmaps.

    Args:
        model: a :class:`famicli.models.famipose.FamiPose` (put in eval mode).
        data_cfg: window offsets/padding, crop aspect, enlargement and affine convention.
        device, dtype: where and how the model runs (non-fp32 dtypes use autocast).
        flip: flip test.
        fast_path: run an inference-only copy with BatchNorm folded
            (:func:`famicli.models.folded.optimize_for_inference`; same numbers to float rounding).
    """

    def __init__(
        self,
        model,
        data_cfg: DataConfig,
        device: torch.device,
        dtype: torch.dtype,
        flip: bool = False,
        fast_path: bool = False,
    ):
        if dtype != torch.float32:  # autocast: bf16 / fp16 convolutions, the deformable ones in fp32 on CPU
            check_dtype(torch.device(device), next(k for k, v in DTYPES.items() if v == dtype))
        if fast_path:
            from famicli.models.folded import optimize_for_inference

            info = getattr(model, "checkpoint_info", None)
            model = optimize_for_inference(model)
            if info is not None:
                model.checkpoint_info = info
        self.model, self.cfg, self.device = model.eval(), data_cfg, torch.device(device)
        self.dtype, self.flip, self.fast_path = dtype, flip, fast_path
        self.input_size, self.heatmap_size = model.cfg.input_size, model.cfg.heatmap_size
        self.schema = get_schema(model.cfg.schema)

    heads = "fami"  # the temporal model; BackboneEstimator: the single-frame HRNet alone

    @classmethod
    def from_config(
        cls, model, cfg: PredictConfig, device: torch.device, data_cfg: DataConfig | None = None, heads: str = "fami"
    ) -> PoseEstimator:
        """The estimator ``cfg`` asks for, on ``device``: its dtype and flip test, and in fast mode the
        fast path; with ``heads="backbone"`` (see :func:`resolve_heads`) a :class:`BackboneEstimator`.
        ``data_cfg``: window and crop settings (default ``DataConfig()``, as in training); the supporting
        frames are always the model's (``model.cfg.support_offsets``)."""
        if heads not in HEADS:
            raise ConfigError(f"unknown heads {heads!r}; choose from: {', '.join(HEADS)}")
        cls = BackboneEstimator if heads == "backbone" else cls
        return cls(
            model.to(device),
            replace(data_cfg or DataConfig(), offsets=model.cfg.support_offsets),  # the frames the model was built for
            device,
            resolve_dtype(cfg.dtype),
            cfg.flip,
            fast_path=cfg.mode == "fast",
        )

    def crop_box(self, box, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """Centre (2,) and scale (2,) of the crop of ``box`` (x, y, w, h) in a ``width`` x ``height`` frame:
        the official box sanitation, then aspect 3:4 and the enlargement, as in training."""
        box = T.clean_box(box, width, height) or list(box)
        return T.box_to_center_scale(box, self.cfg.aspect_ratio, self.cfg.box_enlarge)

    def warp(self, frames: list[np.ndarray], center: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Crop every frame of ``frames`` with one centre/scale: (T, H, W, 3) uint8. A frame listed
        twice (the padding repeats frames) is warped once."""
        matrix = T.input_matrix(center, scale, 0.0, self.input_size, self.cfg.crop)
        h, w = self.input_size
        warped: dict[int, np.ndarray] = {}
        for f in frames:
            if id(f) not in warped:
                warped[id(f)] = T.warp_image(f, matrix, (w, h))
        return np.stack([warped[id(f)] for f in frames])

    def crop(self, window: list[np.ndarray], box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Crop the frames of one window (key frame first) with ``box`` (x, y, w, h) of the key frame.

        Returns:
            crops (T, H, W, 3) uint8, center (2,), scale (2,).
        """
        height, width = window[0].shape[:2]
        center, scale = self.crop_box(box, width, height)
        return self.warp(window, center, scale), center, scale

    @torch.no_grad()
    def features(self, crops: np.ndarray) -> torch.Tensor:
        """Backbone features of N crops (N, H, W, 3) uint8: (N, C, h, w); with flip, (N, 2C, h, w), the
        mirrored crops' features in the second half of the channels."""
        x = T.normalize(crops).to(self.device)  # (N, H, W, 3) -> (N, 3, H, W)
        with self._autocast():
            z = self.model.features(x)
            if self.flip:
                z = torch.cat((z, self.model.features(x.flip(-1))), dim=1)  # (N, C, h, w) x 2 -> (N, 2C, h, w)
        return z

    @torch.no_grad()
    def from_features(
        self, z_t: torch.Tensor, z_s: torch.Tensor, centers: np.ndarray, scales: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints of B key frames from :meth:`features` rows: ``z_t`` (B, C, h, w) of the key crops,
        ``z_s`` (B, S, C, h, w) of the supporting crops; centers, scales (B, 2) of the crops.

        Returns:
            FAMI-Pose and backbone keypoints, each (B, K, 3) (x, y, score) in image pixels.
        """
        c = z_t.shape[1] // 2 if self.flip else z_t.shape[1]
        final, backbone = self._temporal(z_t[:, :c], z_s[:, :, :c])
        if self.flip:
            f_final, f_backbone = self._temporal(z_t[:, c:], z_s[:, :, c:])
            final = (final + self._flip_back(f_final)) / 2
            backbone = (backbone + self._flip_back(f_backbone)) / 2
        return self._decode(final, centers, scales), self._decode(backbone, centers, scales)

    def _temporal(self, z_t: torch.Tensor, z_s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self._autocast():
            out = self.model.forward_features(z_t, z_s)
        return out.heatmaps.float(), out.backbone_heatmaps.float()

    def _autocast(self):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    @torch.no_grad()
    def __call__(self, crops: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints of B persons.

        Args:
            crops: (B, T, H, W, 3) uint8 windows, key frame first. centers, scales: (B, 2).

        Returns:
            FAMI-Pose keypoints (B, K, 3) and backbone keypoints (B, K, 3), (x, y, score) in image pixels.
        """
        x = T.normalize(crops).to(self.device)  # (B, T, H, W, 3) -> (B, T, 3, H, W)
        final, backbone = self._heatmaps(x[:, 0], x[:, 1:])
        if self.flip:
            f_final, f_backbone = self._heatmaps(x[:, 0].flip(-1), x[:, 1:].flip(-1))
            final = (final + self._flip_back(f_final)) / 2
            backbone = (backbone + self._flip_back(f_backbone)) / 2
        return self._decode(final, centers, scales), self._decode(backbone, centers, scales)

    def _heatmaps(self, key: torch.Tensor, support: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self._autocast():
            out = self.model(key, support)
        return out.heatmaps.float(), out.backbone_heatmaps.float()

    def _flip_back(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """Mirror (B, K, h, w) heatmaps of mirrored crops back, swapping left/right joints. Unbiased crops
        mirror exactly about the centre; the other conventions need HRNet's one-pixel shift."""
        out = heatmaps.flip(-1)
        order = list(range(out.shape[1]))
        for a, b in self.schema.flip_pairs:
            order[a], order[b] = b, a
        out = out[:, order]
        if self.cfg.crop != "unbiased":
            out[..., 1:] = out[..., :-1].clone()
        return out

    def _decode(self, heatmaps: torch.Tensor, centers: np.ndarray, scales: np.ndarray) -> np.ndarray:
        coords, scores = decode_heatmaps(heatmaps.cpu())
        xy = T.heatmap_to_image(coords.numpy(), centers, scales, self.heatmap_size, self.cfg.crop)
        return np.concatenate([xy, scores.numpy()[..., None]], axis=-1)  # (B, K, 2) + (B, K, 1) -> (B, K, 3)


class BackboneEstimator(PoseEstimator):
    """``heads="backbone"``: the single-frame HRNet alone on each person's key-frame crop (no supporting
    frames: the window is the key frame), decoded as :class:`PoseEstimator` decodes; both outputs of
    :meth:`__call__` are its keypoints."""

    heads = "backbone"

    def __init__(self, model, data_cfg: DataConfig, *args, **kwargs):
        super().__init__(model, replace(data_cfg, offsets=()), *args, **kwargs)

    @torch.no_grad()
    def __call__(self, crops: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints of B persons from their key-frame crops (B, 1, H, W, 3) uint8: (B, K, 3) twice."""
        x = T.normalize(crops[:, :1]).to(self.device)[:, 0]  # (B, 1, H, W, 3) -> (B, 3, H, W)
        heatmaps = self._single(x)
        if self.flip:
            heatmaps = (heatmaps + self._flip_back(self._single(x.flip(-1)))) / 2
        keypoints = self._decode(heatmaps, centers, scales)
        return keypoints, keypoints

    def _single(self, x: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            return self.model.single_frame(x).float()


def predict_video(
    path,
    weights=None,
    cfg: PredictConfig | None = None,
    *,
    model=None,
    variant: str | None = None,
    schema: str | None = None,
    out=None,
    render: bool = True,
    data_cfg: DataConfig | None = None,
    progress: Callable | None = None,
    notes: Callable[[str], None] | None = None,
):
    """Every person's pose in every frame of a video, with track ids.

    >>> cfg = famicli.PredictConfig(boxes="clip_boxes.json", device="cpu")
    >>> result = famicli.predict_video("clip.mp4", "famipose_w48.pt", cfg)
    >>> result.frames[0].keypoints          # (N, 17, 3) x, y, score of the first frame's persons
    >>> json.dumps(result.to_posetrack())   # PoseTrack18 file; result.to_coco(): COCO results

    Args:
        path: a video file or a folder of images.
        weights: checkpoint (famipose, official FAMI-Pose); or pass ``model``.
        cfg: boxes, detector, device, dtype, batch size, mode, ...: a :class:`PredictConfig`
            (default ``PredictConfig()``); ``mode="fast"`` is the cached streaming mode
            (:mod:`famicli.inference.cached`, with the exact fast path of :mod:`famicli.models.folded`).
        model: an already loaded model (instead of ``weights``).
        variant: architecture for checkpoints that do not record it.
        schema: the keypoints of a pose-HRNet or DCPose checkpoint's heatmaps (``coco``, ``posetrack``;
            :func:`famicli.models.checkpoint.load_model`).
        out: also write ``<stem>.posetrack.json``, ``<stem>.coco.json``, ``<stem>.overlay.mp4`` (with
            ``render``) and ``run.json`` there, atomically: on failure nothing is left half-written.
        data_cfg: window and crop settings (default ``DataConfig()``, as in training).
        progress: called with (frames done, frames in all).
        notes: called with each line worth showing the user (the checkpoint chose ``heads``, PoseTrack
            keypoints a COCO model does not give); default: logged at INFO.

    Returns:
        A :class:`famicli.inference.results.VideoPrediction`.

    Raises:
        InputError: unreadable video or boxes file, boxes for another video. ConfigError: bad options,
        a CUDA-only dtype on CPU, no weights. CheckpointError: unreadable checkpoint, detector weights
        missing offline.
    """
    from pathlib import Path

    from famicli.data.video import open_video
    from famicli.inference.detect import BoxFile, box_source
    from famicli.models.checkpoint import load_model

    cfg = cfg if cfg is not None else PredictConfig()
    dev = resolve_device(cfg.device)
    path = Path(path)
    name = path.name if path.is_dir() else path.stem
    t0 = time.perf_counter()
    with open_video(path, cfg.fps) as source:
        box_src = box_source(cfg.detector, cfg.boxes, cfg.box_threshold, dev)
        if isinstance(box_src, BoxFile):
            box_src = box_src.for_video(name, source.info.frames)
        if model is None:
            if weights is None:
                raise ConfigError("no weights: pass --weights CKPT (a famipose or official FAMI-Pose checkpoint)")
            model = load_model(weights, variant, dev, schema)
        heads, note = resolve_heads(model, cfg.heads)
        estimator = PoseEstimator.from_config(model, cfg, dev, data_cfg, heads)
        say = notes or log.info
        if note:
            say(note)
        missing = get_schema(model.cfg.schema).missing_in_posetrack
        if missing:
            say(
                f"Note: {model.cfg.schema} keypoints: the PoseTrack file has no {' or '.join(missing)} (written "
                "absent); the COCO file has the model's own keypoints"
            )
        if out is None:
            return _predict(name, source, box_src, estimator, cfg, None, progress, t0)
        return _predict_to(Path(out), render, name, source, box_src, estimator, cfg, progress, t0)


def _predict(name, source, boxes, estimator: PoseEstimator, cfg: PredictConfig, writer, progress, t0: float):
    import dataclasses

    import av
    import torchvision

    from famicli.inference.render import draw_poses
    from famicli.inference.results import VideoPrediction, video_images
    from famicli.io import provenance

    def render(t, frame, poses, timer):
        with timer("render"):
            drawn = draw_poses(
                frame,
                poses.boxes,
                poses.track_ids,
                poses.keypoints,
                min_score=cfg.kpt_threshold,
                limbs=estimator.schema.limbs,
            )
            writer.write(drawn)

    tracker = GreedyTracker(cfg.track_threshold, cfg.max_age)
    frames, timings = run(
        source, boxes, estimator, tracker, cfg, on_frame=render if writer else None, progress=progress
    )
    if writer is not None:
        t_close = time.perf_counter()
        writer.close()
        timings["seconds"]["render"] = round(timings["seconds"].get("render", 0) + time.perf_counter() - t_close, 4)
    own = getattr(boxes, "images", None)
    images, image_ids = (
        (own, boxes.image_ids)
        if own is not None and len(own) == len(frames)
        else (video_images(name, len(frames)), None)
    )
    overlay = None if writer is None else {"codec": writer.codec, "size": list(writer.size), "frames": writer.frames}
    model = estimator.model
    record = provenance(
        torchvision=torchvision.__version__,
        av=av.__version__,
        video=source.info.to_dict(),
        weights=getattr(model, "checkpoint_info", None),
        model=model.cfg.to_dict(),
        data=dataclasses.asdict(estimator.cfg),
        options=dataclasses.asdict(cfg),
        boxes=boxes.description,
        device=str(estimator.device),
        dtype=cfg.dtype,
        overlay=overlay,
        inference=_inference_record(cfg, estimator.fast_path, estimator.heads),
        heads=estimator.heads,
        schema=_schema_record(estimator.schema),
        timings=timings,
    )
    result = VideoPrediction(name, images, frames, record | _speed(timings, t0), image_ids)
    result.schema = estimator.schema
    return result


def _predict_to(out, render: bool, name, source, boxes, estimator, cfg, progress, t0: float):
    """:func:`_predict`, writing the overlay on the way and the JSON files after, all atomically."""
    import json

    from famicli.data.video import VideoWriter
    from famicli.io import atomic_path

    created = [p for p in (out, *out.parents) if not p.exists()]
    info = source.info
    try:
        with contextlib.ExitStack() as stack:
            run_json = stack.enter_context(atomic_path(out / "run.json"))  # entered first: renamed last
            files = {"posetrack": f"{name}.posetrack.json", "coco": f"{name}.coco.json"}
            writer = None
            if render:
                files["overlay"] = f"{name}.overlay.mp4"
                tmp = stack.enter_context(atomic_path(out / files["overlay"]))
                size = (info.width, info.height)
                writer = stack.enter_context(VideoWriter(tmp, info.fps, size, container_format="mp4"))
            result = _predict(name, source, boxes, estimator, cfg, writer, progress, t0)
            t_write = time.perf_counter()
            for kind, doc in (("posetrack", result.to_posetrack()), ("coco", result.to_coco())):
                stack.enter_context(atomic_path(out / files[kind])).write_text(json.dumps(doc, allow_nan=False) + "\n")
            rec = result.record
            rec["timings"]["seconds"]["write"] = round(time.perf_counter() - t_write, 4)
            rec.update(
                outputs={k: str(out / v) for k, v in {**files, "run": "run.json"}.items()}, **_speed(rec["timings"], t0)
            )
            run_json.write_text(json.dumps(rec, indent=2, allow_nan=False) + "\n")
    except BaseException:
        for p in created:  # deepest first: the folders this call made, when nothing is left in them
            if p.is_dir() and not any(p.iterdir()):
                p.rmdir()
        raise
    return result


def _schema_record(schema) -> dict:
    """run.json's ``schema``: the model's keypoints, and the PoseTrack ones it does not give."""
    return {
        "name": schema.name,
        "keypoints": list(schema.names),
        "posetrack_missing": list(schema.missing_in_posetrack),
    }


def _inference_record(cfg: PredictConfig, fast_path: bool, heads: str = "fami") -> dict:
    """How the poses were computed, for run.json: the mode and, in fast mode, its settings."""
    if cfg.mode == "exact" or heads == "backbone":  # the backbone alone crops each person once either way
        return {"mode": cfg.mode, "fast_path": fast_path}
    return {"mode": "fast", "share": cfg.share, "chunk": cfg.chunk, "max_shift": cfg.max_shift, "fast_path": fast_path}


def _speed(timings: dict, t0: float) -> dict:
    """Milliseconds per frame per stage, and frames per second over the whole call."""
    n = max(timings["frames"], 1)
    wall = time.perf_counter() - t0
    ms = {k: round(1000 * v / n, 2) for k, v in timings["seconds"].items()}
    return {"speed_ms_per_frame": ms, "wall_s": round(wall, 3), "frames_per_s": round(timings["frames"] / wall, 2)}
