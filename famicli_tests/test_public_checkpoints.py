"""The weights people have: pose-HRNet (COCO) and DCPose (PoseTrack) checkpoints, built here from a model's
own backbone with their original key names, run as the single-frame HRNet alone (``--heads backbone``), with
the keypoint schema that travels with them (issue 17)."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import famicli
from famicli.cli.app import app
from famicli.data import transforms as T
from famicli.data.video import open_video
from famicli.inference.decode import decode_heatmaps
from famicli.inference.predictor import PoseEstimator, PredictConfig, resolve_heads
from famicli.keypoints import COCO_NAMES, JOINT_NAMES, SCHEMAS
from famicli.models.checkpoint import load_model
from famicli_tests.conftest import encode_sequence

runner = CliRunner()
KINDS = {"hrnet": ("", "coco"), "dcpose": ("rough_pose_estimation_net.", "posetrack")}


@pytest.fixture(scope="module")
def clip(tmp_path_factory, synthtrack, tiny_checkpoint):
    """The first val sequence of the session's SynthTrack as a video, its GT as boxes, and a pose-HRNet and a
    DCPose checkpoint made of the tiny checkpoint's backbone (keys ``conv1.weight``, ``stage2.…``,
    ``final_layer.…``; DCPose's under ``rough_pose_estimation_net.`` beside modules of its own)."""
    base = tmp_path_factory.mktemp("public")
    ann = min((synthtrack / "annotations" / "val").glob("*.json"))
    video = encode_sequence(synthtrack, "val", ann.stem, base / f"{ann.stem}.mp4")
    model = load_model(tiny_checkpoint)
    backbone = model.backbone.state_dict()
    paths = {}
    for kind, (prefix, _) in KINDS.items():
        state = {f"{prefix}{k}": v for k, v in backbone.items()}
        if kind == "dcpose":
            state["motion_layers.0.weight"] = torch.zeros(4, 4)  # DCPose's own modules are ignored
        paths[kind] = base / f"{kind}.pth"
        torch.save({"state_dict": state} if kind == "hrnet" else state, paths[kind])
    return {"base": base, "video": video, "ann": ann, "model": model, "weights": paths, "full": tiny_checkpoint}


def _reference_keypoints(model, video, result, schema: str) -> list[np.ndarray]:
    """Per frame, ``model.backbone``'s own heatmaps of each person's key-frame crop, decoded: (N, 17, 3)."""
    estimator = PoseEstimator(model, famicli.config.DataConfig(), torch.device("cpu"), torch.float32)
    out = []
    with open_video(video) as source:
        for frame, poses in zip(source.frames(), result.frames, strict=True):
            rows = []
            for box in poses.boxes:
                crop, center, scale = estimator.crop([frame], box)
                with torch.no_grad():
                    _, heatmaps = model.backbone(T.normalize(crop))  # (1, 3, H, W) -> (1, 17, h, w)
                coords, scores = decode_heatmaps(heatmaps)
                xy = T.heatmap_to_image(coords.numpy(), center[None], scale[None], model.cfg.heatmap_size)
                rows.append(np.concatenate([xy, scores.numpy()[..., None]], axis=-1)[0])
            out.append(np.array(rows).reshape(-1, 17, 3))
    return out


@pytest.mark.parametrize("kind", list(KINDS))
def test_backbone_checkpoint_predicts_with_its_backbone_alone(clip, kind):
    """predict's keypoints are ``model.backbone``'s decoded heatmaps of the same crops, bit for bit."""
    prefix, schema = KINDS[kind]
    cfg = PredictConfig(boxes=str(clip["ann"]), device="cpu")
    notes = []
    result = famicli.predict_video(clip["video"], clip["weights"][kind], cfg, variant="tiny", notes=notes.append)
    assert result.record["heads"] == "backbone" and result.record["schema"]["name"] == schema
    assert result.record["weights"]["format"] == kind and result.record["weights"]["initialized"] == "backbone"
    assert any("running its single-frame HRNet alone (--heads backbone)" in n for n in notes), notes
    expected = _reference_keypoints(clip["model"], clip["video"], result, schema)
    assert sum(len(e) for e in expected) > 0
    for got, want in zip(result.frames, expected, strict=True):
        np.testing.assert_array_equal(got.keypoints, want)
        np.testing.assert_array_equal(got.backbone, want)


