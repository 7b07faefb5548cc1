"""Readers for PoseTrack annotation and prediction files, parsed once into numpy arrays.

Two formats are read, as the official poseval reads them:

* PoseTrack18: one JSON per sequence with ``images``, ``annotations`` and ``categories``
  (keypoints as 15 or 17 ``[x, y, v]`` triples named by ``categories[0].keypoints``);
* PoseTrack17: one JSON per sequence with an MPII-style ``annolist``.

This is famipose's one PoseTrack reader: the evaluator (roles ``gt`` and ``pred``), the training and
validation dataset, ``eval --weights`` and ``famipose data check`` (role ``data``) all parse through
:func:`read_sequence`. The ``data`` role reads a dataset file as training does: head boxes are
optional, frame file names need not follow poseval's pattern, and a category without keypoint
names is taken to list the 17 keypoints in :data:`famicli.keypoints.JOINT_NAMES` order.

Both become a :class:`Sequence`: per-frame names and ignore regions, and one row per person
(frame index, track id, 17 keypoints in COCO order with a presence mask, per-keypoint scores,
head box). Problems the reader meets on the way are recorded in a
:class:`famicli.formats.validate.Issues` list, never printed; what cannot be parsed at all raises
:class:`famicli.errors.InputError` naming the file, frame and field.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from famicli.errors import InputError
from famicli.formats.layout import image_id, sequence_number
from famicli.formats.validate import Issues, short_repr
from famicli.io import loads
from famicli.keypoints import JOINT_NAMES, POSEVAL_COLUMNS

# For each scored joint (poseval's order), its column in the 17-keypoint arrays.
JOINT_COLUMNS = np.array(POSEVAL_COLUMNS, dtype=np.intp)
ROLES = ("gt", "pred", "data")  # see read_sequence
MIN_SCORE = -9999.0  # poseval's score for a predicted keypoint without one
MAX_TRACK_ID = 10000  # poseval offsets track ids by 10000 per sequence
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # track ids are stored as int64
# images/<split>/<NNNNNN>_<mpii|bonn|mpiinew>[_...]/<frame>.<ext>: poseval derives ids from it
_FRAME_NAME = re.compile(r"(?:^|/)((\d+)_(?:mpii|bonn|mpiinew)(?:_[^/]*)?)/(\d+)(?:\.[^/]*)?$")


@dataclass
class Sequence:
    """One sequence file: frames in file order and one row per person (sorted by frame).

    Person arrays have N rows; keypoints use the 17 PoseTrack18 names in COCO order.
    """

    name: str  # file name without .json, e.g. 000342_mpii_test
    path: str  # the file as given, for messages
    frame_names: list[str]  # image file_name (or annolist image name) per frame
    image_ids: list  # (F,) PoseTrack18 image id per frame (annolist: derived from the file name)
    labeled: np.ndarray  # (F,) bool: the frame is marked labeled (or has persons)
    n_rects: np.ndarray  # (F,) int: persons listed in the frame, with or without keypoints
    ignore: dict[int, list[np.ndarray]]  # frame -> ignore polygons, each (V, 2)
    frame: np.ndarray  # (N,) int: frame index of each person
    track: np.ndarray  # (N,) int64: track id
    kp: np.ndarray  # (N, 17, 3) float: x, y, v (v = 1 for annolist points)
    present: np.ndarray  # (N, 17) bool: keypoint given (not x == y == v == 0)
    scores: np.ndarray  # (N, 17) float: keypoint scores, MIN_SCORE where missing
    has_scores: np.ndarray  # (N,) bool: the person carries keypoint scores
    head: np.ndarray  # (N, 4) float: head box x1, y1, x2, y2 (NaN if missing)
    bbox: np.ndarray  # (N, 4) float: person box x, y, w, h (NaN if missing)
    person_score: np.ndarray  # (N,) float: the person's ``score`` (NaN if missing)
    ann_index: np.ndarray  # (N,) int: position of the person in the file, for messages
    file_format: str = "posetrack18"  # or "posetrack17"
    sha256: str = ""  # of the file's bytes
    images: list[dict] | None = None  # PoseTrack18, role "data": the file's ``images`` (kept frames, file order)

    @property
    def n_frames(self) -> int:
        return len(self.frame_names)

    def where(self, row: int) -> str:
        """``<file>: frame <name>`` prefix for messages about person ``row``."""
        return f"{self.path}: frame {self.frame_names[self.frame[row]]}"


def read_sequence(path: Path, role: str, issues: Issues) -> Sequence:
    """Read one PoseTrack18 or PoseTrack17 (``annolist``) file.

    Args:
        path: the sequence file.
        role: ``gt`` (head boxes required), ``pred`` or ``data`` (a dataset file read for training,
            validation or checking; see the module docstring).
        issues: where problems that do not stop the reading are recorded.

    Raises:
        InputError: unreadable file, invalid JSON or a malformed field, naming the file and the field.
    """
    if role not in ROLES:
        raise ValueError(f"role {role!r} not in {ROLES}")
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return _read(path, raw, role, issues)
    except InputError as exc:  # a file's own strings (frame names) may hold line breaks
        raise InputError(" ".join(str(exc).splitlines())) from None


def _read(path: Path, raw: bytes, role: str, issues: Issues) -> Sequence:
    import hashlib

    try:
        data = loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise InputError(f"{path}: not valid JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object with 'images' or 'annolist'")
    if "annolist" in data:
        seq = _read_annolist(path, data, role, issues)
    else:
        seq = _read_posetrack18(path, data, role, issues)
    seq.sha256 = hashlib.sha256(raw).hexdigest()
    return seq


def _need(data: dict, key: str, path: Path, kind=list):
    value = data.get(key)
    if not isinstance(value, kind):
        raise InputError(f"{path}: {key}: missing or not a {kind.__name__}")
    return value


def _keypoint_columns(path: Path, data: dict, role: str, issues: Issues) -> np.ndarray:
    """Column of each file keypoint in the 17-name order (-1 = not scored), from categories."""
    cats = data.get("categories") if role == "data" else _need(data, "categories", path)
    if role == "data" and not (
        isinstance(cats, list) and cats and isinstance(cats[0], dict) and isinstance(cats[0].get("keypoints"), list)
    ):
        return np.arange(len(JOINT_NAMES))  # a dataset file without names: the 17 in schema order
    if len(cats) != 1 or not isinstance(cats[0], dict) or cats[0].get("name") != "person":
        raise InputError(f"{path}: categories: expected exactly one category named 'person'")
    names = cats[0].get("keypoints")
    if not isinstance(names, list) or len(names) not in (15, 17):
        got = len(names) if isinstance(names, list) else names
        raise InputError(f"{path}: categories: keypoints: {short_repr(got)} names, expected 15 or 17")
    strings = {n for n in names if isinstance(n, str)}  # other values are refused below, with their name
    if {"left_eye", "right_eye"} & strings and not {"head_bottom", "head_top"} & strings:
        raise InputError(
            f"{path}: categories: keypoints: COCO's keypoints (left_eye, right_eye where PoseTrack has "
            "head_bottom, head_top); PoseTrack does not score eyes as head joints: write PoseTrack's 17 names "
            "with head_bottom and head_top absent (0, 0, 0), as famipose predict does for a COCO checkpoint"
        )
    unknown = [n for n in names if n not in JOINT_NAMES]
    if unknown:
        issues.error(
            f"{path}: categories: keypoints: unknown name {short_repr(unknown[0])}; known: " + ", ".join(JOINT_NAMES),
            downgrade="ignored, as poseval ignores names it does not know",
        )
    missing = [n for n in JOINT_NAMES if n not in names and n not in ("left_ear", "right_ear")]
    if missing:
        raise InputError(f"{path}: categories: keypoints: missing {', '.join(missing)}")
    return np.array([JOINT_NAMES.index(n) if n in JOINT_NAMES else -1 for n in names])


def _video_of(name: str) -> str | None:
    """The video id poseval derives from a frame's file name, or None if it cannot."""
    m = _FRAME_NAME.search(name)
    return m.group(2) if m and int(m.group(3)) < 10000 else None


