"""The numpy COCO keypoint evaluation equals pycocotools ``COCOeval`` run on ``coco_datasets``.

Every shared poseval case and many random ones (persons without keypoints or boxes, tied scores
across images, more than 20 detections in a frame, persons in every area range) are scored both
ways; the 10 stats must agree to 1e-12 (they agree bit for bit).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest

from famicli.errors import InputError
from famicli.formats.posetrack import MIN_SCORE, Sequence
from famicli.formats.validate import Issues
from famicli.keypoints import OKS_SIGMAS
from famicli.metrics.coco import STATS, coco_datasets, coco_keypoint_ap, oks_stats
from famicli.metrics.scoring import load_posetrack
from famicli_tests.conftest import SHARED, shared_path

BASIC = Path(__file__).parent / "data" / "posetrack18_basic"


def pycocotools_stats(gts: list[Sequence], preds: list[Sequence]) -> np.ndarray:
    """(10,) ``COCOeval(iouType="keypoints").stats`` on the COCO dicts; -1s if nothing to score."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dataset, results = coco_datasets(gts, preds)
    if not (dataset["annotations"] and results):
        return -np.ones(len(STATS))
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = COCO()
        coco_gt.dataset = dataset
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(results), iouType="keypoints")
        ev.params.kpt_oks_sigmas = np.array(OKS_SIGMAS)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats, dtype=float)


def assert_same_as_pycocotools(gts: list[Sequence], preds: list[Sequence]) -> None:
    expected, ours = pycocotools_stats(gts, preds), oks_stats(gts, preds)
    assert ours.shape == (len(STATS),)
    message = str(dict(zip(STATS, expected)))
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12, err_msg=message)


def _case_names(folder: str, known: list[str]) -> list[str]:
    root = SHARED / folder
    found = sorted(p.parent.name for p in root.glob("*/gt")) if root.is_dir() else []
    return found or known  # without the shared data the known names are collected and skip


@pytest.mark.parametrize(
    "folder, case",
    [
        *[
            ("poseval_cases", c)
            for c in _case_names(
                "poseval_cases",
                [
                    "basic_jitter",
                    "error_single_labeled",
                    "occlusion_ignore",
                    "scores_formats",
                    "sparse_labels",
                    "tracking_errors",
                ],
            )
        ],
        *[
            ("poseval_reference", c)
            for c in _case_names(
                "poseval_reference",
                ["basic", "duplicate_track_ids", "ignore_regions", "noisy", "sparse_labels", "track_swaps"],
            )
        ],
    ],
)
def test_shared_cases_equal_pycocotools(folder, case):
    root = shared_path(folder, case)
    try:
        gts, preds = load_posetrack(root / "gt", root / "pred", Issues(strict=False), "sorted")
    except InputError as exc:  # e.g. duplicate track ids: famipose refuses the files
        pytest.skip(f"famipose refuses this case: {exc}")
    assert_same_as_pycocotools(gts, preds)


def test_bundled_case_equals_pycocotools():
    gts, preds = load_posetrack(BASIC / "gt", BASIC / "pred", Issues(strict=False), order="sorted")
    assert_same_as_pycocotools(gts, preds)


# --- random cases -------------------------------------------------------------------------------

# a standing person in a unit box (x right, y down), COCO keypoint order
_POSE = np.array(
    [
        [0.5, 0.08],
        [0.45, 0.05],
        [0.55, 0.05],
        [0.4, 0.07],
        [0.6, 0.07],
        [0.3, 0.22],
        [0.7, 0.22],
        [0.22, 0.4],
        [0.78, 0.4],
        [0.18, 0.55],
        [0.82, 0.55],
        [0.38, 0.55],
        [0.62, 0.55],
        [0.37, 0.77],
        [0.63, 0.77],
        [0.36, 0.97],
        [0.64, 0.97],
    ]
)
_SIZES = {"small": (8, 30), "medium": (34, 90), "large": (100, 300)}  # box side, pixels


