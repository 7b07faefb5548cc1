"""No traceback reaches a user: the guard in ``famicli.cli.app``, option ranges, ``--out`` checks, temp
names, the ``--out`` lock (docs/errors.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import famicli
from famicli.cli.app import app
from famicli.io import LOCK_NAME, atomic_path, check_writable, out_lock

runner = CliRunner()
DEMO = Path(famicli.__file__).resolve().parent.parent / "assets" / "demo.mp4"


def _fail(result, code: int = 1) -> str:
    """The stderr of a failed run, checked to be short and without a traceback."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    return result.stderr


# ------------------------------------------------------------------------------------------- the guard
def _raise(exc):
    def boom(*args, **kwargs):
        raise exc

    return boom


def test_unexpected_exception_is_one_line_internal_error(monkeypatch):
    monkeypatch.setattr(famicli, "profile_model", _raise(RuntimeError("boom\nsecond line")))
    monkeypatch.delenv("FAMIPOSE_DEBUG", raising=False)
    err = _fail(runner.invoke(app, ["profile", "--iters", "0", "-q"]))
    assert err == "Error: internal error (RuntimeError: boom second line); please report it\n"


def test_famipose_debug_shows_the_exception(monkeypatch):
    monkeypatch.setattr(famicli, "profile_model", _raise(RuntimeError("boom")))
    monkeypatch.setenv("FAMIPOSE_DEBUG", "1")
    result = runner.invoke(app, ["profile", "--iters", "0", "-q"])
    assert isinstance(result.exception, RuntimeError)


def test_os_error_names_the_path(monkeypatch):
    monkeypatch.setattr(famicli, "profile_model", _raise(OSError(28, "No space left on device", "x.csv")))
    err = _fail(runner.invoke(app, ["profile", "--iters", "0", "-q"]))
    assert err == "Error: x.csv: No space left on device\n"


def test_keyboard_interrupt_exits_130(monkeypatch):
    monkeypatch.setattr(famicli, "profile_model", _raise(KeyboardInterrupt()))
    err = _fail(runner.invoke(app, ["profile", "--iters", "0", "-q"]), 130)
    assert err == "Error: interrupted\n"


def test_sigterm_is_an_interrupt(tmp_path):
    code = (
        "import os, signal, sys, time\n"
        "import famicli\n"
        "from famicli.cli.app import main\n"
        "def run(*a, **k):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(30)\n"
        "famicli.profile_model = run\n"
        "sys.argv = ['famipose', 'profile', '--iters', '0', '-q']\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "Error: interrupted\n"


# ----------------------------------------------------------------------------------------- option ranges
@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--batch-size", "0"], "--batch-size"),
        (["train", "--batch-size", "-1"], "--batch-size"),
        (["train", "--lr", "-1"], "must be > 0"),
        (["train", "--lr", "nan"], "not a finite number"),
        (["train", "--workers", "-1"], "--workers"),
        (["train", "--epochs", "0"], "--epochs"),
        (["train", "--epochs", "-1"], "--epochs"),
        (["train", "--alpha", "inf"], "not a finite number"),
        (["eval", "--weights", "x.pt", "--batch-size", "0"], "--batch-size"),
        (["predict", "x.mp4", "--fps", "inf"], "not a finite number"),
        (["predict", "x.mp4", "--fps", "nan"], "not a finite number"),
        (["predict", "x.mp4", "--fps", "0"], "must be > 0"),
        (["predict", "x.mp4", "--box-threshold", "nan"], "not a finite number"),
        (["predict", "x.mp4", "--box-threshold", "1.5"], "must be <= 1"),
        (["predict", "x.mp4", "--detect-every", "0"], "--detect-every"),
        (["predict", "x.mp4", "--chunk", "0"], "--chunk"),
        (["profile", "--batch-size", "100000"], "outside 1..4096"),
        (["profile", "--batch-size", "0"], "outside 1..4096"),
        (["data", "synth", "--out", "x", "--videos", "0"], "--videos"),
        (["viz", "offsets", "--frame", "-1"], "--frame"),
    ],
)
def test_out_of_range_options_are_one_error_line(args, message):
    result = runner.invoke(app, args)
    err = _fail(result, 1)
    assert err.count("\n") == 1 and err.startswith("Error: Invalid value for '--"), err
    assert message in err


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "x.mp4", "--chunk", "eight"],  # a word where a number goes
        ["predict", "x.mp4", "--mode", "slow"],  # a bad choice
        ["train", "--batch", "4"],  # an unknown option
    ],
)
def test_usage_errors_stay_typers(args):
    _fail(runner.invoke(app, args), 2)


