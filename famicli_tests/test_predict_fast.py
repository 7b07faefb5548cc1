"""The cached streaming mode (``predict --mode fast``, famicli.inference.cached): the forward split,
windows at chunk boundaries and video ends, fast == exact for a person standing still, crop boxes
shared within ``max_shift``, files readable by ``famipose eval``, and option errors."""

from __future__ import annotations

import json
import math
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from famicli.cli.app import app
from famicli.config import DataConfig
from famicli.data.windows import support_positions
from famicli.inference.cached import union_box
from famicli.inference.detect import Detections, FullFrame
from famicli.inference.predictor import PredictConfig
from famicli.inference.stream import run
from famicli.inference.track import GreedyTracker
from famicli_tests.conftest import encode_sequence

runner = CliRunner()


# --- the forward split -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    import famicli

    torch.manual_seed(0)
    model = famicli.build_model("tiny")
    for m in model.modules():  # non-trivial BN statistics, so that the fast path's folding matters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def test_forward_features_equals_forward(tiny):
    from famicli.models.folded import optimize_for_inference

    h, w = tiny.cfg.input_size
    key, support = torch.randn(2, 3, h, w), torch.randn(2, tiny.cfg.num_support, 3, h, w)
    crops = torch.cat((key[:, None], support), dim=1).flatten(0, 1)  # (B, T, 3, H, W) -> (B*T, 3, H, W)
    fast = optimize_for_inference(tiny)
    with torch.no_grad():
        ref = tiny(key, support)
        feats = tiny.features(crops).unflatten(0, (2, 5))  # (B*T, C, h, w) -> (B, T, C, h, w)
        split = tiny.forward_features(feats[:, 0], feats[:, 1:])
    for a, b in (
        (split.heatmaps, ref.heatmaps),
        (split.backbone_heatmaps, ref.backbone_heatmaps),
        (split.gtm_translation, ref.gtm_translation),
    ):
        assert torch.equal(a, b)  # the same operations on the same numbers
    whole = fast(key, support)
    feats = fast.features(crops).unflatten(0, (2, 5))
    part = fast.forward_features(feats[:, 0], feats[:, 1:])
    assert torch.equal(part.heatmaps, whole.heatmaps)
    torch.testing.assert_close(part.heatmaps, ref.heatmaps, rtol=1e-4, atol=1e-5)


# --- the streaming loop with a stand-in estimator ------------------------------------------------


class FeatureEstimator:
    """Crops keep the frame's index (frame pixels hold it) and features are that index, so each key
    frame's keypoints record the frames its window was made of, and the crop centre it used."""

    cfg = DataConfig()
    model = SimpleNamespace(cfg=SimpleNamespace(num_joints=17))

    def __init__(self):
        self.crop_boxes, self.crops = [], 0

    def crop_box(self, box, width, height):
        x, y, w, h = box
        self.crop_boxes.append([float(v) for v in box])
        return np.array([x + w / 2, y + h / 2]), np.array([w, h]) / 200

    def warp(self, frames, center, scale):
        return np.stack([f[:2, :2] for f in frames])

    def features(self, crops):
        self.crops += len(crops)
        return crops[:, 0, 0, 0].astype(float)  # (N,) the frame index

    def from_features(self, z_t, z_s, centers, scales):
        kp = np.zeros((len(z_t), 17, 3))
        kp[:, 0, 0], kp[:, 1:5, 0], kp[:, 5, :2] = z_t, z_s, centers
        return kp, kp.copy()


def fast(**fields) -> PredictConfig:
    """The options of fast mode (``mode="fast"``) with ``fields`` changed."""
    return PredictConfig(mode="fast", **fields)


class FakeSource:
    """``n`` frames of 8x8 pixels whose value is the frame index."""

    def __init__(self, n: int):
        self.info = SimpleNamespace(frames=n)

    def frames(self, needed=None):
        for t in range(self.info.frames):
            yield np.full((8, 8, 3), t, np.uint8)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 9, 17])
