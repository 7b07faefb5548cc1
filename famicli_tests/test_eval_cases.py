"""Every case of shared/poseval_cases (scored by the official poseval in sorted order) reproduced to 1e-6."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

import famicli
from famicli.cli.app import app
from famicli.errors import InputError
from famicli.keypoints import POSEVAL_JOINTS
from famicli_tests.conftest import shared_path

CASES = ["basic_jitter", "occlusion_ignore", "tracking_errors", "sparse_labels", "scores_formats"]
# expected.json ap/mot key -> famipose per-joint key
AP_KEYS = {"ap": "ap_per_joint", "precision": "precision_per_joint", "recall": "recall_per_joint"}
MOT_KEYS = {
    "mota": "mota_per_joint",
    "motp": "motp_per_joint",
    "precision": "mot_precision_per_joint",
    "recall": "mot_recall_per_joint",
}
runner = CliRunner()


def _close(got, want) -> bool:
    if want is None:
        return got is None or math.isnan(got)
    return got is not None and abs(got - want) <= 1e-6


def assert_matches(report: dict, expected: dict, mot: bool = True) -> None:
    groups = [("ap", AP_KEYS)] + ([("mot", MOT_KEYS)] if mot else [])
    for part, keys in groups:
        for exp_key, key in keys.items():
            for name in [*POSEVAL_JOINTS, "total"]:
                want = expected[part][exp_key][name]
                assert _close(report[key][name], want), (key, name, report[key][name], want)
    for col, want in expected["ap"]["table"].items():
        assert _close(report["ap"][col], want), ("ap", col)
    if mot:
        table = expected["mot"]["table"]
        for col in ("Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total"):
            assert _close(report["mota"][col], table[col]), ("mota", col)
        for col in ("MOTP", "Prec", "Rec"):
            assert _close(report["mot_totals"][col], table[col]), col


@pytest.mark.parametrize("case", CASES)
def test_case_reproduced(case):
    folder = shared_path("poseval_cases", case)
    expected = json.loads((folder / "expected.json").read_text())
    assert expected["status"] == "ok"
    report = famicli.evaluate(
        folder / "gt", folder / "pred", dataset="posetrack18", order="sorted", coco=False
    ).to_dict()
    assert_matches(report, expected)


@pytest.mark.parametrize("case", ["basic_jitter", "scores_formats"])
def test_cli_reproduces_the_case(case):
    folder = shared_path("poseval_cases", case)
    expected = json.loads((folder / "expected.json").read_text())
    result = runner.invoke(
        app,
        [
            "eval",
            "--dataset",
            "posetrack18",
            "--gt",
            str(folder / "gt"),
            "--pred",
            str(folder / "pred"),
            "--order",
            "sorted",
            "--json",
            "--no-coco",
        ],
    )
    assert result.exit_code == 0, result.output
    assert_matches(json.loads(result.stdout), expected)


def test_single_labeled_sequence_is_refused_and_its_ap_kept_with_no_strict():
    """poseval computes AP, then crashes in tracking: famipose refuses by default, with the reason,
    and with --no-strict scores AP (equal to poseval's) and leaves that sequence out of MOT."""
    folder = shared_path("poseval_cases", "error_single_labeled")
    expected = json.loads((folder / "expected.json").read_text())
    assert expected["error"]["stage"] == "tracking"
    with pytest.raises(InputError, match="only one frame has annotated persons; the official tool fails"):
        famicli.evaluate(folder / "gt", folder / "pred", dataset="posetrack18", order="sorted", coco=False)
    report = famicli.evaluate(
        folder / "gt", folder / "pred", dataset="posetrack18", order="sorted", coco=False, strict=False
    ).to_dict()
    assert_matches(report, expected, mot=False)


def test_warnings_are_summarized_per_kind_listed_in_json_and_silenced_by_quiet(tmp_path):
    """Many files with persons without keypoints give one summary line; --json lists each; -q none."""
    src = shared_path("poseval_cases", "basic_jitter")
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir(), pred.mkdir()
    for f in sorted((src / "gt").glob("*.json")):
        doc = json.loads(f.read_text())
        doc["annotations"].append({**doc["annotations"][0], "keypoints": [0] * 51, "track_id": 9999})
        (gt / f.name).write_text(json.dumps(doc))
        (pred / f.name).write_text((src / "pred" / f.name).read_text())
    args = ["eval", "--gt", str(gt), "--pred", str(pred), "--order", "sorted", "--no-coco"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    n = len(list(gt.glob("*.json")))
    listed = [w for w in json.loads(result.stdout)["warnings"] if "have no keypoint" in w]
    assert len(listed) == n > 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("Warning: ")]
    assert len(lines) == 1 and lines[0].startswith(f"Warning: {n} sequence files have persons without any keypoint")
    assert lines[0].endswith(listed[0])  # "...; first: <the first warning>"
    quiet = runner.invoke(app, [*args, "-q"])
    assert quiet.exit_code == 0 and quiet.stderr == ""


def _many_sequences(tmp_path, copies: int = 6):
    """The basic_jitter sequences copied under new sequence numbers: enough files to read in parallel."""
    src = shared_path("poseval_cases", "basic_jitter")
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir(), pred.mkdir()
    for c in range(copies):
        for f in sorted((src / "gt").glob("*.json")):
            name = f"{900000 + 10 * c + len(list(gt.iterdir())):06d}" + f.name[6:]
            for folder, out in ((src / "gt", gt), (src / "pred", pred)):
                (out / name).write_text((folder / f.name).read_text().replace(f.name[:6], name[:6]))
    return gt, pred


def test_parallel_reading_gives_the_sequential_result_and_the_first_error(tmp_path, monkeypatch):
    from famicli.metrics import scoring

    gt, pred = _many_sequences(tmp_path)
    assert len(list(gt.glob("*.json"))) >= scoring.PARALLEL_MIN_FILES
    parallel = famicli.evaluate(gt, pred, order="sorted", coco=False).to_dict()
    monkeypatch.setattr(scoring, "PARALLEL_MIN_FILES", 10**9)
    sequential = famicli.evaluate(gt, pred, order="sorted", coco=False).to_dict()
    for key in ("ap", "ap_per_joint", "mota", "mota_per_joint", "mot_totals", "warnings"):
        assert parallel[key] == sequential[key], key
    files = sorted(pred.glob("*.json"))
    for f in (files[3], files[11]):  # two broken files: the first in order is named, as sequentially
        f.write_text("{not json")
    monkeypatch.setattr(scoring, "PARALLEL_MIN_FILES", 2)
    with pytest.raises(InputError, match=f"^{files[3]}: not valid JSON"):
        famicli.evaluate(gt, pred, order="sorted", coco=False)
