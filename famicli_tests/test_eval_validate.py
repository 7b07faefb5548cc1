"""Bad input never produces a number: one test per validation rule, with the exact error line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import famicli
from famicli.cli.app import app
from famicli.errors import InputError

BASIC = Path(__file__).parent / "data" / "posetrack18_basic"
SEQ = "011000_mpii_test.json"
FRAME2 = "images/val/011000_mpii_test/000002.jpg"
runner = CliRunner()


@pytest.fixture
def case(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    shutil.copytree(BASIC / "gt", gt)
    shutil.copytree(BASIC / "pred", pred)
    return gt, pred


def edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def refused(gt: Path, pred: Path, *extra: str) -> str:
    """Run the CLI, check it refused without printing a number, return its Error line."""
    result = runner.invoke(app, ["eval", "--gt", str(gt), "--pred", str(pred), *extra])
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert sum(line.startswith("Error: ") for line in lines) == 1
    with pytest.raises(InputError) as exc:
        famicli.evaluate(gt, pred)
    assert lines[-1] == f"Error: {exc.value}"
    return lines[-1]


def scored(gt: Path, pred: Path, *extra: str) -> tuple[dict, list[str]]:
    """Run the CLI with --json; return the report and the Warning lines."""
    result = runner.invoke(app, ["eval", "--gt", str(gt), "--pred", str(pred), "--json", *extra])
    assert result.exit_code == 0, result.output
    warnings = [w for w in result.stderr.splitlines() if w.startswith("Warning: ")]
    return json.loads(result.stdout), warnings


def test_missing_prediction_file(case):
    gt, pred = case
    (pred / SEQ).unlink()
    assert refused(gt, pred) == (
        f"Error: {pred / SEQ}: file: missing; every GT sequence ({gt / SEQ}) needs a prediction file with the same name"
    )
    report, warnings = scored(gt, pred, "--no-strict")
    assert report["ap"]["Total"] is not None
    assert f"Warning: {pred / SEQ}: file: missing" in warnings[0]
    assert warnings[0].endswith("(scored as a sequence with no predictions; --no-strict)")


def test_frame_count_mismatch(case):
    gt, pred = case
    edit(pred / SEQ, lambda d: d["images"].pop())
    assert refused(gt, pred) == (
        f"Error: {pred / SEQ}: images: 7 frames, but the GT file "
        f"{gt / SEQ} has 8; a prediction file lists the same images as "
        "its GT file"
    )
    refused(gt, pred, "--no-strict")


def test_duplicate_track_ids_in_a_frame(case):
    gt, pred = case

    def dup(d):
        d["annotations"][1]["track_id"] = d["annotations"][0]["track_id"]

    edit(pred / SEQ, dup)
    assert refused(gt, pred) == (
        f"Error: {pred / SEQ}: frame {FRAME2}: track_id: 100 appears 2 times; track ids must be unique within a frame"
    )
    refused(gt, pred, "--no-strict")


def test_duplicate_track_ids_in_gt(case):
    gt, pred = case
    edit(gt / SEQ, lambda d: d["annotations"][3].update(track_id=0))
    assert refused(gt, pred) == (
        f"Error: {gt / SEQ}: frame {FRAME2}: track_id: 0 appears 2 times;"
        " track ids must be unique within a frame (poseval does not check"
        " GT, but MOT is undefined)"
    )


def test_keypoints_of_wrong_length(case):
    gt, pred = case
    edit(pred / SEQ, lambda d: d["annotations"][0]["keypoints"].__delitem__(slice(0, 3)))
    assert refused(gt, pred) == (
        f"Error: {pred / SEQ}: frame {FRAME2}: annotation 0: keypoints: "
        "48 values, expected 51 (17 keypoints × [x, y, v])"
    )


def test_nan_coordinates(case):
    gt, pred = case
    edit(pred / SEQ, lambda d: d["annotations"][0]["keypoints"].__setitem__(0, float("nan")))
    assert refused(gt, pred) == (
        f"Error: {pred / SEQ}: frame {FRAME2}: keypoints: nose is [nan, "
        "250.04] (track_id 100); coordinates and scores must be finite"
    )
    report, warnings = scored(gt, pred, "--no-strict")
    assert report["ap"]["Total"] is not None
    assert warnings[0].endswith("(1 such keypoints treated as absent; --no-strict)")


def test_infinite_score(case):
    gt, pred = case
    edit(pred / SEQ, lambda d: d["annotations"][2]["scores"].__setitem__(16, float("inf")))
    frame3 = "images/val/011000_mpii_test/000003.jpg"
    assert refused(gt, pred) == (
        f"Error: {pred / SEQ}: frame {frame3}: scores: right_ankle is inf"
        " (track_id 100); coordinates and scores must be finite"
    )


def test_unknown_keypoint_name(case):
    gt, pred = case
    edit(pred / SEQ, lambda d: d["categories"][0]["keypoints"].__setitem__(3, "left_eye"))
    known = ", ".join(famicli.keypoints.JOINT_NAMES)
    assert refused(gt, pred) == (f"Error: {pred / SEQ}: categories: keypoints: unknown name 'left_eye'; known: {known}")
    report, warnings = scored(gt, pred, "--no-strict")
    assert warnings[0].endswith("(ignored, as poseval ignores names it does not know; --no-strict)")


def test_track_id_not_below_10000(case):
    gt, pred = case
    edit(pred / SEQ, lambda d: d["annotations"][0].update(track_id=12000))
    assert refused(gt, pred) == (
        f"Error: {pred / SEQ}: frame {FRAME2}: track_id: 12000 is not "
        "below 10000 (poseval offsets track ids by 10000 per sequence "
        "and refuses larger ones)"
    )
    scored(gt, pred, "--no-strict")


def test_single_labeled_frame_sequence(case):
    gt, pred = case
    edit(gt / SEQ, lambda d: d.update(annotations=d["annotations"][:1]))
    assert refused(gt, pred) == (
        f"Error: {gt / SEQ}: images: only one frame has annotated "
        "persons; the official tool fails on such a sequence (tracking "
        "skips the last labeled frame of each sequence)"
    )


def test_bad_sequence_folder_name(case):
    gt, pred = case
    edit(gt / SEQ, lambda d: d["images"][0].update(file_name="images/val/clip/000000.jpg"))
    assert refused(gt, pred) == (
        f"Error: {gt / SEQ}: frame images/val/clip/000000.jpg: file_name:"
        " expected images/<split>/NNNNNN_<mpii|bonn|mpiinew>_<...>/"
        "<frame>.jpg with a frame number below 10000 (poseval derives "
        "image ids from it)"
    )


def test_several_errors_report_the_first_and_count(case):
    gt, pred = case
    edit(pred / SEQ, lambda d: d["annotations"][0].update(track_id=12000))
    edit(pred / SEQ, lambda d: d["annotations"][2].update(track_id=12001))  # same rule, one line
    edit(pred / "011001_mpii_test.json", lambda d: d["annotations"][0].update(track_id=10000))
    assert refused(gt, pred).endswith("and refuses larger ones) (and 1 more error)")


def test_what_poseval_accepts_is_warned_about(case):
    gt, pred = case

    def odd(d):
        d["images"][1]["file_name"] = "images/val/011000_mpii_test/000009.jpg"
        d["annotations"].append(dict(d["annotations"][0], image_id=123))
        del d["annotations"][3]["scores"]

    edit(pred / SEQ, odd)
    report, warnings = scored(gt, pred)
    text = "\n".join(warnings)
    assert "file_name: differs from the GT frame images/val/011000_mpii_test/000001.jpg" in text
    assert "annotations: 1 annotations name an image_id that is not in images" in text
    assert "scores: missing for 1 persons; poseval then uses score -9999" in text
    assert report["warnings"] == [w.removeprefix("Warning: ") for w in warnings]


def test_missing_dataset_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("FAMIPOSE_DATA", str(tmp_path))
    result = runner.invoke(app, ["eval", "--pred", str(tmp_path)])
    assert result.exit_code == 1
    where = tmp_path / "posetrack18" / "annotations" / "val"
    assert result.stderr.strip() == (
        f"Error: posetrack18 annotations not found at {where}; put the dataset there "
        "(posetrack18/annotations/val/<sequence>.json), set FAMIPOSE_DATA to the folder holding "
        "posetrack18/, or pass --root or --gt"
    )


def test_dataset_found_under_famipose_data(case, tmp_path, monkeypatch):
    gt, pred = case
    val = tmp_path / "data" / "posetrack18" / "annotations" / "val"
    shutil.copytree(gt, val)
    monkeypatch.setenv("FAMIPOSE_DATA", str(tmp_path / "data"))
    result = runner.invoke(app, ["eval", "--pred", str(pred), "--json", "--no-coco"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["provenance"]["gt"]["path"] == str(val)


def test_one_issue_collector_lists_each_kind_up_to_a_cap():
    """data check and the evaluator share formats.validate.Issues: errors then warnings, capped per kind."""
    from famicli.formats.validate import Issues

    issues = Issues(log=False)
    for i in range(25):
        issues.add("error", "image", f"frame {i}: cannot read image")
    issues.add("warning", "layout", "a.json: file_name is not images/val/...")
    issues.add("error", "track_id", "a.json: track_id 3 repeats")
    listed = issues.listing(20)
    assert [i["kind"] for i in listed] == ["image"] * 20 + ["track_id", "layout"]
    assert listed[0] == {"level": "error", "kind": "image", "message": "frame 0: cannot read image"}
    assert len(issues.errors) == 26 and len(issues.warnings) == 1
