"""Readers: PoseTrack17 ``annolist`` files and reordered/15-name PoseTrack18 files give the same
numbers as the PoseTrack18 originals; sequence order options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import famicli
from famicli.errors import InputError
from famicli.keypoints import JOINT_NAMES as KEYPOINTS_17
from famicli.keypoints import POSEVAL_JOINTS as JOINTS_15
from famicli.metrics.scoring import list_sequences
from famicli_tests.conftest import shared_path

DATA = Path(__file__).parent / "data"
ORDER = json.loads((DATA / "poseval_reference_order.json").read_text())
INTERNAL = [("head_bottom" if n == "neck" else n) for n in JOINTS_15]


def to_annolist(data: dict) -> dict:
    """PoseTrack18 -> PoseTrack17 the way poseval's converter writes it."""
    names = data["categories"][0]["keypoints"]
    frames = []
    for img in data["images"]:
        rects = []
        for a in (a for a in data["annotations"] if a["image_id"] == img["id"]):
            kp = np.array(a["keypoints"], dtype=float).reshape(-1, 3)
            points = []
            for j, name in enumerate(names):
                x, y, v = kp[j]
                if name not in INTERNAL or (x == 0 and y == 0 and v == 0):
                    continue
                point = {"id": [INTERNAL.index(name)], "x": [x], "y": [y], "is_visible": [v]}
                if a.get("scores"):
                    point["score"] = [a["scores"][j]]
                points.append(point)
            rect = {"track_id": [a["track_id"]], "annopoints": [{"point": points}]}
            if "bbox_head" in a:
                x, y, w, h = a["bbox_head"]
                rect.update(x1=[x], y1=[y], x2=[x + w], y2=[y + h])
            rects.append(rect)
        frame = {"image": [{"name": img["file_name"]}], "annorect": rects, "is_labeled": [int(bool(rects))]}
        if img.get("ignore_regions_x"):
            frame["ignore_regions"] = [
                {"point": [{"x": [x], "y": [y]} for x, y in zip(xs, ys)]}
                for xs, ys in zip(img["ignore_regions_x"], img["ignore_regions_y"])
            ]
        frames.append(frame)
    return {"annolist": frames}


def rewrite(src: Path, dst: Path, change) -> Path:
    dst.mkdir(parents=True)
    for f in src.glob("*.json"):
        (dst / f.name).write_text(json.dumps(change(json.loads(f.read_text()))))
    return dst


def per_joint(result) -> np.ndarray:
    d = result.to_dict()
    keys = [k for k in d if k.endswith("_per_joint")]
    return np.array([[np.nan if d[k][j] is None else d[k][j] for j in d[k]] for k in keys])


@pytest.mark.parametrize("case", ["ignore_regions", "sparse_labels", "track_swaps"])
def test_posetrack17_annolist_gives_the_same_numbers(case, tmp_path):
    folder = shared_path("poseval_reference", case)
    gt = rewrite(folder / "gt", tmp_path / "gt", to_annolist)
    pred = rewrite(folder / "pred", tmp_path / "pred", to_annolist)
    ref = famicli.evaluate(folder / "gt", folder / "pred", order=ORDER[case], coco=False)
    old = famicli.evaluate(gt, pred, dataset="posetrack17", order=ORDER[case])
    np.testing.assert_allclose(per_joint(old), per_joint(ref), atol=1e-9)
    assert old.coco is None  # no person boxes in annolist files
    expected = json.loads((folder / "expected.json").read_text())
    np.testing.assert_allclose(list(old.per_joint["mota_per_joint"].values()), expected["mota_per_joint"], atol=1e-6)


def test_reordered_and_15_name_files_give_the_same_numbers(tmp_path):
    src = DATA / "posetrack18_basic"
    rng = np.random.default_rng(0)

    def shuffle(data, drop_ears):
        names = list(KEYPOINTS_17)
        keep = [i for i, n in enumerate(names) if not (drop_ears and n.endswith("_ear"))]
        order = [keep[i] for i in rng.permutation(len(keep))]
        data["categories"][0]["keypoints"] = [names[i] for i in order]
        for a in data["annotations"]:
            kp = np.array(a["keypoints"]).reshape(17, 3)
            a["keypoints"] = kp[order].reshape(-1).tolist()
            if "scores" in a:
                a["scores"] = [a["scores"][i] for i in order]
        return data

    gt = rewrite(src / "gt", tmp_path / "gt", lambda d: shuffle(d, True))
    pred = rewrite(src / "pred", tmp_path / "pred", lambda d: shuffle(d, False))
    ref = famicli.evaluate(src / "gt", src / "pred", order="sorted")
    got = famicli.evaluate(gt, pred, order="sorted")
    np.testing.assert_allclose(per_joint(got), per_joint(ref), atol=1e-9)
    assert got.coco["AP"] == pytest.approx(ref.coco["AP"], abs=1e-9)


def test_sequence_order_options(tmp_path):
    folder = DATA / "posetrack18_basic" / "gt"
    names = sorted(p.name for p in folder.glob("*.json"))
    assert [p.name for p in list_sequences(folder, "sorted")] == names
    assert sorted(p.name for p in list_sequences(folder, "listdir")) == names
    assert [p.name for p in list_sequences(folder, names[::-1])] == names[::-1]
    with pytest.raises(InputError, match="order: must name each .json file once"):
        list_sequences(folder, names[:1])
    with pytest.raises(InputError, match="no .json files"):
        list_sequences(tmp_path)
