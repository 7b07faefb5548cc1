"""The training loop of ``famipose train``: objective, schedule, checkpoints, resume, DDP.

One process or many (``torchrun --nproc_per_node N -m famicli train ...``): each rank takes
``batch_size / N`` samples of every global batch (a ``DistributedSampler`` over one shared permutation,
so the global batches are the same as in one process), gradients are averaged by DDP, and rank 0 alone
writes checkpoints, logs and validation results.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from famicli.config import DataConfig, LossConfig, ModelConfig, TrainConfig
from famicli.engine import distributed
from famicli.engine.resume import ResumeState, get_rng, load_optimizer, read_log, read_resume, scheduler_state, set_rng
from famicli.errors import ConfigError, FamiposeError, TrainingError
from famicli.losses import FamiPoseCriterion, JointsMSELoss, total_loss
from famicli.models.checkpoint import load_model, load_strict, save_checkpoint
from famicli.models.famipose import FamiPose

log = logging.getLogger(__name__)

Progress = Callable[[dict], None]


@dataclass
class TrainResult:
    """What a training run produced."""

    out_dir: Path  # folder with last.pt, train_log.jsonl, run.json
    checkpoint: Path  # the final checkpoint (last.pt)
    epochs: list[dict] = field(default_factory=list)  # per epoch: mean loss terms, lr, validation


def train(
    root: str | Path,
    out_dir: str | Path,
    model_cfg: ModelConfig,
    data_cfg: DataConfig,
    loss_cfg: LossConfig,
    train_cfg: TrainConfig,
    backbone: str | Path | None = None,
    resume: str | Path | None = None,
    device: str = "auto",
    progress: Progress | None = None,
    epochs: int | None = None,
) -> TrainResult:
    """Train FAMI-Pose on the PoseTrack-format dataset at ``root`` (``train`` split; ``val`` validates).

    Args:
        root: dataset folder with ``annotations/train`` (and optionally ``annotations/val``).
        out_dir: where checkpoints (``last.pt``, atomic), ``train_log.jsonl`` and ``run.json`` go.
        model_cfg, data_cfg, loss_cfg, train_cfg: the run's configuration (ignored with ``resume``,
            which continues with the configuration saved in the checkpoint).
        backbone: pose-HRNet/DCPose/FAMI-Pose checkpoint initializing the backbone.
        resume: a ``last.pt`` written by this function: continues bit-exactly after its epoch. Every
            part is checked before anything is trained or written: the weights' sha256, the model
            config, the optimizer, scheduler and RNG states, the data/loss/train configs, and the run's
            ``train_log.jsonl``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        progress: called with event dicts (``{"event": "step"|"epoch", ...}``).
        epochs: the run's total epochs, replacing ``train_cfg.epochs``. With ``resume`` it extends the
            run (as mmpose and ultralytics do): it must exceed the epochs done, and the LR schedule
            continues with its saved milestones. A resumed run that has done all its epochs is refused
            without it (nothing would be trained).

    Raises:
        TrainingError: non-finite loss (with the step and the loss terms).
        ConfigError, CheckpointError, InputError: bad options, checkpoints or data (a resumed
            checkpoint's problem names the file and the field, e.g. ``train_state.optimizer``).
    """
    from famicli.runtime import resolve_device

    out_dir = Path(out_dir)
    state = None
    if resume is not None:
        state = read_resume(resume, epochs)
        model_cfg, data_cfg, loss_cfg, train_cfg = state.model_cfg, state.data_cfg, state.loss_cfg, state.train_cfg
        if (out_dir / "train_log.jsonl").exists():
            read_log(out_dir / "train_log.jsonl", state.epoch)  # a corrupt log stops the run before any write
    elif epochs is not None:
        train_cfg = replace(train_cfg, epochs=epochs)
    dev = resolve_device(device)
    info = distributed.setup(dev)
    if info.enabled and dev.type == "cuda":
        dev = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(dev)
    try:
        return _run(root, out_dir, model_cfg, data_cfg, loss_cfg, train_cfg, backbone, state, dev, info, progress)
    finally:
        distributed.teardown(info)


def _run(root, out_dir, model_cfg, data_cfg, loss_cfg, train_cfg, backbone, state, dev, info, progress):
    from famicli.data.posetrack import PoseTrackDataset

    if train_cfg.batch_size % info.world_size:
        raise ConfigError(f"batch size {train_cfg.batch_size} is not divisible by the {info.world_size} processes")
    if train_cfg.single_frame and train_cfg.freeze_backbone:
        raise ConfigError("--single-frame trains the backbone: it cannot be frozen (pass --no-freeze-backbone)")
    if state is None and backbone is None and train_cfg.freeze_backbone:
        raise ConfigError("a frozen backbone needs pretrained weights: pass --backbone CKPT or --no-freeze-backbone")
    # single-frame training reads key frames only
    window_cfg = replace(data_cfg, offsets=()) if train_cfg.single_frame else data_cfg
    dataset = PoseTrackDataset(
        root, "train", window_cfg, model_cfg.input_size, model_cfg.heatmap_size, train=True, seed=train_cfg.seed
    )
    _seed(train_cfg.seed, 0)
    model = _build(model_cfg, train_cfg, backbone, state)
    model.to(dev)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=train_cfg.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(train_cfg.lr_steps), train_cfg.lr_factor)
    start_epoch = 0
    if state is not None:
        load_optimizer(state, optimizer)
        scheduler.load_state_dict(state.scheduler)
        start_epoch = state.epoch
        set_rng(state.rng)
    if info.enabled and dev.type == "cuda":
        # one BatchNorm over the global batch, as in one process (SyncBatchNorm needs CUDA; on CPU
        # each process normalizes its share of the batch)
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    net = model.backbone if train_cfg.single_frame else model  # what the objective runs
    if info.enabled:
        net = DistributedDataParallel(
            net,
            device_ids=[dev.index] if dev.type == "cuda" else None,
        )
    sampler = DistributedSampler(
        dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=train_cfg.seed, drop_last=True
    )
    per_rank = train_cfg.batch_size // info.world_size
    loader = DataLoader(
        dataset,
        batch_size=per_rank,
        sampler=sampler,
        num_workers=train_cfg.workers,
        drop_last=True,
        pin_memory=dev.type == "cuda",
        persistent_workers=False,
    )
    if len(loader) == 0:
        raise ConfigError(f"{root}: {len(dataset)} training samples are fewer than one batch of {train_cfg.batch_size}")
    if train_cfg.single_frame:
        criterion = JointsMSELoss()
    else:
        criterion = FamiPoseCriterion(
            model.backbone.final_layer, model_cfg.mi_estimator, model_cfg.mi_temperature, mi=loss_cfg.alpha != 0
        )
    run = _RunFiles(out_dir, info.is_main, resume_epoch=start_epoch if state is not None else None)
    configs = {"data": asdict(data_cfg), "loss": asdict(loss_cfg), "train": asdict(train_cfg)}
    run.record_start(model_cfg, configs, info, dev, backbone)
    result = TrainResult(out_dir=out_dir, checkpoint=out_dir / "last.pt")
    try:
        loop = _Loop(net, model, loader, sampler, dataset, optimizer, scheduler, criterion, run, configs)
        _epochs(loop, result, start_epoch, root, data_cfg, loss_cfg, train_cfg, dev, info, progress)
    except BaseException:
        run.discard_if_empty()  # a run that never wrote a checkpoint leaves nothing behind
        raise
    return result


@dataclass
class _Loop:
    """What the epoch loop works with."""

    net: torch.nn.Module  # the model, DDP-wrapped under torchrun
    model: FamiPose  # the bare model (checkpoints, validation)
    loader: DataLoader
    sampler: DistributedSampler
    dataset: object  # PoseTrackDataset
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.MultiStepLR
    criterion: torch.nn.Module
    run: _RunFiles
    configs: dict  # data/loss/train configs as saved in checkpoints


def _epochs(
    loop: _Loop, result: TrainResult, start_epoch: int, root, data_cfg, loss_cfg, train_cfg, dev, info, progress
) -> None:
    net, model, loader, sampler, dataset = loop.net, loop.model, loop.loader, loop.sampler, loop.dataset
    optimizer, scheduler, criterion, run, configs = (
        loop.optimizer,
        loop.scheduler,
        loop.criterion,
        loop.run,
        loop.configs,
    )
    for epoch in range(start_epoch, train_cfg.epochs):
        _seed(train_cfg.seed, epoch + 1)
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        net.train()
        sums: dict[str, float] = {}
        t0 = time.perf_counter()
        for step, batch in enumerate(_batches(loader)):
            terms, loss = _step(net, batch, criterion, loss_cfg, train_cfg, dev)
            values = {k: v.item() for k, v in terms.items()} | {"loss": loss.item()}
            if not all(math.isfinite(v) for v in values.values()):
                raise TrainingError(
                    f"non-finite loss at epoch {epoch + 1} step {step + 1}: "
                    + ", ".join(f"{k}={v:.4g}" for k, v in values.items())
                    + f"; last good checkpoint: {run.last if run.last.exists() else 'none'}"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if train_cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
            optimizer.step()
            values = distributed.mean_across(values, info, dev)
            lr = optimizer.param_groups[0]["lr"]
            run.log({"epoch": epoch + 1, "step": step + 1, "lr": lr, **values})
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            if progress:
                progress(
                    {
                        "event": "step",
                        "epoch": epoch + 1,
                        "epochs": train_cfg.epochs,
                        "step": step + 1,
                        "steps": len(loader),
                        "lr": lr,
                        **values,
                    }
                )
        scheduler.step()
        summary = {"epoch": epoch + 1, "lr": lr, "seconds": time.perf_counter() - t0}
        summary |= {f"mean_{k}": v / len(loader) for k, v in sums.items()}
        if info.is_main:
            train_state = {
                "epoch": epoch + 1,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler_state(scheduler),
                "rng": get_rng(),
                "configs": configs,
            }
            save_checkpoint(model, run.last, train_state=train_state)
            if train_cfg.validate:
                summary["val"] = _validate(model, root, data_cfg, dev, train_cfg.single_frame)
            run.log({"event": "epoch", **summary})
        distributed.barrier(info)
        result.epochs.append(summary)
        if progress:
            progress({"event": "epoch", "epochs": train_cfg.epochs, **summary})


def _build(model_cfg: ModelConfig, train_cfg: TrainConfig, backbone, state: ResumeState | None) -> FamiPose:
    model = FamiPose(model_cfg)
    if state is not None:
        load_strict(model, state.state_dict, state.path)
    elif backbone is not None:
        source = load_model(backbone)  # any format: famipose, official FAMI-Pose, DCPose, pose-HRNet
        load_strict(model.backbone, source.backbone.state_dict(), Path(backbone), what="backbone")
        if source.cfg.schema != model_cfg.schema and not train_cfg.single_frame:
            log.warning(
                "%s has %s keypoints: its own heatmap layer (the backbone-only row of eval --weights) keeps "
                "them, where this model has %s keypoints; fine-tune it first with famipose train --single-frame "
                "--backbone %s, then train on its last.pt",
                backbone,
                source.cfg.schema,
                model_cfg.schema,
                backbone,
            )
    if train_cfg.single_frame:
        # stage 1: the HRNet and its heatmap layer alone; the temporal modules stay as initialized
        model.requires_grad_(False)
        model.backbone.requires_grad_(True)
        return model
    if train_cfg.freeze_backbone:
        model.freeze_backbone()
    # the backbone's own heatmap layer (the single-frame baseline) is not in the objective, as officially:
    # it stays as initialized, and DDP needs no search for unused parameters
    model.backbone.final_layer.requires_grad_(False)
    return model


def _step(net, batch, criterion, loss_cfg, train_cfg, dev):
    key = batch["key"].to(dev, non_blocking=True)
    support = batch["support"].to(dev, non_blocking=True)
    target = batch["target"].to(dev, non_blocking=True)
    weight = batch["target_weight"].to(dev, non_blocking=True)
    amp = train_cfg.amp and dev.type == "cuda"
    if train_cfg.single_frame:  # net is the HRNet: (feature, heatmaps) of the key frame
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            heatmaps = net(key)[1]
        terms = {"heatmap": criterion(heatmaps.float(), target, weight)}
        return terms, terms["heatmap"]
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
        terms = criterion(net(key, support), target, weight)
    return terms, total_loss(terms, loss_cfg)


def _batches(loader):
    """Iterate ``loader``, turning errors raised in worker processes back into one-line errors.

    The iterator's worker processes are shut down as soon as iteration stops (left to the garbage
    collector, a failed loader's shutdown blocks for seconds, after the error was already reported).
    """
    it = iter(loader)
    try:
        yield from it
    except Exception as exc:
        # DataLoader re-raises a worker's exception with the worker's whole traceback as its message
        text = str(exc).strip().splitlines()
        if text and text[0].startswith("Caught ") and text[-1].startswith("famicli.errors."):
            cls_name, _, message = text[-1].removeprefix("famicli.errors.").partition(": ")
            import famicli.errors as errors

            raise getattr(errors, cls_name, FamiposeError)(message) from None
        raise
    finally:
        shutdown = getattr(it, "_shutdown_workers", None)  # torch's multi-process iterator (private API)
        if shutdown is not None:
            shutdown()


def _validate(
    model: FamiPose, root, data_cfg: DataConfig, dev, single_frame: bool = False, pred_dir=None
) -> dict | None:
    """PoseTrack AP of ``model`` (of its backbone with ``single_frame``) on the ``val`` split with
    ground-truth boxes (None if no val split); ``famipose eval --weights``'s evaluator."""
    from famicli.engine.validator import validate

    val = Path(root) / "annotations" / "val"
    if not val.is_dir() or not any(val.glob("*.json")):
        return None
    report = validate(model, root, data_cfg, dev, heads="backbone" if single_frame else "famipose", pred_dir=pred_dir)
    model.train()
    return report


def _seed(seed: int, epoch: int) -> None:
    """Every epoch starts from RNG states that depend only on (seed, epoch): resume is exact."""
    from famicli.runtime import seed_everything

    seed_everything(seed * 1000 + epoch)


class _RunFiles:
    """Rank 0's outputs: ``train_log.jsonl`` (one line per step and per epoch) and ``run.json``."""

    def __init__(self, out_dir: Path, enabled: bool, resume_epoch: int | None):
        self.out_dir, self.enabled = out_dir, enabled
        self.last = out_dir / "last.pt"
        self.log_path = out_dir / "train_log.jsonl"
        self.created = not out_dir.exists()
        if not enabled:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        if resume_epoch is None:
            self.log_path.unlink(missing_ok=True)
        elif self.log_path.exists():
            # drop what an interrupted epoch logged after the checkpoint: the resumed run logs it again
            kept = read_log(self.log_path, resume_epoch)
            from famicli.io import atomic_path

            with atomic_path(self.log_path) as tmp:
                tmp.write_text("".join(line + "\n" for line in kept))

    def discard_if_empty(self) -> None:
        """Remove this run's files when it stopped before its first checkpoint."""
        if not self.enabled or self.last.exists():
            return
        for path in (self.log_path, self.out_dir / "run.json"):
            path.unlink(missing_ok=True)
        if self.created and not any(self.out_dir.iterdir()):
            self.out_dir.rmdir()

    def log(self, record: dict) -> None:
        from famicli.io import dumps, jsonable

        if self.enabled:
            with open(self.log_path, "a") as f:
                f.write(dumps(jsonable(record)) + "\n")

    def record_start(self, model_cfg, configs, info, dev, backbone) -> None:
        if not self.enabled:
            return
        from famicli.io import provenance, write_json_atomic

        record = provenance(config={"model": model_cfg.to_dict(), **configs}, device=str(dev))
        record |= {"world_size": info.world_size, "backbone": str(backbone) if backbone else None}
        write_json_atomic(self.out_dir / "run.json", record)
