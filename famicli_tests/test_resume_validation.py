"""``train --resume`` and ``load_model`` on tampered or malformed checkpoints: one line naming the file and
the field, raised before anything is trained or written; ``--epochs`` extends a resumed run."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from famicli.cli.app import app
from famicli.config import DataConfig, LossConfig, TrainConfig, get_variant
from famicli.engine import trainer as engine
from famicli.errors import CheckpointError, ConfigError, InputError
from famicli.models.checkpoint import load_model, read_checkpoint, state_dict_sha256

MODEL = get_variant("tiny", input_size=(96, 64))
DATA = DataConfig(sigma=1.0, aspect_ratio=64 / 96)
TRAIN = TrainConfig(
    epochs=1, batch_size=4, lr=1e-3, lr_steps=(1,), freeze_backbone=False, workers=0, seed=7, validate=False
)


@pytest.fixture(scope="module")
def finished(synthtrack, tmp_path_factory) -> Path:
    """A finished one-epoch run (5 steps of the tiny model on the session's SynthTrack set)."""
    out = tmp_path_factory.mktemp("resume") / "run"
    engine.train(synthtrack, out, MODEL, DATA, LossConfig(), TRAIN, device="cpu")
    return out


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def _resign(obj: dict) -> None:
    obj["sha256"] = state_dict_sha256(obj["state_dict"])


def _first_param(obj: dict) -> str:
    return next(iter(obj["state_dict"]))


def _bad_exp_avg(obj):
    entry = obj["train_state"]["optimizer"]["state"][0]
    entry["exp_avg"] = torch.zeros(3)


# (name, change to the checkpoint dict, exception, message after "<path>: ")
CASES = [
    (
        "weights_changed_not_resigned",
        lambda o: o["state_dict"][_first_param(o)].add_(1),
        CheckpointError,
        "sha256 of the weights does not match the one recorded (corrupt file?)",
    ),
    ("no_config", lambda o: o.pop("config"), CheckpointError, "famipose checkpoint without a 'config'"),
    (
        "input_size_abc",
        lambda o: o["config"].update(input_size="abc"),
        CheckpointError,
        "unreadable model config: field 'input_size': expected 2 positive multiples of 32, got 'abc'",
    ),
    (
        "num_joints_negative",
        lambda o: o["config"].update(num_joints=-3),
        CheckpointError,
        "unreadable model config: field 'num_joints': expected an integer > 0, got -3",
    ),
    (
        "hrnet_widths_short",
        lambda o: o["config"]["hrnet"].update(widths=[16, 32]),
        CheckpointError,
        "unreadable model config: field 'hrnet.widths': expected 4 positive integers, got [16, 32]",
    ),
    (
        "train_state_tensor",
        lambda o: o.update(train_state=torch.zeros(2)),
        CheckpointError,
        "field 'train_state' is a Tensor, not a mapping",
    ),
    (
        "configs_without_loss",
        lambda o: o["train_state"]["configs"].pop("loss"),
        CheckpointError,
        "field 'train_state.configs': expected the fields data, loss, train, got data, train",
    ),
    (
        "configs_a_list",
        lambda o: o["train_state"].update(configs=[1]),
        CheckpointError,
        "field 'train_state.configs' is a list, not a mapping",
    ),
    (
        "configs_epochs_a_string",
        lambda o: o["train_state"]["configs"]["train"].update(epochs="3"),
        CheckpointError,
        "field 'train_state.configs': field 'train.epochs': expected an integer > 0, got '3'",
    ),
    (
        "configs_unknown_padding",
        lambda o: o["train_state"]["configs"]["data"].update(padding="mirror"),
        CheckpointError,
        "field 'train_state.configs': field 'data.padding': expected one of: official, clamp, got 'mirror'",
    ),
    (
        "epoch_a_string",
        lambda o: o["train_state"].update(epoch="1"),
        CheckpointError,
        "field 'train_state.epoch': expected an integer >= 1, got '1'",
    ),
    ("no_rng", lambda o: o["train_state"].pop("rng"), CheckpointError, "field 'train_state.rng' is missing"),
    (
        "rng_torch_truncated",
        lambda o: o["train_state"]["rng"].update(torch=torch.zeros(7, dtype=torch.uint8)),
        CheckpointError,
        None,  # torch's own reason follows "not a valid RNG state"
    ),
    (
        "unknown_field",
        lambda o: o["train_state"].update(extra=1),
        CheckpointError,
        "unknown field 'train_state.extra' (fields: epoch, optimizer, scheduler, rng, configs)",
    ),
    (
        "scheduler_last_epoch",
        lambda o: o["train_state"]["scheduler"].update(last_epoch=5),
        CheckpointError,
        "field 'train_state.scheduler': 'last_epoch' is 5, the checkpoint's epoch 1",
    ),
    (
        "optimizer_a_string",
        lambda o: o["train_state"].update(optimizer="adam"),
        CheckpointError,
        "field 'train_state.optimizer' is a str",
    ),
    (
        "optimizer_state_shape",
        _bad_exp_avg,
        CheckpointError,
        None,  # names the parameter and both shapes (checked below)
    ),
    (
        "optimizer_missing_group",
        lambda o: o["train_state"]["optimizer"].update(param_groups=[]),
        CheckpointError,
        "field 'train_state.optimizer': expected 1 parameter group(s) with 'params' lists",
    ),
]


def _resign_weights_shape(o):
    key = _first_param(o)
    o["state_dict"][key] = torch.zeros(1, *o["state_dict"][key].shape[1:])
    _resign(o)


CASES.append(("weights_wrong_shape_resigned", _resign_weights_shape, CheckpointError, None))


@pytest.mark.parametrize("name, change, error, message", CASES, ids=[c[0] for c in CASES])
def test_malformed_resume_is_one_error_before_anything_is_written(
    finished, synthtrack, tmp_path, name, change, error, message
):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    obj = read_checkpoint(out / "last.pt")
    change(obj)
    torch.save(obj, out / "last.pt")
    before = _snapshot(out)
    with pytest.raises(error) as info:
        engine.train(synthtrack, out, MODEL, DATA, LossConfig(), TRAIN, resume=out / "last.pt", device="cpu", epochs=2)
    text = str(info.value)
    assert "\n" not in text
    if message is not None:
        assert text == f"{out / 'last.pt'}: {message}"
    elif name == "rng_torch_truncated":
        assert text.startswith(f"{out / 'last.pt'}: field 'train_state.rng': not a valid RNG state (")
    elif name == "optimizer_state_shape":
        assert text.startswith(f"{out / 'last.pt'}: field 'train_state.optimizer': state of parameter 0: 'exp_avg'")
        assert "has shape (3,)" in text
    else:
        assert text.startswith(f"{out / 'last.pt'}: does not fit the model: shape mismatch: ")
    assert _snapshot(out) == before  # nothing trained, nothing written


@pytest.mark.parametrize(
    "line, message",
    [("{not json", "line 3 is not JSON (Expecting property name enclosed in double quotes)"), ("[1]", None)],
    ids=["not_json", "not_a_record"],
)
def test_corrupt_train_log_is_one_error_before_anything_is_written(finished, synthtrack, tmp_path, line, message):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    lines = (out / "train_log.jsonl").read_text().splitlines()
    (out / "train_log.jsonl").write_text("\n".join([*lines[:2], line, *lines[2:]]) + "\n")
    before = _snapshot(out)
    with pytest.raises(InputError) as info:
        engine.train(synthtrack, out, MODEL, DATA, LossConfig(), TRAIN, resume=out / "last.pt", device="cpu", epochs=2)
    log = out / "train_log.jsonl"
    if message:
        assert str(info.value) == f"{log}: {message}; fix or delete the file to resume"
    else:
        assert str(info.value) == f"{log}: line 3 is not a record with an integer 'epoch'"
    assert _snapshot(out) == before


@pytest.mark.parametrize(
    "content, suffix", [(b"\x01" + os.urandom(255), ""), (b'{"a": 1}', " (it looks like JSON or text)")]
)
def test_not_a_torch_file_is_named_as_such(tmp_path, content, suffix):
    path = tmp_path / "w.pt"
    path.write_bytes(content)
    expected = f"{path}: not a PyTorch checkpoint: neither a zip archive (torch.save) nor a pickle file{suffix}"
    for reader in (read_checkpoint, load_model):
        with pytest.raises(CheckpointError) as info:
            reader(path)
        assert str(info.value) == expected


def test_epochs_extend_a_finished_run_and_refuse_fewer(finished, synthtrack, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    before = _snapshot(out)
    last = out / "last.pt"
    with pytest.raises(ConfigError) as info:
        engine.train(synthtrack, out, MODEL, DATA, LossConfig(), TRAIN, resume=last, device="cpu")
    assert str(info.value) == f"{last}: the run has done all its 1 epochs; pass --epochs N (N > 1) to extend it"
    with pytest.raises(ConfigError) as info:
        engine.train(synthtrack, out, MODEL, DATA, LossConfig(), TRAIN, resume=last, device="cpu", epochs=1)
    assert str(info.value) == f"--epochs 1: the run in {last} has done 1 epochs already; pass more than 1 to extend it"
    assert _snapshot(out) == before
    result = engine.train(synthtrack, out, MODEL, DATA, LossConfig(), TRAIN, resume=last, device="cpu", epochs=2)
    assert [e["epoch"] for e in result.epochs] == [2]
    ts = read_checkpoint(last)["train_state"]
    assert ts["epoch"] == 2 and ts["configs"]["train"]["epochs"] == 2
    # the schedule continued: the LR dropped at milestone 1 stays dropped in epoch 2
    epochs = [r for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines()) if "step" in r]
    assert {r["epoch"] for r in epochs} == {1, 2}
    lrs = [r["lr"] for r in epochs if r["epoch"] == 2]
    assert lrs == pytest.approx([1e-4] * len(lrs))


def test_cli_tampered_resume_prints_one_error_line(finished, synthtrack, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    obj = read_checkpoint(out / "last.pt")
    obj["state_dict"][_first_param(obj)].add_(1)
    torch.save(obj, out / "last.pt")
    before = _snapshot(out)
    result = CliRunner().invoke(
        app, ["train", "--quiet", "--root", str(synthtrack), "--resume", str(out / "last.pt"), "--workers", "0"]
    )
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"Error: {out / 'last.pt'}: sha256 of the weights does not match the one recorded (corrupt file?)\n"
    )
    assert _snapshot(out) == before


def test_cli_epochs_with_resume_extends_the_run_or_is_refused(finished, synthtrack, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    last = out / "last.pt"
    args = ["train", "--quiet", "--root", str(synthtrack), "--resume", str(last), "--workers", "0"]
    before = _snapshot(out)
    refused = CliRunner().invoke(app, [*args, "--epochs", "1"])
    assert refused.exit_code == 1, refused.output
    assert refused.stderr == (
        f"Error: --epochs 1: the run in {last} has done 1 epochs already; pass more than 1 to extend it\n"
    )
    assert _snapshot(out) == before
    result = CliRunner().invoke(app, [*args, "--epochs", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert [e["epoch"] for e in json.loads(result.stdout)["epochs"]] == [2]
    assert read_checkpoint(last)["train_state"]["epoch"] == 2


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda o: o["config"].update(input_size="abc"), "unreadable model config: field 'input_size': "),
        (lambda o: o["config"].update(mi_temperature=True), "unreadable model config: field 'mi_temperature': "),
        (lambda o: o.update(train_state=torch.zeros(1)), "field 'train_state' is a Tensor, not a mapping"),
        (lambda o: o.update(configs="x"), "field 'configs' is a str, not a mapping"),
    ],
    ids=["input_size", "temperature_bool", "train_state_tensor", "configs_str"],
)
def test_load_model_and_readers_refuse_malformed_checkpoints(tiny_checkpoint, tmp_path, change, message):
    """What predict/eval/viz read (load_model, read_checkpoint) is validated as resume's checkpoint is."""
    obj = read_checkpoint(tiny_checkpoint)
    change(obj)
    torch.save(obj, tmp_path / "w.pt")
    with pytest.raises(CheckpointError) as info:
        load_model(tmp_path / "w.pt")
    assert str(info.value).startswith(f"{tmp_path / 'w.pt'}: {message}") and "\n" not in str(info.value)
