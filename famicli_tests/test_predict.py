"""``famipose predict`` on SynthTrack clips encoded as mp4, avi (mjpeg) and webm (vp9), with --boxes
from the clip's annotations and random tiny weights: the files it writes are read by ``famipose
eval``, pycocotools and a video decoder; and the Python API ``famicli.predict_video``."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from famicli.cli.app import app

runner = CliRunner()
CONTAINERS = {".mp4": "h264", ".avi": "mjpeg", ".webm": "vp9"}
FRAMES, SIZE = 5, (160, 120)


@pytest.fixture(scope="module")
def clip(tmp_path_factory, synthtrack, tiny_checkpoint):
    """The session's SynthTrack set and its first val sequence (5 frames, 160x120, persons labeled on frames
    0 and 4: its annotations copied alone into a folder, the ground truth ``eval --gt`` reads), its frames
    encoded in each container, and the session's random tiny checkpoint."""
    from famicli.data.posetrack import read_image
    from famicli.data.video import VideoWriter

    base = tmp_path_factory.mktemp("predict")
    root = synthtrack
    first = min((root / "annotations" / "val").glob("*.json"))
    ann = base / "gt" / first.name
    ann.parent.mkdir()
    shutil.copy(first, ann)
    seq = ann.stem
    frames = sorted((root / "images" / "val" / seq).glob("*.jpg"))
    videos = {}
    for suffix in CONTAINERS:
        videos[suffix] = base / suffix[1:] / f"{seq}{suffix}"
        videos[suffix].parent.mkdir()
        with VideoWriter(videos[suffix], 25, SIZE) as writer:
            for f in frames:
                writer.write(read_image(f))
    return {"base": base, "root": root, "ann": ann, "seq": seq, "videos": videos, "weights": tiny_checkpoint}


@pytest.fixture(scope="module")
def predicted(clip):
    """``famipose predict`` once per container."""
    runs = {}
    for suffix, video in clip["videos"].items():
        out = clip["base"] / f"out_{suffix[1:]}"
        result = runner.invoke(
            app,
            [
                "predict",
                str(video),
                "--weights",
                str(clip["weights"]),
                "--boxes",
                str(clip["ann"]),
                "--device",
                "cpu",
                "--out",
                str(out),
                "--json",
            ],
        )
        runs[suffix] = (result, out)
    return runs


@pytest.mark.parametrize("suffix", list(CONTAINERS))
def test_outputs_written(clip, predicted, suffix):
    result, out = predicted[suffix]
    assert result.exit_code == 0, result.output
    seq = clip["seq"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{seq}.posetrack.json", f"{seq}.coco.json", f"{seq}.overlay.mp4", "run.json"]
    )  # no temp files left
    record = json.loads(result.stdout)
    assert record == json.loads((out / "run.json").read_text())
    assert record["video"]["codec"] == CONTAINERS[suffix] and record["video"]["frames"] == FRAMES
    assert record["boxes"]["source"] == "file" and record["boxes"]["path"] == str(clip["ann"])
    from famicli.models.checkpoint import file_sha256

    assert record["weights"]["file_sha256"] == file_sha256(clip["weights"])
    assert record["boxes"]["sha256"] == file_sha256(clip["ann"])
    assert record["device"] == "cpu" and record["dtype"] == "fp32" and record["model"]["variant"] == "tiny"
    assert {"decode", "pose", "track", "render", "write"} <= set(record["speed_ms_per_frame"])
    assert record["frames_per_s"] > 0 and record["timings"]["frames"] == FRAMES
    assert result.stderr.startswith("Speed: ") and "per frame at 160x120" in result.stderr


