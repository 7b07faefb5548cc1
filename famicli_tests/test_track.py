"""famicli.inference.track: IoU, OKS, greedy matching, unique ids, max-age."""

from __future__ import annotations

import numpy as np
import pytest

from famicli.errors import ConfigError
from famicli.inference.track import GreedyTracker, box_iou, pose_oks


def test_box_iou_known_values():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 0, 0]])
    assert np.allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0, 0.0]])
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 4)


def test_pose_oks():
    pose = np.array([[10.0 * j, 5.0, 0.9] for j in range(17)])
    assert pose_oks(pose, pose, area=1000) == pytest.approx(1.0)
    far = pose.copy()
    far[:, 0] += 50
    assert pose_oks(pose, far, area=1000) < 0.01
    low = pose.copy()
    low[:, 2] = 0.1  # no joint is confident: no similarity from the pose
    assert pose_oks(pose, low, area=1000) == 0.0


def test_ids_follow_moving_boxes():
    tracker = GreedyTracker()
    ids = [tracker.update([[10 + 2 * t, 10, 30, 60], [100 - 2 * t, 20, 30, 60]]) for t in range(10)]
    assert all(list(i) == [0, 1] for i in ids)
    # a new person gets a new id, and the order of the boxes does not matter
    assert list(tracker.update([[200, 20, 30, 60], [80, 20, 30, 60], [30, 10, 30, 60]])) == [2, 1, 0]


def test_ids_unique_within_each_frame():
    rng = np.random.default_rng(0)
    tracker = GreedyTracker(threshold=0.05)
    for _ in range(200):
        n = int(rng.integers(0, 8))
        boxes = np.concatenate([rng.uniform(0, 50, (n, 2)), rng.uniform(5, 60, (n, 2))], axis=1)
        ids = tracker.update(boxes)
        assert len(ids) == n and len(set(ids.tolist())) == n


def test_max_age():
    tracker = GreedyTracker(max_age=2)
    box = [[10, 10, 30, 60]]
    assert tracker.update(box)[0] == 0
    tracker.update([])
    tracker.update([])
    assert tracker.update(box)[0] == 0  # unseen for 2 frames: still alive
    for _ in range(3):
        tracker.update([])
    assert tracker.update(box)[0] == 1  # unseen for 3 frames: a new track


def test_oks_separates_overlapping_boxes():
    """Two persons with the same box: IoU cannot tell them apart, their poses can."""
    tracker = GreedyTracker()
    box = [[0, 0, 100, 200]] * 2
    up = np.array([[50.0, 10 + 10 * j, 0.9] for j in range(17)])
    left = np.array([[10 + 5 * j, 100.0, 0.9] for j in range(17)])
    first = tracker.update(box, np.stack([up, left]))
    second = tracker.update(box, np.stack([left + 1, up + 1]))
    assert list(second) == [first[1], first[0]]


def test_bad_options():
    with pytest.raises(ConfigError, match="threshold"):
        GreedyTracker(threshold=1.5)
