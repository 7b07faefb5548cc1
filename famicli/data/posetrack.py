"""PoseTrack18/17 readers and the training/validation dataset of per-person temporal windows.

Layout (``root`` = a PoseTrack18 or SynthTrack folder)::

    root/annotations/<split>/<sequence>.json     one file per video (PoseTrack18 or PoseTrack17 format)
    root/<file_name of each frame>               e.g. images/val/000342_mpii_test/000000.jpg

A PoseTrack18 file has ``images`` (every frame) and ``annotations`` (one per person per labeled frame,
17 COCO-order keypoints); a PoseTrack17 file has an MPII-style ``annolist`` with 15 joint ids, mapped
here to the same 17 COCO-order columns (ears stay empty). Keypoints are (x, y, v) with v > 0 meaning
annotated; PoseTrack17 points get v = 1 whenever they are given.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from famicli.config import DataConfig
from famicli.errors import ConfigError, InputError
from famicli.keypoints import POSEVAL_COLUMNS

log = logging.getLogger(__name__)

# NNNNNN_<mpii|bonn|mpiinew>[_...]: poseval derives image ids from the sequence number.
SEQUENCE_NAME = re.compile(r"^(\d{6})_(mpii|bonn|mpiinew)(_.*)?$")
PT17_BOX_MARGIN = 0.05  # PoseTrack17 person boxes: keypoint + head-box extent, grown by 5 % per side


def image_id(sequence_number: int, frame: int) -> int:
    """The PoseTrack18 image id of a frame: 10000000000 + sequence * 10000 + frame index."""
    return 10_000_000_000 + sequence_number * 10_000 + frame


@dataclass
class Person:
    """One annotated person in one frame."""

    position: int  # index of the frame in the video's frame list
    track_id: int  # person identity within the video
    keypoints: np.ndarray  # (17, 3) x, y, v in image pixels; (0, 0, 0) = not annotated
    bbox: np.ndarray  # (4,) x, y, w, h (PoseTrack17: derived from the keypoints and head box)
    bbox_head: np.ndarray | None  # (4,) x, y, w, h of the head, when given


@dataclass
class Video:
    """One sequence file, frames in frame order."""

    name: str  # file stem, e.g. 000342_mpii_test
    path: Path  # the annotation file
    frames: list[Path]  # image files, absolute
    image_ids: list[int]  # PoseTrack18 image id of each frame
    labeled: np.ndarray  # (T,) bool: the frame was labeled
    persons: list[Person]  # every annotated person in every frame


def annotations_folder(root: str | Path) -> Path:
    """``root/annotations``, checked.

    Raises:
        InputError: no such folder, or no ``annotations`` folder in it.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: dataset folder not found")
    ann = root / "annotations"
    if not ann.is_dir():
        raise InputError(
            f"{root}: no annotations folder (expected {ann}/<split>/<sequence>.json, the PoseTrack18 layout)"
        )
    return ann


def sequence_files(root: str | Path, split: str) -> list[Path]:
    """The sequence files of ``split``, sorted.

    Raises:
        InputError: missing folder, no ``annotations`` folder, unknown or empty split.
    """
    ann = annotations_folder(root)
    folder = ann / split
    if not folder.is_dir():
        found = sorted(p.name for p in ann.iterdir() if p.is_dir())
        raise InputError(f"{ann}: split {split!r} not found; available: {', '.join(found) or 'none'}")
    files = sorted(folder.glob("*.json"))
    if not files:
        raise InputError(f"{folder}: empty split {split!r}: no sequence files (*.json)")
    return files


def read_sequence(path: str | Path, root: str | Path) -> Video:
    """Read one PoseTrack18 (``images``/``annotations``) or PoseTrack17 (``annolist``) sequence file.

    Raises:
        InputError: unreadable JSON or missing/malformed fields, naming the file and the field.
    """
    path, root = Path(path), Path(root)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if isinstance(data, dict) and "annolist" in data:
        return _read_annolist(path, root, data)
    if not (isinstance(data, dict) and isinstance(data.get("images"), list)):
        raise InputError(f"{path}: neither PoseTrack18 ('images', 'annotations') nor PoseTrack17 ('annolist')")
    return _read_posetrack18(path, root, data)