# ------------------------------------------------------------------------------------------ output paths
def _commands(out: Path, kind: str) -> list[list[str]]:
    if kind == "folder":
        return [
            ["predict", str(DEMO), "--out", str(out)],
            ["train", "--out", str(out)],
            ["data", "synth", "--out", str(out)],
            ["eval", "--weights", "x.pt", "--pred-out", str(out)],
        ]
    return [
        ["eval", "--pred", "p", "--gt", "g", "--out", str(out)],
        ["viz", "offsets", "--out", str(out) + ".png"],
        ["profile", "--iters", "0", "--csv", str(out) + ".csv"],
    ]


def test_out_that_is_a_file(tmp_path):
    f = tmp_path / "f"
    f.write_text("")
    for args in _commands(f, "folder"):
        assert _fail(runner.invoke(app, args)) == f"Error: {f}: is a file, not a folder; choose another --out\n"
    d = tmp_path / "d"
    d.mkdir()
    err = _fail(runner.invoke(app, ["eval", "--pred", "p", "--out", str(d)]))
    assert err == f"Error: {d}: is a folder, not a file; choose another --out\n"


def test_out_under_a_file(tmp_path):
    f = tmp_path / "f"
    f.write_text("")
    for kind in ("folder", "file"):
        for args in _commands(f / "sub" / "o", kind):
            err = _fail(runner.invoke(app, args))
            assert err.startswith(f"Error: {f / 'sub' / 'o'}") and f"lies under a file ({f})" in err, err
    assert sorted(tmp_path.iterdir()) == [f]


def test_out_name_too_long(tmp_path):
    long = tmp_path / ("a" * 300)
    for kind in ("folder", "file"):
        for args in _commands(long, kind):
            err = _fail(runner.invoke(app, args))
            assert err.startswith(f"Error: {long}") and "file name too long" in err, err
    assert list(tmp_path.iterdir()) == []


def test_out_in_a_read_only_folder(tmp_path, monkeypatch):
    monkeypatch.setattr("famicli.io.os.access", lambda path, mode: Path(path) != tmp_path)
    for kind in ("folder", "file"):
        for args in _commands(tmp_path / "o", kind):
            err = _fail(runner.invoke(app, args))
            assert f"permission denied (cannot create it in {tmp_path})" in err, err
    assert list(tmp_path.iterdir()) == []