def _sequence(frames: int, labeled, frame, kp, present, scores, bbox, pscore) -> Sequence:
    """A sequence file as the reader gives it; person arrays (N, ...) in any row order."""
    n = len(frame)
    return Sequence(
        name="000001_mpii_test",
        path="000001_mpii_test.json",
        frame_names=[f"images/val/000001_mpii_test/{f:06d}.jpg" for f in range(frames)],
        image_ids=list(range(frames)),
        labeled=labeled,
        n_rects=np.bincount(frame, minlength=frames),
        ignore={},
        frame=np.asarray(frame, dtype=np.intp),
        track=np.arange(n, dtype=np.int64),
        kp=kp,
        present=present,
        scores=scores,
        has_scores=np.ones(n, bool),
        head=np.full((n, 4), np.nan),
        bbox=bbox,
        person_score=pscore,
        ann_index=np.arange(n),
    )


def _random_pair(rng: np.random.Generator, frames: int, wrong_length: bool) -> tuple[Sequence, ...]:
    """One GT sequence and its prediction sequence, built to hit every branch of COCOeval.

    Rows are shuffled (the reader sorts them by frame; the evaluation must not depend on it).
    """
    labeled = rng.random(frames) < 0.8
    g_rows, d_rows = [], []
    for f in range(frames):
        crowded = rng.random() < 0.15  # more than MAX_DETS detections in this frame
        for _ in range(rng.integers(0, 9 if not crowded else 14)):
            lo, hi = _SIZES[rng.choice(list(_SIZES))]
            w, h = rng.uniform(lo, hi), rng.uniform(lo, hi)
            # compact: keypoints in a small part of the box, detections shifted just beside them
            spread = 0.05 if rng.random() < 0.1 else 1.0
            at_origin = rng.random() < (0.3 if spread < 1 else 0.05)
            x0, y0 = (0.0, 0.0) if at_origin else (rng.uniform(0, 600), rng.uniform(0, 400))
            pts = np.array([x0, y0]) + _POSE * [w, h] * spread
            pts += rng.normal(0, 0.02 * w * spread, (17, 2))
            vis = rng.random(17) < rng.choice([0.3, 0.7, 0.95, 1.0])
            if rng.random() < 0.1:
                vis[:] = False  # a GT person without keypoints: ignored
            box = np.array([x0, y0, w, h])
            if rng.random() < 0.25:
                box[rng.integers(0, 4)] = np.nan  # no (usable) box: the keypoints' extent
            if rng.random() < 0.03:
                box[2] = 0.0  # zero area
            g_rows.append((f, pts, vis, box))
            for _ in range(rng.integers(0, 4 if not crowded else 5)):
                noise = rng.choice([0.0, 0.01, 0.04, 0.1, 0.3])
                shift = rng.uniform(-2, 2, 2) * [w, h] * spread if spread < 1 else 0.0
                # absent keypoints are (0, 0)
                given = rng.random(17) < (rng.choice([0.9, 0.1]) if spread < 1 else 0.9)
                jitter = rng.normal(0, noise * w * spread + 1e-9, (17, 2))
                d_rows.append((f, pts + shift + jitter, given))
        for _ in range(rng.integers(0, 3)):  # false positives
            pts = rng.uniform(0, 600, 2) + _POSE * rng.uniform(20, 200, 2)
            d_rows.append((f, pts, rng.random(17) < 0.9))
    for i in rng.integers(0, len(g_rows), 2) if len(g_rows) > 1 and rng.random() < 0.5 else []:
        f, pts, vis, box = g_rows[i]  # a GT twin of another size: OKS 1 ties for an exact detection
        g_rows.append((f, pts, vis, box * [1, 1, *rng.choice([1.0, 0.5, 3.0], 2)]))
    rng.shuffle(g_rows)
    rng.shuffle(d_rows)
    if len(d_rows) > 1 and rng.random() < 0.5:  # exact duplicates: tied scores and OKS
        d_rows += [d_rows[i] for i in rng.integers(0, len(d_rows), 3)]
    n = len(g_rows)
    g_kp = np.zeros((n, 17, 3))
    g_kp[:, :, :2] = [r[1] for r in g_rows] if n else 0
    g_present = np.array([r[2] for r in g_rows], dtype=bool).reshape(n, 17)
    gt = _sequence(
        frames,
        labeled | (np.bincount([r[0] for r in g_rows], minlength=frames) > 0),
        np.array([r[0] for r in g_rows], dtype=np.intp),
        g_kp,
        g_present,
        np.full((n, 17), MIN_SCORE),
        np.array([r[3] for r in g_rows]).reshape(n, 4),
        np.full(n, np.nan),
    )
    n = len(d_rows)
    d_kp = np.zeros((n, 17, 3))
    d_kp[:, :, :2] = [r[1] for r in d_rows] if n else 0
    d_present = np.array([r[2] for r in d_rows], dtype=bool).reshape(n, 17)
    # few distinct values: tied scores within and across images
    scores = rng.choice([0.1, 0.2, 0.5, 0.7, 0.9], (n, 17)) + rng.choice([0.0, 1e-3], (n, 1))
    scores[rng.random((n, 17)) < 0.1] = MIN_SCORE
    scores[rng.random(n) < 0.05] = MIN_SCORE  # no keypoint score at all: score 0
    pscore = np.where(rng.random(n) < 0.3, rng.choice([0.25, 0.5, 0.75], n), np.nan)
    d_frames = frames + 1 if wrong_length else frames  # another frame count: contributes nothing
    pred = _sequence(
        d_frames,
        np.ones(d_frames, bool),
        np.array([r[0] for r in d_rows], dtype=np.intp),
        d_kp,
        d_present,
        scores,
        np.full((n, 4), np.nan),
        pscore,
    )
    return gt, pred


