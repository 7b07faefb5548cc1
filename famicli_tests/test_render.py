"""Overlays (famicli.inference.render.draw_poses): legible ids at any frame size, the skeleton asked
for, the score threshold, and coordinates far off the frame."""

from __future__ import annotations

import numpy as np
import pytest

from famicli.inference.render import TRACK_COLOURS, draw_poses
from famicli.keypoints import COCO_LIMBS, LIMBS


def _hidden_poses(n: int) -> np.ndarray:
    """(n, 17, 3) poses whose joints all score 0: nothing of the skeleton is drawn."""
    return np.zeros((n, 17, 3))


def _text_rows(overlay: np.ndarray) -> np.ndarray:
    """The rows holding white pixels: on a black frame with blue track 0, only the id's text is white."""
    return np.flatnonzero((overlay.min(axis=-1) > 128).any(axis=1))


@pytest.mark.parametrize(("size", "min_height"), [((1080, 1920), 30), ((240, 320), 10)])
@pytest.mark.parametrize("top", [0.5, 0.0])  # a box in the middle, one touching the top edge
def test_track_id_is_legible(size, min_height, top):
    height, width = size
    frame = np.zeros((height, width, 3), np.uint8)
    boxes = np.array([[0.3 * width, top * height, 0.2 * width, 0.4 * height]])
    overlay = draw_poses(frame, boxes, [10], _hidden_poses(1))  # track 10: the first colour, white text
    rows = _text_rows(overlay)
    assert rows.size and rows[-1] - rows[0] + 1 >= min_height
    assert rows[0] > 0  # the whole label is in the frame, even when the box touches its top edge
    box_top = round(top * height)
    assert (rows < box_top).all() if box_top else (rows > 0).all()  # above the box where there is room


def test_lines_scale_with_frame():
    def box_line_width(height, width):
        frame = np.zeros((height, width, 3), np.uint8)
        box = np.array([[0.2 * width, 0.2 * height, 0.5 * width, 0.5 * height]])
        overlay = draw_poses(frame, box, [0], _hidden_poses(1))
        column = overlay[:, round(0.6 * width)]  # crosses the box's top and bottom edges only
        return np.count_nonzero((column == TRACK_COLOURS[0]).all(axis=-1)) // 2

    assert box_line_width(240, 320) == 1
    assert box_line_width(1080, 1920) >= 3


def _pose(**joints) -> np.ndarray:
    """(1, 17, 3): the named joints (index=(x, y, score)) and every other one scoring 0."""
    pose = np.zeros((1, 17, 3))
    for index, value in joints.items():
        pose[0, int(index[1:])] = value
    return pose


def test_limbs_choose_which_joints_are_joined():
    frame = np.zeros((240, 320, 3), np.uint8)
    box = np.array([[250.0, 180.0, 20.0, 20.0]])  # away from the limb
    pose = _pose(j1=(50, 100, 1), j2=(150, 100, 1))  # (1, 2) is a COCO limb (the eyes), not a PoseTrack one
    coco = draw_poses(frame, box, [0], pose, limbs=COCO_LIMBS)
    posetrack = draw_poses(frame, box, [0], pose, limbs=LIMBS)
    default = draw_poses(frame, box, [0], pose)
    assert (1, 2) in COCO_LIMBS and (1, 2) not in LIMBS and (2, 1) not in LIMBS
    assert coco[100, 100].any() and not posetrack[100, 100].any()
    assert np.array_equal(default, posetrack)
    assert coco[100, 50].any() and posetrack[100, 50].any()  # the joints themselves are drawn either way


def test_min_score_hides_joints():
    frame = np.zeros((240, 320, 3), np.uint8)
    box = np.array([[250.0, 180.0, 20.0, 20.0]])
    pose = _pose(j5=(60, 60, 0.5), j6=(120, 60, 0.5))  # the shoulders, a limb of both skeletons
    shown = draw_poses(frame, box, [0], pose, min_score=0.4)
    hidden = draw_poses(frame, box, [0], pose, min_score=0.6)
    assert shown[60, 60].any() and shown[60, 90].any()
    assert not hidden[:150, :200].any()


def test_huge_and_off_frame_coordinates():
    frame = np.full((240, 320, 3), 7, np.uint8)
    boxes = np.array(
        [
            [1e6, -1e6, 1e6, 1e6],  # off the frame
            [-1e6, -1e6, 2e6, 2e6],  # around it: no edge visible
            [10.0, 20.0, 1e6, 1e6],  # from inside to far outside
            [np.nan, 0.0, 1.0, 1.0],
        ]
    )
    poses = np.array([[[1e6, -1e6, 1.0]] * 17, [[-1e6, 1e6, 1.0]] * 17, _pose()[0], [[np.nan, 5.0, 1.0]] * 17])
    poses[2, 5] = (100, 100, 1)  # to the right shoulder, 1e6 px away along the diagonal
    poses[2, 6] = (1e6, 1e6, 1)
    frame_before = frame.copy()
    overlay = draw_poses(frame, boxes, [1, 2, 3, 4], poses, limbs=((5, 6),))
    assert overlay.shape == frame.shape and overlay.dtype == np.uint8
    assert np.array_equal(frame, frame_before)
    colour = TRACK_COLOURS[3]
    assert tuple(overlay[200, 200]) == colour  # the clipped limb keeps its direction
    assert tuple(overlay[120, 10]) == colour  # the box's left edge
    draw_poses(frame, boxes[:2] * 1e300, [1, 2], poses[:2] * 1e300)  # still no overflow


def test_no_persons():
    frame = np.zeros((240, 320, 3), np.uint8)
    overlay = draw_poses(frame, np.zeros((0, 4)), [], np.zeros((0, 17, 3)))
    assert overlay.shape == frame.shape and not overlay.any()
