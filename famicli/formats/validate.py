"""Checks run on PoseTrack inputs before anything is scored, so bad input never becomes a number.

Every problem is one line naming the file, the frame and the field:
``pred/000342_mpii_test.json: frame images/val/000342_mpii_test/000012.jpg: track_id: 7 appears
2 times; track ids must be unique within a frame``.

Errors refuse the input (``InputError``, the first error is the message). Some errors are what
famipose adds on top of the official tool (NaN coordinates, unknown keypoint names, ...); with
``strict=False`` those become warnings and the input is scored as described in the warning.
Warnings also report what poseval silently accepts but is probably a mistake.
"""

from __future__ import annotations

import logging
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from famicli.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from famicli.formats.posetrack import Sequence

log = logging.getLogger(__name__)

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict = 3, 4, 4
_REPR.maxstring = _REPR.maxlong = _REPR.maxother = 40


def short_repr(value) -> str:
    """A JSON value as one short line for messages: nesting, long lists and strings and huge integers
    are cut (``[[[...]]]``), so that a value from a malformed file never floods the terminal."""
    return _REPR.repr(value)


# What a summary line says about several warnings of one kind (one warning is shown as it is).
WARNING_KINDS = {
    "persons_without_keypoints": "sequence files have persons without any keypoint (kept, as poseval keeps them)",
    "missing_scores": "prediction files have persons without keypoint scores (poseval then uses -9999)",
    "zero_head": "GT files have persons with a zero-size head box (no prediction can match them, as in poseval)",
    "frame_names": "prediction files name frames differently from their GT (matched by position, as in poseval)",
    "orphans": "files have annotations whose image_id is not in images (ignored, as in poseval)",
    "other_video": "files list images of another video folder (ignored, as in poseval)",
    "no_strict": "errors were accepted with --no-strict",
}


@dataclass
class Issues:
    """Problems found so far; ``strict`` decides whether downgradable errors refuse the input.

    Warnings carry a kind (a key of :data:`WARNING_KINDS`, or ``other``): :meth:`summary_lines` turns
    many warnings of one kind into one line, so that a PoseTrack-sized input does not flood the terminal.
    """

    strict: bool = True
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    log: bool = True  # log each new warning as it comes (False: the caller logs the summary)
    kinds: list[str] = field(default_factory=list)  # the kind of each warning
    error_kinds: list[str] = field(default_factory=list)  # the kind of each error

    def error(self, message: str, downgrade: str | None = None, kind: str = "other") -> None:
        """Record an error; with ``downgrade`` (what happens instead), a warning if not strict."""
        if downgrade is not None and not self.strict:
            self.warn(f"{message} ({downgrade}; --no-strict)", kind="no_strict")
        else:
            self.errors.append(message)
            self.error_kinds.append(kind)

    def add(self, level: str, kind: str, message: str) -> None:
        """Record a problem of ``level`` ``error`` or ``warning`` (``famipose data check`` lists both)."""
        if level == "error":
            self.error(message, kind=kind)
        else:
            self.warn(message, kind)

    def listing(self, max_per_kind: int) -> list[dict]:
        """Errors, then warnings, as ``{"level", "kind", "message"}``: at most ``max_per_kind`` of each
        (level, kind), the rest counted in ``errors``/``warnings`` only."""
        out, seen = [], {}
        for level, messages, kinds in (
            ("error", self.errors, self.error_kinds),
            ("warning", self.warnings, self.kinds),
        ):
            for message, kind in zip(messages, kinds, strict=True):
                seen[(level, kind)] = seen.get((level, kind), 0) + 1
                if seen[(level, kind)] <= max_per_kind:
                    out.append({"level": level, "kind": kind, "message": message})
        return out

    def warn(self, message: str, kind: str = "other") -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            self.kinds.append(kind)
            if self.log:
                log.warning(message)

    def extend(self, other: Issues) -> None:
        """Add ``other``'s errors and warnings (e.g. from a worker process), in order."""
        self.errors.extend(other.errors)
        self.error_kinds.extend(other.error_kinds)
        for message, kind in zip(other.warnings, other.kinds, strict=True):
            self.warn(message, kind)

    def summary_lines(self) -> list[str]:
        """At most one line per kind of warning, in order of first appearance: the warning itself when
        it is alone, else the count, what they have in common and the first one."""
        lines = []
        for kind in dict.fromkeys(self.kinds):
            found = [m for m, k in zip(self.warnings, self.kinds, strict=True) if k == kind]
            if len(found) == 1 or kind not in WARNING_KINDS:
                lines += found if kind not in WARNING_KINDS else [found[0]]
            else:
                lines.append(f"{len(found)} {WARNING_KINDS[kind]}; first: {found[0]}")
        return lines

    def raise_errors(self) -> None:
        """Refuse the input with the first error, if any."""
        if self.errors:
            more = len(self.errors) - 1
            suffix = f" (and {more} more error{'s' * (more > 1)})" if more else ""
            raise InputError(self.errors[0] + suffix)


def check_files(gt_files: list[Path], pred_dir: Path, issues: Issues) -> list[Path | None]:
    """The prediction file of each GT file (``None`` where missing and not strict)."""
    if not pred_dir.is_dir():
        raise InputError(f"{pred_dir}: prediction folder not found")
    preds: list[Path | None] = []
    for gt in gt_files:
        pred = pred_dir / gt.name
        if pred.is_file():
            preds.append(pred)
        else:
            preds.append(None)
            issues.error(
                f"{pred}: file: missing; every GT sequence ({gt}) needs a prediction file with the same name",
                downgrade="scored as a sequence with no predictions",
            )
    names = {g.name for g in gt_files}
    extra = sorted(p.name for p in pred_dir.glob("*.json") if p.name not in names)
    if extra:
        issues.warn(f"{pred_dir}: {len(extra)} prediction files have no GT file and are ignored (first: {extra[0]})")
    return preds