@pytest.mark.parametrize("seed", range(40))
def test_random_cases_equal_pycocotools(seed):
    rng = np.random.default_rng(seed)
    pairs = [
        _random_pair(rng, int(rng.integers(1, 7)), wrong_length=rng.random() < 0.1) for _ in range(rng.integers(1, 4))
    ]
    gts, preds = [p[0] for p in pairs], [p[1] for p in pairs]
    assert_same_as_pycocotools(gts, preds)


def test_random_cases_cover_the_branches():
    """The generator above does make the situations the equality tests are meant to cover."""
    rng = np.random.default_rng(0)
    pairs = [_random_pair(rng, 6, wrong_length=False) for _ in range(20)]
    dataset, results = coco_datasets([p[0] for p in pairs], [p[1] for p in pairs])
    anns = dataset["annotations"]
    assert any(a["num_keypoints"] == 0 for a in anns)
    areas = np.array([a["area"] for a in anns])
    assert (areas < 32**2).any() and (areas > 96**2).any()
    assert ((areas > 32**2) & (areas < 96**2)).any()
    per_image = np.bincount([r["image_id"] for r in results])
    assert per_image.max() > 20
    scores = [r["score"] for r in results]
    assert len(set(scores)) < len(scores)


def test_pairs_just_above_half_are_kept():
    """Detections beside a GT's one visible keypoint (the largest sigma), OKS from 0.47 to 0.74:
    the box bound that skips hopeless pairs must keep every one that can match."""
    es = np.array([0.3, 0.5, 0.6, 0.65, 0.69, 0.7, 0.75])  # OKS = exp(-e)
    n = len(es)
    g_kp, g_present = np.zeros((n, 17, 3)), np.zeros((n, 17), bool)
    g_kp[:, 11, :2], g_present[:, 11] = [150.0, 160.0], True  # left_hip, sigma 0.107
    box = np.tile([100.0, 100.0, 100.0, 100.0], (n, 1))
    shift = np.sqrt(es * (2 * OKS_SIGMAS[11]) ** 2 * 100.0 * 100.0 * 2)  # e = d^2 / var / area / 2
    d_kp, d_present = np.zeros((n, 17, 3)), np.zeros((n, 17), bool)
    d_kp[:, 11, :2], d_present[:, 11] = np.stack([150.0 + shift, np.full(n, 160.0)], 1), True
    frames = np.arange(n)
    gt = _sequence(n, np.ones(n, bool), frames, g_kp, g_present, np.full((n, 17), MIN_SCORE), box, np.full(n, np.nan))
    pred = _sequence(
        n,
        np.ones(n, bool),
        frames,
        d_kp,
        d_present,
        np.ones((n, 17)),
        np.full((n, 4), np.nan),
        np.linspace(0.9, 0.3, n),
    )
    assert_same_as_pycocotools([gt], [pred])
    assert oks_stats([gt], [pred])[6] == pytest.approx(5 / 7)  # AR50: the five with OKS >= 0.5


