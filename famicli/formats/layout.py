"""The PoseTrack dataset layout and naming rules: split folders, sequence names, frame numbers, image ids.

Layout (``root`` = a PoseTrack18, PoseTrack17 or SynthTrack folder)::

    root/annotations/<split>/<sequence>.json     one file per video
    root/<file_name of each frame>               e.g. images/val/000342_mpii_test/000000.jpg

Sequence names are ``NNNNNN_<mpii|bonn|mpiinew>[_...]``; the evaluator derives image ids from them:
``10000000000 + sequence * 10000 + frame``.
"""

from __future__ import annotations

import re
from pathlib import Path

from famicli.errors import InputError

# NNNNNN_<mpii|bonn|mpiinew>[_...]: a PoseTrack sequence name, from which image ids are derived.
SEQUENCE_NAME = re.compile(r"^(\d{6})_(mpii|bonn|mpiinew)(_.*)?$")
IMAGE_ID_BASE = 10_000_000_000  # PoseTrack18 image ids: IMAGE_ID_BASE + sequence * 10000 + frame


def image_id(sequence_number: int, frame: int) -> int:
    """The PoseTrack18 image id of a frame: 10000000000 + sequence * 10000 + frame index."""
    return IMAGE_ID_BASE + sequence_number * 10_000 + frame


def sequence_number(name: str) -> int | None:
    """The sequence number of a PoseTrack sequence name (``000342_mpii_test`` -> 342), else None."""
    m = SEQUENCE_NAME.match(name)
    return int(m.group(1)) if m else None


def frame_number(name: str) -> int:
    """The frame number of a frame file name (``images/val/x/000012.jpg`` -> 12), or -1 if not numeric."""
    stem = Path(str(name)).stem
    return int(stem) if stem.isdigit() else -1


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
