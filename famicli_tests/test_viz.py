"""``famipose viz offsets|mi|heatmaps``: the JSON equals the model's outputs, figures are written and
deterministic, bad input gives one error line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from famicli import load_model
from famicli.cli.app import app
from famicli.config import DataConfig, LossConfig
from famicli.data.posetrack import PoseTrackDataset
from famicli.data.synthtrack.generate import SynthConfig, generate
from famicli.data.transforms import decode_matrix
from famicli.keypoints import JOINT_NAMES
from famicli.losses.mutual_info import MutualInformation
from famicli.losses.objective import mi_weights

runner = CliRunner()
SEQ, FRAME = "000001_mpii_train", 3  # the train video labels every frame


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_checkpoint):
    """A SynthTrack set (2 videos x 8 frames, 160x120) and a copy of the session's randomly initialized tiny
    checkpoint."""
    root = tmp_path_factory.mktemp("viz")
    generate(root / "synth", SynthConfig(videos=2, frames=8, size=(160, 120), seed=0))
    shutil.copy(tiny_checkpoint, root / "tiny.pt")
    return root


@pytest.fixture(scope="module")
def reference(setup):
    """The model's own outputs on the clip (SEQ, FRAME, lowest track id), computed without famicli.viz."""
    model = load_model(setup / "tiny.pt")
    sigma = 3.0 * model.cfg.heatmap_size[1] / 72
    ds = PoseTrackDataset(
        setup / "synth", "train", DataConfig(sigma=sigma), model.cfg.input_size, model.cfg.heatmap_size, train=False
    )
    here = {
        ds.videos[v].persons[p].track_id: i
        for i, (v, p) in enumerate(ds.items)
        if ds.videos[v].name == SEQ and ds.videos[v].persons[p].position == FRAME
    }
    person = min(here)
    sample = ds[here[person]]
    with torch.no_grad():
        out = model(sample["key"][None], sample["support"][None])
    return model, sample, out, person


def viz(setup, kind: str, *extra: str, out: str | None = None):
    out = out or str(setup / f"{kind}.png")
    args = [
        "viz",
        kind,
        "--weights",
        str(setup / "tiny.pt"),
        "--root",
        str(setup / "synth"),
        "--seq",
        SEQ,
        "--frame",
        str(FRAME),
        "--out",
        out,
        *extra,
    ]
    return runner.invoke(app, args)