def test_full_model_gives_the_same_backbone_keypoints(clip):
    """The temporal model's backbone column and the backbone alone agree (the same crops of the key frame)."""
    cfg = PredictConfig(boxes=str(clip["ann"]), device="cpu")
    full = famicli.predict_video(clip["video"], clip["full"], cfg)
    alone = famicli.predict_video(clip["video"], clip["full"], PredictConfig(boxes=str(clip["ann"]), heads="backbone"))
    assert full.record["heads"] == "fami" and alone.record["heads"] == "backbone"
    for a, b in zip(full.frames, alone.frames, strict=True):
        np.testing.assert_allclose(a.backbone, b.keypoints, rtol=0, atol=1e-3)


def test_cli_writes_coco_names_and_posetrack_without_eyes(clip, tmp_path):
    """A COCO checkpoint: run.json records heads and schema; the COCO file has the eyes and loads in
    pycocotools; the PoseTrack file never has head_bottom/head_top from the eye channels (absent instead)."""
    out = tmp_path / "out"
    args = ["predict", str(clip["video"]), "-w", str(clip["weights"]["hrnet"]), "--variant", "tiny"]
    result = runner.invoke(app, [*args, "--boxes", str(clip["ann"]), "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "pose-HRNet checkpoint (coco keypoints): running its single-frame HRNet alone" in result.stderr
    assert "the PoseTrack file has no head_bottom or head_top" in result.stderr
    stem = clip["video"].stem
    record = json.loads((out / "run.json").read_text())
    assert record["heads"] == "backbone"
    assert record["schema"] == {
        "name": "coco",
        "keypoints": list(COCO_NAMES),
        "posetrack_missing": ["head_bottom", "head_top"],
    }
    posetrack = json.loads((out / f"{stem}.posetrack.json").read_text())
    coco = json.loads((out / f"{stem}.coco.json").read_text())
    assert posetrack["categories"][0]["keypoints"] == list(JOINT_NAMES)
    assert len(posetrack["annotations"]) == len(coco) > 0
    for ann, res in zip(posetrack["annotations"], coco, strict=True):
        kp, eyes = np.reshape(ann["keypoints"], (17, 3)), np.reshape(res["keypoints"], (17, 3))
        assert (kp[1:3] == 0).all() and ann["scores"][1:3] == [0, 0]  # absent, as poseval reads it
        assert (eyes[1:3, :2] != 0).any()  # the COCO file keeps the model's eyes
        np.testing.assert_allclose(kp[[0, *range(3, 17)], :2], eyes[[0, *range(3, 17)], :2], atol=1e-3)
    from pycocotools.coco import COCO

    gt = COCO()
    gt.dataset = {
        "images": [{"id": im["id"]} for im in posetrack["images"]],
        "annotations": [],
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO_NAMES)}],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        loaded = gt.loadRes(str(out / f"{stem}.coco.json"))
    assert len(loaded.anns) == len(coco)


def test_coco_flip_test_swaps_the_eyes(clip):
    model = load_model(clip["weights"]["hrnet"], "tiny")
    estimator = PoseEstimator(model, famicli.config.DataConfig(), torch.device("cpu"), torch.float32, flip=True)
    heatmaps = torch.arange(17.0).reshape(1, 17, 1, 1).expand(1, 17, 2, 2).clone()
    order = estimator._flip_back(heatmaps)[0, :, 0, 0].long().tolist()
    assert order[1:3] == [2, 1] and SCHEMAS["coco"].flip_pairs[0] == (1, 2)
    posetrack = PoseEstimator(load_model(clip["full"]), famicli.config.DataConfig(), "cpu", torch.float32)
    assert posetrack._flip_back(heatmaps)[0, 1:3, 0, 0].long().tolist() == [1, 2]  # head_bottom, head_top stay


