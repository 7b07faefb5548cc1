"""The train state of a ``last.pt`` (epoch, optimizer, scheduler, RNG, configs): written, and validated
before a resumed run trains or writes anything.

Every problem is one :class:`CheckpointError` (``<file>: field 'train_state.<name>': ...``); a run log
that cannot be read is one :class:`InputError`.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from famicli.config import DataConfig, LossConfig, ModelConfig, TrainConfig, config_from_dict
from famicli.errors import CheckpointError, ConfigError, InputError
from famicli.models.checkpoint import FORMAT, read_checkpoint, verified_parts

FIELDS = ("epoch", "optimizer", "scheduler", "rng", "configs")  # a train_state's fields, all required
_ADAM_STATE = ("step", "exp_avg", "exp_avg_sq")  # per-parameter tensors of Adam


@dataclass(frozen=True)
class ResumeState:
    """A validated training checkpoint."""

    path: Path  # the last.pt it was read from
    model_cfg: ModelConfig
    state_dict: dict  # the model's weights (sha256 verified)
    epoch: int  # epochs done
    optimizer: dict  # Adam's state_dict (checked against the model in load_optimizer)
    scheduler: dict  # MultiStepLR's state_dict, milestones as a Counter
    rng: dict  # torch, numpy and python RNG states (see get_rng)
    data_cfg: DataConfig
    loss_cfg: LossConfig
    train_cfg: TrainConfig  # epochs = the run's total, extended by read_resume(epochs=...)


def read_resume(path: str | Path, epochs: int | None = None) -> ResumeState:
    """Read and validate the training checkpoint ``path``.

    ``epochs`` extends the run: it becomes the run's new total, which must exceed the epochs done (the LR
    schedule continues where it was: its milestones are kept). Without it, a run that has done all its
    epochs is refused, since resuming it would train nothing.

    Raises:
        CheckpointError: unreadable file, wrong sha256, or any field of the config or train state missing,
            unknown, of the wrong type or out of range.
        ConfigError: ``epochs`` not above the epochs done, or a finished run without ``epochs``.
    """
    path = Path(path)
    obj = read_checkpoint(path)
    if "train_state" not in obj:
        raise CheckpointError(f"{path}: not a training checkpoint (no optimizer/scheduler state to resume)")
    if obj.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a famipose training checkpoint (field 'format' is {obj.get('format')!r})")
    model_cfg, state_dict = verified_parts(path, obj)
    ts = obj["train_state"]
    unknown = sorted(str(k) for k in set(ts) - set(FIELDS))
    if unknown:
        raise CheckpointError(f"{path}: unknown field 'train_state.{unknown[0]}' (fields: {', '.join(FIELDS)})")
    missing = [k for k in FIELDS if k not in ts]
    if missing:
        raise CheckpointError(f"{path}: field 'train_state.{missing[0]}' is missing")
    epoch = ts["epoch"]
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
        raise CheckpointError(f"{path}: field 'train_state.epoch': expected an integer >= 1, got {epoch!r:.60}")
    configs = ts["configs"]
    try:
        if sorted(configs) != ["data", "loss", "train"]:
            raise ConfigError(f"expected the fields data, loss, train, got {', '.join(map(str, configs)) or 'none'}")
        data_cfg = config_from_dict(DataConfig, configs["data"], "data.")
        loss_cfg = config_from_dict(LossConfig, configs["loss"], "loss.")
        train_cfg = config_from_dict(TrainConfig, configs["train"], "train.")
    except ConfigError as exc:
        raise CheckpointError(f"{path}: field 'train_state.configs': {exc}") from None
    scheduler = _scheduler(path, ts["scheduler"], epoch)
    _check_rng(path, ts["rng"])
    if not isinstance(ts["optimizer"], dict):
        raise CheckpointError(f"{path}: field 'train_state.optimizer' is a {type(ts['optimizer']).__name__}")
    if epochs is not None:
        if epochs <= epoch:
            raise ConfigError(
                f"--epochs {epochs}: the run in {path} has done {epoch} epochs already; "
                f"pass more than {epoch} to extend it"
            )
        train_cfg = replace(train_cfg, epochs=epochs)
    elif epoch >= train_cfg.epochs:
        raise ConfigError(
            f"{path}: the run has done all its {train_cfg.epochs} epochs; pass --epochs N (N > {epoch}) to extend it"
        )
    return ResumeState(
        path, model_cfg, state_dict, epoch, ts["optimizer"], scheduler, ts["rng"], data_cfg, loss_cfg, train_cfg
    )


def load_optimizer(resume: ResumeState, optimizer: torch.optim.Optimizer) -> None:
    """Load the saved Adam state into ``optimizer`` after checking it against the optimizer's parameters
    (groups, parameter indices, and the shape of every state tensor)."""
    where = f"{resume.path}: field 'train_state.optimizer'"
    saved = resume.optimizer
    groups, state = saved.get("param_groups"), saved.get("state")
    own = optimizer.param_groups
    if not isinstance(groups, list) or not isinstance(state, dict) or sorted(saved) != ["param_groups", "state"]:
        raise CheckpointError(f"{where}: expected the fields param_groups (a list) and state (a mapping)")
    if len(groups) != len(own) or not all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups):
        raise CheckpointError(f"{where}: expected {len(own)} parameter group(s) with 'params' lists")
    params = {}
    for group, mine in zip(groups, own, strict=True):
        if len(group["params"]) != len(mine["params"]):
            raise CheckpointError(
                f"{where}: a parameter group holds {len(group['params'])} parameters, the model trains "
                f"{len(mine['params'])}"
            )
        for k in ("lr", "betas", "eps", "weight_decay"):
            if k not in group:
                raise CheckpointError(f"{where}: parameter group without {k!r}")
        params |= dict(zip(group["params"], mine["params"], strict=True))
    for index, entry in state.items():
        if index not in params:
            raise CheckpointError(f"{where}: state for parameter {index!r}, which no group holds")
        if not isinstance(entry, dict) or sorted(entry) != sorted(_ADAM_STATE):
            raise CheckpointError(f"{where}: state of parameter {index}: expected {', '.join(_ADAM_STATE)}")
        for k in _ADAM_STATE:
            if not isinstance(entry[k], torch.Tensor):
                raise CheckpointError(f"{where}: state of parameter {index}: {k!r} is not a tensor")
        for k in ("exp_avg", "exp_avg_sq"):
            if entry[k].shape != params[index].shape:
                raise CheckpointError(
                    f"{where}: state of parameter {index}: {k!r} has shape {tuple(entry[k].shape)}, "
                    f"the parameter {tuple(params[index].shape)}"
                )
    try:
        optimizer.load_state_dict(saved)
    except (ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{where}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def _scheduler(path: Path, saved, epoch: int) -> dict:
    where = f"{path}: field 'train_state.scheduler'"
    if not isinstance(saved, dict):
        raise CheckpointError(f"{where} is a {type(saved).__name__}, not a mapping")
    milestones, last = saved.get("milestones"), saved.get("last_epoch")
    ok = isinstance(milestones, dict) and all(
        isinstance(k, int) and isinstance(v, int) and not isinstance(v, bool) and v > 0 for k, v in milestones.items()
    )
    if not ok:
        raise CheckpointError(f"{where}: 'milestones' is not a mapping of epochs to counts")
    if last != epoch:
        raise CheckpointError(f"{where}: 'last_epoch' is {last!r:.60}, the checkpoint's epoch {epoch}")
    if not isinstance(saved.get("gamma"), (int, float)) or not isinstance(saved.get("base_lrs"), list):
        raise CheckpointError(f"{where}: 'gamma' or 'base_lrs' is missing or of the wrong type")
    return dict(saved) | {"milestones": Counter(milestones)}


def scheduler_state(scheduler) -> dict:
    """MultiStepLR's state with plain-int milestones (torch.load(weights_only=True) refuses a Counter)."""
    state = dict(scheduler.state_dict())
    state["milestones"] = {int(k): int(v) for k, v in state["milestones"].items()}
    return state


