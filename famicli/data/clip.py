"""A clip as ``famipose viz`` shows it: one person's key frame and supporting frames, cropped as in training.

From a PoseTrack-format folder (with the ground truth) or from a video (with a boxes file, else the
whole frame), through the same windows, crops and padding as training and evaluation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from famicli.errors import InputError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


@dataclass
class ClipSource:
    """Which person in which frame: a PoseTrack-format folder (``root`` + ``sequence``) or a video."""

    frame: int  # 0-based key frame position
    person: int | None = None  # track id (dataset) or box id (video); None: the lowest one present
    root: Path | None = None  # PoseTrack-format dataset folder (annotations/<split>/<sequence>.json)
    sequence: str | None = None  # sequence name (file stem) in that folder
    video: Path | None = None  # a video file PyAV reads
    boxes: Path | None = None  # COCO-style detections for --video (without: the full frame)


@dataclass
class Clip:
    """One key frame, its supporting frames and (with a dataset) the ground truth, as the model sees them."""

    key: torch.Tensor  # (3, H, W) normalized crop
    support: torch.Tensor  # (S, 3, H, W) supporting crops in model order
    crops: np.ndarray  # (1+S, H, W, 3) uint8 RGB crops: key, then supporting frames
    positions: list[int]  # frame positions: key, then supporting frames
    center: np.ndarray  # (2,) crop centre, image pixels
    scale: np.ndarray  # (2,) crop size / 200
    crop: str  # affine convention (DataConfig.crop)
    describe: dict  # source, sequence/video, frame, person
    target: torch.Tensor | None = None  # (K, h, w) ground-truth Gaussian heatmaps
    joints: np.ndarray | None = None  # (K, 3) ground-truth (x, y, v) in image pixels
    offsets: tuple[int, ...] = (-2, -1, 1, 2)  # supporting frames relative to the key, model order


def load_clip(source: ClipSource, data_cfg, input_size: tuple[int, int], heatmap_size: tuple[int, int]) -> Clip:
    """The key/supporting crops of ``source`` (crop and padding as in training and evaluation)."""
    if (source.root is None) == (source.video is None):
        raise InputError("select a clip with either --root DIR --seq NAME or --video FILE (not both)")
    if source.root is not None:
        return _dataset_clip(source, data_cfg, input_size, heatmap_size)
    return _video_clip(source, data_cfg, input_size)


def _dataset_clip(source: ClipSource, data_cfg, input_size, heatmap_size) -> Clip:
    from famicli.data.posetrack import PoseTrackDataset
    from famicli.data.windows import support_positions

    root = Path(source.root)
    if not (root / "annotations").is_dir():
        raise InputError(f"{root}: not a PoseTrack-format folder (no annotations/<split>/<sequence>.json)")
    found = {p.stem: p.parent.name for p in sorted((root / "annotations").glob("*/*.json"))}
    if source.sequence not in found:
        names = sorted(found)
        listed = ", ".join(names[:20]) + (f" ... ({len(names) - 20} more)" if len(names) > 20 else "")
        what = "--root needs --seq NAME" if source.sequence is None else f"unknown sequence {source.sequence!r}"
        raise InputError(f"{what} in {root}; choose from: {listed or 'none'}")
    split = found[source.sequence]
    ds = PoseTrackDataset(root, split, data_cfg, input_size, heatmap_size, train=False)
    vi = next(i for i, v in enumerate(ds.videos) if v.name == source.sequence)
    video, t = ds.videos[vi], source.frame
    if not 0 <= t < len(video.frames):
        raise InputError(
            f"frame {t} is out of range: {source.sequence} has {len(video.frames)} frames (0..{len(video.frames) - 1})"
        )
    here = {
        video.persons[pi].track_id: n
        for n, (v, pi) in enumerate(ds.items)
        if v == vi and video.persons[pi].position == t
    }
    if not here:
        labeled = sorted({video.persons[pi].position for v, pi in ds.items if v == vi})
        raise InputError(
            f"frame {t} of {source.sequence} has no annotated person; annotated frames: "
            f"{', '.join(map(str, labeled)) or 'none'}"
        )
    person = min(here) if source.person is None else source.person
    if person not in here:
        raise InputError(
            f"unknown person id {person} in frame {t} of {source.sequence}; "
            f"persons there: {', '.join(map(str, sorted(here)))}"
        )
    sample = ds[here[person]]
    meta = sample["meta"]
    positions = [t, *support_positions(t, len(video.frames), data_cfg.offsets, data_cfg.padding)]
    describe = {
        "source": "dataset",
        "root": str(root),
        "split": split,
        "sequence": source.sequence,
        "frame": t,
        "person": person,
        "image_id": meta["image_id"],
        "frames": positions,
    }
    return Clip(
        sample["key"],
        sample["support"],
        _display(sample["key"], sample["support"]),
        positions,
        meta["center"].double().numpy(),
        meta["scale"].double().numpy(),
        data_cfg.crop,
        describe,
        sample["target"],
        meta["joints"].double().numpy(),
        tuple(data_cfg.offsets),
    )


def _video_clip(source: ClipSource, data_cfg, input_size) -> Clip:
    from famicli.data import transforms as T
    from famicli.data.windows import support_positions

    t = source.frame
    first, last = t + min(0, *data_cfg.offsets), t + max(0, *data_cfg.offsets)
    frames, n = _read_video_frames(Path(source.video), t, first, last)
    positions = [t, *support_positions(t, n, data_cfg.offsets, data_cfg.padding)]
    height, width = frames[t].shape[:2]
    boxes = _frame_boxes(source.boxes, t, source.video) if source.boxes is not None else {0: [0.0, 0.0, width, height]}
    if not boxes:
        raise InputError(f"{source.boxes}: no box for frame {t}")
    person = min(boxes) if source.person is None else source.person
    if person not in boxes:
        raise InputError(
            f"unknown person id {person} in frame {t} of {source.video}; "
            f"persons there: {', '.join(map(str, sorted(boxes)))}"
        )
    box = T.clean_box(boxes[person], width, height) or boxes[person]
    center, scale = T.box_to_center_scale(box, data_cfg.aspect_ratio, data_cfg.box_enlarge)
    matrix = T.input_matrix(center, scale, 0.0, input_size, data_cfg.crop)
    crops = np.stack([T.warp_image(frames[p], matrix, (input_size[1], input_size[0])) for p in positions])
    images = T.normalize(crops)  # (1+S, H, W, 3) -> (1+S, 3, H, W)
    describe = {
        "source": "video",
        "video": str(source.video),
        "boxes": str(source.boxes) if source.boxes else None,
        "frame": t,
        "person": person,
        "box": [float(v) for v in box],
        "frames": positions,
    }
    return Clip(
        images[0], images[1:], crops, positions, center, scale, data_cfg.crop, describe, offsets=tuple(data_cfg.offsets)
    )


def _read_video_frames(path: Path, key: int, first: int, last: int) -> tuple[dict[int, np.ndarray], int]:
    """Frames ``first``..``last`` of a video (clipped to the video) as (H, W, 3) uint8 RGB arrays, and
    the video's frame count (:class:`famicli.data.video.VideoInfo`). Decodes up to ``last`` only.

    Raises:
        InputError: ``key`` outside 0..count-1, or a file that cannot be read or decoded.
    """
    from famicli.data.video import open_video

    frames = {}
    with open_video(path) as video:
        n = video.info.frames
        if not 0 <= key < n:
            raise InputError(f"frame {key} is out of range: {path} has {n} frames (0..{n - 1})")
        for i, frame in enumerate(video.frames()):
            if i >= first:
                frames[i] = frame
            if i >= last:
                break
    return frames, n


def _frame_boxes(path: Path, frame: int, video: Path) -> dict[int, list[float]]:
    """Boxes of ``frame`` of ``video`` in a boxes file (:class:`famicli.formats.boxes.BoxFile`, every
    score kept), by person id: the file's ``track_id`` when every box has one, else the box's rank by
    descending score in its frame."""
    from famicli.formats.boxes import BoxFile

    rows = BoxFile(path, threshold=0.0).for_video(Path(video).stem, None).by_frame.get(frame, [])
    rows = sorted(rows, key=lambda r: -r[4])  # (x, y, w, h, score, track_id)
    tracked = all(r[5] is not None for r in rows)
    return {int(r[5]) if tracked else i: [float(v) for v in r[:4]] for i, r in enumerate(rows)}


def _display(key, support) -> np.ndarray:
    """Normalized crops back to uint8 RGB: (3, H, W) + (S, 3, H, W) -> (1+S, H, W, 3)."""
    import torch

    from famicli.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    x = torch.cat((key[None], support)).movedim(1, -1)  # (1+S, 3, H, W) -> (1+S, H, W, 3)
    x = x * torch.tensor(IMAGENET_STD) + torch.tensor(IMAGENET_MEAN)
    return (x.clamp(0, 1) * 255).round().byte().numpy()


# ------------------------------------------------------------------------------------------ numbers
