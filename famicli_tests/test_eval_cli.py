"""``famipose eval`` output: rich tables on stdout, --json, --out written atomically."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from famicli.cli.app import app

BASIC = Path(__file__).parent / "data" / "posetrack18_basic"
ARGS = ["eval", "--gt", str(BASIC / "gt"), "--pred", str(BASIC / "pred"), "--order", "sorted"]
runner = CliRunner()


def test_human_tables():
    result = runner.invoke(app, [*ARGS, "--per-sequence"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for title in (
        "Average Precision (AP)",
        "Multiple Object Tracking (MOT)",
        "COCO OKS AP",
        "Per sequence",
        "011000_mpii_test",
    ):
        assert title in out
    for col in (
        "Head",
        "Shou",
        "Elb",
        "Wri",
        "Hip",
        "Knee",
        "Ankl",
        "Total",
        "MOTA",
        "MOTP",
        "Prec",
        "Rec",
        "AP50",
        "AP75",
    ):
        assert col in out
    assert "61.3" in out and "19.9" in out  # AP and MOTA totals of this case


def test_json_and_out_file(tmp_path):
    out = tmp_path / "results" / "eval.json"
    result = runner.invoke(app, [*ARGS, "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert json.loads(out.read_text()) == printed
    assert [p.name for p in out.parent.iterdir()] == ["eval.json"]  # no temp file left
    for key in ("ap", "mota"):
        assert list(printed[key]) == ["Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total"]
    for key in (
        "ap_per_joint",
        "precision_per_joint",
        "recall_per_joint",
        "mota_per_joint",
        "motp_per_joint",
        "mot_precision_per_joint",
        "mot_recall_per_joint",
    ):
        assert len(printed[key]) == 16 and "total" in printed[key] and "neck" in printed[key]
    assert {"AP", "AP50", "AP75", "AR", "sigmas"} <= set(printed["coco"])
    prov = printed["provenance"]
    assert prov["options"]["order"] == "sorted" and prov["options"]["strict"] is True
    assert (prov["sequences"], prov["frames"], prov["gt_persons"], prov["pred_persons"]) == (2, 16, 26, 22)


def test_motmetrics_tracker_same_json():
    fast = json.loads(runner.invoke(app, [*ARGS, "--json", "--no-coco"]).stdout)
    slow = json.loads(runner.invoke(app, [*ARGS, "--json", "--no-coco", "--tracker", "motmetrics"]).stdout)
    for key in ("mota_per_joint", "motp_per_joint", "mot_precision_per_joint", "mot_recall_per_joint"):
        for joint, value in fast[key].items():
            assert abs(slow[key][joint] - value) < 1e-9


def test_usage_errors_exit_2():
    assert runner.invoke(app, [*ARGS, "--dataset", "coco"]).exit_code == 2
    assert runner.invoke(app, ["eval", "--gt", str(BASIC / "gt")]).exit_code == 2