def get_rng() -> dict:
    """torch, numpy and python global RNG states as tensors and plain data."""
    keys, pos, has_gauss, cached = np.random.get_state()[1:]
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
    }


def set_rng(rng: dict) -> None:
    """Restore the states of :func:`get_rng` (checked by :func:`read_resume`)."""
    torch.set_rng_state(rng["torch"])
    n = rng["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    random.setstate((rng["python_version"], tuple(rng["python"]), None))


def _check_rng(path: Path, rng) -> None:
    """Set the saved states, then put the current ones back: whatever the RNGs refuse is reported."""
    where = f"{path}: field 'train_state.rng'"
    if not isinstance(rng, dict) or sorted(rng) != ["numpy", "python", "python_version", "torch"]:
        raise CheckpointError(f"{where}: expected the fields numpy, python, python_version, torch")
    n = rng["numpy"]
    if not isinstance(n, dict) or not isinstance(n.get("keys"), torch.Tensor) or n["keys"].shape != (624,):
        raise CheckpointError(f"{where}: 'numpy' is not an MT19937 state (keys: 624 integers, pos, has_gauss, cached)")
    current = get_rng()
    try:
        set_rng(rng)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError, OverflowError) as exc:
        detail = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{where}: not a valid RNG state ({detail})") from None
    finally:
        set_rng(current)


def read_log(log_path: Path, epoch: int) -> list[str]:
    """The lines of ``train_log.jsonl`` up to ``epoch`` (what an interrupted epoch logged after the
    checkpoint is dropped: the resumed run logs it again).

    Raises:
        InputError: a line that is not a JSON object with an integer 'epoch'.
    """
    kept = []
    for number, line in enumerate(log_path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{log_path}: line {number} is not JSON ({exc.msg}); fix or delete the file to resume"
            ) from None
        if not isinstance(record, dict) or not isinstance(record.get("epoch", 0), int):
            raise InputError(f"{log_path}: line {number} is not a record with an integer 'epoch'")
        if record.get("epoch", 0) <= epoch:
            kept.append(line)
    return kept
