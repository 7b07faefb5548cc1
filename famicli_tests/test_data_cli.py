"""``famipose data synth`` and ``famipose data check`` through the root app."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from famicli.cli.app import app

runner = CliRunner()


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "st"
    result = runner.invoke(
        app,
        [
            "data",
            "synth",
            "--out",
            str(out),
            "--videos",
            "2",
            "--frames",
            "6",
            "--size",
            "160x120",
            "--seed",
            "1",
            "--json",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_synth_json_summary(synth):
    out, summary = synth
    assert summary["videos"] == {"train": 1, "val": 1}
    assert summary["frames"] == 12 and summary["labeled_frames"] == 6 + 2
    assert summary["persons"] > 0 and summary["size"] == [160, 120]
    assert (out / "synthtrack.json").is_file()


def test_synth_table_and_refusal_to_clobber(synth, tmp_path):
    out, _ = synth
    result = runner.invoke(app, ["data", "synth", "--out", str(out), "--videos", "1", "--frames", "2"])
    assert result.exit_code == 1
    assert result.stderr == f"Error: {out}: already exists and is not empty; pass --overwrite to replace it\n"
    result = runner.invoke(
        app,
        ["data", "synth", "-o", str(tmp_path / "t"), "--videos", "1", "--frames", "2", "--size", "64x48", "--quiet"],
    )
    assert result.exit_code == 0, result.output
    assert "SynthTrack" in result.stdout and "1 train, 0 val" in result.stdout


def test_synth_bad_size_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "x"), "--size", "320by240"])
    assert result.exit_code == 2


def test_check_json(synth):
    out, _ = synth
    result = runner.invoke(app, ["data", "check", "--root", str(out), "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and report["splits"]["train"]["frames"] == 6
    result = runner.invoke(app, ["data", "check", "--root", str(out), "--split", "val", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "never annotated joints" in result.stdout and "0 errors, 0 warnings" in result.stdout


def test_check_without_annotations(tmp_path):
    (tmp_path / "images").mkdir()
    result = runner.invoke(app, ["data", "check", "--root", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {tmp_path}: no annotations folder (expected {tmp_path}/annotations/<split>/"
        "<sequence>.json, the PoseTrack18 layout)\n"
    )


def test_check_empty_split(tmp_path):
    (tmp_path / "annotations" / "val").mkdir(parents=True)
    result = runner.invoke(app, ["data", "check", "--root", str(tmp_path), "--split", "val"])
    assert result.exit_code == 1
    assert result.stderr == f"Error: {tmp_path}/annotations/val: empty split 'val': no sequence files (*.json)\n"


def test_check_corrupt_jpeg(synth, tmp_path):
    out, _ = synth
    root = tmp_path / "copy"
    shutil.copytree(out, root)
    bad = root / "images/train/000001_mpii_train/000003.jpg"
    bad.write_bytes(b"garbage")
    result = runner.invoke(app, ["data", "check", "--root", str(root), "--json", "--quiet"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert not report["ok"] and report["errors"] == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        f"Error: {root}: 1 error(s) in the dataset; first: {bad}: cannot read image (corrupt or not an image: "
    )