def test_check_writable_accepts_usual_paths(tmp_path):
    assert check_writable(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert check_writable(tmp_path, "folder") == tmp_path
    assert check_writable(tmp_path / "r.json", "file") == tmp_path / "r.json"
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ temp names
def test_atomic_path_with_the_longest_name(tmp_path):
    target = tmp_path / ("n" * 255)
    with atomic_path(target) as tmp:
        assert len(tmp.name) < 255
        tmp.write_text("x")
    assert target.read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_created_files_and_folders_follow_the_umask(tmp_path):
    """SynthTrack is built in a ``mkdtemp`` folder (drwx------) and renamed: it gets the umask's modes."""
    from famicli.data.synthtrack.generate import SynthConfig, generate

    old = os.umask(0o022)
    try:
        generate(tmp_path / "s", SynthConfig(videos=1, frames=2, size=(64, 48)))
        with atomic_path(tmp_path / "f.json") as part:
            part.write_text("{}")
    finally:
        os.umask(old)
    paths = [tmp_path / "f.json", tmp_path / "s", *(tmp_path / "s").rglob("*")]
    modes = {p.relative_to(tmp_path).as_posix(): oct(p.stat().st_mode & 0o777) for p in paths}
    assert all(m == (oct(0o755) if (tmp_path / p).is_dir() else oct(0o644)) for p, m in modes.items()), modes


# ---------------------------------------------------------------------------------------------- the lock
def test_second_run_in_the_same_out_is_refused(tmp_path):
    out = tmp_path / "out"
    with out_lock(out):
        assert (out / LOCK_NAME).read_text().strip() == str(os.getpid())
        err = _fail(runner.invoke(app, ["predict", str(DEMO), "--out", str(out), "-q"]))
        assert err == (
            f"Error: {out}: another famipose run is writing here (pid {os.getpid()}); "
            "wait for it to end or choose another --out\n"
        )
        err = _fail(runner.invoke(app, ["train", "--out", str(out), "-q", "--root", str(tmp_path / "none")]))
        assert "another famipose run is writing here" in err
    assert not out.exists()  # the lock file is removed, and the folder the lock created


def test_lock_is_released_on_error(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RuntimeError), out_lock(out):
        raise RuntimeError
    assert list(out.iterdir()) == []
    with out_lock(out):
        pass


def test_train_failure_leaves_nothing_in_out(tmp_path):
    out = tmp_path / "run"
    err = _fail(runner.invoke(app, ["train", "--out", str(out), "--root", str(tmp_path / "none"), "-q"]))
    assert err.startswith("Error: ")
    assert not out.exists()


# ------------------------------------------------------------------------------------------ demo note
def test_no_demo_note_before_a_failure(tmp_path):
    f = tmp_path / "f"
    f.write_text("")
    err = _fail(runner.invoke(app, ["predict", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o")]))
    assert err == f"Error: {tmp_path / 'missing.mp4'}: no such file or folder\n"
    err = _fail(runner.invoke(app, ["predict", str(tmp_path / "missing.mp4"), "--out", str(f)]))
    assert "Note" not in err


def test_no_demo_note_with_quiet(tmp_path):
    empty = tmp_path / "real_people.mp4"
    empty.write_bytes(b"")
    err = _fail(runner.invoke(app, ["predict", str(empty), "--out", str(tmp_path / "o"), "-q"]))
    assert err == f"Error: {empty}: empty file (0 bytes), not a video\n"
    assert not (tmp_path / "o").exists()


def test_notes_wait_for_the_first_frame(tmp_path):
    """A bad checkpoint fails before any note: the boxes-next-to-the-video and demo notes print only once a
    frame is done, so the one line on stderr is the Error: line (issue 16)."""
    bad = tmp_path / "random.pt"
    bad.write_bytes(os.urandom(4096))
    video = tmp_path / "real_people.mp4"
    video.write_bytes(DEMO.read_bytes())
    (tmp_path / "real_people_boxes.json").write_bytes((DEMO.parent / "demo_boxes.json").read_bytes())
    for weights in (["-w", str(bad)], []):
        if not weights:  # demo weights on a video that is not SynthTrack's: a truncated copy fails to decode
            video.write_bytes(DEMO.read_bytes()[:4096])
        err = _fail(runner.invoke(app, ["predict", str(video), *weights, "--out", str(tmp_path / "o")]))
        assert err.count("\n") == 1 and err.startswith("Error: "), err
    assert not (tmp_path / "o").exists()


# -------------------------------------------------------------------------------------------- JSON out
def test_every_json_written_or_printed_refuses_nan():
    import json
    import math

    import numpy as np

    from famicli.io import dumps, jsonable

    with pytest.raises(ValueError):
        dumps({"ap": float("nan")})
    with pytest.raises(ValueError):
        dumps([float("inf")])
    data = {"ap": np.float32("nan"), 1: [np.float64(2.5), np.int64(3), float("-inf"), True, None, "x"]}
    clean = jsonable(data)
    assert clean == {"ap": None, "1": [2.5, 3, None, True, None, "x"]}
    assert type(clean["1"][1]) is int and type(clean["1"][0]) is float
    assert json.loads(dumps(clean), parse_constant=lambda c: math.nan) == clean


def test_cli_modules_print_json_through_io_dumps():
    """``--json`` output goes through ``famicli.io.dumps`` (allow_nan=False), never bare ``json.dumps``."""
    cli = Path(famicli.__file__).parent / "cli"
    offenders = [p.name for p in cli.glob("*.py") if "json.dumps(" in p.read_text()]
    assert offenders == []