@pytest.mark.parametrize("suffix", list(CONTAINERS))
def test_posetrack_json_scores_with_famipose_eval(clip, predicted, suffix):
    _, out = predicted[suffix]
    doc = json.loads((out / f"{clip['seq']}.posetrack.json").read_text())
    gt = json.loads(clip["ann"].read_text())
    assert [im["id"] for im in doc["images"]] == [im["id"] for im in gt["images"]]
    # one prediction per GT box, with unique track ids per frame
    assert len(doc["annotations"]) == len(gt["annotations"])
    per_frame = {}
    for a in doc["annotations"]:
        per_frame.setdefault(a["image_id"], []).append(a["track_id"])
        assert len(a["keypoints"]) == 51 and len(a["scores"]) == 17 and np.isfinite(a["keypoints"]).all()
    assert all(len(set(ids)) == len(ids) for ids in per_frame.values())
    pred_dir = clip["base"] / f"pred_{suffix[1:]}"
    pred_dir.mkdir()
    shutil.copy(out / f"{clip['seq']}.posetrack.json", pred_dir / clip["ann"].name)
    result = runner.invoke(app, ["eval", "--gt", str(clip["ann"].parent), "--pred", str(pred_dir), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["provenance"]["pred_persons"] == len(gt["annotations"])
    assert set(report["ap"]) >= {"Head", "Total"} and report["coco"]["pred_persons"] == len(gt["annotations"])


@pytest.mark.parametrize("suffix", list(CONTAINERS))
def test_coco_json_loads_in_pycocotools(clip, predicted, suffix):
    import contextlib
    import io

    from pycocotools.coco import COCO

    _, out = predicted[suffix]
    gt = json.loads(clip["ann"].read_text())
    for a in gt["annotations"]:
        a.update(area=a["bbox"][2] * a["bbox"][3], iscrowd=0)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        res = coco.loadRes(str(out / f"{clip['seq']}.coco.json"))
    assert len(res.getAnnIds()) == len(gt["annotations"])
    assert set(res.getImgIds()) <= {im["id"] for im in gt["images"]}


@pytest.mark.parametrize("suffix", list(CONTAINERS))
def test_overlay_decodes(clip, predicted, suffix):
    from famicli.data.video import open_video

    _, out = predicted[suffix]
    with open_video(out / f"{clip['seq']}.overlay.mp4") as video:
        frames = list(video.frames())
        assert (video.info.codec, video.info.fps) == ("h264", 25.0)
    assert len(frames) == FRAMES and all(f.shape == (SIZE[1], SIZE[0], 3) for f in frames)


def test_api_full_frame_batched_equals_per_person(clip):
    """predict_video on an image folder with one full-frame box per frame, in memory; batch size does
    not change the result; the results object converts to PoseTrack18 and COCO."""
    import famicli

    folder = clip["base"] / "frames" / clip["seq"]
    folder.mkdir(parents=True)
    for f in sorted((clip["root"] / "images" / "val" / clip["seq"]).glob("*.jpg"))[:3]:
        shutil.copy(f, folder / f.name)
    model = famicli.load_model(clip["weights"])
    cfg = famicli.PredictConfig(detector="full-frame", device="cpu", batch_size=16)
    batched = famicli.predict_video(folder, None, cfg, model=model)
    single = famicli.predict_video(folder, None, dataclasses.replace(cfg, batch_size=1), model=model)
    assert len(batched) == 3 and batched.persons == 3 and batched.tracks == 1
    for a, b in zip(batched.frames, single.frames, strict=True):
        assert a.keypoints.shape == (1, 17, 3) and a.backbone.shape == (1, 17, 3)
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
        assert list(a.track_ids) == [0]
        np.testing.assert_allclose(a.boxes, [[0, 0, *SIZE]])
    doc = batched.to_posetrack()
    assert len(doc["images"]) == 3 and len(doc["annotations"]) == 3
    assert doc["images"][0]["file_name"] == f"images/val/{clip['seq']}/000000.jpg"
    assert doc["images"][0]["id"] == json.loads(clip["ann"].read_text())["images"][0]["id"]
    coco = batched.to_coco("backbone")
    assert len(coco) == 3 and {"image_id", "keypoints", "score", "category_id"} <= set(coco[0])
    assert batched.record["video"]["kind"] == "images" and batched.record["overlay"] is None
