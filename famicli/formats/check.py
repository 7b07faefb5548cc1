"""``famipose data check``: validate a PoseTrack-format dataset folder and summarize it.

Checks, per split (``annotations/<split>/*.json``): the JSON parses and has the PoseTrack18
(``images``/``annotations``) or PoseTrack17 (``annolist``) fields; sequence names look like
``NNNNNN_<mpii|bonn|mpiinew>_...`` (the evaluator derives image ids from them); frames are named
``images/<split>/<sequence>/<frame:06d>.jpg``, numbered 0..T-1 without gaps or repeats, match
``nframes`` and the image-id scheme ``10000000000 + sequence * 10000 + frame``; every annotation
points at a listed frame, has 17 keypoints, a track id below 10000 unique within its frame; ignore
regions have as many x as y values; every frame file exists and opens (``decode=True``: decodes
fully) with one size per sequence. It also lists the joints never annotated in a split (the ears,
for PoseTrack).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from famicli.keypoints import JOINT_NAMES, POSEVAL_COLUMNS
from famicli.data.posetrack import SEQUENCE_NAME, annotations_folder, image_id, read_image
from famicli.errors import InputError

_FRAME_FILE = re.compile(r"^images/([^/]+)/([^/]+)/(\d+)\.(jpg|jpeg|png)$")
MAX_ISSUES_PER_KIND = 20  # issues of one kind beyond this are counted, not listed


class _Issues:
    def __init__(self):
        self.items: list[dict] = []
        self.kinds: Counter = Counter()

    def add(self, level: str, kind: str, message: str) -> None:
        self.kinds[(level, kind)] += 1
        if self.kinds[(level, kind)] <= MAX_ISSUES_PER_KIND:
            self.items.append({"level": level, "kind": kind, "message": message})


def check_dataset(root: str | Path, splits: list[str] | None = None, decode: bool = False,
                  progress: Callable[[int, int], None] | None = None) -> dict:  # fmt: skip
    """Validate the dataset at ``root``.

    Args:
        root: dataset folder with ``annotations/<split>/*.json``.
        splits: splits to check (default: every folder under ``annotations``).
        decode: decode every frame (slow) instead of only opening its header.
        progress: called with (sequences done, sequences in all).

    Returns:
        ``{"root", "splits": {split: {"format", "sequences", "frames", "labeled_frames", "persons",
        "tracks", "frames_with_ignore_regions", "image_sizes", "never_annotated_joints"}},
        "synthtrack" (the generator record, when present), "issues": [{"level", "kind",
        "message"}], "errors", "warnings", "ok"}``.

    Raises:
        InputError: no such folder, no ``annotations`` folder, no splits, or a requested split
            missing or empty.
    """
    root = Path(root)
    ann = annotations_folder(root)
    available = sorted(p.name for p in ann.iterdir() if p.is_dir())
    if not splits:
        splits = available
        if not splits:
            raise InputError(f"{ann}: no split folders (expected e.g. {ann}/train, {ann}/val)")
    files = {}
    for split in splits:
        if split not in available:
            raise InputError(f"{ann}: split {split!r} not found; available: {', '.join(available) or 'none'}")
        files[split] = sorted((ann / split).glob("*.json"))
        if not files[split]:
            raise InputError(f"{ann / split}: empty split {split!r}: no sequence files (*.json)")
    issues = _Issues()
    total, done = sum(len(f) for f in files.values()), 0
    summary = {"root": str(root), "splits": {}}
    for split, paths in files.items():
        stats = {"format": set(), "sequences": len(paths), "frames": 0, "labeled_frames": 0, "persons": 0,
                 "tracks": 0, "frames_with_ignore_regions": 0, "image_sizes": Counter()}  # fmt: skip
        annotated = np.zeros(17, dtype=bool)
        for path in paths:
            _check_sequence(root, split, path, stats, annotated, issues, decode)
            done += 1
            if progress:
                progress(done, total)
        stats["format"] = "/".join(sorted(stats["format"])) or "unknown"
        stats["image_sizes"] = {f"{w}x{h}": n for (w, h), n in sorted(stats["image_sizes"].items())}
        stats["never_annotated_joints"] = [JOINT_NAMES[j] for j in np.flatnonzero(~annotated)]
        unexpected = [n for n in stats["never_annotated_joints"] if n not in ("left_ear", "right_ear")]
        if unexpected and stats["persons"]:
            issues.add("warning", "joints",
                       f"{split}: joints never annotated besides the ears: {', '.join(unexpected)}")
        summary["splits"][split] = stats
    marker = root / "synthtrack.json"
    if marker.is_file():
        try:
            summary["synthtrack"] = json.loads(marker.read_text())
        except json.JSONDecodeError:
            issues.add("error", "json", f"{marker}: not valid JSON")
    summary["issues"] = issues.items
    summary["errors"] = sum(n for (lvl, _), n in issues.kinds.items() if lvl == "error")
    summary["warnings"] = sum(n for (lvl, _), n in issues.kinds.items() if lvl == "warning")
    summary["ok"] = summary["errors"] == 0
    return summary


def _check_sequence(root, split, path, stats, annotated, issues: _Issues, decode: bool) -> None:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        issues.add("error", "json", f"{path}: not valid JSON ({getattr(exc, 'msg', exc)})")
        return
    m = SEQUENCE_NAME.match(path.stem)
    if not m:
        issues.add("error", "name", f"{path}: sequence name {path.stem!r} is not NNNNNN_<mpii|bonn|mpiinew>_... "
                                    "(the evaluator derives image ids from it)")  # fmt: skip
    if isinstance(data, dict) and "annolist" in data:
        stats["format"].add("posetrack17")
        files = _check_annolist(path, data, stats, annotated, issues)
    elif isinstance(data, dict) and isinstance(data.get("images"), list):
        stats["format"].add("posetrack18")
        files = _check_posetrack18(split, path, data, int(m.group(1)) if m else None, stats, annotated, issues)
    else:
        issues.add("error", "format",
                   f"{path}: neither PoseTrack18 ('images', 'annotations') nor PoseTrack17 ('annolist')")
        return
    _check_images(root, path, files, stats, issues, decode)


def _check_posetrack18(split, path, data, seq, stats, annotated, issues: _Issues) -> list[str]:
    images = data["images"]
    names, ids, numbers = [], {}, []
    for i, im in enumerate(images):
        name, iid = im.get("file_name"), im.get("id")
        if not isinstance(name, str) or not isinstance(iid, int):
            issues.add("error", "field", f"{path}: images[{i}]: needs a 'file_name' string and an integer 'id'")
            continue
        names.append(name)
        ids[iid] = name
        fm = _FRAME_FILE.match(name)
        if not fm or fm.group(1) != split or fm.group(2) != path.stem or len(fm.group(3)) != 6:
            issues.add("warning", "layout",
                       f"{path}: file_name {name!r} is not images/{split}/{path.stem}/<frame:06d>.jpg")
        number = int(fm.group(3)) if fm else int(Path(name).stem) if Path(name).stem.isdigit() else None
        if number is not None:
            numbers.append(number)
            if seq is not None and iid != image_id(seq, number):
                issues.add("warning", "image_id", f"{path}: {name}: id {iid} is not {image_id(seq, number)} "
                                                  "(10000000000 + sequence * 10000 + frame)")  # fmt: skip
        if im.get("nframes") not in (None, len(images)):
            issues.add("warning", "nframes",
                       f"{path}: {name}: nframes {im.get('nframes')} but {len(images)} images listed")
        xs, ys = im.get("ignore_regions_x"), im.get("ignore_regions_y")
        if xs or ys:
            stats["frames_with_ignore_regions"] += 1
            if not (isinstance(xs, list) and isinstance(ys, list) and len(xs) == len(ys)
                    and all(len(a) == len(b) for a, b in zip(xs, ys, strict=True))):  # fmt: skip
                issues.add("error", "ignore_regions", f"{path}: {name}: ignore_regions_x/y do not pair up")
        stats["labeled_frames"] += bool(im.get("is_labeled", False))
    dup = [n for n, c in Counter(numbers).items() if c > 1]
    if dup:
        issues.add("error", "frames", f"{path}: frame number {dup[0]} appears {Counter(numbers)[dup[0]]} times")
    elif numbers and sorted(numbers) != list(range(min(numbers), min(numbers) + len(numbers))):
        issues.add("warning", "frames", f"{path}: frame numbers are not contiguous ({min(numbers)}..{max(numbers)}, "
                                        f"{len(numbers)} frames)")  # fmt: skip
    elif numbers and min(numbers) != 0:
        issues.add("warning", "frames", f"{path}: frames start at {min(numbers)}, not 0 (PoseTrack18 is 0-based)")
    stats["frames"] += len(images)
    tracks, per_frame = set(), Counter()
    for i, a in enumerate(data.get("annotations") or []):
        where = f"{path}: annotations[{i}]"
        if a.get("image_id") not in ids:
            issues.add("error", "image_id", f"{where}: image_id {a.get('image_id')!r} is not in images")
            continue
        kp = a.get("keypoints")
        if not isinstance(kp, list) or len(kp) != 51:
            issues.add("error", "keypoints", f"{where}: keypoints: expected 17 x [x, y, v] (51 numbers)")
            continue
        tid = a.get("track_id")
        if isinstance(tid, bool) or not isinstance(tid, int) or not 0 <= tid < 10000:
            issues.add("error", "track_id", f"{where}: track_id {tid!r} is not an integer in 0..9999")
        else:
            per_frame[(a["image_id"], tid)] += 1
            if per_frame[(a["image_id"], tid)] == 2:
                issues.add("error", "track_id", f"{where}: track_id {tid} repeats in frame {ids[a['image_id']]}")
            tracks.add(tid)
        present = (np.asarray(kp, dtype=float).reshape(17, 3) != 0).any(axis=1)  # (51,) -> (17, 3) -> (17,)
        annotated |= present
        stats["persons"] += bool(present.any())
    stats["tracks"] += len(tracks)
    return names


def _check_annolist(path, data, stats, annotated, issues: _Issues) -> list[str]:
    names, tracks = [], set()
    for fi, frame in enumerate(data["annolist"]):
        image = frame.get("image")
        image = image[0] if isinstance(image, list) and image else image
        if not isinstance(image, dict) or not isinstance(image.get("name"), str):
            issues.add("error", "field", f"{path}: annolist[{fi}]: image: missing image name")
            continue
        names.append(image["name"])
        labeled = frame.get("is_labeled", [0])
        stats["labeled_frames"] += bool(labeled[0] if isinstance(labeled, list) and labeled else labeled)
        stats["frames_with_ignore_regions"] += bool(frame.get("ignore_regions"))
        for rect in frame.get("annorect") or []:
            ap = rect.get("annopoints")
            if not (isinstance(ap, list) and ap and isinstance(ap[0], dict)):
                continue
            ids = [p.get("id") for p in ap[0].get("point") or []]
            ids = [i[0] if isinstance(i, list) and i else i for i in ids]
            bad = [i for i in ids if not isinstance(i, int) or not 0 <= i < 15]
            if bad:
                issues.add("warning", "keypoints",
                           f"{path}: {image['name']}: unknown joint id {bad[0]!r} (known: 0-14)")
            for i in ids:
                if i not in bad:
                    annotated[POSEVAL_COLUMNS[i]] = True
            stats["persons"] += bool(ids)
            tid = rect.get("track_id")
            tracks.add(tid[0] if isinstance(tid, list) and tid else tid)
    stats["frames"] += len(names)
    stats["tracks"] += len(tracks)
    return names


def _check_images(root: Path, path: Path, files: list[str], stats, issues: _Issues, decode: bool) -> None:
    from PIL import Image, UnidentifiedImageError

    sizes = Counter()
    for name in files:
        file = root / name
        if not file.is_file():
            issues.add("error", "missing_image", f"{path}: frame file not found: {file}")
            continue
        try:
            if decode:
                size = read_image(file).shape[1::-1]  # (H, W, 3) -> (W, H)
            else:
                with Image.open(file) as im:
                    size = im.size
        except InputError as exc:
            issues.add("error", "image", str(exc))
            continue
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            issues.add("error", "image", f"{file}: cannot read image (corrupt or not an image: {reason})")
            continue
        sizes[tuple(size)] += 1
    if len(sizes) > 1:
        issues.add("warning", "image_size", f"{path}: frames of {len(sizes)} different sizes: "
                                            + ", ".join(f"{w}x{h}" for w, h in sizes))  # fmt: skip
    stats["image_sizes"].update(sizes)