def _read_posetrack18(path: Path, data: dict, role: str, issues: Issues) -> Sequence:
    images = _need(data, "images", path)
    # a dataset's test split lists its images without annotations
    anns = [] if role == "data" and data.get("annotations") is None else _need(data, "annotations", path)
    columns = _keypoint_columns(path, data, role, issues)
    n_kp = len(columns)
    # poseval keeps only the frames of the first video folder named in the file
    names, videos = [], []
    for i, img in enumerate(images):
        name = img.get("file_name") if isinstance(img, dict) else None
        if not isinstance(name, str):
            raise InputError(f"{path}: frame {i}: file_name: missing")
        video = _video_of(name)
        if video is None and role == "data":
            video = ""  # a dataset file: every frame belongs to the sequence, whatever its name
        elif video is None:
            raise InputError(
                f"{path}: frame {name}: file_name: expected images/<split>/NNNNNN_<mpii|bonn|"
                "mpiinew>_<...>/<frame>.jpg with a frame number below 10000 (poseval derives "
                "image ids from it)"
            )
        names.append(name)
        videos.append(video)
    keep = [i for i, v in enumerate(videos) if v == videos[0]]
    if len(keep) != len(names):
        issues.warn(
            f"{path}: images: {len(names) - len(keep)} images from another video folder "
            f"than {os.path.dirname(names[0])} are ignored, as poseval ignores them",
            kind="other_video",
        )
    images = [images[i] for i in keep]
    names = [names[i] for i in keep]
    id2frame: dict = {}
    for i, img in enumerate(images):
        iid = img.get("id")
        if not isinstance(iid, (int, str)) or isinstance(iid, bool):
            raise InputError(f"{path}: frame {names[i]}: id: {short_repr(iid)} is not an image id")
        if iid in id2frame:
            raise InputError(f"{path}: frame {names[i]}: id: duplicate image id {short_repr(iid)}")
        id2frame[iid] = i
    # One pass per field (list comprehensions), then each rule checked over the whole column; a failed
    # rule names the first annotation that breaks it.
    frame_of = [id2frame.get(_key(a.get("image_id"))) if type(a) is dict else None for a in anns]
    index = [k for k, fi in enumerate(frame_of) if fi is not None]
    orphans = len(anns) - len(index)
    if orphans:
        issues.warn(
            f"{path}: annotations: {orphans} annotations name an image_id that is not in "
            "images; ignored, as poseval ignores them",
            kind="orphans",
        )
        anns = [anns[k] for k in index]
    frames = [frame_of[k] for k in index] if orphans else frame_of

    def where(j: int) -> str:
        return f"{path}: frame {names[frames[j]]}: annotation {index[j]}"

    kps = [a.get("keypoints") for a in anns]
    for j, kp in enumerate(kps):
        if type(kp) is not list or len(kp) != 3 * n_kp:
            got = len(kp) if isinstance(kp, list) else type(kp).__name__
            raise InputError(f"{where(j)}: keypoints: {got} values, expected {3 * n_kp} ({n_kp} keypoints × [x, y, v])")
    tracks = [a.get("track_id") for a in anns]
    for j, tid in enumerate(tracks):
        if type(tid) is not int and (isinstance(tid, bool) or not isinstance(tid, int)):
            raise InputError(f"{where(j)}: track_id: {short_repr(tid)} is not an integer")
        if not INT64_MIN <= tid <= INT64_MAX:
            raise InputError(f"{where(j)}: track_id: {tid} does not fit a 64-bit integer")
    scores = [a.get("scores") or None for a in anns]
    for j, sc in enumerate(scores):
        if sc is not None and (type(sc) is not list or len(sc) != n_kp):
            got = len(sc) if isinstance(sc, list) else type(sc).__name__
            raise InputError(f"{where(j)}: scores: {got} values, expected {n_kp}")
    heads = [_box_or_none(a.get("bbox_head")) for a in anns]
    if role == "gt" and None in heads:
        raise InputError(
            f"{where(heads.index(None))}: bbox_head: missing or not [x, y, w, h] (the head size "
            "normalizes every distance)"
        )
    boxes = [_box_or_none(a.get("bbox")) for a in anns]
    pscores = [a.get("score") for a in anns]
    pscores = [
        ps if type(ps) is float else _number(ps) if isinstance(ps, int) and not isinstance(ps, bool) else None
        for ps in pscores
    ]
    n = len(frames)
    flat = _floats(kps, n * 3 * n_kp, path, "keypoints", names, frames, index)
    kp_file = flat.reshape(n, n_kp, 3)
    kp17 = np.zeros((n, 17, 3))
    cols = columns >= 0
    kp17[:, columns[cols]] = kp_file[:, cols]
    present = np.zeros((n, 17), dtype=bool)
    absent = (kp_file[..., 0] == 0) & (kp_file[..., 1] == 0) & (kp_file[..., 2] == 0)
    present[:, columns[cols]] = ~absent[:, cols]
    has_scores = np.array([s is not None for s in scores], dtype=bool)
    sc17 = np.full((n, 17), MIN_SCORE)
    if has_scores.any():
        rows = [s for s in scores if s is not None]
        sflat = _floats(
            rows,
            len(rows) * n_kp,
            path,
            "scores",
            names,
            [f for f, s in zip(frames, scores) if s is not None],
            [i for i, s in zip(index, scores) if s is not None],
        )
        block = np.full((len(rows), 17), MIN_SCORE)
        block[:, columns[cols]] = sflat.reshape(len(rows), n_kp)[:, cols]
        sc17[has_scores] = block
    head = _boxes(heads, n, path, "bbox_head", names, frames, index)
    with np.errstate(over="ignore", invalid="ignore"):  # huge values become inf, refused as not finite
        head[:, 2] += head[:, 0]  # x2 = x + w, y2 = y + h, as poseval converts them
        head[:, 3] += head[:, 1]
    bbox = _boxes(boxes, n, path, "bbox", names, frames, index)
    labeled = np.array([bool(img.get("is_labeled", False)) for img in images], dtype=bool)
    n_rects = np.bincount(np.asarray(frames, dtype=np.intp), minlength=len(images))
    ignore = {}
    for i, img in enumerate(images):
        if "ignore_regions_x" in img and "ignore_regions_y" in img:
            polys = _polygons(img["ignore_regions_x"], img["ignore_regions_y"], path, names[i])
            if polys:
                ignore[i] = polys
    seq = _sequence(
        path,
        names,
        labeled | (n_rects > 0),
        n_rects,
        ignore,
        frames,
        tracks,
        kp17,
        present,
        sc17,
        has_scores,
        head,
        bbox,
        pscores,
        index,
    )
    seq.image_ids = [img["id"] for img in images]
    seq.images = images if role == "data" else None  # kept to write predictions in the same format
    return seq


