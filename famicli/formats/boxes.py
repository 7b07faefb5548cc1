"""Boxes files: person detections for the frames of one video or of a whole dataset split.

Entries are ``{"bbox": [x, y, w, h], "score", "category_id", and "image_id" or "frame_index"}`` in a
list (COCO-style detections, the format of DCPose's ``val_boxes.json`` and mmpose's
``posetrack18_val_human_detections.json``), in a dict's ``annotations`` (a PoseTrack18 file, with its
``images``), or in a dict keyed by frame index. :class:`BoxFile` reads a file once;
:meth:`BoxFile.for_video` gives one video's boxes as :class:`FileBoxes`, a box source of
:mod:`famicli.inference.detect`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from famicli.errors import InputError
from famicli.formats.layout import IMAGE_ID_BASE, SEQUENCE_NAME, frame_number
from famicli.formats.validate import short_repr

log = logging.getLogger(__name__)

FILE_THRESHOLD = 0.2  # default score threshold for detections files: the official evaluation's


@dataclass
class Detections:
    """Person boxes of one frame (N persons)."""

    boxes: np.ndarray  # (N, 4) float x, y, w, h in image pixels
    scores: np.ndarray  # (N,) float box scores
    track_ids: np.ndarray | None = None  # (N,) int when the source knows identities (ground truth)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0))

    def __len__(self) -> int:
        return len(self.boxes)


class FileBoxes:
    """Boxes of one video taken from a :class:`BoxFile`."""

    def __init__(
        self,
        by_frame: dict[int, list[tuple]],
        description: dict,
        images: list[dict] | None,
        image_ids: list[int] | None,
        tracked: bool = False,
    ):
        self.by_frame = by_frame
        self.description = description
        self.tracked = tracked  # every box carries the file's track_id: kept instead of famipose's tracker
        self.images = images  # the file's PoseTrack18 ``images`` (file order), when it has them
        self.image_ids = image_ids  # their ids in frame order

    def frames(self) -> set[int]:
        return set(self.by_frame)

    def __call__(self, index: int, frame) -> Detections:
        rows = self.by_frame.get(index, [])
        if not rows:
            return Detections.empty()
        arr = np.array([r[:5] for r in rows], dtype=float)  # (N, 5) x, y, w, h, score
        ids = np.array([r[5] for r in rows], dtype=np.int64) if self.tracked else None
        return Detections(arr[:, :4], arr[:, 4], ids)


MAX_COORD = 1e6  # px: a box coordinate beyond it is dropped, as a non-finite one is


class BoxFile:
    """A detections file, read once, from which each video's boxes are taken.

    Entries are ``{"bbox": [x, y, w, h], "score", "category_id", and "image_id" or
    "frame_index"}`` in a list, in a dict's ``annotations`` (with its ``images``), or in a dict keyed by
    frame index. ``score`` defaults to 1; ``category_id`` other than 1 (person) is skipped; boxes
    scoring below ``threshold`` or of zero size are dropped, and so are boxes with a coordinate or
    score that is not finite (NaN, Infinity, beyond float range) or a coordinate beyond
    ±:data:`MAX_COORD` px (no video is that large; ``1e300`` would overflow the crop and drawing arithmetic),
    counted in ``counts["not_finite"]`` with one logged warning. Image ids become frames:

    * with an ``images`` list (a PoseTrack18 file): the image's position in frame order; the file
      must list as many frames as the video has;
    * PoseTrack18 ids (>= 10000000000): sequence = (id - 10^10) // 10000, frame = id % 10000; a
      video named like a PoseTrack sequence (``000342_mpii_test.mp4``) takes that sequence's
      boxes, and a file without them is refused (it is for another video);
    * otherwise ids are 0-based frame indices, as ``frame_index`` is.

    When every kept box has an integer ``track_id`` (ground truth, or boxes from your own tracker),
    the video's boxes keep those identities and famipose's tracker is not used; a frame listing one
    track id twice is an error.
    """

    def __init__(self, path: str | Path, threshold: float = FILE_THRESHOLD):
        self.path, self.threshold = Path(path), float(threshold)
        data = _read_json(self.path)
        self.images: list[dict] | None = None  # a PoseTrack18 file's ``images``, in file order
        self.image_ids: list[int] | None = None  # their ids in frame order
        if isinstance(data, dict) and isinstance(data.get("annotations"), list):
            entries = data["annotations"]
            if isinstance(data.get("images"), list):
                self.images = data["images"]
                if not all(isinstance(im, dict) and _is_int(im.get("id")) for im in self.images):
                    raise InputError(f"{self.path}: images: id: every image needs an integer 'id'")
                ordered = sorted(self.images, key=lambda im: frame_number(im.get("file_name", "")))
                self.image_ids = [im["id"] for im in ordered]
        elif isinstance(data, dict):  # {"<frame index>": [entry or [x, y, w, h, score], ...]}
            entries = [
                _keyed_entry(self.path, k, e) for k, v in data.items() for e in (v if isinstance(v, list) else [v])
            ]
        elif isinstance(data, list):
            entries = data
        else:
            raise InputError(f"{self.path}: expected a list of detections or a dict with 'annotations'")
        self.sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()
        self.rows: dict[str, dict[int, list[tuple]]] = {}  # "file" | "index" | "seq<N>" -> frame -> rows
        kept = dropped = not_finite = 0
        tracked = True  # every kept box has an integer track_id
        pos_of = {iid: i for i, iid in enumerate(self.image_ids or [])}
        for i, e in enumerate(entries):
            box, score, key = self._parse(i, e)
            if box is None:
                continue
            if not np.isfinite([*box, score]).all() or max(abs(v) for v in box) > MAX_COORD:
                not_finite += 1
                continue
            if score < self.threshold or box[2] <= 0 or box[3] <= 0:
                dropped += 1
                continue
            kind, frame = key
            track = e.get("track_id")
            if _is_int(track) and not _INT64_MIN <= track <= _INT64_MAX:
                raise InputError(f"{self.path}: entry {i}: track_id: {track} does not fit a 64-bit integer")
            tracked &= _is_int(track)
            if kind == "image_id" and self.images is not None:
                if frame not in pos_of:
                    raise InputError(f"{self.path}: annotations[{i}]: image_id {frame} is not in images")
                kind, frame = "file", pos_of[frame]
            elif kind == "image_id" and frame >= IMAGE_ID_BASE:
                kind, frame = f"seq{(frame - IMAGE_ID_BASE) // 10000}", frame % 10000
            else:
                kind = "index"
            self.rows.setdefault(kind, {}).setdefault(frame, []).append((*box, score, track))
            kept += 1
        self.counts = {"kept": kept, "below_threshold_or_empty": dropped, "not_finite": not_finite}
        if not_finite:
            log.warning(
                "%s: %d boxes with a coordinate or score that is not finite, or a coordinate beyond ±%g px, "
                "were dropped",
                self.path,
                not_finite,
                MAX_COORD,
            )
        self.tracked = kept > 0 and tracked

    def _parse(self, i: int, e) -> tuple:
        where = f"{self.path}: entry {i}"
        if not isinstance(e, dict):
            raise InputError(f"{where}: expected an object with 'bbox', got {type(e).__name__}")
        if e.get("category_id", 1) != 1:
            return None, None, None
        box = e.get("bbox")
        if not (isinstance(box, list) and len(box) >= 4 and all(_is_number(v) for v in box[:4])):
            raise InputError(f"{where}: bbox: expected [x, y, w, h], got {short_repr(box)}")
        score = e.get("score", 1.0)
        if not _is_number(score):
            raise InputError(f"{where}: score: expected a number, got {short_repr(score)}")
        for name in ("frame_index", "frame", "image_id"):
            if name in e:
                value = e[name]
                if not _is_int(value) or value < 0:
                    raise InputError(f"{where}: {name}: expected a non-negative integer, got {short_repr(value)}")
                key = ("image_id" if name == "image_id" else "index", value)
                return [_float(v) for v in box[:4]], _float(score), key
        raise InputError(f"{where}: needs 'image_id' or 'frame_index'")

    def for_video(self, name: str, n_frames: int | None, require: bool = True) -> FileBoxes:
        """The boxes of the video ``name`` (file stem) with ``n_frames`` frames (None: not known yet, the
        frame-count checks are skipped).

        ``require=False`` (a whole dataset's detections) gives a sequence missing from the file no
        boxes, with a logged warning, instead of an error.

        Raises:
            InputError: the file is for another video (another PoseTrack sequence, other frame
                count, frames past the video's end).
        """
        seqs = sorted(int(k[3:]) for k in self.rows if k.startswith("seq"))
        m = SEQUENCE_NAME.match(name)
        describe = {"source": "file", "path": str(self.path), "sha256": self.sha256, "threshold": self.threshold}
        if self.images is not None:
            if n_frames is not None and len(self.images) != n_frames:
                raise InputError(
                    f"{self.path}: images: {len(self.images)} frames, but the video {name} has "
                    f"{n_frames}; the boxes file is for another video"
                )
            folders = {Path(str(im.get("file_name", ""))).parent.name for im in self.images}
            if m and len(folders) == 1 and SEQUENCE_NAME.match(next(iter(folders))) and folders != {name}:
                raise InputError(
                    f"{self.path}: images: frames of {next(iter(folders))}, not of the video {name}; "
                    "the boxes file is for another video"
                )
            rows = self.rows.get("file", {})
        elif seqs:
            if m:
                seq = int(m.group(1))
                if seq not in seqs and not require:
                    log.warning("%s: no boxes for sequence %s (%s)", self.path, f"{seq:06d}", name)
                elif seq not in seqs:
                    listed = ", ".join(f"{s:06d}" for s in seqs[:5]) + (", ..." if len(seqs) > 5 else "")
                    raise InputError(
                        f"{self.path}: image_id: no boxes for sequence {seq:06d} (the video {name}); "
                        f"the file has sequences {listed}: it is for another video"
                    )
            elif len(seqs) == 1:
                seq = seqs[0]
            else:
                raise InputError(
                    f"{self.path}: image_id: boxes of {len(seqs)} PoseTrack sequences; name the video "
                    "after its sequence (e.g. 000342_mpii_test.mp4) to pick its boxes"
                )
            rows = self.rows.get(f"seq{seq}", {})
            describe["sequence"] = f"{seq:06d}"
        else:
            rows = self.rows.get("index", {})
        late = [f for f in rows if n_frames is not None and f >= n_frames]
        if late:
            raise InputError(
                f"{self.path}: boxes for frame {max(late)}, but the video {name} has {n_frames} frames "
                "(frame indices are 0-based); the boxes file is for another video"
            )
        describe["boxes"] = sum(len(r) for r in rows.values())
        describe["frames_with_boxes"] = len(rows)
        describe["not_finite_dropped"] = self.counts["not_finite"]  # in the whole file
        describe["track_ids"] = "file" if self.tracked else "famipose"
        if self.tracked:
            for frame, frame_rows in sorted(rows.items()):
                ids = [r[5] for r in frame_rows]
                if len(set(ids)) != len(ids):
                    dup = next(t for t in ids if ids.count(t) > 1)
                    raise InputError(
                        f"{self.path}: track_id: {dup} is given to two boxes of frame {frame} (0-based) "
                        f"of the video {name}; track ids must be unique within a frame"
                    )
        return FileBoxes(rows, describe, self.images, self.image_ids, self.tracked)


def _read_json(path: Path):
    if not path.is_file():
        raise InputError(f"{path}: boxes file not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise InputError(f"{path}: not valid JSON (nested too deeply)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None


def _keyed_entry(path: Path, key: str, entry) -> dict:
    if not (key.isascii() and key.isdigit()):
        raise InputError(f"{path}: key {short_repr(key)}: expected a frame index (0-based)")
    if isinstance(entry, list):
        entry = {"bbox": entry[:4], **({"score": entry[4]} if len(entry) > 4 else {})}
    if not isinstance(entry, dict):
        raise InputError(f"{path}: frame {key}: expected [x, y, w, h, score] or an object with 'bbox'")
    return {**entry, "frame_index": int(key)}


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _float(value) -> float:
    """``float(value)``; an integer beyond float range becomes +-inf (then dropped as not finite)."""
    try:
        return float(value)
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")
