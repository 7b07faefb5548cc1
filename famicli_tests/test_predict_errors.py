"""``famipose predict`` on bad input: one ``Error:`` line naming the file, exit 1, nothing left in --out."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from famicli.cli.app import app
from famicli_tests.conftest import encode_sequence

runner = CliRunner()


@pytest.fixture(scope="module")
def setup(tmp_path_factory, synthtrack, tiny_checkpoint):
    """The session's SynthTrack set (two val sequences of 5 frames; one encoded as mp4) and tiny checkpoint,
    and bad inputs."""
    import av

    base = tmp_path_factory.mktemp("bad")
    root = synthtrack
    anns = sorted((root / "annotations" / "val").glob("*.json"))
    seq = anns[0].stem
    video = encode_sequence(root, "val", seq, base / f"{seq}.mp4")
    weights = tiny_checkpoint
    bad = base / "bad"
    bad.mkdir()
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "notes.mp4").write_text("these are my holiday notes, not a video\n" * 10)
    data = video.read_bytes()
    (bad / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (bad / "no_images").mkdir()
    (bad / "no_images" / "readme.txt").write_text("frames go here")
    # index up front (faststart): opens fine, the stream ends early while predicting
    late = bad / "late_truncated.mp4"
    with av.open(str(base / "fs.mp4"), "w", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(10):
            for p in s.encode(
                av.VideoFrame.from_ndarray(rng.integers(0, 255, (120, 160, 3), np.uint8), format="rgb24")
            ):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    fs = (base / "fs.mp4").read_bytes()
    late.write_bytes(fs[: len(fs) * 6 // 10])
    return {"base": base, "video": video, "weights": weights, "anns": anns, "bad": bad}


def _predict(setup, video, out, *extra):
    return runner.invoke(
        app, ["predict", str(video), "--weights", str(setup["weights"]), "--device", "cpu", "--out", str(out), *extra]
    )


def _one_error_line(result, *needles):
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert result.stdout == ""


CASES = {
    "empty.mp4": "empty file (0 bytes)",
    "notes.mp4": "cannot read video",
    "truncated.mp4": "cannot read video",
    "no_images": "no images in this folder",
    "late_truncated.mp4": "the stream ends after",
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_video(setup, name, tmp_path):
    out = tmp_path / "famipose_out" / "run"
    extra = ["--detector", "full-frame"] if name == "late_truncated.mp4" else ["--boxes", str(setup["anns"][0])]
    result = _predict(setup, setup["bad"] / name, out, *extra)
    _one_error_line(result, str(setup["bad"] / name), CASES[name])
    assert not (tmp_path / "famipose_out").exists()  # no folder made, no half-written file


def test_nothing_half_written_into_an_existing_folder(setup, tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = _predict(setup, setup["bad"] / "late_truncated.mp4", out, "--detector", "full-frame", "--batch-size", "1")
    _one_error_line(result, "the stream ends after", "of 10 frames")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_boxes_file_for_another_video(setup, tmp_path):
    other = setup["anns"][1]  # the other sequence's annotations, same frame count
    result = _predict(setup, setup["video"], tmp_path / "out", "--boxes", str(other))
    _one_error_line(result, str(other), "for another video")
    assert not (tmp_path / "out").exists()
    # a detections list keyed by PoseTrack image ids of the other sequence
    dets = [
        {"image_id": a["image_id"], "bbox": a["bbox"], "score": 0.9, "category_id": 1}
        for a in json.loads(other.read_text())["annotations"]
    ]
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    result = _predict(setup, setup["video"], tmp_path / "out", "--boxes", str(tmp_path / "dets.json"))
    _one_error_line(result, "dets.json", "no boxes for sequence", "for another video")
    # frame indices past the end of the video
    (tmp_path / "late.json").write_text(json.dumps([{"frame_index": 9, "bbox": [1, 2, 30, 40]}]))
    result = _predict(setup, setup["video"], tmp_path / "out", "--boxes", str(tmp_path / "late.json"))
    _one_error_line(result, "late.json", "boxes for frame 9, but the video", "has 5 frames")
    assert not (tmp_path / "out").exists()


def test_malformed_boxes_file(setup, tmp_path):
    (tmp_path / "broken.json").write_text("[{")
    _one_error_line(
        _predict(setup, setup["video"], tmp_path / "o", "--boxes", str(tmp_path / "broken.json")),
        "broken.json: not valid JSON",
    )
    (tmp_path / "nobox.json").write_text(json.dumps([{"frame_index": 0, "bbox": [1, 2]}]))
    _one_error_line(
        _predict(setup, setup["video"], tmp_path / "o", "--boxes", str(tmp_path / "nobox.json")),
        "nobox.json: entry 0: bbox: expected [x, y, w, h]",
    )


def test_detector_weights_offline_names_the_cache_path(setup, tmp_path, monkeypatch):
    import urllib.error

    import torch

    def offline(url, dst, *a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    result = _predict(setup, setup["video"], tmp_path / "out")
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth"
    _one_error_line(result, "could not be downloaded", f"put it at {expected}", "--boxes FILE")
    assert not (tmp_path / "out").exists()


def test_option_errors(setup, tmp_path, monkeypatch):
    video, ann = setup["video"], str(setup["anns"][0])
    with monkeypatch.context() as m:  # a dtype this machine's kernels cannot run under autocast
        m.setattr("famicli.runtime._dtype_failure", lambda device, name: None if name == "fp32" else "no kernel")
        _one_error_line(
            _predict(setup, video, tmp_path / "o", "--boxes", ann, "--dtype", "fp16"),
            "dtype 'fp16' is not supported on cpu",
            "choose from: fp32",
        )
    _one_error_line(
        _predict(setup, video, tmp_path / "o", "--boxes", ann, "--detector", "full-frame"),
        "--boxes and --detector full-frame exclude each other",
    )
    monkeypatch.setattr("famicli.data.synthtrack.demo.ASSET_DIRS", (tmp_path,))  # no bundled demo weights
    result = runner.invoke(app, ["predict", str(video), "--boxes", ann, "--out", str(tmp_path / "o")])
    _one_error_line(result, "no bundled demo weights", "pass --weights CKPT")
    (tmp_path / "w.pt").write_bytes(b"")
    result = runner.invoke(
        app, ["predict", str(video), "-w", str(tmp_path / "w.pt"), "--boxes", ann, "-o", str(tmp_path / "o")]
    )
    _one_error_line(result, "w.pt: cannot read checkpoint")
    assert not (tmp_path / "o").exists()
    assert runner.invoke(app, ["predict", str(video), "--detector", "yolo"]).exit_code == 2
