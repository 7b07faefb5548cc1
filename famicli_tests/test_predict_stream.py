"""The streaming loop (famicli.inference.stream) with a stand-in estimator: windows as in training,
bounded memory, frame order, detection every N frames, ground-truth track ids; and PoseEstimator."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from famicli.config import DataConfig
from famicli.data.windows import support_positions
from famicli.inference.detect import Detections, FullFrame
from famicli.inference.predictor import PredictConfig
from famicli.inference.stream import run
from famicli.inference.track import GreedyTracker


class FakeEstimator:
    """Records the window of each crop (frame pixels hold their index); joints spread over the box."""

    cfg = DataConfig()
    model = SimpleNamespace(cfg=SimpleNamespace(num_joints=17))

    def __init__(self):
        self.windows, self.batches = [], []

    def crop(self, window, box):
        self.windows.append([int(f[0, 0, 0]) for f in window])
        x, y, w, h = box
        return np.zeros((len(window), 2, 2, 3), np.uint8), np.array([x + w / 2, y + h / 2]), np.array([w, h]) / 200

    def __call__(self, crops, centers, scales):
        self.batches.append(len(crops))
        kp = np.zeros((len(crops), 17, 3))
        kp[..., 0] = centers[:, None, 0] + np.linspace(-10, 10, 17)
        kp[..., 1] = centers[:, None, 1] + np.linspace(-20, 20, 17)
        kp[..., 2] = 0.9
        return kp, kp.copy()


class FakeSource:
    """``n`` frames of 8x8 pixels whose value is the frame index; counts the frames alive."""

    def __init__(self, n: int):
        self.info = SimpleNamespace(frames=n)
        self.read = []

    def frames(self, needed=None):
        for t in range(self.info.frames):
            if needed is not None and not needed(t):
                yield None
                continue
            self.read.append(t)
            yield np.full((8, 8, 3), t % 256, np.uint8)


def test_windows_match_training_and_frames_come_in_order():
    est, src, seen = FakeEstimator(), FakeSource(9), []
    poses, timings = run(
        src,
        FullFrame(),
        est,
        GreedyTracker(),
        PredictConfig(batch_size=4),
        on_frame=lambda t, frame, p, timer: seen.append((t, int(frame[0, 0, 0]))),
    )
    assert [w[0] for w in est.windows] == list(range(9))
    for key, window in enumerate(est.windows):
        assert window[1:] == support_positions(key, 9)  # the official padding at both ends
    assert seen == [(t, t) for t in range(9)] and len(poses) == 9
    assert est.batches == [4, 4, 1] and all(list(p.track_ids) == [0] for p in poses)
    assert timings["frames"] == 9


def test_memory_is_bounded_by_the_window_and_batch():
    est = FakeEstimator()
    _, timings = run(FakeSource(300), FullFrame(), est, GreedyTracker(), PredictConfig(batch_size=8))
    # window of 5 frames (t-2 .. t+2) and at most 8 key frames waiting for their batch
    assert timings["frames_buffered_max"] <= 8 + 4
    assert len(est.windows) == 300


def test_detect_every_n_frames_follows_the_poses():
    calls = []

    def detector(t, frame):
        calls.append(t)
        return Detections(np.array([[100.0, 100.0, 40.0, 80.0]]), np.array([0.8]))

    est = FakeEstimator()
    poses, _ = run(FakeSource(7), detector, est, GreedyTracker(), PredictConfig(detect_every=3))
    assert calls == [0, 3, 6]
    # frame 1's box surrounds frame 0's joints (20 x 40 px around the box centre), grown by 20 %
    np.testing.assert_allclose(poses[1].boxes, [[120 - 12, 140 - 24, 24, 48]])
    np.testing.assert_allclose(poses[0].boxes, [[100, 100, 40, 80]])
    assert all(list(p.track_ids) == [0] for p in poses) and poses[2].box_scores[0] == 0.8


def test_ground_truth_ids_are_kept_and_unneeded_frames_skipped():
    class Boxes:
        description = {"source": "test"}

        def frames(self):
            return {10}

        def __call__(self, t, frame):
            if t != 10:
                return Detections.empty()
            return Detections(np.array([[0, 0, 4, 4], [2, 2, 4, 4]], float), np.ones(2), np.array([7, 3]))

    src, est = FakeSource(30), FakeEstimator()
    poses, _ = run(src, Boxes(), est, GreedyTracker(), skip_unneeded=True)
    assert src.read == [8, 9, 10, 11, 12]  # only the window of the one key frame with boxes
    assert list(poses[10].track_ids) == [7, 3] and sum(len(p.boxes) for p in poses) == 2


@pytest.fixture(scope="module")
def estimator():
    import torch

    import famicli
    from famicli.inference.predictor import PoseEstimator

    torch.manual_seed(0)
    return PoseEstimator(famicli.build_model("tiny"), DataConfig(), torch.device("cpu"), torch.float32, flip=True)


def test_pose_estimator_crop_and_flip(estimator):
    import torch

    frames = [np.full((120, 160, 3), 10 * t, np.uint8) for t in range(3)]
    window = [frames[1], frames[0], frames[0], frames[2], frames[2]]  # padding repeats frames
    crops, center, scale = estimator.crop(window, [40, 20, 30, 60])
    assert crops.shape == (5, 128, 96, 3) and crops.dtype == np.uint8
    # the official box sanitation (x2 = x + w - 1) before box -> centre/scale, as in training
    np.testing.assert_allclose(center, [54.5, 49.5])
    np.testing.assert_allclose(scale, np.array([59 * 0.75, 59]) / 200 * 1.25)
    hm = torch.rand(2, 17, 32, 24)
    torch.testing.assert_close(estimator._flip_back(estimator._flip_back(hm)), hm)
    final, backbone = estimator(crops[None], center[None], scale[None])
    assert final.shape == backbone.shape == (1, 17, 3) and np.isfinite(final).all()


def test_bf16_autocast_runs_on_cpu_and_unsupported_dtypes_are_config_errors(monkeypatch):
    import numpy as np
    import torch

    import famicli
    from famicli.errors import ConfigError
    from famicli.inference.predictor import PoseEstimator

    model = famicli.build_model("tiny").eval()
    est = PoseEstimator(model, DataConfig(), torch.device("cpu"), torch.bfloat16)
    h, w = model.cfg.input_size
    crops = np.random.default_rng(0).integers(0, 255, (2, 5, h, w, 3), np.uint8)
    final, backbone = est(crops, np.full((2, 2), 50.0), np.ones((2, 2)))
    assert final.shape == backbone.shape == (2, 17, 3) and np.isfinite(final).all()
    monkeypatch.setattr("famicli.runtime._dtype_failure", lambda device, name: None if name == "fp32" else "no kernel")
    with pytest.raises(ConfigError, match="dtype 'bf16' is not supported on cpu: .*no kernel.*choose from: fp32"):
        PoseEstimator(model, DataConfig(), torch.device("cpu"), torch.bfloat16)


def test_box_file_formats(tmp_path):
    import json

    from famicli.inference.detect import BoxFile

    seq = "000007_mpii_test"
    images = [{"id": 10_000_070_000 + t, "file_name": f"images/val/{seq}/{t:06d}.jpg"} for t in (2, 0, 1)]
    doc = {
        "images": images,
        "annotations": [
            {"image_id": 10_000_070_001, "bbox": [1, 2, 30, 40], "track_id": 5},  # no score: 1
            {"image_id": 10_000_070_002, "bbox": [1, 2, 30, 40], "score": 0.1},  # below the threshold
            {"image_id": 10_000_070_002, "bbox": [1, 2, 30, 40], "category_id": 2},  # not a person
        ],
    }
    (tmp_path / "gt.json").write_text(json.dumps(doc))
    boxes = BoxFile(tmp_path / "gt.json").for_video(seq, 3)
    assert boxes.frames() == {1} and boxes.image_ids == [10_000_070_000, 10_000_070_001, 10_000_070_002]
    assert boxes.images == images  # written back in the file's own order
    np.testing.assert_allclose(boxes(1, None).boxes, [[1, 2, 30, 40]])
    # a dict keyed by frame index, with [x, y, w, h, score] rows
    (tmp_path / "keyed.json").write_text(json.dumps({"0": [[0, 0, 10, 10, 0.9]], "2": [{"bbox": [5, 5, 10, 10]}]}))
    keyed = BoxFile(tmp_path / "keyed.json", threshold=0.5).for_video("my_clip", 3)
    assert keyed.frames() == {0, 2} and keyed(0, None).scores.tolist() == [0.9]
    # PoseTrack ids of one sequence, any video name; of several sequences, the video's name picks one
    dets = [{"image_id": 10_000_070_000 + t, "bbox": [0, 0, 9, 9], "score": 0.5} for t in range(3)]
    dets += [{"image_id": 10_000_080_000, "bbox": [0, 0, 9, 9], "score": 0.5}]
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    assert BoxFile(tmp_path / "dets.json").for_video(seq, 3).frames() == {0, 1, 2}
    assert BoxFile(tmp_path / "dets.json").for_video("000008_mpii_test", 3).frames() == {0}


def test_box_file_track_ids_are_kept_when_every_box_has_one(tmp_path):
    import json

    from famicli.errors import InputError
    from famicli.inference.detect import BoxFile

    rows = [
        {"frame_index": t, "bbox": [10 + 40 * k, 5, 30, 60], "score": 0.9, "track_id": 7 - k}
        for t in range(3)
        for k in range(2)
    ]
    rows.append({"frame_index": 1, "bbox": [0, 0, 5, 5], "score": 0.1})  # dropped (score): does not count
    (tmp_path / "tracked.json").write_text(json.dumps(rows))
    boxes = BoxFile(tmp_path / "tracked.json").for_video("clip", 3)
    assert boxes.tracked and boxes.description["track_ids"] == "file"
    assert boxes(1, None).track_ids.tolist() == [7, 6]
    rows[0] = {k: v for k, v in rows[0].items() if k != "track_id"}  # one kept box without: famipose tracks
    (tmp_path / "partial.json").write_text(json.dumps(rows))
    partial = BoxFile(tmp_path / "partial.json").for_video("clip", 3)
    assert not partial.tracked and partial(1, None).track_ids is None
    assert partial.description["track_ids"] == "famipose"
    rows[0]["track_id"] = 6  # 6 twice in frame 0
    (tmp_path / "dup.json").write_text(json.dumps(rows))
    with pytest.raises(InputError, match=r"dup.json: track_id: 6 is given to two boxes of frame 0"):
        BoxFile(tmp_path / "dup.json").for_video("clip", 3)


def test_torchvision_detector_keeps_persons_above_threshold():
    import torch

    from famicli.inference.detect import TorchvisionDetector

    class Model(torch.nn.Module):
        def forward(self, images):
            assert images[0].shape == (3, 120, 160) and float(images[0].max()) <= 1.0
            return [
                {
                    "boxes": torch.tensor([[10.0, 20.0, 50.0, 100.0], [0, 0, 5, 5], [1, 1, 9, 9]]),
                    "labels": torch.tensor([1, 1, 3]),
                    "scores": torch.tensor([0.9, 0.3, 0.95]),
                }
            ]

    det = TorchvisionDetector("torchvision", "cpu", threshold=0.5, model=Model())
    out = det(0, np.zeros((120, 160, 3), np.uint8))
    np.testing.assert_allclose(out.boxes, [[10, 20, 40, 80]])  # x1y1x2y2 -> xywh; the car and weak box dropped
    np.testing.assert_allclose(out.scores, [0.9], rtol=1e-6)
    assert out.track_ids is None
