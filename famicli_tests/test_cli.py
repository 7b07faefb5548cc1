"""The root command: --help without torch, --version, and ``famipose info``."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

import famicli
from famicli.cli.app import app

runner = CliRunner()


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from famicli.cli.app import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "heavy = sorted(m for m in ('torch', 'cv2', 'matplotlib') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
    assert "info" in out and "eval" in out


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"famipose {famicli.__version__}"


def test_info_json_lists_variants_with_parameter_counts():
    result = runner.invoke(app, ["info", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["variants"]["w48"]["parameters"]["total"] == 64_655_204
    assert set(report["variants"]) == {"w48", "w32", "tiny"}
    assert set(report["variants"]["tiny"]["parameters"]) == {
        "backbone",
        "global_transformation",
        "local_calibration",
        "aggregation",
        "head",
        "total",
    }


def test_info_table():
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0
    assert "64,655,204" in result.stdout and "local_calibration" in result.stdout