def _floats(rows, count, path, field_name, names, frames, index) -> np.ndarray:
    """Flatten lists of numbers into one float array; name the first bad value if any."""
    try:
        return np.fromiter(itertools.chain.from_iterable(rows), dtype=float, count=count)
    except (TypeError, ValueError, OverflowError):
        for row, fi, k in zip(rows, frames, index):
            for j, v in enumerate(row):
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise InputError(
                        f"{path}: frame {names[fi]}: annotation {k}: {field_name}: value {j} is {short_repr(v)}, "
                        "not a number"
                    ) from None
        # only numbers, some beyond float range: those become +-inf (refused later as not finite)
        return np.fromiter((_number(v) for v in itertools.chain.from_iterable(rows)), dtype=float, count=count)


def _box_or_none(value):
    """A ``[x, y, w, h]`` list as given, or None."""
    return value if type(value) is list and len(value) == 4 else None


def _boxes(rows, n, path, field_name, names, frames, index) -> np.ndarray:
    out = np.full((n, 4), np.nan)
    have = [i for i, r in enumerate(rows) if r is not None]
    if have:
        out[have] = _floats(
            [rows[i] for i in have],
            4 * len(have),
            path,
            field_name,
            names,
            [frames[i] for i in have],
            [index[i] for i in have],
        ).reshape(-1, 4)
    return out


