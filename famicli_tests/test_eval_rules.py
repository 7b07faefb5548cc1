"""poseval's rules and quirks on tiny hand-made sequences whose numbers are known."""

from __future__ import annotations

import json

import numpy as np
import pytest

import famicli
from famicli.keypoints import JOINT_NAMES as KEYPOINTS_17

SEQ = "020000_mpii_test"
# one standing person, 17 keypoints (ears absent), head box 50 × 0: head size 0.6 × 50 = 30
BODY = np.array(
    [
        [100, 90],
        [100, 110],
        [100, 60],
        [0, 0],
        [0, 0],
        [80, 120],
        [120, 120],
        [75, 160],
        [125, 160],
        [70, 200],
        [130, 200],
        [90, 210],
        [110, 210],
        [90, 260],
        [110, 260],
        [90, 310],
        [110, 310],
    ],
    dtype=float,
)


def person(frame, track, shift=(0.0, 0.0), scores=True, dx=0.0):
    kp = BODY + np.array(shift)
    kp[3:5] = 0
    v = np.ones(17)
    v[3:5] = 0
    kp[[0, 1, 2] + list(range(5, 17)), 0] += dx
    ann = {
        "image_id": frame,
        "track_id": track,
        "category_id": 1,
        "keypoints": np.c_[kp, v].reshape(-1).tolist(),
        "bbox_head": [75.0 + shift[0], 60.0 + shift[1], 50.0, 0.0],
        "bbox": [60.0 + shift[0], 50.0 + shift[1], 80.0, 270.0],
    }
    if scores:
        ann["scores"] = [0.9] * 17
    return ann


def write_case(tmp_path, gt_persons, pred_persons, n_frames, ignore=None):
    images = [{"id": f, "file_name": f"images/val/{SEQ}/{f:06d}.jpg", "is_labeled": True} for f in range(n_frames)]
    for f, (xs, ys) in (ignore or {}).items():
        images[f].update(ignore_regions_x=[xs], ignore_regions_y=[ys])
    cats = [{"id": 1, "name": "person", "keypoints": list(KEYPOINTS_17)}]
    for kind, anns in (("gt", gt_persons), ("pred", pred_persons)):
        (tmp_path / kind).mkdir(exist_ok=True)
        (tmp_path / kind / f"{SEQ}.json").write_text(
            json.dumps({"images": images, "annotations": anns, "categories": cats})
        )
    return famicli.evaluate(tmp_path / "gt", tmp_path / "pred", coco=False)


def test_last_frame_skipped_and_empty_frame_is_one_miss_one_fp(tmp_path):
    gt = [person(f, 0) for f in range(3)] + [person(f, 1, shift=(300, 0)) for f in range(3)]
    pred = [person(0, 5), person(0, 6, shift=(300, 0)), person(2, 5), person(2, 6, (300, 0))]
    r = write_case(tmp_path, gt, pred, 3)
    # fed frames: 0 (2 matches) and 1 (no prediction: 1 miss + 1 FP, not 2); frame 2 is last
    assert r.per_joint["mota_per_joint"]["nose"] == pytest.approx(100 * (1 - 2 / 3))
    assert r.per_joint["mot_recall_per_joint"]["nose"] == pytest.approx(100 * 2 / 3)
    assert r.per_joint["mot_precision_per_joint"]["nose"] == pytest.approx(100 * 2 / 3)
    # AP: frame 1's GT still counts as positives: 4 of 6 found at precision 1
    assert r.per_joint["ap_per_joint"]["nose"] == pytest.approx(100 * 4 / 6)
    assert r.per_joint["precision_per_joint"]["nose"] == pytest.approx(100)


def test_head_size_threshold_and_motp(tmp_path):
    # head size 30 -> a joint matches up to 15 px; MOTP sums RAW and MATCH rows: d counted twice
    gt = [person(f, 0) for f in range(3)]
    pred = [person(f, 7, dx=14.9 if f == 0 else 15.1) for f in range(3)]
    r = write_case(tmp_path, gt, pred, 3)
    assert r.per_joint["recall_per_joint"]["nose"] == pytest.approx(100 / 3)
    d = 14.9 / 30
    assert r.per_joint["motp_per_joint"]["nose"] == pytest.approx(100 * (1 - 2 * d))


def test_track_switch_counts(tmp_path):
    gt = [person(f, t, shift=(300 * t, 0)) for f in range(4) for t in (0, 1)]
    ids = {0: (5, 6), 1: (5, 6), 2: (6, 5), 3: (6, 5)}  # swap at frame 2
    pred = [person(f, ids[f][t], shift=(300 * t, 0)) for f in range(4) for t in (0, 1)]
    r = write_case(tmp_path, gt, pred, 4)
    # 6 objects in fed frames 0-2, 2 switches at frame 2
    assert r.mota["Total"] == pytest.approx(100 * (1 - 2 / 6))


def test_ignore_region_removes_keypoints_inside_only(tmp_path):
    gt = [person(f, 0) for f in range(2)]
    pred = [person(f, 3) for f in range(2)] + [person(f, 4, shift=(400, 0)) for f in range(2)]
    box = ([380.0, 600.0, 600.0, 380.0], [0.0, 0.0, 400.0, 400.0])  # covers the false positive
    r = write_case(tmp_path, gt, pred, 2, ignore={0: box, 1: box})
    assert r.ap["Total"] == pytest.approx(100)
    # the boundary is not inside: the false positive's nose lies on the region's edge and stays
    edge = ([490.0, 600.0, 600.0, 490.0], [0.0, 0.0, 400.0, 400.0])
    pred = [person(f, 3) for f in range(2)] + [person(f, 4, shift=(400, 0), dx=-10) for f in range(2)]
    r = write_case(tmp_path, gt, pred, 2, ignore={0: edge, 1: edge})
    assert r.per_joint["precision_per_joint"]["nose"] == pytest.approx(50)


def test_missing_scores_rank_last(tmp_path):
    gt = [person(0, 0), person(1, 0)]
    pred = [person(0, 1, scores=False), person(1, 1, dx=100)]  # the wrong one has a real score
    r = write_case(tmp_path, gt, pred, 2)
    # sorted: wrong (0.9) first, right (-9999) second -> AP = 0.5 recall at precision 0.5
    assert r.per_joint["ap_per_joint"]["nose"] == pytest.approx(25)
    assert any("poseval then uses score -9999" in w for w in r.warnings)
