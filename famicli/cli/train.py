"""``famipose train``: FAMI-Pose's objective on one process or under ``torchrun``."""

from __future__ import annotations

import contextlib
import os
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from famicli.cli import options as opt
from famicli.cli.progress import progress_bar
from famicli.io import dumps


class Estimator(str, Enum):
    """:data:`famicli.losses.mutual_info.ESTIMATORS`."""

    official = "official"
    corrected = "corrected"


def train_command(
    dataset: Annotated[opt.TrackingDataset, opt.dataset()] = opt.TrackingDataset.posetrack18,
    root: Annotated[Path | None, opt.root()] = None,
    variant: Annotated[
        opt.Variant, opt.variant("Architecture: w48, w32 or tiny (also picks the schedule preset).")
    ] = opt.Variant.w48,
    out: Annotated[
        Path | None,
        opt.out("Output folder: last.pt, run.json, train_log.jsonl (default: runs/train, or the folder of --resume)."),
    ] = None,
    backbone: Annotated[
        Path | None,
        typer.Option("--backbone", help="Pose-HRNet / DCPose / FAMI-Pose checkpoint initializing the backbone."),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue a run from its last.pt (its saved configuration is used).")
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            "--epochs",
            callback=opt.number(1),
            help="Epochs (default: the variant's preset; 21 for w48). With --resume: extend the run to N epochs.",
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        opt.batch_size("Global batch size, split across torchrun processes (default: the variant's preset)."),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option("--lr", callback=opt.number(0, above=True), help="Adam learning rate (default 1e-3)."),
    ] = None,
    lr_steps: Annotated[
        str | None,
        typer.Option("--lr-steps", help="Epochs at which the LR is multiplied by 0.1, comma-separated (w48: 8,12,16)."),
    ] = None,
    freeze_backbone: Annotated[
        bool | None,
        opt.flag("--freeze-backbone/--no-freeze-backbone", help="Freeze the HRNet (default: the variant's preset)."),
    ] = None,
    single_frame: Annotated[
        bool,
        opt.flag(
            "--single-frame",
            help="Train the HRNet backbone alone on key frames "
            "(the single-frame baseline; its checkpoint is a --backbone).",
        ),
    ] = False,
    gtm: Annotated[bool, opt.gtm(rich_help_panel="Ablations")] = True,
    lcm: Annotated[bool, opt.lcm(rich_help_panel="Ablations")] = True,
    support_offsets: Annotated[str | None, opt.support_offsets(rich_help_panel="Ablations")] = None,
    mi_estimator: Annotated[
        Estimator, typer.Option("--mi-estimator", help="MI estimator: official or corrected.")
    ] = Estimator.official,
    alpha: Annotated[
        float, typer.Option("--alpha", callback=opt.number(0), help="Weight of the MI terms (0: heatmap loss only).")
    ] = 0.5,
    beta: Annotated[
        float, typer.Option("--beta", callback=opt.number(0), help="Weight of the MI terms on the aggregated feature.")
    ] = 0.1,
    sigma: Annotated[
        float | None,
        typer.Option(
            "--sigma",
            callback=opt.number(0, above=True),
            help="Gaussian target std in heatmap pixels (default: 3 at 96x72, scaled).",
        ),
    ] = None,
    grad_clip: Annotated[
        float, typer.Option("--grad-clip", callback=opt.number(0), help="Max gradient norm (0: off).")
    ] = 0.0,
    workers: Annotated[
        int | None, typer.Option("--workers", callback=opt.number(0), help="DataLoader workers per process.")
    ] = None,
    seed: Annotated[int, opt.seed()] = 0,
    device: Annotated[str, opt.device()] = "auto",
    no_val: Annotated[bool, opt.flag("--no-val", help="Skip validation after each epoch.")] = False,
    json_out: Annotated[
        bool, opt.json_out("Print the checkpoint and the per-epoch summary as JSON on stdout.")
    ] = False,
    quiet: Annotated[bool, opt.quiet()] = False,
) -> None:
    """Train FAMI-Pose (heatmap MSE + mutual-information terms); DDP with torchrun -m famicli train."""
    from famicli.config import train_configs
    from famicli.engine.trainer import train
    from famicli.io import check_writable, out_lock

    steps = None
    if lr_steps is not None:
        try:
            steps = tuple(int(x) for x in lr_steps.split(",") if x.strip())
        except ValueError:
            raise typer.BadParameter(f"{lr_steps!r}: expected comma-separated epochs, e.g. 8,12,16") from None
    overrides = dict(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        lr_steps=steps,
        freeze_backbone=freeze_backbone,
        workers=workers,
        single_frame=single_frame or None,
        seed=seed,
        grad_clip=grad_clip,
        validate=not no_val,
    )
    cfgs = train_configs(
        variant.value,
        mi_estimator=mi_estimator.value,
        alpha=alpha,
        beta=beta,
        sigma=sigma,
        gtm=gtm,
        lcm=lcm,
        support_offsets=None if support_offsets is None else opt.parse_offsets(support_offsets),
        **overrides,
    )
    if out is None:
        out = resume.parent if resume is not None else Path("runs/train")
    check_writable(out, "folder")
    lock = out_lock(out) if os.environ.get("RANK", "0") == "0" else contextlib.nullcontext()  # rank 0 writes
    with lock, progress_bar("train", quiet) as update:

        def on_event(e: dict) -> None:
            if e["event"] == "step":
                terms = "  ".join(f"{k}={v:.4g}" for k, v in e.items() if k in ("loss", "heatmap", "mi_1", "mi_2"))
                update(e["step"], e["steps"], description=f"epoch {e['epoch']}/{e['epochs']}", info=terms)

        result = train(
            root or opt.default_root(dataset.value),
            out,
            *cfgs,
            backbone=backbone,
            resume=resume,
            epochs=epochs if resume is not None else None,  # with --resume: extend the run to N epochs
            device=device,
            progress=on_event,
        )
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 alone reports
        return
    if json_out:
        typer.echo(dumps({"checkpoint": str(result.checkpoint), "epochs": result.epochs}))
        return
    _render(result)


def _render(result) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"famipose train → {result.checkpoint}")
    for col in ("epoch", "lr", "loss", "heatmap", "val AP", "s"):
        table.add_column(col, justify="right")
    for e in result.epochs:
        ap = e.get("val", {}).get("ap", {}).get("Total") if e.get("val") else None
        table.add_row(
            str(e["epoch"]),
            f"{e['lr']:.0e}",
            f"{e['mean_loss']:.5f}",
            f"{e['mean_heatmap']:.5f}",
            "-" if ap is None else f"{ap:.1f}",
            f"{e['seconds']:.0f}",
        )
    Console().print(table)
