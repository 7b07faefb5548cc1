"""Writing predictions: PoseTrack18 per-sequence JSON, PoseTrack17 ``annolist`` JSON, COCO results.

The PoseTrack files keep the ground truth's (or the video's) ``images`` list so that the official
evaluator finds every frame; a frame without predictions simply has no annotations.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from famicli.config import JOINT_NAMES


def person_annotation(image_id: int, track_id: int, coords, scores, bbox: Sequence[float] | None = None) -> dict:
    """One PoseTrack18 / COCO keypoint annotation.

    Args:
        image_id: the frame's PoseTrack18 image id.
        track_id: the person's track id in the sequence.
        coords: (17, 2) image coordinates (x, y), COCO joint order.
        scores: (17,) keypoint scores (heatmap maxima).
        bbox: optional (x, y, w, h).

    Returns:
        ``{"image_id", "track_id", "category_id": 1, "keypoints": [x, y, 1] * 17, "scores", "score"}``;
        ``score`` (the person score COCO ranks by) is the mean keypoint score.
    """
    xy = np.asarray(coords, dtype=float).reshape(len(JOINT_NAMES), 2)
    s = np.asarray(scores, dtype=float).reshape(len(JOINT_NAMES))
    keypoints = np.concatenate([xy, np.ones((len(xy), 1))], axis=1).reshape(-1)  # (17, 2) -> (51,)
    ann = {
        "image_id": int(image_id),
        "track_id": int(track_id),
        "category_id": 1,
        "keypoints": [round(float(v), 3) for v in keypoints],
        "scores": [round(float(v), 6) for v in s],
        "score": round(float(s.mean()), 6),
    }
    if bbox is not None:
        ann["bbox"] = [round(float(v), 2) for v in bbox]
    return ann


def posetrack18_document(images: list[dict], annotations: Iterable[dict]) -> dict:
    """A PoseTrack18 sequence file: ``images`` as given, the annotations, the 17-keypoint category."""
    return {
        "images": images,
        "annotations": list(annotations),
        "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(JOINT_NAMES),
                        "skeleton": []}],  # fmt: skip
    }


def annolist_document(frame_names: list[str], annotations: Iterable[dict], image_ids: list[int]) -> dict:
    """A PoseTrack17 ``annolist`` sequence file holding ``annotations`` (as from :func:`person_annotation`).

    The 15 PoseTrack17 joints are written with their MPII ids; the ears (not in PoseTrack17) are dropped.
    """
    from famicli.data.posetrack import PT17_JOINT_COLUMNS

    by_image: dict[int, list[dict]] = {}
    for ann in annotations:
        by_image.setdefault(ann["image_id"], []).append(ann)
    annolist = []
    for name, iid in zip(frame_names, image_ids):
        rects = []
        for ann in by_image.get(iid, []):
            kp = np.asarray(ann["keypoints"], dtype=float).reshape(-1, 3)  # (51,) -> (17, 3)
            points = [{"id": [pid], "x": [float(kp[col, 0])], "y": [float(kp[col, 1])],
                       "score": [float(ann["scores"][col])]} for pid, col in enumerate(PT17_JOINT_COLUMNS)]  # fmt: skip
            rects.append({"track_id": [ann["track_id"]], "score": [ann["score"]], "annopoints": [{"point": points}]})
        annolist.append({"image": [{"name": name}], "annorect": rects})
    return {"annolist": annolist}