@pytest.mark.parametrize("chunk", [1, 3, 8])
def test_windows_at_chunk_boundaries_and_video_ends(n, chunk):
    est, seen = FeatureEstimator(), []
    poses, timings = run(
        FakeSource(n),
        FullFrame(),
        est,
        GreedyTracker(),
        fast(batch_size=4, chunk=chunk),
        on_frame=lambda t, frame, p, timer: seen.append((t, int(frame[0, 0, 0]))),
    )
    assert seen == [(t, t) for t in range(n)] and len(poses) == n
    for t, p in enumerate(poses):
        assert p.keypoints[0, 0, 0] == t  # its own feature
        assert p.keypoints[0, 1:5, 0].tolist() == support_positions(t, n)  # the official padding at the ends
        assert list(p.track_ids) == [0]
    # one box that never moves: each chunk's frames and margins go through the backbone once
    expected = sum(
        len({q for k in range(s, min(s + chunk, n)) for q in (k, *support_positions(k, n))}) for s in range(0, n, chunk)
    )
    assert est.crops == timings["backbone_crops"] == expected and timings["key_frames"] == n
    assert timings["frames_buffered_max"] <= chunk + 4


class Walkers:
    """Two persons 100 px apart walking right, 2 px per frame (3 % of their height); no track ids."""

    description = {"source": "test"}

    def __call__(self, t, frame):
        return Detections(np.array([[10.0 + 2 * t, 10, 30, 60], [110.0 + 2 * t, 10, 30, 60]]), np.ones(2))


class LateWalker(Walkers):
    """Walkers, the second person entering at frame 3."""

    def __call__(self, t, frame):
        dets = super().__call__(t, frame)
        return dets if t >= 3 else Detections(dets.boxes[:1], dets.scores[:1])


@pytest.mark.parametrize("chunk", [3, 8])
def test_own_boxes_crop_each_frame_once_per_chunk(chunk):
    """share="own": a key frame's crop is its own box (exact mode's), a support is the same track's own
    crop in that frame, or the frame cut with the key frame's box where the track has no box there."""
    n = 8
    est = FeatureEstimator()
    poses, timings = run(FakeSource(n), LateWalker(), est, GreedyTracker(), fast(chunk=chunk))  # share "own": default
    assert [p.track_ids.tolist() for p in poses] == [[0]] * 3 + [[0, 1]] * 5
    for t, p in enumerate(poses):
        assert p.keypoints[:, 0, 0].tolist() == [t] * len(p.track_ids)  # the key frame's own crop
        assert p.keypoints[0, 1:5, 0].tolist() == support_positions(t, n)
        np.testing.assert_allclose(p.keypoints[:, 5, :2], [[25 + 2 * t, 40], [125 + 2 * t, 40]][: len(p.track_ids)])
    boxes = {tuple(b) for b in est.crop_boxes}
    own = {(10.0 + 2 * t, 10.0, 30.0, 60.0) for t in range(n)} | {
        (110.0 + 2 * t, 10.0, 30.0, 60.0) for t in range(3, n)
    }
    assert boxes == own  # no union box: every crop is some person's own box
    if chunk == 8:  # one chunk: 8 + 5 own crops; the second person's key frame 3 cuts frames 1 and 2 with
        assert timings["backbone_crops"] == 8 + 5 + 2 + 1  # its box, key frame 4 frame 2 with its box


