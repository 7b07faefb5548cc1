"""``famicli.evaluate``: score a prediction folder against a GT folder, one result object.

>>> result = famicli.evaluate("posetrack18/annotations/val", "preds/", dataset="posetrack18")
>>> result.ap["Total"], result.mota["Total"], result.coco["AP"]
>>> json.dumps(result.to_dict())

PoseTrack datasets get poseval's AP and MOT tables (and COCO OKS AP on PoseTrack18 files);
``dataset="jhmdb"`` gets Sub-JHMDB PCK. Bad input raises :class:`famicli.errors.InputError`
before anything is scored; warnings are kept in ``result.warnings`` and logged at the end, at most
one line per kind (:meth:`famicli.formats.validate.Issues.summary_lines`).
"""

from __future__ import annotations

import glob
import hashlib
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from famicli.errors import ConfigError, InputError
from famicli.formats.posetrack import Sequence, read_sequence
from famicli.formats.validate import (
    Issues,
    check_files,
    check_pair,
    check_polygons,
    check_sequence,
    check_tracking,
)
from famicli.io import jsonable
from famicli.keypoints import POSEVAL_JOINTS
from famicli.metrics import posetrack as pt

log = logging.getLogger(__name__)
DATASETS = ("posetrack18", "posetrack17", "jhmdb")
TRACKERS = ("famipose", "motmetrics")  # MOT accumulators: famipose's vectorised ones, or motmetrics'
KNOWN_RELEASES = {
    170: "PoseTrack18 val (170 sequences)",
    74: "PoseTrack18 early val release (74 sequences)",
    50: "PoseTrack17 val (50 sequences)",
}


