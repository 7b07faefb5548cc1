"""``famipose profile``: JSON and table output, CSV, exit codes and error lines."""

from __future__ import annotations

import csv
import inspect
import json
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

import famicli.profiling.profiler
from famicli.cli.app import app
from famicli.cli.profile import profile_command
from famicli.profiling.profiler import ProfileConfig

runner = CliRunner()
TINY = ["profile", "--variant", "tiny", "--device", "cpu", "--warmup", "0", "--iters", "2"]


@pytest.fixture(autouse=True)
def short_matmul_probe(monkeypatch):
    probe = famicli.profiling.profiler.matmul_peak
    monkeypatch.setattr(
        famicli.profiling.profiler, "matmul_peak", lambda device, dtype, seconds: probe(device, dtype, 0.02)
    )


def test_json_and_csv(tmp_path):
    out = tmp_path / "profile.csv"
    result = runner.invoke(app, [*TINY, "--batch-size", "1,2", "--json", "--csv", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"model", "device", "params", "flops", "latency", "matmul_peak", "options", "provenance"}
    assert report["model"]["variant"] == "tiny" and report["params"]["total"] == 846_492
    assert [e["batch"] for e in report["latency"]] == [1, 2]
    assert report["flops"]["deformable"]["flops"] > 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["batch"], r["model"]) for r in rows] == [
        ("1", "famipose"),
        ("1", "backbone"),
        ("2", "famipose"),
        ("2", "backbone"),
    ]
    assert float(rows[0]["p50_ms_per_key_frame"]) > 0


def test_table():
    result = runner.invoke(app, TINY)
    assert result.exit_code == 0, result.output
    for text in (
        "local_calibration",
        "deformable convs",
        "846,492",
        "Latency",
        "famipose",
        "backbone",
        "matmul peak fp32",
    ):
        assert text in result.stdout


def test_iters_zero_prints_flops_only():
    result = runner.invoke(app, ["profile", "--variant", "tiny", "--iters", "0", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["latency"] == [] and report["flops"]["per_key_frame"]["gflops"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_gpu_without_cuda_exits_1_with_one_error_line():
    result = runner.invoke(app, ["profile", "--variant", "tiny", "--gpu"])
    assert result.exit_code == 1
    assert result.stderr == f"Error: device 'cuda' requested but CUDA is not available (torch {torch.__version__})\n"


def test_usage_errors_exit_2():
    assert runner.invoke(app, ["profile", "--gpu", "--device", "cpu"]).exit_code == 2
    assert runner.invoke(app, ["profile", "--batch-size", "1,x"]).exit_code == 2
    assert runner.invoke(app, ["profile", "--iters", "-1"]).exit_code == 1  # out of range: one Error: line
    # bad choices are usage errors, naming the choices
    result = runner.invoke(app, [*TINY, "--dtype", "fp32,fp64"])
    assert result.exit_code == 2 and "'fp64' is not one of fp32, bf16, fp16" in result.output
    result = runner.invoke(app, ["profile", "--variant", "w33"])
    assert result.exit_code == 2 and "'w33' is not one of" in result.output


def test_batch_size_out_of_range_is_one_error_line():
    result = runner.invoke(app, [*TINY, "--batch-size", "0"])
    assert result.exit_code == 1 and "Traceback" not in result.output and result.stderr.startswith("Error: ")
    assert "outside 1..4096" in result.output


def test_cli_defaults_are_the_library_defaults():
    params = inspect.signature(profile_command).parameters
    lib = ProfileConfig()
    assert params["warmup"].default == lib.warmup
    assert params["iters"].default == lib.iters
    assert params["device"].default == lib.device
    assert params["batch_size"].default == ",".join(map(str, lib.batch_sizes))
    assert params["dtype"].default == ",".join(lib.dtypes)


def test_profile_help_does_not_import_torch():
    code = (
        "import sys\nfrom famicli.cli.app import app\n"
        "try:\n    app(['profile', '--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "print('HEAVY', sorted(m for m in ('torch', 'torchvision') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out and "--channels-last" in out
