"""``famipose eval --weights``: the model in the loop on a SynthTrack val folder, backbone-only and
FAMI-Pose rows, equal to scoring the written prediction files separately."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from famicli.cli.app import app

runner = CliRunner()
SCORES = ("ap", "mota", "mot_totals", "ap_per_joint", "mota_per_joint", "coco")


@pytest.fixture(scope="module")
def data(tmp_path_factory, synthtrack, tiny_checkpoint):
    """The session's SynthTrack set (val: 2 sequences, 10 frames, 8 persons) and tiny checkpoint, and a
    folder for this module's outputs."""
    return {"base": tmp_path_factory.mktemp("evalw"), "root": synthtrack, "weights": tiny_checkpoint}


@pytest.fixture(scope="module")
def gt_run(data):
    pred = data["base"] / "pred"
    args = [
        "eval",
        "--dataset",
        "synthtrack",
        "--root",
        str(data["root"]),
        "--weights",
        str(data["weights"]),
        "--device",
        "cpu",
        "--pred-out",
        str(pred),
    ]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), pred


def test_both_rows_and_boxes_reported(data, gt_run):
    report, _ = gt_run
    assert report["boxes"]["source"] == "ground truth"
    for r in (report, report["backbone"]):
        assert list(r["ap"]) == ["Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total"]
        assert "Total" in r["mota"] and "AP" in r["coco"]
    assert report["reference"] == {}  # SynthTrack: no published numbers
    assert (report["sequences"], report["frames"], report["persons"], report["processes"]) == (2, 10, 8, 1)
    assert report["model"]["variant"] == "tiny" and report["provenance"]["options"]["weights"] == str(data["weights"])


def test_matches_scoring_the_written_files(data, gt_run):
    report, pred = gt_run
    gt = data["root"] / "annotations" / "val"
    for column, expected in (("famipose", report), ("backbone", report["backbone"])):
        assert sorted(p.name for p in (pred / column).iterdir()) == sorted(p.name for p in gt.iterdir())
        result = runner.invoke(
            app, ["eval", "--gt", str(gt), "--pred", str(pred / column), "--order", "sorted", "--json"]
        )
        assert result.exit_code == 0, result.output
        separate = json.loads(result.stdout)
        for key in SCORES:
            if key in expected:
                assert separate[key] == expected[key], key


@pytest.mark.parametrize("single_frame", [False, True])
def test_training_validation_gives_the_same_keypoints(data, gt_run, single_frame):
    """The validation ``famipose train`` runs after each epoch writes exactly the keypoints of
    ``eval --weights`` on the same checkpoint and boxes (FAMI-Pose's, or the backbone's for stage 1)."""
    import famicli
    from famicli.config import DataConfig
    from famicli.engine.trainer import _validate

    report, pred = gt_run
    column = "backbone" if single_frame else "famipose"
    val = data["base"] / f"train_val_{column}"
    model = famicli.load_model(data["weights"]).train()
    scores = _validate(model, data["root"], DataConfig(), "cpu", single_frame=single_frame, pred_dir=val)
    assert scores["ap"] == (report["backbone"] if single_frame else report)["ap"]
    files = sorted((val / column).iterdir())
    assert [f.name for f in files] == sorted(f.name for f in (pred / column).iterdir()) and len(files) == 2
    for f in files:
        ours, theirs = (json.loads(g.read_text())["annotations"] for g in (f, pred / column / f.name))
        assert ours == theirs and len(ours) == 4


def test_boxes_file_for_the_whole_split(data, gt_run):
    """A detections list keyed by PoseTrack image ids (mmpose's format): the GT boxes with score 1 give
    the same keypoints, hence the same AP; boxes below the threshold are dropped."""
    report, _ = gt_run
    dets = []
    for f in sorted((data["root"] / "annotations" / "val").glob("*.json")):
        for a in json.loads(f.read_text())["annotations"]:
            dets += [
                {"image_id": a["image_id"], "bbox": a["bbox"], "score": 1.0, "category_id": 1},
                {"image_id": a["image_id"], "bbox": [0, 0, 50, 50], "score": 0.1, "category_id": 1},
            ]
    path = data["base"] / "dets.json"
    path.write_text(json.dumps(dets))
    result = runner.invoke(
        app,
        [
            "eval",
            "--dataset",
            "synthtrack",
            "--root",
            str(data["root"]),
            "--weights",
            str(data["weights"]),
            "--device",
            "cpu",
            "--boxes",
            str(path),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    with_file = json.loads(result.stdout)
    assert with_file["boxes"]["source"] == "file" and with_file["boxes"]["threshold"] == 0.2
    assert with_file["persons"] == 8
    assert with_file["ap"] == report["ap"] and with_file["backbone"]["ap"] == report["backbone"]["ap"]


def test_human_table(gt_run, capsys):
    from famicli.cli.eval import _render_model

    report, _ = gt_run
    _render_model({**report, "reference": {"FAMI-Pose W48 (paper, detected boxes)": 82.2}})
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines (the temp path) at 80 columns
    for text in (
        "model in the loop (ground-truth boxes)",
        "backbone only",
        "FAMI-Pose",
        "MOTA",
        "COCO AP",
        "2 sequences, 10 frames, 8 persons",
        "reference: FAMI-Pose W48 (paper, detected boxes): Total AP 82.2",
    ):
        assert text in out, text


def test_usage_and_input_errors(data, tmp_path, monkeypatch):
    base = ["eval", "--dataset", "synthtrack", "--root", str(data["root"])]
    other = ["eval", "--dataset", "posetrack18", "--root", str(data["root"])]
    assert runner.invoke(app, other).exit_code == 2  # neither --pred nor --weights
    monkeypatch.setattr("famicli.data.synthtrack.demo.ASSET_DIRS", (tmp_path,))  # nothing bundled
    missing = runner.invoke(app, base)  # synthtrack defaults to the bundled weights
    assert missing.exit_code == 1 and "no bundled demo weights" in missing.stderr, missing.output
    assert runner.invoke(app, [*base, "--pred", str(tmp_path), "--weights", str(data["weights"])]).exit_code == 2
    gone = runner.invoke(app, [*base, "--weights", str(data["weights"]), "--gt-boxes"])  # GT boxes: the default
    assert gone.exit_code == 2 and "No such option: --gt-boxes" in gone.output
    missing = runner.invoke(
        app, ["eval", "--dataset", "synthtrack", "--root", str(tmp_path / "none"), "--weights", str(data["weights"])]
    )
    assert missing.exit_code == 1 and missing.stderr.startswith("Error: synthtrack annotations not found at")
    jhmdb = runner.invoke(app, ["eval", "--dataset", "jhmdb", "--weights", str(data["weights"])])
    assert jhmdb.exit_code == 1 and "choose from: posetrack18, posetrack17, synthtrack" in jhmdb.stderr


def test_torchrun_shards_sequences(data, gt_run):
    """Two processes (gloo on CPU) take one sequence each; rank 0 prints the same scores. (About 5 s on 2
    cores: in the default suite; ``--standalone`` picks a free port.)"""
    report, _ = gt_run
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--standalone",
        "-m",
        "famicli",
        "eval",
        "--dataset",
        "synthtrack",
        "--root",
        str(data["root"]),
        "--weights",
        str(data["weights"]),
        "--device",
        "cpu",
        "--json",
        "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    sharded = json.loads(proc.stdout)
    assert sharded["processes"] == 2 and sharded["persons"] == 8
    for key in SCORES:
        assert sharded[key] == report[key], key
        assert sharded["backbone"].get(key) == report["backbone"].get(key), key