def test_offsets_json_matches_model(setup, reference):
    model, sample, out, person = reference
    result = viz(setup, "offsets", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["clip"]["person"] == person and data["clip"]["frames"] == [3, 1, 2, 4, 5]
    assert (setup / "offsets.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    gtm = data["gtm_translation"]
    np.testing.assert_allclose(gtm["feature_px"], out.gtm_translation[0].numpy(), rtol=1e-6, atol=1e-7)
    # image px = feature px times the crop's image-pixels-per-feature-pixel factor
    decode = decode_matrix(
        sample["meta"]["center"].double().numpy(), sample["meta"]["scale"].double().numpy(), model.cfg.heatmap_size
    )
    np.testing.assert_allclose(gtm["image_px"], np.array(gtm["feature_px"]) * decode[0, 0], rtol=1e-9)
    assert len(data["sampling"]) == 17 and len(data["offset_magnitude_feature_px"]) == 4
    # sampling points of layer i at the joint's pixel: regular dilated grid + the layer's offsets there
    s = data["sampling"][9]
    x, y = s["position_feature_px"]
    for i, layer in enumerate(s["layers"]):
        off = out.offsets[i][0, :, y, x].reshape(-1, 9, 2).numpy()  # (G, 9, [dy, dx])
        grid_y, grid_x = np.divmod(np.arange(9), 3)
        expected = np.stack((x + 3 * (grid_x - 1) + off[..., 1], y + 3 * (grid_y - 1) + off[..., 0]), -1)
        np.testing.assert_allclose(layer["points_feature_px"], expected.reshape(-1, 2), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(layer["modulation"], out.masks[i][0, :, y, x].numpy(), rtol=1e-6)
    mag = out.offsets[2][0].reshape(-1, 9, 2, *model.cfg.heatmap_size).norm(dim=2).mean((0, 1))
    np.testing.assert_allclose(data["offset_magnitude_feature_px"][2], mag.numpy(), rtol=1e-5, atol=1e-7)


def test_mi_json_matches_loss_module(setup, reference):
    model, sample, out, _ = reference
    result = viz(setup, "mi", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["joints"] == list(JOINT_NAMES) and (setup / "mi.png").stat().st_size > 0
    weights = mi_weights(LossConfig())
    assert data["term_weights"] == weights
    f = out.features
    for est in ("official", "corrected"):
        mi = MutualInformation(est, model.cfg.mi_temperature)
        args = (model.backbone.final_layer, f["key"], f["support"], f["aggregated"], out.heatmaps)
        with torch.no_grad():
            expected = mi.per_joint(*args, sample["target"][None])
            scalars = mi(*args)
        got = data["estimators"][est]
        for term, values in got["terms"].items():
            want = expected[term][0].numpy()
            assert [v is None for v in values] == np.isnan(want).tolist()  # ears: no ground truth
            np.testing.assert_allclose(np.array(values, dtype=float), want, rtol=1e-5, atol=1e-9)
        # feature-label terms are the loss's rows: their mean is the training loss's scalar term
        np.testing.assert_allclose(np.mean(got["terms"]["mi_1"]), scalars["mi_1"].item(), rtol=1e-5)
        total = sum(weights[t] * np.array(got["terms"][t], dtype=float) for t in weights)
        np.testing.assert_allclose(np.array(got["weighted_total"], dtype=float), total, rtol=1e-6, atol=1e-12)


def test_per_joint_with_uniform_regions_is_the_scalar_term(reference):
    model, _, out, _ = reference
    f = out.features
    args = (model.backbone.final_layer, f["key"], f["support"], f["aggregated"], out.heatmaps)
    for est in ("official", "corrected"):
        mi = MutualInformation(est)
        with torch.no_grad():
            per_joint = mi.per_joint(*args, torch.ones_like(out.heatmaps))
            scalars = mi(*args)
        for term in ("mi_2", "mi_4", "mi_6"):
            torch.testing.assert_close(per_joint[term][0], scalars[term].expand(17), rtol=1e-4, atol=1e-7)


def test_heatmaps_json_matches_model(setup, reference):
    _, sample, out, _ = reference
    result = viz(setup, "heatmaps", "--json", "--joint", "left_wrist", out=str(setup / "hm.svg"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    k = JOINT_NAMES.index("left_wrist")
    assert data["joints"] == ["left_wrist"] and (setup / "hm.svg").read_text().lstrip().startswith("<?xml")
    np.testing.assert_allclose(data["heatmaps"], out.heatmaps[0, [k]].numpy(), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(data["backbone_heatmaps"], out.backbone_heatmaps[0, [k]].numpy(), rtol=1e-6, atol=1e-8)
    peak = data["peaks"][0]
    np.testing.assert_allclose(peak["gt_image_px"], sample["meta"]["joints"][k, :2].numpy(), rtol=1e-6)
    assert peak["fami"]["score"] == pytest.approx(out.heatmaps[0, k].max().item(), rel=1e-6)


def test_sampling_locations_follow_deform_conv2d():
    """Probe torchvision: with an input holding its own (y, x) coordinates and one tap's weight set to 1,
    the output is modulation * the sampled coordinate, which must be where sampling_locations says."""
    from torchvision.ops import deform_conv2d

    from famicli.viz.inspect import sampling_locations

    torch.manual_seed(0)
    g, h, w, d, x, y = 2, 12, 11, 3, 5, 6
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    image = torch.stack([ys, xs] * g)[None]  # (1, 2G, h, w): each group sees (y, x)
    offset, mask = torch.randn(1, 18 * g, h, w) * 0.7, torch.rand(1, 9 * g, h, w) + 0.5
    points, modulation = sampling_locations(offset[0].numpy(), mask[0].numpy(), x, y, d)
    for n in range(9 * g):
        group, tap = divmod(n, 9)
        weight = torch.zeros(2, 2 * g, 3, 3)
        weight[0, 2 * group, tap // 3, tap % 3] = weight[1, 2 * group + 1, tap // 3, tap % 3] = 1
        got = deform_conv2d(image, offset, weight, padding=d, dilation=d, mask=mask)[0, :, y, x]
        px, py = points[n]
        if 0 <= px <= w - 1 and 0 <= py <= h - 1:
            np.testing.assert_allclose(got.numpy(), modulation[n] * np.array([py, px]), rtol=1e-4, atol=1e-4)


def test_figures_are_deterministic(setup):
    a, b = setup / "a.png", setup / "b.png"  # (SVG and PDF carry no dates either; checked by hand)
    for path in (a, b):
        assert viz(setup, "heatmaps", "--joint", "nose", out=str(path)).exit_code == 0
    assert a.read_bytes() == b.read_bytes() and a.stat().st_size > 1000


def test_video_clip_with_boxes(setup, tmp_path):
    import av

    from famicli.data.posetrack import read_image

    frames = sorted((setup / "synth" / "images" / "train" / SEQ).glob("*.jpg"))
    video = tmp_path / "clip.avi"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("mjpeg", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuvj420p"
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(read_image(f), format="rgb24")))
        container.mux(stream.encode())
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([{"image_id": 7, "bbox": [40, 10, 50, 100], "score": 0.9, "track_id": 4}]))
    args = [
        "viz",
        "heatmaps",
        "--weights",
        str(setup / "tiny.pt"),
        "--video",
        str(video),
        "--boxes",
        str(boxes),
        "--frame",
        "7",
        "--person",
        "4",
        "--joint",
        "nose",
        "--out",
        str(tmp_path / "v.png"),
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["clip"]["frames"] == [7, 5, 6, 7, 7] and data["clip"]["box"] == [40.0, 10.0, 49.0, 99.0]
    assert np.array(data["heatmaps"]).shape == (1, 32, 24) and data["peaks"][0]["gt_image_px"] is None
    result = runner.invoke(app, [*args[:8], "--frame", "8", "--out", str(tmp_path / "v.png")])
    assert result.exit_code == 1
    assert result.stderr == f"Error: frame 8 is out of range: {video} has 8 frames (0..7)\n"
    result = runner.invoke(
        app,
        [
            *args[:2],
            "--video",
            str(video),
            "--frame",
            "1",
            "--weights",
            str(setup / "tiny.pt"),
            "--out",
            str(tmp_path / "v.png"),
            "--person",
            "2",
        ],
    )
    assert result.stderr == f"Error: unknown person id 2 in frame 1 of {video}; persons there: 0\n"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--frame", "9"], f"frame 9 is out of range: {SEQ} has 8 frames (0..7)"),
        (["--person", "42"], f"unknown person id 42 in frame {FRAME} of {SEQ}; persons there: "),
        (["--seq", "000009_mpii_test"], "unknown sequence '000009_mpii_test' in "),
        (["--out", "figure.jpg"], "--out figure.jpg: unsupported format '.jpg'; choose from: .png, .svg, .pdf"),
    ],
)
def test_bad_input_is_one_error_line(setup, extra, message):
    result = viz(setup, "offsets", *extra)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"Error: {message}") and result.stderr.count("\n") == 1, result.stderr


def test_mi_needs_ground_truth_and_weights_are_required(setup, tmp_path, monkeypatch):
    result = runner.invoke(app, ["viz", "mi", "--weights", str(setup / "tiny.pt"), "--video", "x.mp4"])
    assert result.exit_code == 1
    assert result.stderr == "Error: viz mi needs ground truth: select the clip with --root DIR --seq NAME\n"
    monkeypatch.setattr("famicli.data.synthtrack.demo.ASSET_DIRS", (tmp_path,))  # nothing bundled
    result = runner.invoke(app, ["viz", "heatmaps", "--root", str(setup / "synth"), "--seq", SEQ])
    assert result.exit_code == 1 and "pass --weights CKPT" in result.stderr


def test_dataset_is_a_name_and_choices_are_usage_errors(setup, tmp_path, monkeypatch):
    """--dataset names the benchmark (its folder: $FAMIPOSE_DATA/<dataset>); --root is the folder."""
    monkeypatch.setenv("FAMIPOSE_DATA", str(setup))
    (setup / "synthtrack").symlink_to(setup / "synth", target_is_directory=True)
    out = tmp_path / "v.png"
    named = runner.invoke(
        app,
        [
            "viz",
            "offsets",
            "--weights",
            str(setup / "tiny.pt"),
            "--dataset",
            "synthtrack",
            "--seq",
            SEQ,
            "--frame",
            str(FRAME),
            "--out",
            str(out),
            "--json",
        ],
    )
    assert named.exit_code == 0, named.output
    assert json.loads(named.stdout)["clip"]["root"] == str(setup / "synthtrack")
    folder = runner.invoke(app, ["viz", "offsets", "--dataset", str(setup / "synth"), "--seq", SEQ])
    assert folder.exit_code == 2 and "Invalid value for '--dataset'" in folder.output  # a folder is --root's
    joint = viz(setup, "offsets", "--joint", "left_hand")
    assert joint.exit_code == 2 and "'left_hand' is not one of" in joint.output