def test_crop_boxes_are_shared_within_max_shift():
    n = 8
    # max_shift 0: nothing moves less than that, every key frame has its own crop box
    est = FeatureEstimator()
    poses, timings = run(FakeSource(n), Walkers(), est, GreedyTracker(), fast(chunk=8, max_shift=0.0, share="union"))
    assert sorted(est.crop_boxes) == sorted(list(b) for p in poses for b in p.boxes.tolist())
    assert timings["backbone_crops"] == sum(len({t, *support_positions(t, n)}) for t in range(n)) * 2
    # large max_shift: one box per track and chunk, the union of the track's boxes
    est = FeatureEstimator()
    poses, timings = run(FakeSource(n), Walkers(), est, GreedyTracker(), fast(chunk=4, max_shift=1.0, share="union"))
    assert [p.track_ids.tolist() for p in poses] == [[0, 1]] * n  # tracked on IoU before the poses
    assert est.crop_boxes == [[10, 10, 36, 60], [110, 10, 36, 60], [18, 10, 36, 60], [118, 10, 36, 60]]
    for t, p in enumerate(poses):  # decoded with the chunk's centre
        np.testing.assert_allclose(p.keypoints[:, 5, :2], [[28 + 8 * (t // 4), 40], [128 + 8 * (t // 4), 40]])
    # 2 px per frame is 0.033 box heights: runs of 4 frames (offset 3 px = 0.05 heights) fit 0.05, not 0.04
    for shift, runs in ((0.05, 2), (0.04, 3)):
        est = FeatureEstimator()
        run(FakeSource(n), Walkers(), est, GreedyTracker(), fast(chunk=8, max_shift=shift, share="union"))
        assert len(est.crop_boxes) == 2 * runs, shift
    np.testing.assert_allclose(union_box(np.array([[0, 0, 2, 2], [1, -1, 2, 2]])), [0, -1, 3, 3])


# --- a real model: fast mode equals exact mode for a person standing still -------------------------


@pytest.fixture(scope="module")
def still(tmp_path_factory, tiny):
    """11 frames of a textured scene that changes each frame and one box that never moves."""
    from PIL import Image

    base = tmp_path_factory.mktemp("fast")
    folder = base / "still"
    folder.mkdir()
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 255, (120, 160, 3), np.uint8)
    for t in range(11):
        frame = np.roll(scene, 3 * t, axis=1)
        frame[30:100, 60:100] = (40 + 15 * t, 200 - 10 * t, 90)  # a "person" changing colour
        Image.fromarray(frame).save(folder / f"{t:06d}.png")
    boxes = base / "boxes.json"
    boxes.write_text(json.dumps({str(t): [[55.0, 25.0, 50.0, 80.0, 0.9]] for t in range(11)}))
    return {"base": base, "folder": folder, "boxes": boxes}


def test_still_person_fast_equals_exact(still, tiny):
    import famicli
    from famicli.data.video import ImageSequence
    from famicli.inference.detect import BoxFile
    from famicli.inference.predictor import PoseEstimator

    files = sorted(still["folder"].glob("*.png"))
    est = PoseEstimator(tiny, DataConfig(), torch.device("cpu"), torch.float32)  # the same model in both modes

    def poses(chunk):
        box_src = BoxFile(still["boxes"]).for_video("still", len(files))
        cfg = PredictConfig(batch_size=3) if chunk is None else fast(batch_size=3, chunk=chunk)
        return run(ImageSequence(files), box_src, est, GreedyTracker(), cfg)[0]

    exact = poses(None)
    for chunk in (1, 4, 16):  # chunk boundaries inside and beyond the video
        for a, b in zip(exact, poses(chunk), strict=True):
            np.testing.assert_allclose(b.keypoints, a.keypoints, atol=1e-4)
            np.testing.assert_allclose(b.backbone, a.backbone, atol=1e-4)
            assert list(a.track_ids) == list(b.track_ids) == [0]
    # the API with the exact fast path (BatchNorm folded): the same keypoints to float rounding
    ref = famicli.predict_video(still["folder"], None, PredictConfig(boxes=still["boxes"], device="cpu"), model=tiny)
    quick = famicli.predict_video(still["folder"], None, fast(boxes=still["boxes"], device="cpu", chunk=4), model=tiny)
    for a, b in zip(ref.frames, quick.frames, strict=True):
        np.testing.assert_allclose(b.keypoints, a.keypoints, atol=1e-3)
    assert quick.record["inference"] == {
        "mode": "fast",
        "share": "own",
        "chunk": 4,
        "max_shift": 0.02,
        "fast_path": True,
    }
    assert ref.record["inference"] == {"mode": "exact", "fast_path": False}
    crops = len(range(0, 6)) + len(range(2, 10)) + len(range(6, 11))  # chunks 0-3, 4-7, 8-10 and their margins
    assert quick.record["options"]["mode"] == "fast" and quick.record["timings"]["backbone_crops"] == crops
    assert quick.record["options"]["boxes"] == str(still["boxes"])  # a Path given, recorded as text


def test_flip_from_cached_features_equals_flip_of_windows(tiny):
    """With --flip, fast mode's heatmaps (mirrored crops' features cached) equal exact mode's (the
    mirrored window through the model): compared before decoding, where a near-tie of random weights
    cannot move an argmax."""
    from famicli.inference.predictor import PoseEstimator

    est = PoseEstimator(tiny, DataConfig(), torch.device("cpu"), torch.float32, flip=True)
    est._decode = lambda heatmaps, centers, scales: heatmaps.numpy()  # compare heatmaps, not keypoints
    h, w = tiny.cfg.input_size
    crops = np.random.default_rng(0).integers(0, 255, (2, 5, h, w, 3), np.uint8)  # (B, T, H, W, 3)
    centers, scales = np.zeros((2, 2)), np.ones((2, 2))
    final, backbone = est(crops, centers, scales)
    z = est.features(crops.reshape(10, h, w, 3)).unflatten(0, (2, 5))  # (B*T, 2C, h, w) -> (B, T, 2C, h, w)
    assert z.shape[2] == 2 * tiny.cfg.width
    cached_final, cached_backbone = est.from_features(z[:, 0], z[:, 1:], centers, scales)
    np.testing.assert_allclose(cached_final, final, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(cached_backbone, backbone, rtol=1e-4, atol=1e-6)
    est.flip = False
    plain, _ = est(crops, centers, scales)
    assert np.abs(plain - final).max() > 1e-3 * np.abs(final).max()  # the flip half counted


# --- the command line ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synth(tmp_path_factory, synthtrack, tiny_checkpoint):
    """The session's SynthTrack set and tiny checkpoint; its first val sequence (5 frames, 4 persons,
    labeled on frames 0 and 4) as a video, its annotations copied alone into a folder (``eval --gt``)."""
    base = tmp_path_factory.mktemp("fast_cli")
    root = synthtrack
    first = min((root / "annotations" / "val").glob("*.json"))
    ann = base / "gt" / first.name
    ann.parent.mkdir()
    shutil.copy(first, ann)
    video = encode_sequence(root, "val", ann.stem, base / f"{ann.stem}.mp4")
    return {"base": base, "root": root, "ann": ann, "video": video, "weights": tiny_checkpoint}


def test_cli_fast_mode_files_score_with_famipose_eval(synth):
    out = synth["base"] / "out"
    result = runner.invoke(
        app,
        [
            "predict",
            str(synth["video"]),
            "-w",
            str(synth["weights"]),
            "--boxes",
            str(synth["ann"]),
            "--device",
            "cpu",
            "--mode",
            "fast",
            "--chunk",
            "3",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    seq = synth["ann"].stem
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{seq}.posetrack.json", f"{seq}.coco.json", f"{seq}.overlay.mp4", "run.json"]
    )
    record = json.loads(result.stdout)
    assert record == json.loads((out / "run.json").read_text())
    assert record["inference"] == {"mode": "fast", "share": "own", "chunk": 3, "max_shift": 0.02, "fast_path": True}
    assert record["options"]["chunk"] == 3 and record["timings"]["frames_buffered_max"] <= 3 + 4
    doc = json.loads((out / f"{seq}.posetrack.json").read_text())
    gt = json.loads(synth["ann"].read_text())
    assert len(doc["annotations"]) == len(gt["annotations"])  # one prediction per box
    per_frame = {}
    for a in doc["annotations"]:
        per_frame.setdefault(a["image_id"], []).append(a["track_id"])
        assert len(a["keypoints"]) == 51 and np.isfinite(a["keypoints"]).all()
    assert all(len(set(ids)) == len(ids) for ids in per_frame.values())
    assert len(json.loads((out / f"{seq}.coco.json").read_text())) == len(gt["annotations"])
    pred = synth["base"] / "pred"
    pred.mkdir()
    (pred / synth["ann"].name).write_text((out / f"{seq}.posetrack.json").read_text())
    scored = runner.invoke(app, ["eval", "--gt", str(synth["ann"].parent), "--pred", str(pred), "--json"])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["provenance"]["pred_persons"] == len(gt["annotations"])


def test_eval_weights_fast_mode(synth):
    result = runner.invoke(
        app,
        [
            "eval",
            "--dataset",
            "synthtrack",
            "--root",
            str(synth["root"]),
            "-w",
            str(synth["weights"]),
            "--device",
            "cpu",
            "--mode",
            "fast",
            "--chunk",
            "4",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["inference"] == {"mode": "fast", "share": "own", "chunk": 4, "max_shift": 0.02}
    assert "Total" in report["ap"] and "Total" in report["backbone"]["ap"]


def _one_error_line(result, *needles):
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_bad_fast_mode_options(synth, tmp_path):
    base = ["predict", str(synth["video"]), "-w", str(synth["weights"]), "--device", "cpu", "-o", str(tmp_path / "o")]
    boxes = ["--boxes", str(synth["ann"])]
    # out of range: one Error: line, exit 1 (famicli_tests/test_cli_guard.py)
    assert runner.invoke(app, [*base, *boxes, "--mode", "fast", "--chunk", "0"]).exit_code == 1
    assert runner.invoke(app, [*base, *boxes, "--chunk", "-3"]).exit_code == 1
    assert runner.invoke(app, [*base, *boxes, "--mode", "fast", "--max-shift", "-0.1"]).exit_code == 1
    _one_error_line(
        runner.invoke(app, [*base, "--detector", "torchvision-mobilenet", "--detect-every", "2", "--mode", "fast"]),
        "detect_every 2 needs mode exact",
    )
    assert runner.invoke(app, [*base, *boxes, "--mode", "slow"]).exit_code == 2  # Typer's usage error
    assert runner.invoke(app, [*base, *boxes, "--chunk", "eight"]).exit_code == 2
    assert runner.invoke(app, [*base, *boxes, "--mode", "fast", "--share", "all"]).exit_code == 2
    assert not (tmp_path / "o").exists()
    ev = [
        "eval",
        "--dataset",
        "synthtrack",
        "--root",
        str(synth["root"]),
        "-w",
        str(synth["weights"]),
        "--device",
        "cpu",
    ]
    assert runner.invoke(app, [*ev, "--mode", "slow"]).exit_code == 2  # choices are Typer's, as in predict
    assert runner.invoke(app, [*ev, "--mode", "fast", "--share", "all"]).exit_code == 2
    assert runner.invoke(app, [*ev, "--mode", "fast", "--chunk", "0"]).exit_code == 1
    assert runner.invoke(app, [*ev, "--mode", "fast", "--max-shift", "-1"]).exit_code == 1


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_boxes_not_finite_or_huge_are_dropped_and_counted(synth, tmp_path, mode, caplog):
    """NaN, Infinity and 1e300 (finite, but beyond any frame) box values: dropped with one counted
    warning, no numpy warning (an error here), and valid JSON out (issue 16)."""
    import math
    import warnings

    doc = json.loads(synth["ann"].read_text())
    kept = [a for a in doc["annotations"] if a.get("bbox")]
    kept[0]["bbox"][0] = math.nan
    kept[1]["bbox"][2] = math.inf
    kept[2]["bbox"] = [1e300, 1e300, 1e300, 1e300]
    kept[3]["bbox"][1] = -1e300
    boxes = tmp_path / synth["ann"].name
    boxes.write_text(json.dumps(doc, allow_nan=True))
    out = tmp_path / "out"
    args = ["predict", str(synth["video"]), "-w", str(synth["weights"]), "--boxes", str(boxes)]
    with warnings.catch_warnings(), caplog.at_level("WARNING", logger="famicli"):
        warnings.simplefilter("error")
        result = runner.invoke(app, [*args, "--device", "cpu", "--mode", mode, "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert "4 boxes with a coordinate or score that is not finite, or a coordinate beyond ±1e+06 px" in caplog.text
    seq = synth["ann"].stem
    for name in (f"{seq}.posetrack.json", f"{seq}.coco.json", "run.json"):
        json.loads((out / name).read_text(), parse_constant=pytest.fail)
    persons = sum(len(a) > 0 for a in json.loads((out / f"{seq}.posetrack.json").read_text())["annotations"])
    assert persons == len(kept) - 4


def test_checkpoint_with_nan_weights_is_refused(synth, tmp_path):
    """A checkpoint holding NaN (a diverged run): one Error: line naming it and the tensor, nothing written."""
    from famicli.models.checkpoint import load_model, save_checkpoint

    model = load_model(synth["weights"])
    with torch.no_grad():
        next(model.head.parameters()).view(-1)[0] = math.nan
    bad = save_checkpoint(model, tmp_path / "nan.pt")  # a valid sha256: the weights themselves are the problem
    out = tmp_path / "out"
    for args in (
        ["predict", str(synth["video"]), "-w", str(bad), "--boxes", str(synth["ann"]), "--out", str(out)],
        ["eval", "--weights", str(bad), "--gt", str(synth["ann"].parent), "--dataset", "synthtrack", "-q"],
    ):
        result = runner.invoke(app, [*args, "--device", "cpu"])
        assert result.exit_code == 1, result.output
        assert result.stderr.count("Error:") == 1 and "Traceback" not in result.output
        assert f"{bad}: state_dict: " in result.stderr and "NaN or infinite" in result.stderr
    assert not out.exists()