def test_fami_heads_of_a_backbone_checkpoint_is_one_error_line(clip, tmp_path):
    out = tmp_path / "out"
    args = ["predict", str(clip["video"]), "-w", str(clip["weights"]["dcpose"]), "--variant", "tiny"]
    result = runner.invoke(app, [*args, "--boxes", str(clip["ann"]), "--heads", "fami", "--out", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: --heads fami: ")
    assert f"famipose train --backbone {clip['weights']['dcpose']} --freeze-backbone" in result.stderr
    assert not out.exists()
    with pytest.raises(famicli.errors.ConfigError):
        resolve_heads(load_model(clip["weights"]["hrnet"], "tiny"), "fami")
    assert resolve_heads(load_model(clip["full"]), None) == ("fami", None)


def test_eval_refuses_coco_named_predictions(clip, tmp_path):
    """COCO-named prediction files (eyes where PoseTrack has head joints) are refused with one clear line."""
    pred = tmp_path / "pred"
    pred.mkdir()
    doc = json.loads(clip["ann"].read_text())
    doc["categories"][0]["keypoints"] = list(COCO_NAMES)
    (pred / clip["ann"].name).write_text(json.dumps(doc))
    result = runner.invoke(app, ["eval", "--pred", str(pred), "--gt", str(clip["ann"].parent), "-q"])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "categories: keypoints: COCO's keypoints (left_eye, right_eye where PoseTrack has" in result.stderr


def test_eval_weights_with_a_coco_checkpoint_scores_the_backbone_alone(clip, synthtrack):
    args = ["eval", "--weights", str(clip["weights"]["hrnet"]), "--variant", "tiny", "--dataset", "synthtrack"]
    result = runner.invoke(app, [*args, "--root", str(synthtrack), "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["heads"] == "backbone" and report["schema"] == "coco" and "backbone" not in report
    assert "scored as missing" in result.stderr


def test_viz_heatmaps_of_a_coco_checkpoint_show_its_backbone_alone(clip, tmp_path):
    args = ["viz", "heatmaps", "-w", str(clip["weights"]["hrnet"]), "--video", str(clip["video"])]
    result = runner.invoke(app, [*args, "--boxes", str(clip["ann"]), "--out", str(tmp_path / "h.png"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["heads"] == "backbone" and "heatmaps" not in data and len(data["backbone_heatmaps"]) == 17
    assert data["joints"] == list(COCO_NAMES) and data["checkpoint"]["schema"] == "coco"
    assert (tmp_path / "h.png").stat().st_size > 0
    from famicli.viz.inspect import ClipSource, visualize

    source = ClipSource(frame=0, person=None, root=None, sequence=None, video=clip["video"], boxes=clip["ann"])
    eye = visualize("heatmaps", source, clip["weights"]["hrnet"], tmp_path / "e.png", joint="left_eye", device="cpu")
    assert eye["joints"] == ["left_eye"]  # a COCO joint, by the model's own name
    offsets = runner.invoke(app, ["viz", "offsets", *args[2:], "--out", str(tmp_path / "o.png")])
    assert offsets.exit_code == 1 and offsets.stderr.startswith("Error: viz offsets needs FAMI-Pose's temporal")


@pytest.mark.parametrize("kind", ["hrnet", "dcpose", "full"])
def test_info_reports_kind_schema_and_initialized_modules(clip, kind):
    path = clip["full"] if kind == "full" else clip["weights"][kind]
    result = runner.invoke(app, ["info", str(path), "--variant", "tiny", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    expected_kind = "famipose" if kind == "full" else kind
    schema = "coco" if kind == "hrnet" else "posetrack"
    assert (report["kind"], report["variant"], report["schema"]) == (expected_kind, "tiny", schema)
    assert report["heads"] == ("fami" if kind == "full" else "backbone")
    initialized = {name: m["initialized"] for name, m in report["modules"].items()}
    assert initialized["backbone"] and all(initialized.values()) == (kind == "full")
    assert report["posetrack_missing"] == (["head_bottom", "head_top"] if schema == "coco" else [])
    table = runner.invoke(app, ["info", str(path), "--variant", "tiny"])
    assert table.exit_code == 0, table.output
    assert ("random (not in the checkpoint)" in table.stdout) == (kind != "full")
