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

from famicli.errors import InputError
from famicli.formats.layout import annotations_folder, frame_number, image_id, sequence_number
from famicli.formats.posetrack import MAX_TRACK_ID, read_sequence
from famicli.formats.validate import Issues
from famicli.keypoints import JOINT_NAMES

_FRAME_FILE = re.compile(r"^images/([^/]+)/([^/]+)/(\d+)\.(jpg|jpeg|png)$")
MAX_ISSUES_PER_KIND = 20  # issues of one kind beyond this are counted, not listed


def check_dataset(
    root: str | Path,
    splits: list[str] | None = None,
    decode: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
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
    issues = Issues(strict=True, log=False)
    total, done = sum(len(f) for f in files.values()), 0
    summary = {"root": str(root), "splits": {}}
    for split, paths in files.items():
        stats = {
            "format": set(),
            "sequences": len(paths),
            "frames": 0,
            "labeled_frames": 0,
            "persons": 0,
            "tracks": 0,
            "frames_with_ignore_regions": 0,
            "image_sizes": Counter(),
        }
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
            issues.add(
                "warning", "joints", f"{split}: joints never annotated besides the ears: {', '.join(unexpected)}"
            )
        summary["splits"][split] = stats
    marker = root / "synthtrack.json"
    if marker.is_file():
        try:
            summary["synthtrack"] = json.loads(marker.read_text())
        except json.JSONDecodeError:
            issues.add("error", "json", f"{marker}: not valid JSON")
    summary["issues"] = issues.listing(MAX_ISSUES_PER_KIND)
    summary["errors"] = len(issues.errors)
    summary["warnings"] = len(issues.warnings)
    summary["ok"] = summary["errors"] == 0
    return summary


def _check_sequence(root, split, path, stats, annotated, issues: Issues, decode: bool) -> None:
    """Parse ``path`` with the one PoseTrack reader, then check the dataset conventions on top of it."""
    reader_issues = Issues(strict=False)
    try:
        seq = read_sequence(path, "data", reader_issues)
    except InputError as exc:
        kind = "json" if "not valid JSON" in str(exc) else "format"
        issues.add("error", kind, str(exc))
        return
    for message in reader_issues.warnings:
        issues.add("warning", "reader", message)
    for message in reader_issues.errors:  # not raised: a dataset check lists every problem
        issues.add("error", "reader", message)
    number = sequence_number(path.stem)
    if number is None:
        issues.add(
            "error",
            "name",
            f"{path}: sequence name {path.stem!r} is not NNNNNN_<mpii|bonn|mpiinew>_... "
            "(the evaluator derives image ids from it)",
        )
    stats["format"].add(seq.file_format)
    if seq.file_format == "posetrack18":
        _check_frames(split, path, seq, number, issues)
    stats["frames"] += seq.n_frames
    stats["labeled_frames"] += int(seq.labeled.sum())
    stats["frames_with_ignore_regions"] += len(seq.ignore)
    _check_tracks(path, seq, issues)
    present = seq.present.any(axis=1)  # (N, 17) -> (N,)
    annotated |= seq.present.any(axis=0)
    stats["persons"] += int(present.sum())
    stats["tracks"] += len(set(seq.track.tolist()))
    _check_images(root, path, seq.frame_names, stats, issues, decode)


def _check_frames(split: str, path: Path, seq, number: int | None, issues: Issues) -> None:
    """PoseTrack18 frame conventions: file layout, image-id scheme, nframes, contiguous numbering."""
    numbers = []
    for name, iid, im in zip(seq.frame_names, seq.image_ids, seq.images, strict=True):
        fm = _FRAME_FILE.match(name)
        if not fm or fm.group(1) != split or fm.group(2) != path.stem or len(fm.group(3)) != 6:
            issues.add(
                "warning", "layout", f"{path}: file_name {name!r} is not images/{split}/{path.stem}/<frame:06d>.jpg"
            )
        frame = frame_number(name)
        if frame >= 0:
            numbers.append(frame)
            if number is not None and iid != image_id(number, frame):
                issues.add(
                    "warning",
                    "image_id",
                    f"{path}: {name}: id {iid} is not {image_id(number, frame)} "
                    "(10000000000 + sequence * 10000 + frame)",
                )
        if im.get("nframes") not in (None, seq.n_frames):
            issues.add(
                "warning", "nframes", f"{path}: {name}: nframes {im.get('nframes')} but {seq.n_frames} images listed"
            )
        xs, ys = im.get("ignore_regions_x"), im.get("ignore_regions_y")
        if (xs or ys) and not (
            isinstance(xs, list)
            and isinstance(ys, list)
            and len(xs) == len(ys)
            and all(len(a) == len(b) for a, b in zip(xs, ys, strict=True))
        ):
            issues.add("error", "ignore_regions", f"{path}: {name}: ignore_regions_x/y do not pair up")
    counts = Counter(numbers)
    dup = [n for n, c in counts.items() if c > 1]
    if dup:
        issues.add("error", "frames", f"{path}: frame number {dup[0]} appears {counts[dup[0]]} times")
    elif numbers and sorted(numbers) != list(range(min(numbers), min(numbers) + len(numbers))):
        issues.add(
            "warning",
            "frames",
            f"{path}: frame numbers are not contiguous ({min(numbers)}..{max(numbers)}, {len(numbers)} frames)",
        )
    elif numbers and min(numbers) != 0:
        issues.add("warning", "frames", f"{path}: frames start at {min(numbers)}, not 0 (PoseTrack18 is 0-based)")


def _check_tracks(path: Path, seq, issues: Issues) -> None:
    """Track ids in 0..9999 (the evaluator offsets them by 10000 per sequence), unique within a frame."""
    bad = (seq.track < 0) | (seq.track >= MAX_TRACK_ID)
    for row in np.flatnonzero(bad):
        issues.add(
            "error", "track_id", f"{seq.where(row)}: track_id {int(seq.track[row])} is not an integer in 0..9999"
        )
    seen = Counter(zip(seq.frame.tolist(), seq.track.tolist()))
    for (frame, track), n in seen.items():
        if n > 1:
            issues.add("error", "track_id", f"{path}: track_id {track} repeats in frame {seq.frame_names[frame]}")


def _check_images(root: Path, path: Path, files: list[str], stats, issues: Issues, decode: bool) -> None:
    from PIL import Image, UnidentifiedImageError

    sizes = Counter()
    for name in files:
        file = root / name
        if not file.is_file():
            issues.add("error", "missing_image", f"{path}: frame file not found: {file}")
            continue
        try:
            with Image.open(file) as im:
                size = im.size
                if decode:
                    im.convert("RGB")  # decodes every pixel: truncated or corrupt data fails here
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            issues.add("error", "image", f"{file}: cannot read image (corrupt or not an image: {reason})")
            continue
        sizes[tuple(size)] += 1
    if len(sizes) > 1:
        issues.add(
            "warning",
            "image_size",
            f"{path}: frames of {len(sizes)} different sizes: " + ", ".join(f"{w}x{h}" for w, h in sizes),
        )
    stats["image_sizes"].update(sizes)
