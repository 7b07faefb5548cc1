"""The training/validation dataset of per-person temporal windows, over PoseTrack-format folders.

Layout (``root`` = a PoseTrack18 or SynthTrack folder)::

    root/annotations/<split>/<sequence>.json     one file per video (PoseTrack18 or PoseTrack17 format)
    root/<file_name of each frame>               e.g. images/val/000342_mpii_test/000000.jpg

Sequence files are parsed by famipose's one PoseTrack reader (:func:`famicli.formats.posetrack.read_sequence`,
role ``data``); :class:`Video` is the dataset's view of one: frame paths in frame order, image ids and
the annotated persons. Keypoints are the 17 of :data:`famicli.keypoints.JOINT_NAMES`, (x, y, v) with v > 0
meaning annotated; PoseTrack17 points get v = 1 whenever they are given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from famicli.config import DataConfig
from famicli.errors import ConfigError, InputError
from famicli.formats.layout import frame_number, sequence_files
from famicli.formats.posetrack import Sequence

log = logging.getLogger(__name__)

PT17_BOX_MARGIN = 0.05  # PoseTrack17 person boxes: keypoint + head-box extent, grown by 5 % per side


@dataclass
class Person:
    """One annotated person in one frame."""

    position: int  # index of the frame in the video's frame list
    track_id: int  # person identity within the video
    keypoints: np.ndarray  # (17, 3) x, y, v in image pixels; (0, 0, 0) = not annotated
    bbox: np.ndarray  # (4,) x, y, w, h (PoseTrack17, or no box given: derived from the keypoints and head box)
    bbox_head: np.ndarray | None  # (4,) x, y, w, h of the head, when given


@dataclass
class Video:
    """One sequence file, frames in frame order."""

    name: str  # file stem, e.g. 000342_mpii_test
    path: Path  # the annotation file
    frames: list[Path]  # image files, absolute
    image_ids: list[int]  # PoseTrack18 image id of each frame
    labeled: np.ndarray  # (T,) bool: the frame was labeled (or has persons)
    persons: list[Person]  # every annotated person in every frame, in file order
    sequence: Sequence  # the parsed file (file order of frames), e.g. to write predictions in its format


def read_sequence(path: str | Path, root: str | Path) -> Video:
    """Read one PoseTrack18 (``images``/``annotations``) or PoseTrack17 (``annolist``) sequence file.

    Raises:
        InputError: unreadable JSON or missing/malformed fields, naming the file and the field.
    """
    from famicli.formats.posetrack import read_sequence as read_file
    from famicli.formats.validate import Issues

    path, root = Path(path), Path(root)
    seq = read_file(path, "data", Issues(strict=False))
    return video_of(seq, root)


def video_of(seq: Sequence, root: str | Path) -> Video:
    """The dataset's view of a parsed sequence file: frames in frame order (PoseTrack18: sorted by frame
    number; PoseTrack17: file order, which its image ids follow), persons in file order."""
    root = Path(root)
    order = list(range(seq.n_frames))
    if seq.file_format == "posetrack18":
        order.sort(key=lambda i: frame_number(seq.frame_names[i]))  # stable
    position = np.empty(seq.n_frames, dtype=np.intp)
    position[order] = np.arange(seq.n_frames)
    ids = []
    for i in order:
        iid = seq.image_ids[i]
        if isinstance(iid, bool) or not isinstance(iid, int):
            raise InputError(f"{seq.path}: frame {seq.frame_names[i]}: id: {iid!r} is not an integer image id")
        ids.append(iid)
    pt17 = seq.file_format == "posetrack17"
    persons = []
    for row in np.argsort(seq.ann_index, kind="stable") if not pt17 else range(len(seq.frame)):
        kp = seq.kp[row].copy()
        x1, y1, x2, y2 = seq.head[row]
        head = None if np.isnan(seq.head[row]).any() else np.array([x1, y1, x2 - x1, y2 - y1])
        box = seq.bbox[row]
        bbox = _extent(kp, head if pt17 else None) if pt17 or np.isnan(box).any() else box.copy()
        persons.append(Person(int(position[seq.frame[row]]), int(seq.track[row]), kp, bbox, head))
    return Video(
        seq.name,
        Path(seq.path),
        [root / seq.frame_names[i] for i in order],
        ids,
        seq.labeled[order].copy(),
        persons,
        seq,
    )


def _extent(kp: np.ndarray, head: np.ndarray | None) -> np.ndarray:
    """Person box from the annotated keypoints (and head box), grown by PT17_BOX_MARGIN per side."""
    pts = kp[(kp != 0).any(axis=1), :2]
    if head is not None:
        pts = np.vstack([pts, head[:2], head[:2] + head[2:]])
    if len(pts) == 0:
        return np.zeros(4)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    m = (hi - lo) * PT17_BOX_MARGIN
    return np.concatenate([lo - m, hi - lo + 2 * m])


def read_image(path: str | Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB.

    Raises:
        InputError: missing or unreadable (corrupt, truncated, not an image) file.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: image not found")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise InputError(f"{path}: cannot read image (corrupt or not an image: {reason})") from None


class PoseTrackDataset:
    """Per-person samples on labeled key frames, each with its supporting frames (a map-style
    dataset for ``torch.utils.data.DataLoader``; torch loads only when items are read).

    Every frame of a window is cropped with the key frame's (augmented) box, so the same affine map
    and the same flip apply to all of them. A sample is a dict::

        key            (3, H, W)      float32, ImageNet-normalized RGB crop of the key frame
        support        (S, 3, H, W)   the supporting frames in ``data_cfg.offsets`` order
        target         (K, h, w)      Gaussian heatmaps (peak 1, std data_cfg.sigma)
        target_weight  (K,)           1 for annotated joints inside the crop, else 0
        meta           image_id (int), track_id (int), center (2,), scale (2,) [the crop, in the
                       mirrored image when flipped], rotation () degrees, flipped () bool,
                       joints (K, 3) the annotated (x, y, v) in original image coordinates

    Augmentation (``train=True``) draws from a numpy Generator seeded with ``(seed, epoch, index)``
    when ``seed`` is given (see :meth:`set_epoch`), so a sample's augmentation does not depend on
    which process or worker loads it, nor on the order: one process and ``torchrun`` see the same
    samples, and a resumed run the same as an uninterrupted one. Without ``seed`` it is seeded from
    torch's RNG (reproducible under ``torch.manual_seed`` and DataLoader worker seeding).

    Args:
        root: dataset folder (``annotations/<split>/*.json`` and the frames).
        split: ``train``, ``val``, ...
        data_cfg: windows, crop and augmentation settings.
        input_size, heatmap_size: (H, W) of crops and of targets.
        train: apply the random augmentation.
        num_joints: 17 (COCO order).
        seed: seeds the augmentation per (seed, epoch, index); None draws from torch's RNG.

    Raises:
        InputError: bad layout, empty split, unreadable annotations, no labeled person.
    """

    def __init__(
        self,
        root,
        split: str,
        data_cfg: DataConfig,
        input_size: tuple[int, int],
        heatmap_size: tuple[int, int],
        train: bool,
        num_joints: int = 17,
        seed: int | None = None,
    ):
        from famicli.data.transforms import CROP_CONVENTIONS
        from famicli.data.windows import PADDINGS

        if num_joints != 17:
            raise ConfigError(f"num_joints {num_joints} is not supported; PoseTrack data has 17 (COCO order)")
        if data_cfg.padding not in PADDINGS:
            raise ConfigError(f"unknown window padding {data_cfg.padding!r}; choose from: {', '.join(PADDINGS)}")
        if data_cfg.crop not in CROP_CONVENTIONS:
            raise ConfigError(f"unknown crop convention {data_cfg.crop!r}; choose from: {', '.join(CROP_CONVENTIONS)}")
        self.root, self.split, self.cfg, self.train = Path(root), split, data_cfg, train
        self.input_size, self.heatmap_size = tuple(input_size), tuple(heatmap_size)
        self.seed, self.epoch = seed, 0
        self.videos = [read_sequence(p, root) for p in sequence_files(root, split)]
        # persons on labeled frames with a box; as officially, skip those whose keypoints are all zero
        self.items = [
            (vi, pi)
            for vi, v in enumerate(self.videos)
            for pi, p in enumerate(v.persons)
            if v.labeled[p.position] and p.keypoints.max() > 0 and (p.bbox[2:] > 0).all()
        ]
        if not self.items:
            raise InputError(f"{self.root / 'annotations' / split}: no labeled person in {len(self.videos)} sequences")
        log.info("%s/%s: %d sequences, %d person samples", root, split, len(self.videos), len(self.items))

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's augmentation draws (with ``seed``); call before iterating."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        import torch

        from famicli.data import transforms as T
        from famicli.data.windows import support_positions

        cfg = self.cfg
        video_index, person_index = self.items[index]
        video = self.videos[video_index]
        person = video.persons[person_index]
        positions = [person.position, *support_positions(person.position, len(video.frames), cfg.offsets, cfg.padding)]
        cache = {p: read_image(video.frames[p]) for p in dict.fromkeys(positions)}
        height, width = cache[person.position].shape[:2]
        joints = person.keypoints.copy()
        box = T.clean_box(person.bbox, width, height) or person.bbox
        center, scale = T.box_to_center_scale(box, cfg.aspect_ratio, cfg.box_enlarge)
        rng = None
        if self.train:
            if self.seed is None:
                rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
            else:
                rng = np.random.default_rng((self.seed, self.epoch, index))
        wt = T.draw_window_transform(rng, joints, center, scale, width, cfg)
        to_input = T.input_matrix(wt.center, wt.scale, wt.rotation, self.input_size, cfg.crop)
        to_heatmap = T.heatmap_matrix(wt.center, wt.scale, wt.rotation, self.input_size, self.heatmap_size, cfg.crop)
        work = T.flip_joints(joints, width) if wt.flipped else joints
        warp = T.compose(to_input, T.flip_matrix(width)) if wt.flipped else to_input
        h_in, w_in = self.input_size
        crops = {p: T.warp_image(img, warp, (w_in, h_in)) for p, img in cache.items()}
        window = np.stack([crops[p] for p in positions])  # (1+S, H, W, 3)
        visible = work[:, 2] > 0
        xy_in = T.apply_affine(work[:, :2], to_input)  # (K, 2) in input pixels
        inside = (xy_in[:, 0] >= 0) & (xy_in[:, 1] >= 0) & (xy_in[:, 0] <= w_in) & (xy_in[:, 1] <= h_in)
        target, weight = T.gaussian_targets(
            T.apply_affine(work[:, :2], to_heatmap), visible & inside, self.heatmap_size, cfg.sigma
        )
        images = T.normalize(window)  # (1+S, H, W, 3) -> (1+S, 3, H, W)
        meta = {
            "image_id": int(video.image_ids[person.position]),
            "track_id": int(person.track_id),
            "center": torch.tensor(wt.center, dtype=torch.float32),
            "scale": torch.tensor(wt.scale, dtype=torch.float32),
            "rotation": torch.tensor(wt.rotation, dtype=torch.float32),
            "flipped": torch.tensor(wt.flipped),
            "joints": torch.tensor(joints, dtype=torch.float32),
        }
        return {
            "key": images[0],
            "support": images[1:],
            "target": torch.from_numpy(target),
            "target_weight": torch.from_numpy(weight),
            "meta": meta,
        }
