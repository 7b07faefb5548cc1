"""Writing predictions: PoseTrack18 per-sequence JSON, PoseTrack17 ``annolist`` JSON, COCO results
(overlays are drawn by :mod:`famicli.inference.render`).

The PoseTrack files keep the ground truth's (or the video's) ``images`` list so that the official
evaluator finds every frame; a frame without predictions simply has no annotations.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np

from famicli.keypoints import JOINT_NAMES, POSEVAL_COLUMNS, SCHEMAS

log = logging.getLogger(__name__)


def _finite_persons(xy, scores, boxes) -> np.ndarray:
    """(N,) bool: every value of the person is finite, and so is its mean score (xy (N, 17, 2), scores
    (N, 17), boxes (N, 4))."""
    n = len(boxes)
    if n == 0:
        return np.zeros(0, dtype=bool)
    xy = np.asarray(xy, dtype=float).reshape(n, -1)  # (N, 17, 2) -> (N, 34)
    scores = np.asarray(scores, dtype=float).reshape(n, -1)  # (N, 17)
    boxes = np.asarray(boxes, dtype=float).reshape(n, -1)  # (N, 4)
    finite = np.isfinite(xy).all(1) & np.isfinite(scores).all(1) & np.isfinite(boxes).all(1)
    with np.errstate(over="ignore", invalid="ignore"):  # the mean of huge scores may overflow
        return finite & np.isfinite(scores.mean(1))


def person_annotation(
    image_id: int, track_id: int, coords, scores, bbox: Sequence[float] | None = None, present=None
) -> dict:
    """One PoseTrack18 / COCO keypoint annotation.

    Args:
        image_id: the frame's PoseTrack18 image id.
        track_id: the person's track id in the sequence.
        coords: (17, 2) image coordinates (x, y), COCO joint order.
        scores: (17,) keypoint scores (heatmap maxima).
        bbox: optional (x, y, w, h).
        present: optional (17,) bool; a joint not present (one the model does not give, e.g. PoseTrack's
            ``head_top`` from a COCO model) is written absent as poseval reads it: ``0, 0, 0``, score 0.

    Returns:
        ``{"image_id", "track_id", "category_id": 1, "keypoints": [x, y, 1] * 17, "scores", "score"}``;
        ``score`` (the person score COCO ranks by) is the mean score of the present keypoints.
    """
    xy = np.asarray(coords, dtype=float).reshape(len(JOINT_NAMES), 2)
    s = np.asarray(scores, dtype=float).reshape(len(JOINT_NAMES))
    keypoints = np.concatenate([xy, np.ones((len(xy), 1))], axis=1)  # (17, 2) -> (17, 3)
    if present is not None:
        present = np.asarray(present, dtype=bool)
        keypoints[~present] = 0.0
        s = np.where(present, s, 0.0)
    mean = s[present].mean() if present is not None and present.any() else s.mean()
    keypoints = keypoints.reshape(-1)  # (17, 3) -> (51,)
    ann = {
        "image_id": int(image_id),
        "track_id": int(track_id),
        "category_id": 1,
        "keypoints": [round(float(v), 3) for v in keypoints],
        "scores": [round(float(v), 6) for v in s],
        "score": round(float(mean), 6),
    }
    if bbox is not None:
        ann["bbox"] = [round(float(v), 2) for v in bbox]
    return ann


def posetrack18_document(images: list[dict], annotations: Iterable[dict]) -> dict:
    """A PoseTrack18 sequence file: ``images`` as given, the annotations, the 17-keypoint category."""
    return {
        "images": images,
        "annotations": list(annotations),
        "categories": [
            {"id": 1, "name": "person", "supercategory": "person", "keypoints": list(JOINT_NAMES), "skeleton": []}
        ],
    }


def annolist_document(frame_names: list[str], annotations: Iterable[dict], image_ids: list[int]) -> dict:
    """A PoseTrack17 ``annolist`` sequence file holding ``annotations`` (as from :func:`person_annotation`).

    The 15 PoseTrack17 joints are written with their MPII ids; the ears (not in PoseTrack17) are dropped.
    """

    by_image: dict[int, list[dict]] = {}
    for ann in annotations:
        by_image.setdefault(ann["image_id"], []).append(ann)
    annolist = []
    for name, iid in zip(frame_names, image_ids):
        rects = []
        for ann in by_image.get(iid, []):
            kp = np.asarray(ann["keypoints"], dtype=float).reshape(-1, 3)  # (51,) -> (17, 3)
            points = [
                {"id": [pid], "x": [float(kp[col, 0])], "y": [float(kp[col, 1])], "score": [float(ann["scores"][col])]}
                for pid, col in enumerate(POSEVAL_COLUMNS)
                if kp[col].any()  # absent (0, 0, 0): not listed
            ]
            rects.append({"track_id": [ann["track_id"]], "score": [ann["score"]], "annopoints": [{"point": points}]})
        annolist.append({"image": [{"name": name}], "annorect": rects})
    return {"annolist": annolist}


def video_images(name: str, n_frames: int, split: str = "val") -> list[dict]:
    """A PoseTrack18 ``images`` list for a video that has none (every frame marked labeled).

    Image ids follow PoseTrack18 (10^10 + sequence * 10000 + frame) with the sequence number taken from
    a PoseTrack-style name (``000342_mpii_test``), else sequence 0; file names are
    ``images/<split>/<name>/<frame:06d>.jpg``.
    """
    from famicli.formats.layout import SEQUENCE_NAME, image_id

    m = SEQUENCE_NAME.match(name)
    seq = int(m.group(1)) if m else 0
    return [
        {
            "id": image_id(seq, t),
            "file_name": f"images/{split}/{name}/{t:06d}.jpg",
            "frame_id": image_id(seq, t),
            "vid_id": f"{seq:06d}",
            "nframes": n_frames,
            "is_labeled": True,
        }
        for t in range(n_frames)
    ]


def coco_results(annotations: Iterable[dict]) -> list[dict]:
    """COCO keypoint results (``COCO.loadRes``) from :func:`person_annotation` dicts.

    Keypoints are written as HRNet writes them, ``[x, y, score]`` per joint; ``score`` is the
    person's, ``track_id`` and ``bbox`` are kept when present (pycocotools ignores them).
    """
    out = []
    for ann in annotations:
        kp = np.asarray(ann["keypoints"], dtype=float).reshape(-1, 3)  # (51,) -> (17, 3)
        kp[:, 2] = ann["scores"]
        res = {
            "image_id": ann["image_id"],
            "category_id": 1,
            "keypoints": [round(float(v), 3) for v in kp.reshape(-1)],
            "score": ann["score"],
            "track_id": ann["track_id"],
        }
        if "bbox" in ann:
            res["bbox"] = ann["bbox"]
        out.append(res)
    return out


class VideoPrediction:
    """What :func:`famicli.predict_video` returns: every frame's persons, and how they were obtained.

    Attributes:
        name: the video's stem (names the output files).
        images: PoseTrack18 ``images`` as written (a boxes file's own list, in its order, when it has one).
        image_ids: the image id of each frame, in frame order (default: the ids of ``images``).
        frames: per frame, its persons (``boxes`` (N, 4), ``box_scores`` (N,), ``track_ids`` (N,),
            ``keypoints`` (N, 17, 3) and ``backbone`` (N, 17, 3) as x, y, score).
        record: the run record (``run.json``): video, weights, boxes, options, timings.
    """

    def __init__(
        self,
        name: str,
        images: list[dict],
        frames: list,
        record: dict,
        image_ids: list[int] | None = None,
        schema=None,
    ):
        self.name, self.images, self.frames, self.record = name, images, frames, record
        self.image_ids = image_ids if image_ids is not None else [im["id"] for im in images]
        self.schema = schema or SCHEMAS["posetrack"]  # the model's keypoints (famicli.keypoints.Schema)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def persons(self) -> int:
        return sum(len(f.boxes) for f in self.frames)

    @property
    def tracks(self) -> int:
        return len({int(t) for f in self.frames for t in f.track_ids})

    def annotations(self, source: str = "famipose", posetrack: bool = True) -> list[dict]:
        """:func:`person_annotation` per person per frame; ``source`` "famipose" or "backbone" (the
        single-frame baseline). Keypoint scores are heatmap maxima times the box score.

        ``posetrack``: the 17 PoseTrack18 keypoints, taken from the model's :attr:`schema`; those it does
        not give (a COCO model's ``head_bottom``, ``head_top``: never its eyes) are written absent. Else
        the model's own 17 keypoints, in its schema's order (COCO results).

        A person whose keypoints, scores or box are not all finite (e.g. a checkpoint with NaN weights)
        is left out, so that every file written is valid JSON; how many is logged and counted in
        ``record["persons_not_finite"][source]``."""
        if source not in ("famipose", "backbone"):
            from famicli.errors import ConfigError

            raise ConfigError(f"unknown source {source!r}; choose from: famipose, backbone")
        anns, not_finite = [], 0
        columns = np.array(self.schema.posetrack if posetrack else range(len(self.schema.names)))
        present = columns >= 0
        columns = np.where(present, columns, 0)
        present = None if present.all() else present
        for image_id, f in zip(self.image_ids, self.frames, strict=True):
            kp = f.keypoints if source == "famipose" else f.backbone
            kp = kp[:, columns]  # (N, 17, 3) in the model's order -> in the output's
            with np.errstate(over="ignore", invalid="ignore"):  # huge values: inf, dropped below
                scores = kp[..., 2] * f.box_scores[:, None]  # (N, 17)
                finite = _finite_persons(kp[..., :2], scores, f.boxes)  # (N,)
            for i in range(len(f.boxes)):
                if not finite[i]:
                    not_finite += 1
                    continue
                ann = person_annotation(image_id, int(f.track_ids[i]), kp[i, :, :2], scores[i], f.boxes[i], present)
                anns.append(ann)
        counted = self.record.setdefault("persons_not_finite", {})
        if not_finite and source not in counted:  # once, though the PoseTrack and COCO files both ask
            log.warning(
                "%s: %d persons with keypoints or scores that are not finite were not written", self.name, not_finite
            )
        counted[source] = not_finite
        return anns

    def to_posetrack(self, source: str = "famipose") -> dict:
        """A PoseTrack18 sequence file (``famipose eval`` / poseval)."""
        return posetrack18_document(self.images, self.annotations(source))

    def to_coco(self, source: str = "famipose") -> list[dict]:
        """COCO keypoint results (pycocotools ``COCO.loadRes``): the model's own keypoints, in its schema's
        order (a COCO model's eyes at 1 and 2; ``record["schema"]`` names them)."""
        return coco_results(self.annotations(source, posetrack=False))
