"""SynthTrack: deterministic, PoseTrack18-shaped, accepted by the checker and the evaluator."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from famicli.data.synthtrack.generate import MARKER, SynthConfig, generate
from famicli.errors import ConfigError, InputError
from famicli.formats.check import check_dataset

TINY = SynthConfig(videos=2, frames=8, size=(160, 120), seed=5)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "set"
    generate(out, TINY)
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_files(tiny, tmp_path):
    again = tmp_path / "again"
    generate(again, TINY)
    assert _files(again) == _files(tiny)
    other = tmp_path / "other"
    generate(other, SynthConfig(videos=2, frames=8, size=(160, 120), seed=6))
    a, b = _files(other), _files(tiny)
    assert a.keys() == b.keys()
    assert a["images/train/000001_mpii_train/000000.jpg"] != b["images/train/000001_mpii_train/000000.jpg"]


def test_layout_and_fields(tiny):
    assert (tiny / MARKER).is_file()
    assert not list(tiny.parent.glob(".set.tmp-*"))  # the temporary folder was renamed away
    train = json.loads((tiny / "annotations/train/000001_mpii_train.json").read_text())
    val = json.loads((tiny / "annotations/val/000002_mpii_test.json").read_text())
    for doc, split, seq in ((train, "train", 1), (val, "val", 2)):
        assert len(doc["images"]) == 8
        assert doc["categories"][0]["keypoints"][3:5] == ["left_ear", "right_ear"]
        for t, im in enumerate(doc["images"]):
            name = f"{seq:06d}_mpii_{'train' if split == 'train' else 'test'}"
            assert im["file_name"] == f"images/{split}/{name}/{t:06d}.jpg"
            assert (tiny / im["file_name"]).is_file()
            assert im["id"] == im["frame_id"] == 10_000_000_000 + seq * 10_000 + t
            assert im["vid_id"] == f"{seq:06d}" and im["nframes"] == 8
            assert set(im["synth"]) == {"occluded", "blurred", "shake"}
            assert im["is_labeled"] == (split == "train" or t % 4 == 0)
        frames = {im["id"]: im for im in doc["images"]}
        seen = set()
        for a in doc["annotations"]:
            assert frames[a["image_id"]]["is_labeled"]
            assert a["id"] == a["image_id"] * 100 + a["track_id"] and a["category_id"] == 1
            assert (a["image_id"], a["track_id"]) not in seen
            seen.add((a["image_id"], a["track_id"]))
            assert len(a["keypoints"]) == 51 and a["keypoints"][9:15] == [0] * 6  # ears never annotated
            assert len(a["bbox"]) == 4 and len(a["bbox_head"]) == 4
            annotated = {j for j in range(17) if a["keypoints"][3 * j + 2] > 0}
            assert set(a["occluded_joints"]) <= annotated
            for j in annotated:
                x, y = a["keypoints"][3 * j : 3 * j + 2]
                assert 0 <= x <= 159 and 0 <= y <= 119
        assert doc["annotations"], "every tiny video has people"


def test_check_passes_on_synthtrack(tiny):
    report = check_dataset(tiny, decode=True)
    assert report["ok"] and report["issues"] == []
    assert report["splits"]["train"]["sequences"] == 1 and report["splits"]["val"]["frames"] == 8
    assert report["splits"]["val"]["labeled_frames"] == 2
    assert report["splits"]["train"]["never_annotated_joints"] == ["left_ear", "right_ear"]
    assert report["splits"]["train"]["image_sizes"] == {"160x120": 8}
    assert report["synthtrack"]["config"]["seed"] == 5


def test_the_evaluator_scores_gt_against_itself_at_100(tiny):
    from famicli.metrics.scoring import evaluate

    result = evaluate(tiny / "annotations/train", tiny / "annotations/train", coco=False, strict=False).to_dict()
    assert result["ap"]["Total"] == pytest.approx(100.0)


def test_existing_folders_are_not_clobbered(tiny, tmp_path):
    with pytest.raises(InputError, match=r"already exists and is not empty; pass --overwrite to replace it$"):
        generate(tiny, TINY)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match=re.escape(f"{other}: not a SynthTrack folder (no {MARKER}); refusing")):
        generate(other, TINY, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"
    replaced = tmp_path / "replaced"
    generate(replaced, SynthConfig(videos=1, frames=2, size=(64, 48)))
    generate(replaced, SynthConfig(videos=1, frames=3, size=(64, 48)), overwrite=True)
    assert len(list((replaced / "images/train/000001_mpii_train").iterdir())) == 3


def test_bad_config_is_refused_before_writing(tmp_path):
    with pytest.raises(ConfigError, match=r"^frame size 32x24 is too small; the minimum is 64x48$"):
        generate(tmp_path / "x", SynthConfig(size=(32, 24)))
    assert not (tmp_path / "x").exists()


def test_split_sizes():
    assert SynthConfig(videos=20).n_val() == 5
    assert SynthConfig(videos=2).n_val() == 1
    assert SynthConfig(videos=1).n_val() == 0
    assert SynthConfig(videos=6, val_videos=3).n_val() == 3
