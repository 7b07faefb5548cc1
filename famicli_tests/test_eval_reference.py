"""Every case of shared/poseval_reference reproduced to 1e-6, through the API and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import famicli
from famicli.cli.app import app
from famicli.keypoints import POSEVAL_JOINTS as JOINTS_15
from famicli_tests.conftest import shared_path

DATA = Path(__file__).parent / "data"
ORDER = json.loads((DATA / "poseval_reference_order.json").read_text())
CASES = ["basic", "noisy", "ignore_regions", "track_swaps", "sparse_labels"]
# expected.json key -> famipose key
PER_JOINT = {
    "ap_per_joint": "ap_per_joint",
    "precision_per_joint": "precision_per_joint",
    "recall_per_joint": "recall_per_joint",
    "mota_per_joint": "mota_per_joint",
    "motp_per_joint": "motp_per_joint",
    "pre_per_joint": "mot_precision_per_joint",
    "rec_per_joint": "mot_recall_per_joint",
}
runner = CliRunner()


def assert_matches(report: dict, expected: dict) -> None:
    for exp_key, key in PER_JOINT.items():
        got = [report[key][name] for name in [*JOINTS_15, "total"]]
        got = np.array([np.nan if v is None else v for v in got])
        np.testing.assert_allclose(got, expected[exp_key], atol=1e-6, rtol=0, err_msg=key)
    for col, value in expected["ap_table"].items():
        assert report["ap"][col] == pytest.approx(value, abs=1e-6), col
    mot = expected["mot_table"]
    for col in ("Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total"):
        assert report["mota"][col] == pytest.approx(mot[col], abs=1e-6), col
    assert report["mot_totals"]["MOTP"] == pytest.approx(mot["MOTP_Total"], abs=1e-6)
    assert report["mot_totals"]["Prec"] == pytest.approx(mot["Prec_Total"], abs=1e-6)
    assert report["mot_totals"]["Rec"] == pytest.approx(mot["Rec_Total"], abs=1e-6)


@pytest.mark.parametrize("tracker", ["famipose", "motmetrics"])
@pytest.mark.parametrize("case", CASES)
def test_reference_case_reproduced(case, tracker):
    folder = shared_path("poseval_reference", case)
    expected = json.loads((folder / "expected.json").read_text())
    result = famicli.evaluate(
        folder / "gt", folder / "pred", dataset="posetrack18", tracker=tracker, order=ORDER[case], coco=False
    )
    assert_matches(result.to_dict(), expected)


def test_basic_case_bundled_copy_reproduced_without_shared():
    folder = DATA / "posetrack18_basic"
    expected = json.loads((folder / "expected.json").read_text())
    result = famicli.evaluate(folder / "gt", folder / "pred", order=ORDER["basic"])
    assert_matches(result.to_dict(), expected)


def test_cli_json_reproduces_case():
    # in this case poseval's sequence order is the sorted one, so --order sorted reproduces it
    folder = shared_path("poseval_reference", "ignore_regions")
    assert ORDER["ignore_regions"] == sorted(ORDER["ignore_regions"])
    result = runner.invoke(
        app, ["eval", "--gt", str(folder / "gt"), "--pred", str(folder / "pred"), "--json", "--order", "sorted"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert_matches(report, json.loads((folder / "expected.json").read_text()))
    assert set(report["coco"]) >= {"AP", "AP50", "AP75", "AR"}
    prov = report["provenance"]
    assert prov["famipose"] == famicli.__version__
    assert (prov["sequences"], prov["frames"], prov["gt_persons"]) == (2, 20, 62)
    assert len(prov["gt"]["sha256"]) == len(prov["pred"]["sha256"]) == 64


def test_duplicate_track_ids_refused():
    folder = shared_path("poseval_reference", "duplicate_track_ids")
    args = ["eval", "--gt", str(folder / "gt"), "--pred", str(folder / "pred")]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: {folder / 'pred' / '016000_mpii_test.json'}: frame "
        "images/val/016000_mpii_test/000002.jpg: track_id: 100 appears 2 times; track ids must "
        "be unique within a frame"
    )


def test_per_sequence_matches_single_sequence_runs(tmp_path):
    folder = shared_path("poseval_reference", "track_swaps")
    result = famicli.evaluate(folder / "gt", folder / "pred", per_sequence=True, coco=False)
    per_seq = result.to_dict()["per_sequence"]
    for name in ORDER["track_swaps"]:
        one = tmp_path / name
        (one / "gt").mkdir(parents=True), (one / "pred").mkdir()
        (one / "gt" / name).write_bytes((folder / "gt" / name).read_bytes())
        (one / "pred" / name).write_bytes((folder / "pred" / name).read_bytes())
        alone = famicli.evaluate(one / "gt", one / "pred", coco=False).to_dict()
        seq = per_seq[name.removesuffix(".json")]
        for key in ("ap_per_joint", "mota_per_joint", "motp_per_joint", "mot_recall_per_joint"):
            for joint, value in alone[key].items():
                assert seq[key][joint] == pytest.approx(value, abs=1e-9, nan_ok=True), (key, joint)


def test_metrics_do_not_import_torch():
    folder = DATA / "posetrack18_basic"
    code = (
        "import sys, famicli\n"
        f"famicli.evaluate({str(folder / 'gt')!r}, {str(folder / 'pred')!r})\n"
        "print('TORCH', 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "TORCH False" in out.stdout