def _polygons(xs, ys, path, frame_name) -> list[np.ndarray]:
    if not isinstance(xs, list) or not isinstance(ys, list):
        raise InputError(f"{path}: frame {frame_name}: ignore_regions_x: not a list of polygons")
    polys = []
    for px, py in zip(xs, ys):
        try:
            polys.append(np.array(list(zip(px, py)), dtype=float).reshape(-1, 2))
        except (TypeError, ValueError, OverflowError):
            raise InputError(
                f"{path}: frame {frame_name}: ignore_regions_x: a polygon is not a list of numbers"
            ) from None
    return polys


def _sequence(
    path,
    names,
    labeled,
    n_rects,
    ignore,
    frames,
    tracks,
    kp17,
    present,
    sc17,
    has_scores,
    head,
    bbox,
    pscores,
    index,
    file_format="posetrack18",
):
    frames = np.asarray(frames, dtype=np.intp)
    order = np.argsort(frames, kind="stable")  # group persons by frame, file order within
    pscore = np.array([np.nan if s is None else s for s in pscores], dtype=float)
    return Sequence(
        name=path.name[: -len(".json")] if path.name.endswith(".json") else path.name,
        path=str(path),
        frame_names=names,
        image_ids=[],
        labeled=np.asarray(labeled, dtype=bool),
        n_rects=np.asarray(n_rects, dtype=np.intp),
        ignore=ignore,
        frame=frames[order],
        track=np.asarray(tracks, dtype=np.int64).reshape(-1)[order],
        kp=kp17[order],
        present=present[order],
        scores=sc17[order],
        has_scores=has_scores[order],
        head=head[order],
        bbox=bbox[order],
        person_score=pscore.reshape(-1)[order],
        ann_index=np.asarray(index, dtype=np.intp).reshape(-1)[order],
        file_format=file_format,
    )