def check_sequence(seq: Sequence, role: str, issues: Issues) -> None:
    """Rules on one parsed file: finite values, unique track ids per frame, track ids < 10000."""
    from famicli.formats.posetrack import JOINT_COLUMNS, MAX_TRACK_ID
    from famicli.keypoints import JOINT_NAMES

    where = seq.where
    bad = ~np.isfinite(seq.kp[..., :2]).all(-1) & seq.present
    if role == "pred":
        bad |= ~np.isfinite(seq.scores) & seq.present
    if bad.any():
        row, col = np.argwhere(bad)[0]
        xy = seq.kp[row, col, :2]
        if np.isfinite(xy).all():
            what, value = "scores", repr(float(seq.scores[row, col]))
        else:
            what, value = "keypoints", "[" + ", ".join(repr(float(v)) for v in xy) + "]"
        issues.error(
            f"{where(row)}: {what}: {JOINT_NAMES[col]} is {value} (track_id {seq.track[row]}); "
            "coordinates and scores must be finite",
            downgrade=f"{int(bad.sum())} such keypoints treated as absent",
        )
        seq.present &= ~bad
    if role == "gt":
        headless = ~np.isfinite(seq.head).all(1)
        if headless.any():
            row = int(np.flatnonzero(headless)[0])
            issues.error(f"{where(row)}: bbox_head: not finite (track_id {seq.track[row]})")
        with np.errstate(over="ignore", invalid="ignore"):  # huge but finite boxes: inf, no warning
            size = np.hypot(seq.head[:, 2] - seq.head[:, 0], seq.head[:, 3] - seq.head[:, 1])
        zero = (size == 0) & seq.present.any(1)
        if zero.any():
            row = int(np.flatnonzero(zero)[0])
            issues.warn(
                f"{where(row)}: bbox_head: zero size (track_id {seq.track[row]}); no "
                "prediction can match this person, as in poseval",
                kind="zero_head",
            )
    big = seq.track >= MAX_TRACK_ID
    if big.any():
        row = int(np.flatnonzero(big)[0])
        issues.error(
            f"{where(row)}: track_id: {seq.track[row]} is not below {MAX_TRACK_ID} (poseval "
            f"offsets track ids by {MAX_TRACK_ID} per sequence and refuses larger ones)",
            downgrade="accepted; famipose scores each sequence on its own",
        )
    if len(seq.track) > 1:
        key = np.stack([seq.frame, seq.track], 1)
        _, first, counts = np.unique(key, axis=0, return_index=True, return_counts=True)
        if (counts > 1).any():
            dup = np.flatnonzero(counts > 1)
            row = int(first[dup].min())
            n = int(counts[dup][np.argmin(first[dup])])
            tid = seq.track[row]
            note = "" if role == "pred" else " (poseval does not check GT, but MOT is undefined)"
            issues.error(
                f"{where(row)}: track_id: {tid} appears {n} times; track ids must be unique within a frame{note}"
            )
    if role == "pred" and len(seq.track) and not seq.has_scores.all():
        row = int(np.flatnonzero(~seq.has_scores)[0])
        issues.warn(
            f"{where(row)}: scores: missing for {int((~seq.has_scores).sum())} persons; "
            "poseval then uses score -9999 for their keypoints",
            kind="missing_scores",
        )
    empty = ~seq.present[:, JOINT_COLUMNS].any(1)
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        issues.warn(
            f"{where(row)}: keypoints: {int(empty.sum())} {role} persons have no "
            "keypoint; kept as poseval keeps them (the frame counts as having persons)",
            kind="persons_without_keypoints",
        )


def check_pair(gt: Sequence, pred: Sequence, issues: Issues) -> None:
    """Rules between a GT file and its prediction file: same frames, in the same order."""
    if pred.n_frames != gt.n_frames:
        issues.error(
            f"{pred.path}: images: {pred.n_frames} frames, but the GT file {gt.path} "
            f"has {gt.n_frames}; a prediction file lists the same images as its GT file"
        )
        return
    differ = [i for i, (a, b) in enumerate(zip(gt.frame_names, pred.frame_names)) if a != b]
    if differ:
        i = differ[0]
        issues.warn(
            f"{pred.path}: frame {pred.frame_names[i]}: file_name: differs from the GT "
            f"frame {gt.frame_names[i]} at the same position ({len(differ)} frames); "
            "frames are matched by position, as in poseval",
            kind="frame_names",
        )


def check_tracking(gt: Sequence, kept_frames: int, issues: Issues) -> None:
    """poseval fails (IndexError) on a sequence with exactly one labeled frame."""
    if kept_frames == 1:
        issues.error(
            f"{gt.path}: images: only one frame has annotated persons; the official tool fails "
            "on such a sequence (tracking skips the last labeled frame of each sequence)",
            downgrade="its AP is scored, it adds nothing to MOT",
        )


def check_polygons(gt: Sequence, frames: np.ndarray, issues: Issues) -> None:
    """Ignore regions of scored frames must be polygons (shapely refuses 1 or 2 points)."""
    for f in frames:
        for poly in gt.ignore.get(int(f), ()):
            if 0 < len(poly) < 3:
                issues.error(
                    f"{gt.path}: frame {gt.frame_names[f]}: ignore_regions_x: a polygon "
                    f"with {len(poly)} points (at least 3 needed)"
                )
                return