@dataclass
class EvalResult:
    """Everything ``famipose eval`` reports; :meth:`to_dict` is its ``--json`` form."""

    dataset: str
    ap: dict[str, float] | None = None  # Head, Shou, Elb, Wri, Hip, Knee, Ankl, Total
    mota: dict[str, float] | None = None  # same columns
    per_joint: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> joint -> %
    coco: dict | None = None  # AP, AP50, AP75, APm, APl, AR, ... (%), sigmas
    pck: dict | None = None  # Sub-JHMDB
    per_sequence: dict | None = None
    warnings: list[str] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)

    @property
    def mot_totals(self) -> dict[str, float] | None:
        """The last four columns of poseval's MOT table."""
        if not self.per_joint:
            return None
        return {
            "MOTA": self.per_joint["mota_per_joint"]["total"],
            "MOTP": self.per_joint["motp_per_joint"]["total"],
            "Prec": self.per_joint["mot_precision_per_joint"]["total"],
            "Rec": self.per_joint["mot_recall_per_joint"]["total"],
        }

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (NaN becomes None)."""
        out = {"dataset": self.dataset}
        if self.ap is not None:
            out.update(ap=self.ap, mota=self.mota, mot_totals=self.mot_totals, **self.per_joint)
            out["coco"] = self.coco
        if self.pck is not None:
            out["pck"] = self.pck
        if self.per_sequence is not None:
            out["per_sequence"] = self.per_sequence
        out["warnings"] = self.warnings
        out["provenance"] = self.provenance
        return jsonable(out)


def evaluate(
    gt: str | Path,
    pred: str | Path,
    dataset: str = "posetrack18",
    *,
    strict: bool = True,
    tracker: str = "famipose",
    coco: bool = True,
    per_sequence: bool = False,
    order: str | list[str] = "listdir",
    progress: Callable[[str], None] | None = None,
) -> EvalResult:
    """Score the prediction folder ``pred`` against the GT folder ``gt``.

    ``strict`` (default) refuses input the official tool refuses and what famipose adds on top
    (NaN values, unknown keypoint names, ...); ``strict=False`` turns the latter into warnings.
    ``tracker="motmetrics"`` feeds ``motmetrics.MOTAccumulator`` itself instead of famipose's
    equivalent vectorized tracker (same numbers, much slower). ``order`` is the order of the
    sequences: ``"listdir"`` (poseval's: the folder's directory order), ``"sorted"`` or a list
    of file names; AP depends on it only where keypoint scores tie, as in poseval.
    """
    if dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}; choose from: {', '.join(DATASETS)}")
    if tracker not in TRACKERS:
        raise ConfigError(f"unknown tracker {tracker!r}; choose from: {', '.join(TRACKERS)}")
    note = progress or (lambda _msg: None)
    gt, pred = Path(gt), Path(pred)
    if dataset == "jhmdb":
        from famicli.metrics.pck import evaluate_jhmdb

        return evaluate_jhmdb(gt, pred)
    timings = {}
    t0 = time.perf_counter()
    note("reading files")
    issues = Issues(strict=strict, log=False)  # logged once at the end, summarized by kind
    gts, preds = load_posetrack(gt, pred, issues, order)
    timings["read_s"] = time.perf_counter() - t0
    note("matching and AP")
    t1 = time.perf_counter()
    frames = pt.build_frames(gts, preds)
    matching = pt.match_frames(frames)
    ap = pt.average_precision(frames, matching)
    timings["ap_s"] = time.perf_counter() - t1
    ties = pt.order_sensitive_ties(frames, matching) if order == "listdir" else 0
    if ties:
        issues.warn(
            f"AP depends on the order of the sequences: {ties} groups of tied keypoint "
            "scores span sequences (poseval sorts with numpy's unstable argsort); scored "
            "in directory order as poseval does; --order sorted (order='sorted') gives "
            "a result that does not depend on the file system"
        )
    note("tracking (MOT)")
    t2 = time.perf_counter()
    counts = pt.track_counts(frames, matching, len(gts), tracker)
    mot = pt.mot_metrics(counts)
    timings["mot_s"] = time.perf_counter() - t2
    result = EvalResult(dataset=dataset, ap=pt.table(ap["ap"]), mota=pt.table(mot["mota"]))
    result.per_joint = {
        "ap_per_joint": _by_joint(ap["ap"]),
        "precision_per_joint": _by_joint(ap["precision"]),
        "recall_per_joint": _by_joint(ap["recall"]),
        "mota_per_joint": _by_joint(mot["mota"]),
        "motp_per_joint": _by_joint(mot["motp"]),
        "mot_precision_per_joint": _by_joint(mot["precision"]),
        "mot_recall_per_joint": _by_joint(mot["recall"]),
    }
    if per_sequence:
        result.per_sequence = _per_sequence(gts, frames, matching, counts)
    if coco and all(s.file_format == "posetrack18" for s in gts):
        note("COCO OKS AP")
        t3 = time.perf_counter()
        from famicli.metrics.coco import coco_keypoint_ap

        result.coco = coco_keypoint_ap(gts, preds)
        timings["coco_s"] = time.perf_counter() - t3
    result.warnings = list(issues.warnings)
    for line in issues.summary_lines():
        log.warning(line)
    result.provenance = _provenance(dataset, gt, pred, gts, preds, frames, tracker, strict)
    result.provenance["timings"] = {k: round(v, 4) for k, v in timings.items()}
    return result


def list_sequences(folder: Path, order: str | list[str] = "listdir") -> list[Path]:
    """The ``*.json`` files of ``folder`` in the order their sequences are scored.

    ``"listdir"`` is poseval's order (``glob``, i.e. the file system's directory order);
    ``"sorted"`` sorts by name; a list of file names gives the order explicitly. The order only
    matters where keypoint scores tie (poseval sorts them with numpy's unstable argsort).
    """
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder of per-sequence JSON files")
    files = [Path(p) for p in glob.glob(os.path.join(glob.escape(str(folder)), "*.json"))]
    files = [p for p in files if p.is_file()]
    if not files:
        raise InputError(f"{folder}: no .json files (expected one JSON per sequence)")
    if order == "sorted":
        return sorted(files)
    if order == "listdir":
        return files
    by_name = {p.name: p for p in files}
    unknown = [n for n in order if n not in by_name]
    if unknown or len(set(order)) != len(order) or set(order) != set(by_name):
        missing = sorted(set(by_name) - set(order))
        raise InputError(
            f"{folder}: order: must name each .json file once (unknown: {unknown[:3]}, missing: {missing[:3]})"
        )
    return [by_name[n] for n in order]


def load_posetrack(
    gt: Path, pred: Path, issues: Issues, order: str | list[str] = "listdir"
) -> tuple[list[Sequence], list[Sequence]]:
    """Read and validate every GT file and its prediction file; refuse on the first error."""
    gt_files = list_sequences(gt, order)
    pred_files = check_files(gt_files, pred, issues)
    jobs = [(g, p, pred / g.name, issues.strict) for g, p in zip(gt_files, pred_files, strict=True)]
    gts, preds = [], []
    for g, p, found in _map(_read_pair, jobs):
        issues.extend(found)
        gts.append(g)
        preds.append(p)
    issues.raise_errors()
    if not any(len(g.track) for g in gts):
        raise InputError(f"{gt}: annotations: no GT file has an annotated person; nothing to score")
    return gts, preds


PARALLEL_MIN_FILES = 16  # from this many sequences on, files are read in parallel processes


def _read_pair(job: tuple) -> tuple[Sequence, Sequence, Issues]:
    """Read and check one GT file and its prediction file (None: missing, scored as empty)."""
    gt_file, pred_file, missing_path, strict = job
    issues = Issues(strict=strict, log=False)
    g = read_sequence(gt_file, "gt", issues)
    check_sequence(g, "gt", issues)
    if pred_file is None:
        p = _empty_like(g, missing_path)
    else:
        p = read_sequence(pred_file, "pred", issues)
        check_sequence(p, "pred", issues)
        check_pair(g, p, issues)
    kept = pt.scored_frames(g)
    check_tracking(g, len(kept), issues)
    check_polygons(g, kept, issues)
    return g, p, issues


def _map(fn: Callable, jobs: list) -> list:
    """``[fn(job) for job in jobs]``, in processes when there are many jobs and several CPUs.

    Results come back in the jobs' order; an exception raised by ``fn`` is raised here, the first
    in job order (the same one the sequential loop would raise).
    """
    import multiprocessing

    workers = min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8)
    if len(jobs) < PARALLEL_MIN_FILES or workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [fn(job) for job in jobs]
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    chunk = max(1, math.ceil(len(jobs) / (4 * workers)))
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            results = pool.map(fn, jobs, chunksize=chunk)  # submitted now, collected below
            _import_later_stages()  # while the workers read: the imports of the scoring stages
            return list(results)
    except (BrokenProcessPool, OSError) as exc:  # no processes here (sandbox, limits): read them in this one
        log.debug("reading in one process: %s", exc)
        return [fn(job) for job in jobs]


def _import_later_stages() -> None:
    """Import what matching and MOT import lazily (ignore polygons, the assignment solver)."""
    import scipy.optimize  # noqa: F401
    import shapely  # noqa: F401


def _empty_like(gt: Sequence, path: Path) -> Sequence:
    """A prediction file with the GT's frames and nobody in them."""
    return Sequence(
        name=gt.name,
        path=str(path),
        frame_names=list(gt.frame_names),
        image_ids=list(gt.image_ids),
        labeled=gt.labeled.copy(),
        n_rects=np.zeros(gt.n_frames, dtype=np.intp),
        ignore={},
        frame=np.zeros(0, dtype=np.intp),
        track=np.zeros(0, dtype=np.int64),
        kp=np.zeros((0, 17, 3)),
        present=np.zeros((0, 17), dtype=bool),
        scores=np.zeros((0, 17)),
        has_scores=np.zeros(0, dtype=bool),
        head=np.zeros((0, 4)),
        bbox=np.zeros((0, 4)),
        person_score=np.zeros(0),
        ann_index=np.zeros(0, dtype=np.intp),
        file_format=gt.file_format,
    )


def _by_joint(values: np.ndarray) -> dict[str, float]:
    out = {name: float(v) for name, v in zip(POSEVAL_JOINTS, values[: len(POSEVAL_JOINTS)])}
    out["total"] = float(values[len(POSEVAL_JOINTS)])
    return out


def _per_sequence(gts, frames, matching, counts) -> dict:
    """poseval's per-sequence files (``-s``): AP and MOT of each sequence on its own."""
    mot = pt.mot_metrics(counts, per_sequence=True)
    out = {}
    for s, g in enumerate(gts):
        in_seq = frames.seq == s
        ap = pt.average_precision(frames, matching, in_seq[frames.pred.frame], in_seq[frames.gt.frame])
        out[g.name] = {
            "ap": pt.table(ap["ap"]),
            "mota": pt.table(mot["mota"][s]),
            "ap_per_joint": _by_joint(ap["ap"]),
            "precision_per_joint": _by_joint(ap["precision"]),
            "recall_per_joint": _by_joint(ap["recall"]),
            "mota_per_joint": _by_joint(mot["mota"][s]),
            "motp_per_joint": _by_joint(mot["motp"][s]),
            "mot_precision_per_joint": _by_joint(mot["precision"][s]),
            "mot_recall_per_joint": _by_joint(mot["recall"][s]),
        }
    return out


def folder_digest(seqs: list[Sequence]) -> str:
    """sha256 of the sorted "name<TAB>sha256 of the file" lines of a folder's files."""
    ordered = sorted(seqs, key=lambda s: s.path)
    lines = "".join(f"{Path(s.path).name}\t{s.sha256}\n" for s in ordered)
    return hashlib.sha256(lines.encode()).hexdigest()


def _provenance(dataset, gt, pred, gts, preds, frames, tracker, strict) -> dict:
    from famicli import __version__

    n = len(gts)
    return {
        "famipose": __version__,
        "dataset": dataset,
        "release": KNOWN_RELEASES.get(n),  # None: not the size of a known release
        "gt": {"path": str(gt), "files": n, "sha256": folder_digest(gts)},
        "pred": {
            "path": str(pred),
            "files": sum(p.sha256 != "" for p in preds),
            "sha256": folder_digest([p for p in preds if p.sha256]),
        },
        "sequences": n,
        "frames": int(sum(g.n_frames for g in gts)),
        "scored_frames": int(frames.n),
        "gt_persons": int(sum(len(g.track) for g in gts)),
        "pred_persons": int(sum(len(p.track) for p in preds)),
        "tracker": tracker,
        "strict": strict,
        "rules": "poseval (leonid-pishchulin/poseval) with motmetrics 1.4.0 semantics",
    }
