"""Sub-JHMDB PCK@0.2: per joint group and mean, averaged over the three splits.

GT layout (the dataset as distributed)::

    <gt>/joint_positions/<action>/<video>/joint_positions.mat   pos_img: 2 × 15 × T
    <gt>/splits/<action>_test_split<k>.txt                      "<video>.avi 1|2" (2 = test)

(split files are also found anywhere below ``<gt>``). Predictions, one per test video, either
``<pred>/<action>/<video>.json`` holding ``{"keypoints": T × 15 × [x, y]}`` or the GT layout
(``<pred>/[joint_positions/]<action>/<video>/joint_positions.mat`` with ``pos_img``). A
``<pred>/split<k>/`` folder, if present, holds the predictions of the model trained on split k.

A joint is correct when its distance to GT is at most 0.2 × the reference size of the frame:

* ``box`` (PCK): max(width, height) of the tight box around the 15 GT joints;
* ``torso`` (tPCK): distance between GT left shoulder and right hip.

Per split, PCK of a joint = correct / frames over all test videos; Head = head joint, the other
groups average left and right; Mean = mean of the 13 joints in the groups (neck and belly are
not scored). Reported values (in %) are the mean over the splits found.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from famicli.errors import InputError

# 0 neck, 1 belly, 2 head, 3/4 r/l shoulder, 5/6 r/l hip, 7/8 r/l elbow, 9/10 r/l knee,
# 11/12 r/l wrist, 13/14 r/l ankle
JHMDB_GROUPS = {
    "Head": [2],
    "Sho": [3, 4],
    "Elb": [7, 8],
    "Wri": [11, 12],
    "Hip": [5, 6],
    "Knee": [9, 10],
    "Ank": [13, 14],
}
SCORED = sorted(j for idx in JHMDB_GROUPS.values() for j in idx)
THRESHOLD = 0.2
_SPLIT = re.compile(r"^(?P<action>.+)_test_split(?P<k>[123])\.txt$")


def read_splits(gt: Path) -> dict[int, list[tuple[str, str]]]:
    """Test videos ``(action, video)`` of each split found below ``gt``."""
    splits: dict[int, list[tuple[str, str]]] = {}
    for f in sorted(gt.rglob("*_test_split*.txt")):
        m = _SPLIT.match(f.name)
        if not m:
            continue
        for n, line in enumerate(f.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in ("1", "2"):
                raise InputError(f"{f}: line {n}: expected '<video>.avi 1|2', got {line!r}")
            if parts[1] == "2":
                video = parts[0].rsplit(".", 1)[0] if parts[0].endswith(".avi") else parts[0]
                splits.setdefault(int(m["k"]), []).append((m["action"], video))
    if not splits:
        raise InputError(f"{gt}: no <action>_test_split<1|2|3>.txt split files found (Sub-JHMDB's splits/ folder)")
    return dict(sorted(splits.items()))


def _load_mat(path: Path) -> np.ndarray:
    from scipy.io import loadmat

    try:
        pos = loadmat(path)["pos_img"]
    except (KeyError, ValueError, OSError) as exc:
        raise InputError(f"{path}: pos_img: cannot read ({exc})") from None
    pos = np.asarray(pos, dtype=float)
    if pos.ndim != 3 or pos.shape[:2] != (2, 15):
        raise InputError(f"{path}: pos_img: shape {pos.shape}, expected (2, 15, T)")
    return pos.transpose(2, 1, 0)  # (2, 15, T) -> (T, 15, 2)


def load_gt(gt: Path, action: str, video: str) -> np.ndarray:
    """GT joints of one video, (T, 15, 2)."""
    path = gt / "joint_positions" / action / video / "joint_positions.mat"
    if not path.is_file():
        raise InputError(f"{path}: file: missing GT joints of test video {action}/{video}")
    return _load_mat(path)


def load_pred(pred: Path, action: str, video: str) -> np.ndarray:
    """Predicted joints of one video, (T, 15, 2)."""
    js = pred / action / f"{video}.json"
    if js.is_file():
        try:
            kp = np.asarray(json.loads(js.read_text())["keypoints"], dtype=float)
        except (KeyError, ValueError, TypeError) as exc:
            raise InputError(f"{js}: keypoints: cannot read ({exc})") from None
        if kp.ndim != 3 or kp.shape[1:] != (15, 2):
            raise InputError(f"{js}: keypoints: shape {kp.shape}, expected (T, 15, 2)")
        return kp
    for mat in (
        pred / action / video / "joint_positions.mat",
        pred / "joint_positions" / action / video / "joint_positions.mat",
    ):
        if mat.is_file():
            return _load_mat(mat)
    raise InputError(
        f"{js}: file: missing prediction for test video {action}/{video} (or {action}/{video}/joint_positions.mat)"
    )


def correct_joints(gt: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """(T, 15) bool per normalization: distance <= 0.2 × reference size."""
    dist = np.linalg.norm(pred - gt, axis=-1)  # (T, 15)
    extent = gt.max(1) - gt.min(1)  # (T, 2)
    box = extent.max(1)
    torso = np.linalg.norm(gt[:, 4] - gt[:, 5], axis=-1)
    return {"box": dist <= THRESHOLD * box[:, None], "torso": dist <= THRESHOLD * torso[:, None]}


def _row(per_joint: np.ndarray) -> dict[str, float]:
    row = {k: float(np.mean(per_joint[idx]) * 100) for k, idx in JHMDB_GROUPS.items()}
    row["Mean"] = float(np.mean(per_joint[SCORED]) * 100)
    return row


def jhmdb_pck(gt: Path, pred: Path) -> dict:
    """PCK (box) and tPCK (torso) at 0.2 per group and mean, per split and averaged."""
    splits = read_splits(gt)
    per_split, videos, frames = {}, set(), 0
    for k, tests in splits.items():
        src = pred / f"split{k}" if (pred / f"split{k}").is_dir() else pred
        hits = {"box": [], "torso": []}
        for action, video in tests:
            g = load_gt(gt, action, video)
            p = load_pred(src, action, video)
            if len(p) != len(g):
                raise InputError(f"{src / action / video}: frames: {len(p)} predicted, GT has {len(g)}")
            if not np.isfinite(p).all():
                t, j = np.argwhere(~np.isfinite(p).all(-1))[0]
                raise InputError(f"{src / action / video}: frame {t + 1}: keypoints: joint {j} is not finite")
            for norm, ok in correct_joints(g, p).items():
                hits[norm].append(ok)
            videos.add((action, video))
            frames += len(g)
        per_split[str(k)] = {n: _row(np.concatenate(h).mean(0)) for n, h in hits.items()}
    avg = {
        n: {c: float(np.mean([s[n][c] for s in per_split.values()])) for c in next(iter(per_split.values()))[n]}
        for n in ("box", "torso")
    }
    return {
        "box": avg["box"],
        "torso": avg["torso"],
        "per_split": per_split,
        "splits": [int(k) for k in per_split],
        "threshold": THRESHOLD,
        "normalization": {
            "box": "max(width, height) of the tight box around the GT joints",
            "torso": "distance between GT left shoulder and right hip",
        },
        "test_videos": len(videos),
        "frames": frames,
    }


def evaluate_jhmdb(gt: Path, pred: Path):
    """:func:`famicli.evaluate` for ``dataset="jhmdb"``."""
    from famicli import __version__
    from famicli.metrics.scoring import EvalResult

    pck = jhmdb_pck(gt, pred)
    return EvalResult(
        dataset="jhmdb",
        pck=pck,
        provenance={
            "famipose": __version__,
            "dataset": "jhmdb",
            "gt": {"path": str(gt)},
            "pred": {"path": str(pred)},
            "test_videos": pck["test_videos"],
            "frames": pck["frames"],
        },
    )
