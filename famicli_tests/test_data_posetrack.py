"""PoseTrack readers and the windowed dataset: sample format, augmentation, errors."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from famicli.config import DataConfig
from famicli.data.posetrack import PoseTrackDataset, read_sequence
from famicli.data.synthtrack.generate import SynthConfig, generate
from famicli.errors import InputError

INPUT, HEATMAP = (64, 48), (16, 12)
NO_AUG = DataConfig(sigma=1.0, scale_factor=0.0, rotation_prob=0.0, flip_prob=0.0, half_body_prob=0.0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pt") / "set"
    generate(out, SynthConfig(videos=2, frames=8, size=(160, 120), seed=2))
    return out


def _write_clip(root: Path, frames: list[np.ndarray], seq: int = 1, person_frame: int = 2) -> Path:
    """A one-sequence PoseTrack18 folder; one person labeled on ``person_frame``."""
    name = f"{seq:06d}_mpii_test"
    images = []
    for t, frame in enumerate(frames):
        path = root / "images" / "val" / name / f"{t:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(frame).save(path, quality=95)
        images.append(
            {
                "id": 10_000_000_000 + seq * 10_000 + t,
                "file_name": str(path.relative_to(root)),
                "frame_id": 10_000_000_000 + seq * 10_000 + t,
                "vid_id": f"{seq:06d}",
                "nframes": len(frames),
                "is_labeled": t == person_frame,
            }
        )
    kp = np.zeros((17, 3))
    kp[[0, 1, 2]] = [[80, 30, 1], [80, 40, 1], [80, 20, 1]]
    kp[5:17:2] = [[70, 45 + 10 * i, 1] for i in range(6)]  # left joints
    kp[6:17:2] = [[90, 45 + 10 * i, 1] for i in range(6)]  # right joints
    kp[[3, 4]] = 0
    ann = {
        "id": 1,
        "image_id": images[person_frame]["id"],
        "track_id": 3,
        "category_id": 1,
        "keypoints": kp.reshape(-1).tolist(),
        "bbox": [60, 15, 40, 110],
        "bbox_head": [72, 18, 16, 22],
    }
    doc = {"images": images, "annotations": [ann], "categories": [{"id": 1, "name": "person"}]}
    (root / "annotations" / "val").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "val" / f"{name}.json").write_text(json.dumps(doc))
    return root


def _textured(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((160, 120), Image.Resampling.BICUBIC))


def test_sample_format_and_collation(tiny):
    ds = PoseTrackDataset(tiny, "train", DataConfig(sigma=1.0), INPUT, HEATMAP, train=True)
    assert len(ds) > 0
    torch.manual_seed(0)
    s = ds[0]
    assert set(s) == {"key", "support", "target", "target_weight", "meta"}
    assert s["key"].shape == (3, 64, 48) and s["key"].dtype == torch.float32
    assert s["support"].shape == (4, 3, 64, 48)
    assert s["target"].shape == (17, 16, 12) and s["target_weight"].shape == (17,)
    meta = s["meta"]
    assert set(meta) == {"image_id", "track_id", "center", "scale", "rotation", "flipped", "joints"}
    assert meta["center"].shape == (2,) and meta["scale"].shape == (2,) and meta["joints"].shape == (17, 3)
    assert meta["rotation"].dtype == torch.float32 and meta["flipped"].dtype == torch.bool
    assert s["target_weight"][3:5].tolist() == [0.0, 0.0]  # ears are never annotated
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert batch["support"].shape == (3, 4, 3, 64, 48)
    assert batch["meta"]["image_id"].dtype == torch.int64 and batch["meta"]["flipped"].shape == (3,)


def test_meta_matches_the_annotation_file(tiny):
    ds = PoseTrackDataset(tiny, "val", NO_AUG, INPUT, HEATMAP, train=False)
    doc = json.loads((tiny / "annotations/val/000002_mpii_test.json").read_text())
    by_key = {(a["image_id"], a["track_id"]): a for a in doc["annotations"]}
    assert len(ds) == len(by_key)
    s = ds[len(ds) - 1]
    a = by_key[(s["meta"]["image_id"], s["meta"]["track_id"])]
    np.testing.assert_allclose(s["meta"]["joints"].numpy().reshape(-1), a["keypoints"], atol=1e-4)
    assert not s["meta"]["flipped"] and float(s["meta"]["rotation"]) == 0.0


def test_augmentation_is_reproducible_with_torch_seed(tiny):
    ds = PoseTrackDataset(tiny, "train", DataConfig(sigma=1.0), INPUT, HEATMAP, train=True)
    torch.manual_seed(7)
    a = [ds[i] for i in range(4)]
    torch.manual_seed(7)
    b = [ds[i] for i in range(4)]
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x["key"], y["key"]) and torch.equal(x["target"], y["target"])
        assert torch.equal(x["meta"]["center"], y["meta"]["center"])


def test_one_augmentation_for_the_whole_window(tmp_path):
    root = _write_clip(tmp_path / "same", [_textured()] * 5)
    cfg = DataConfig(sigma=1.0, rotation_prob=1.0, flip_prob=1.0, half_body_prob=0.0)
    ds = PoseTrackDataset(root, "val", cfg, INPUT, HEATMAP, train=True)
    torch.manual_seed(3)
    s = ds[0]
    assert bool(s["meta"]["flipped"]) and float(s["meta"]["rotation"]) != 0.0
    for i in range(4):
        assert torch.equal(s["support"][i], s["key"])


def test_flip_mirrors_the_crop_and_swaps_the_targets(tmp_path):
    root = _write_clip(tmp_path / "clip", [_textured(t) for t in range(5)])
    plain = PoseTrackDataset(root, "val", NO_AUG, INPUT, HEATMAP, train=True)[0]
    flipped = PoseTrackDataset(root, "val", replace(NO_AUG, flip_prob=1.0), INPUT, HEATMAP, train=True)[0]
    assert bool(flipped["meta"]["flipped"]) and not bool(plain["meta"]["flipped"])
    assert (flipped["key"] - plain["key"].flip(-1)).abs().max() < 0.05  # one uint8 step of rounding
    assert (flipped["support"] - plain["support"].flip(-1)).abs().max() < 0.05
    w = HEATMAP[1]
    for a, b in ((5, 6), (9, 10), (15, 16), (0, 0)):
        pa = divmod(int(plain["target"][a].argmax()), w)
        pb = divmod(int(flipped["target"][b].argmax()), w)
        assert pa[0] == pb[0] and abs((w - 1 - pa[1]) - pb[1]) <= 1
        assert plain["target_weight"][a] == flipped["target_weight"][b]


def test_supporting_frames_follow_the_window(tmp_path):
    frames = [np.full((120, 160, 3), 40 * t, np.uint8) for t in range(5)]
    root = _write_clip(tmp_path / "ramp", frames, person_frame=0)
    s = PoseTrackDataset(root, "val", NO_AUG, INPUT, HEATMAP, train=False)[0]
    # key frame 0 -> supporting frames [0, 0, 1, 2] (official padding); brightness tells which frame
    level = [float(s["support"][i, 0, 32, 24]) for i in range(4)] + [float(s["key"][0, 32, 24])]
    assert level[0] == level[1] == level[4] < level[2] < level[3]


def test_posetrack17_annolist_reader(tmp_path):
    seq = tmp_path / "annotations" / "val" / "000342_mpii.json"
    seq.parent.mkdir(parents=True)
    points = [
        {"id": [13], "x": [50.0], "y": [20.0], "is_visible": [1]},
        {"id": [0], "x": [40.0], "y": [90.0], "is_visible": [0]},
        {"id": [12], "x": [50.0], "y": [30.0]},
    ]
    annolist = [
        {
            "image": [{"name": f"images/bonn/000342_mpii/{t + 1:08d}.jpg"}],
            "is_labeled": [t == 1],
            "annorect": [
                {"x1": [45], "y1": [10], "x2": [55], "y2": [30], "track_id": [4], "annopoints": [{"point": points}]}
            ]
            if t == 1
            else [],
        }
        for t in range(3)
    ]
    seq.write_text(json.dumps({"annolist": annolist}))
    video = read_sequence(seq, tmp_path)
    assert video.labeled.tolist() == [False, True, False]
    assert video.image_ids == [10_003_420_000, 10_003_420_001, 10_003_420_002]
    (p,) = video.persons
    assert p.position == 1 and p.track_id == 4
    np.testing.assert_allclose(p.keypoints[0], (50, 20, 1))  # nose
    np.testing.assert_allclose(p.keypoints[1], (50, 30, 1))  # head_bottom (PoseTrack17 "neck")
    np.testing.assert_allclose(p.keypoints[16], (40, 90, 1))  # right ankle
    np.testing.assert_allclose(p.bbox_head, (45, 10, 10, 20))
    assert p.bbox[0] < 40 and p.bbox[1] < 10 and p.bbox[0] + p.bbox[2] > 55 and p.bbox[1] + p.bbox[3] > 90


def test_missing_annotations_folder(tmp_path):
    (tmp_path / "images").mkdir()
    msg = (
        f"{tmp_path}: no annotations folder (expected {tmp_path}/annotations/<split>/<sequence>.json, "
        "the PoseTrack18 layout)"
    )
    with pytest.raises(InputError, match=f"^{re.escape(msg)}$"):
        PoseTrackDataset(tmp_path, "train", DataConfig(), INPUT, HEATMAP, train=True)


def test_empty_and_unknown_split(tmp_path):
    (tmp_path / "annotations" / "train").mkdir(parents=True)
    msg = f"{tmp_path}/annotations/train: empty split 'train': no sequence files (*.json)"
    with pytest.raises(InputError, match=f"^{re.escape(msg)}$"):
        PoseTrackDataset(tmp_path, "train", DataConfig(), INPUT, HEATMAP, train=True)
    msg = f"{tmp_path}/annotations: split 'val' not found; available: train"
    with pytest.raises(InputError, match=f"^{re.escape(msg)}$"):
        PoseTrackDataset(tmp_path, "val", DataConfig(), INPUT, HEATMAP, train=True)


def test_corrupt_jpeg(tiny, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(tiny, root)
    bad = root / "images/val/000002_mpii_test/000000.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    ds = PoseTrackDataset(root, "val", NO_AUG, INPUT, HEATMAP, train=False)
    msg = f"{bad}: cannot read image (corrupt or not an image: "
    with pytest.raises(InputError, match=f"^{re.escape(msg)}.*\\)$"):
        ds[0]
