"""COCO OKS AP from famipose equals pycocotools run directly on the same PoseTrack18 files."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

import famicli
from famicli.keypoints import OKS_SIGMAS
from famicli.metrics.coco import STATS
from famicli_tests.conftest import shared_path

BASIC = Path(__file__).parent / "data" / "posetrack18_basic"


def pycocotools_directly(gt_dir: Path, pred_dir: Path, tmp: Path) -> np.ndarray:
    """Convert the files to COCO json by hand, then COCO / loadRes / COCOeval, nothing else."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, dets = [], [], []
    for gt_file in sorted(gt_dir.glob("*.json")):
        gt = json.loads(gt_file.read_text())
        pred = json.loads((pred_dir / gt_file.name).read_text())
        coco_id = {}
        for i, img in enumerate(gt["images"]):
            if img["is_labeled"]:
                coco_id[pred["images"][i]["id"]] = coco_id[img["id"]] = len(images) + 1
                images.append({"id": len(images) + 1})
        for a in gt["annotations"]:
            kp = np.array(a["keypoints"], dtype=float).reshape(17, 3)
            given = ~(kp == 0).all(1)
            kp[given, 2] = 2
            x, y, w, h = a["bbox"]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": coco_id[a["image_id"]],
                    "category_id": 1,
                    "keypoints": kp.reshape(-1).tolist(),
                    "num_keypoints": int(given.sum()),
                    "iscrowd": 0,
                    "area": w * h,
                    "bbox": [x, y, w, h],
                }
            )
        for a in pred["annotations"]:
            if a["image_id"] not in coco_id:
                continue
            kp = np.array(a["keypoints"], dtype=float).reshape(17, 3)
            given = ~(kp == 0).all(1)
            kp[given, 2] = 1
            score = float(np.mean(np.array(a["scores"])[given]))
            dets.append(
                {
                    "image_id": coco_id[a["image_id"]],
                    "category_id": 1,
                    "keypoints": kp.reshape(-1).tolist(),
                    "score": score,
                }
            )
    (tmp / "gt.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]})
    )
    (tmp / "dt.json").write_text(json.dumps(dets))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(tmp / "gt.json"))
        ev = COCOeval(coco, coco.loadRes(str(tmp / "dt.json")), iouType="keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def check(gt: Path, pred: Path, tmp: Path) -> None:
    ours = famicli.evaluate(gt, pred).coco
    stats = pycocotools_directly(gt, pred, tmp)
    for name, value in zip(STATS, stats):
        expected = None if value < 0 else value * 100
        assert ours[name] == pytest.approx(expected, abs=1e-9), name


def test_coco_ap_equals_pycocotools_on_bundled_case(tmp_path):
    check(BASIC / "gt", BASIC / "pred", tmp_path)


@pytest.mark.parametrize("case", ["noisy", "sparse_labels", "ignore_regions"])
def test_coco_ap_equals_pycocotools_on_reference_cases(case, tmp_path):
    folder = shared_path("poseval_reference", case)
    check(folder / "gt", folder / "pred", tmp_path)


def test_sigmas_are_cocos_and_stated():
    from pycocotools.cocoeval import Params

    np.testing.assert_allclose(OKS_SIGMAS, Params(iouType="keypoints").kpt_oks_sigmas)
    coco = famicli.evaluate(BASIC / "gt", BASIC / "pred").coco
    assert coco["sigmas"]["left_ear"] == 0.035 and coco["sigmas"]["head_top"] == 0.025
    assert "COCO's 17 sigmas" in coco["note"]


def test_perfect_predictions_score_100(tmp_path):
    gt = tmp_path / "gt"
    pred = tmp_path / "pred"
    gt.mkdir(), pred.mkdir()
    for f in (BASIC / "gt").glob("*.json"):
        data = json.loads(f.read_text())
        (gt / f.name).write_text(json.dumps(data))
        for a in data["annotations"]:
            a["scores"] = [1.0] * 17
            a["track_id"] = a["track_id"] + 5
        (pred / f.name).write_text(json.dumps(data))
    result = famicli.evaluate(gt, pred)
    assert result.coco["AP"] == pytest.approx(100)
    assert result.ap["Total"] == pytest.approx(100)
    assert result.mota["Total"] == pytest.approx(100)
    assert result.per_joint["motp_per_joint"]["total"] == pytest.approx(100)