def _first(value):
    """poseval's annolist fields are one-element lists; accept a bare value too."""
    return value[0] if isinstance(value, list) and value else value


def _key(value):
    """``value`` if it can be an image id (hashable), else None: ids given as lists or objects match
    no image."""
    return value if isinstance(value, (int, float, str)) else None


def _number(value) -> float | None:
    """A JSON number as a float (an integer beyond float range becomes +-inf); None if not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


def _to_float(value) -> float | None:
    """``float(value)`` as poseval reads annolist values (numeric strings too); None if it cannot."""
    try:
        return float(value)
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")
    except (TypeError, ValueError):
        return None


def _read_annolist(path: Path, data: dict, role: str, issues: Issues) -> Sequence:
    annolist = _need(data, "annolist", path)
    names, n_rects, ignore = [], [], {}
    frames, tracks, kp_rows, pres_rows, score_rows, heads, pscores, index = ([] for _ in range(8))
    has_scores = []
    unknown_ids = set()
    for fi, frame in enumerate(annolist):
        image = frame.get("image") if isinstance(frame, dict) else None
        name = _first(image).get("name") if image and isinstance(_first(image), dict) else None
        if not isinstance(name, str):
            raise InputError(f"{path}: frame {fi}: image: missing image name")
        names.append(name)
        rects = frame.get("annorect") or []
        if not isinstance(rects, list):
            raise InputError(f"{path}: frame {name}: annorect: not a list")
        n_rects.append(len(rects))
        regions = frame.get("ignore_regions") or []
        if not isinstance(regions, list):
            raise InputError(f"{path}: frame {name}: ignore_regions: not a list")
        polys = []
        for region in regions:
            pts = region.get("point", []) if isinstance(region, dict) else []
            try:
                xy = [[_first(p["x"]), _first(p["y"])] for p in pts]
                polys.append(np.array(xy, dtype=float).reshape(-1, 2))
            except (KeyError, TypeError, ValueError, OverflowError):
                raise InputError(f"{path}: frame {name}: ignore_regions: point: x/y: not a number") from None
        if polys:
            ignore[fi] = polys
        for k, rect in enumerate(rects):
            where = f"{path}: frame {name}: annorect {k}"
            ap = rect.get("annopoints") if isinstance(rect, dict) else None
            if not (isinstance(ap, list) and ap and isinstance(ap[0], dict) and "point" in ap[0]):
                continue  # poseval drops rects without annopoints
            tid = _first(rect.get("track_id"))
            if isinstance(tid, bool) or not isinstance(tid, int):
                raise InputError(f"{where}: track_id: {short_repr(tid)} is not an integer")
            if not INT64_MIN <= tid <= INT64_MAX:
                raise InputError(f"{where}: track_id: {tid} does not fit a 64-bit integer")
            points = ap[0]["point"] or []
            if not isinstance(points, list):
                raise InputError(f"{where}: annopoints: point: not a list")
            kp = np.zeros((17, 3))
            pres = np.zeros(17, dtype=bool)
            sc = np.full(17, MIN_SCORE)
            scored = False
            for p in points:
                if not isinstance(p, dict):
                    raise InputError(f"{where}: annopoints: point: {short_repr(p)} is not an object")
                pid = _first(p.get("id"))
                if isinstance(pid, bool) or not isinstance(pid, int) or not 0 <= pid < 15:
                    unknown_ids.add(short_repr(pid))
                    continue
                col = JOINT_COLUMNS[pid]
                if pres[col]:
                    continue  # poseval uses the first point with an id
                x, y = _to_float(_first(p.get("x"))), _to_float(_first(p.get("y")))
                if x is None or y is None:
                    raise InputError(f"{where}: point {pid}: x/y: not a number")
                kp[col] = (x, y, 1.0)
                pres[col] = True
                if "score" in p:
                    score = _to_float(_first(p["score"]))
                    if score is None:
                        raise InputError(f"{where}: point {pid}: score: {short_repr(p['score'])} is not a number")
                    sc[col] = score
                    scored = True
            box = [_first(rect.get(c)) for c in ("x1", "y1", "x2", "y2")]
            if role == "gt" and not all(isinstance(v, (int, float)) for v in box):
                raise InputError(f"{where}: x1/y1/x2/y2: head box missing (the head size normalizes every distance)")
            frames.append(fi)
            tracks.append(tid)
            kp_rows.append(kp)
            pres_rows.append(pres)
            score_rows.append(sc)
            has_scores.append(scored)
            heads.append([np.nan if _number(v) is None else _number(v) for v in box])
            pscores.append(_number(_first(rect.get("score"))))
            index.append(k)
    if unknown_ids:
        issues.error(
            f"{path}: annopoints: point: unknown keypoint id {sorted(unknown_ids)[0]}; "
            "known: 0-14 (poseval's joint order)",
            downgrade="ignored, as poseval ignores ids it does not score",
        )
    n = len(frames)
    n_rects_arr = np.asarray(n_rects, dtype=np.intp)
    labeled = np.array([bool(_first(f.get("is_labeled", [0]))) for f in annolist], dtype=bool)
    seq = _sequence(
        path,
        names,
        labeled | (n_rects_arr > 0),
        n_rects_arr,
        ignore,
        frames,
        tracks,
        np.array(kp_rows).reshape(n, 17, 3),
        np.array(pres_rows, dtype=bool).reshape(n, 17),
        np.array(score_rows).reshape(n, 17),
        np.array(has_scores, dtype=bool),
        np.array(heads, dtype=float).reshape(n, 4),
        np.full((n, 4), np.nan),
        pscores,
        index,
        file_format="posetrack17",
    )
    number = sequence_number(path.stem) or 0  # annolist files carry no ids: derived as PoseTrack18 does
    seq.image_ids = [image_id(number, fi) for fi in range(len(names))]
    return seq