@pytest.mark.parametrize("n", range(1, 18))
def test_sums_follow_numpys_order(n):
    """OKS and mean scores are summed over the kept keypoints in ``np.sum``'s own order."""
    from famicli.metrics.coco import _compact_src, _gather, _pairwise_sum

    rng = np.random.default_rng(n)
    values = np.exp(-rng.random((17, 500)) * rng.choice([0.1, 10, 1000], (1, 500)))  # (K, P)
    keep = np.zeros((17, 500), bool)
    for p in range(500):
        keep[rng.choice(17, n, replace=False), p] = True
    ours = _pairwise_sum(_gather(values, _compact_src(keep)), keep.sum(0))  # kept ones first
    assert (ours == [np.sum(values[keep[:, p], p]) for p in range(500)]).all()


def test_output_keeps_its_form():
    gts, preds = load_posetrack(BASIC / "gt", BASIC / "pred", Issues(strict=False), order="sorted")
    out = coco_keypoint_ap(gts, preds)
    dataset, results = coco_datasets(gts, preds)
    assert list(out) == [*STATS, "sigmas", "note", "images", "gt_persons", "pred_persons"]
    for name, value in zip(STATS, pycocotools_stats(gts, preds)):
        assert out[name] == (None if value < 0 else pytest.approx(value * 100, abs=1e-10)), name
    assert out["APm"] is None  # no medium person in this case: COCOeval's -1
    assert (out["images"], out["gt_persons"], out["pred_persons"]) == (
        len(dataset["images"]),
        len(dataset["annotations"]),
        len(results),
    )


def test_nothing_to_score_gives_none():
    rng = np.random.default_rng(1)
    gt, pred = _random_pair(rng, 4, wrong_length=True)  # the prediction file has another length
    out = coco_keypoint_ap([gt], [pred])
    assert all(out[name] is None for name in STATS)
    assert out["pred_persons"] == 0
    assert out["gt_persons"] == len(coco_datasets([gt], [pred])[0]["annotations"]) > 0
    assert (oks_stats([gt], [pred]) == -1).all()


def _far_keypoints(tmp_path: Path, far: float) -> Path:
    """The bundled case's predictions with three persons' first joints moved to ``far`` px."""
    import json
    import shutil

    pred = tmp_path / f"pred_{far:g}"
    shutil.copytree(BASIC / "pred", pred)
    for path in sorted(pred.glob("*.json"))[:3]:
        doc = json.loads(path.read_text())
        person = doc["annotations"][0]
        person["keypoints"][0] = far
        person["keypoints"][4] = -far
        path.write_text(json.dumps(doc))
    return pred


def test_huge_finite_keypoints_score_as_far_ones_without_warnings(tmp_path):
    """1e300 px keypoints overflow to infinite distances and areas (IEEE, as in poseval and pycocotools):
    no numpy warning reaches the user, PoseTrack scores are those of keypoints merely far away, and the
    COCO AP is pycocotools' (an infinite area leaves the "all" range, as there)."""
    import warnings

    from famicli.metrics.scoring import evaluate

    huge, far = _far_keypoints(tmp_path, 1e300), _far_keypoints(tmp_path, 1e5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = evaluate(BASIC / "gt", huge, order="sorted").to_dict()
    expected = evaluate(BASIC / "gt", far, order="sorted").to_dict()
    for key in ("ap", "mota", "ap_per_joint", "mota_per_joint"):
        assert got[key] == expected[key], key
    gts, preds = load_posetrack(BASIC / "gt", huge, Issues(strict=False), order="sorted")
    with np.errstate(over="ignore"):  # pycocotools' loadRes overflows the area too
        assert_same_as_pycocotools(gts, preds)