def _frame_number(name: str) -> int:
    stem = Path(name).stem
    return int(stem) if stem.isdigit() else -1


def _sequence_number(path: Path) -> int:
    m = SEQUENCE_NAME.match(path.stem)
    return int(m.group(1)) if m else 0


def _read_posetrack18(path: Path, root: Path, data: dict) -> Video:
    images = sorted(data["images"], key=lambda im: _frame_number(str(im.get("file_name", ""))))
    frames, ids, labeled, pos_of = [], [], [], {}
    for i, im in enumerate(images):
        if "file_name" not in im or "id" not in im:
            raise InputError(f"{path}: images[{i}]: needs 'file_name' and 'id'")
        frames.append(root / im["file_name"])
        ids.append(int(im["id"]))
        labeled.append(bool(im.get("is_labeled", True)))
        pos_of[int(im["id"])] = i
    persons = []
    for i, ann in enumerate(data.get("annotations") or []):
        where = f"{path}: annotations[{i}]"
        if ann.get("image_id") not in pos_of:
            raise InputError(f"{where}: image_id {ann.get('image_id')!r} is not in images")
        kp = ann.get("keypoints")
        if not isinstance(kp, list) or len(kp) != 51:
            raise InputError(f"{where}: keypoints: expected 17 x [x, y, v] (51 numbers)")
        kp = np.asarray(kp, dtype=float).reshape(17, 3)  # (51,) -> (17, 3)
        box = ann.get("bbox")
        bbox = np.asarray(box, dtype=float) if isinstance(box, list) and len(box) == 4 else _extent(kp, None)
        head = ann.get("bbox_head")
        head = np.asarray(head, dtype=float) if isinstance(head, list) and len(head) == 4 else None
        persons.append(Person(pos_of[ann["image_id"]], int(ann.get("track_id", -1)), kp, bbox, head))
    return Video(path.stem, path, frames, ids, np.array(labeled, dtype=bool), persons)


def _first(value):
    """Annolist fields are one-element lists; accept bare values too."""
    return value[0] if isinstance(value, list) and value else value


def _read_annolist(path: Path, root: Path, data: dict) -> Video:
    seq = _sequence_number(path)
    frames, ids, labeled, persons = [], [], [], []
    for fi, frame in enumerate(data["annolist"]):
        image = _first(frame.get("image"))
        if not isinstance(image, dict) or not isinstance(image.get("name"), str):
            raise InputError(f"{path}: annolist[{fi}]: image: missing image name")
        frames.append(root / image["name"])
        ids.append(image_id(seq, fi))
        rects = frame.get("annorect") or []
        labeled.append(bool(_first(frame.get("is_labeled", [len(rects) > 0]))))
        for ri, rect in enumerate(rects):
            ap = rect.get("annopoints")
            if not (isinstance(ap, list) and ap and isinstance(ap[0], dict)):
                continue
            kp = np.zeros((17, 3))
            for p in ap[0].get("point") or []:
                pid = _first(p.get("id"))
                if isinstance(pid, int) and 0 <= pid < 15:
                    kp[POSEVAL_COLUMNS[pid]] = (float(_first(p["x"])), float(_first(p["y"])), 1.0)
            head = [_first(rect.get(c)) for c in ("x1", "y1", "x2", "y2")]
            head = (np.array([head[0], head[1], head[2] - head[0], head[3] - head[1]], dtype=float)
                    if all(isinstance(v, (int, float)) for v in head) else None)  # fmt: skip
            tid = _first(rect.get("track_id", ri))
            persons.append(Person(fi, int(tid) if isinstance(tid, int) else ri, kp, _extent(kp, head), head))
    return Video(path.stem, path, frames, ids, np.array(labeled, dtype=bool), persons)


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

    def __init__(self, root, split: str, data_cfg: DataConfig, input_size: tuple[int, int],
                 heatmap_size: tuple[int, int], train: bool, num_joints: int = 17,
                 seed: int | None = None):  # fmt: skip
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
        self.items = [(vi, pi) for vi, v in enumerate(self.videos) for pi, p in enumerate(v.persons)
                      if v.labeled[p.position] and p.keypoints.max() > 0 and (p.bbox[2:] > 0).all()]  # fmt: skip
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
