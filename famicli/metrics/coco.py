"""COCO keypoint AP/AR (OKS) on PoseTrack18 files, through pycocotools ``COCOeval``.

PoseTrack has no official OKS sigmas; like mmpose, famipose uses COCO's 17 sigmas in the same
slots (PoseTrack's head_bottom and head_top sit where COCO has the eyes, and the ears are never
annotated in PoseTrack, so they never count). Conversion, stated once:

* images: the GT frames marked labeled (or holding persons), in all sequences;
* GT persons: keypoints with v = 2 where given (poseval's rule: not x == y == v == 0), else 0;
  area = bbox w × h (the keypoints' extent if there is no bbox); persons without keypoints are
  ignored by COCOeval; ignore regions are not used;
* predictions: matched to GT frames by position in the file; score = the person's ``score``, else
  the mean of its keypoint scores; absent keypoints are (0, 0).

Values are reported in percent, like the PoseTrack tables.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from famicli.formats.posetrack import MIN_SCORE, Sequence
from famicli.keypoints import JOINT_NAMES, OKS_SIGMAS

STATS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def coco_datasets(gts: list[Sequence], preds: list[Sequence]) -> tuple[dict, list[dict]]:
    """The COCO-format GT dataset and result list that ``COCOeval`` is run on."""
    images, anns, results = [], [], []
    image_id = 0
    for gt, pr in zip(gts, preds):
        ids = np.full(gt.n_frames, -1)
        for f in np.flatnonzero(gt.labeled):
            image_id += 1
            ids[f] = image_id
            images.append({"id": image_id, "file_name": gt.frame_names[f]})
        for r in np.flatnonzero(ids[gt.frame] >= 0):
            kp = _keypoints(gt, r, visible=2)
            anns.append({
                "id": len(anns) + 1, "image_id": int(ids[gt.frame[r]]), "category_id": 1,
                "keypoints": kp, "num_keypoints": int(gt.present[r].sum()), "iscrowd": 0,
                "area": _area(gt, r), "bbox": _bbox(gt, r),
            })  # fmt: skip
        if pr.n_frames != gt.n_frames:
            continue
        for r in np.flatnonzero(ids[pr.frame] >= 0):
            results.append({"image_id": int(ids[pr.frame[r]]), "category_id": 1,
                            "keypoints": _keypoints(pr, r, visible=1), "score": _score(pr, r)})
    dataset = {"images": images, "annotations": anns,
               "categories": [{"id": 1, "name": "person", "keypoints": list(JOINT_NAMES)}]}
    return dataset, results


def _keypoints(seq: Sequence, r: int, visible: int) -> list[float]:
    kp = np.zeros((17, 3))
    pres = seq.present[r]
    kp[pres, :2] = seq.kp[r, pres, :2]
    kp[pres, 2] = visible
    return kp.reshape(-1).tolist()


def _bbox(seq: Sequence, r: int) -> list[float]:
    if np.isfinite(seq.bbox[r]).all():
        return seq.bbox[r].tolist()
    pts = seq.kp[r, seq.present[r], :2]
    if not len(pts):
        return [0.0, 0.0, 0.0, 0.0]
    lo, hi = pts.min(0), pts.max(0)
    return [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])]


def _area(seq: Sequence, r: int) -> float:
    _, _, w, h = _bbox(seq, r)
    return float(w * h)


def _score(seq: Sequence, r: int) -> float:
    if np.isfinite(seq.person_score[r]):
        return float(seq.person_score[r])
    s = seq.scores[r, seq.present[r]]
    s = s[s != MIN_SCORE]
    return float(s.mean()) if len(s) else 0.0


def coco_keypoint_ap(gts: list[Sequence], preds: list[Sequence]) -> dict:
    """``COCOeval(iouType="keypoints")`` stats in percent, with the sigmas used."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dataset, results = coco_datasets(gts, preds)
    out: dict = {k: None for k in STATS}
    if dataset["annotations"] and results:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            coco_gt = COCO()
            coco_gt.dataset = dataset
            coco_gt.createIndex()
            coco_dt = coco_gt.loadRes(results)
            ev = COCOeval(coco_gt, coco_dt, iouType="keypoints")
            ev.params.kpt_oks_sigmas = np.array(OKS_SIGMAS)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        out = {k: (float(v) * 100 if v >= 0 else None) for k, v in zip(STATS, ev.stats)}
    out["sigmas"] = dict(zip(JOINT_NAMES, OKS_SIGMAS))
    out["note"] = ("pycocotools COCOeval (OKS) with COCO's 17 sigmas; PoseTrack ears are never "
                   "annotated; values in percent")  # fmt: skip
    out["images"] = len(dataset["images"])
    out["gt_persons"] = len(dataset["annotations"])
    out["pred_persons"] = len(results)
    return out
