"""The bundled demo (``famicli.data.synthtrack.demo``): the clip writer, predict on bundled defaults, the note, and the
shipped assets themselves (weights with their recipe, clip, boxes; AP well above an untrained model)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import famicli
from famicli.cli.app import app
from famicli.data.synthtrack import demo
from famicli.data.video import open_video
from famicli.inference.detect import BoxFile

runner = CliRunner()
REPO_ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.fixture(scope="module")
def clip(tmp_path_factory, tiny_checkpoint):
    """A small demo clip written by the same function as the bundled one, and the session's tiny checkpoint."""
    folder = tmp_path_factory.mktemp("assets")
    summary = demo.write_demo_clip(folder, frames=6, size=(160, 120))
    shutil.copy(tiny_checkpoint, folder / demo.WEIGHTS_NAME)
    return folder, summary


def test_write_demo_clip(clip, tmp_path):
    folder, summary = clip
    with open_video(folder / demo.VIDEO_NAME) as video:
        frames = list(video.frames())
    assert len(frames) == 6 and frames[0].shape == (120, 160, 3)
    boxes = BoxFile(folder / demo.BOXES_NAME).for_video("demo", 6)
    assert boxes.description["boxes"] == summary["persons"] > 0
    assert boxes.description["frames_with_boxes"] == 6
    again = demo.write_demo_clip(tmp_path, frames=6, size=(160, 120))  # a function of the seed
    assert again["persons"] == summary["persons"]
    assert (tmp_path / demo.BOXES_NAME).read_bytes() == (folder / demo.BOXES_NAME).read_bytes()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers


def test_predict_on_bundled_defaults(clip, tmp_path, monkeypatch):
    folder, summary = clip
    monkeypatch.setattr("famicli.data.synthtrack.demo.ASSET_DIRS", (folder,))
    result = runner.invoke(app, ["predict", str(folder / demo.VIDEO_NAME), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "Using the boxes next to the video" in result.stderr
    assert "Note:" not in result.stderr  # the bundled clip is SynthTrack
    assert f"6 frames, {summary['persons']} persons" in result.stdout
    for name in ("demo.posetrack.json", "demo.coco.json", "demo.overlay.mp4", "run.json"):
        assert (tmp_path / "out" / name).is_file(), name
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert Path(record["weights"]["path"]).name == demo.WEIGHTS_NAME


def test_viz_on_the_demo_clip_uses_its_boxes(clip, tmp_path, monkeypatch):
    folder, _ = clip
    monkeypatch.setattr("famicli.data.synthtrack.demo.ASSET_DIRS", (folder,))
    boxes = [b for b in json.loads((folder / demo.BOXES_NAME).read_text()) if b["frame_index"] == 2]
    person = max(b["track_id"] for b in boxes)
    result = runner.invoke(
        app, ["viz", "offsets", "--frame", "2", "--person", str(person), "--json", "--out", str(tmp_path / "v.png")]
    )  # no --video, --boxes, --weights: the bundled demo
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["clip"]["person"] == person and data["clip"]["boxes"].endswith(demo.BOXES_NAME)
    x, y, w, h = next(b["bbox"] for b in boxes if b["track_id"] == person)
    bx, by, bw, bh = data["clip"]["box"]  # the file's box, cleaned to the frame
    assert (bx, by) == pytest.approx((x, y)) and bw <= w + 1e-6 and bh <= h + 1e-6


def test_note_once_on_a_video_that_is_not_synthtrack(clip, tmp_path, monkeypatch):
    folder, _ = clip
    monkeypatch.setattr("famicli.data.synthtrack.demo.ASSET_DIRS", (folder,))
    video = tmp_path / "holiday.mp4"
    shutil.copy(folder / demo.VIDEO_NAME, video)
    result = runner.invoke(
        app, ["predict", str(video), "--boxes", str(folder / demo.BOXES_NAME), "-o", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("Note:")]
    assert len(notes) == 1 and "synthetic SynthTrack figures" in notes[0] and "--weights" in notes[0]


needs_assets = pytest.mark.skipif(
    not (REPO_ASSETS / demo.WEIGHTS_NAME).is_file(), reason="the demo assets are not in this checkout (assets/)"
)


@needs_assets
def test_bundled_assets_are_complete():
    weights = REPO_ASSETS / demo.WEIGHTS_NAME
    assert weights.stat().st_size <= 20 * 2**20
    checkpoint = famicli.models.checkpoint.read_checkpoint(weights)
    recipe = checkpoint["recipe"]
    assert recipe["seed"] == 0 and recipe["synthtrack"] == demo.SYNTH_RECIPE
    assert all(cmd.startswith("famipose ") for cmd in recipe["commands"])
    assert "optimizer" not in checkpoint  # weights only
    model = famicli.load_model(weights)
    assert model.cfg.variant == "tiny"
    with open_video(REPO_ASSETS / demo.VIDEO_NAME) as video:
        n = sum(1 for _ in video.frames())
    assert n == demo.CLIP_RECIPE["frames"]
    assert BoxFile(REPO_ASSETS / demo.BOXES_NAME).for_video("demo", n).description["frames_with_boxes"] == n


@needs_assets
def test_bundled_weights_score_well_above_untrained(tmp_path):
    from famicli.config import train_configs
    from famicli.data.synthtrack.generate import SynthConfig, generate
    from famicli.engine.validator import validate

    root = tmp_path / "synth"  # 6 videos the weights never saw (another seed than the recipe's)
    generate(root, SynthConfig(videos=6, frames=8, seed=77, val_videos=6, val_label_every=2))
    _, data_cfg, _, _ = train_configs("tiny")
    trained = validate(famicli.load_model(REPO_ASSETS / demo.WEIGHTS_NAME), root, data_cfg)
    untrained = validate(famicli.build_model("tiny").eval(), root, data_cfg)
    assert untrained["ap"]["Total"] < 2
    assert trained["ap"]["Total"] > 15, trained["ap"]
