"""``famipose train``: FAMI-Pose's objective on one process or under ``torchrun``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from famicli.cli.common import default_root, progress_bar


def train_command(
    dataset: str = typer.Option("posetrack18", help="Dataset name: posetrack18 or synthtrack (sets the default --root)."),
    root: Path = typer.Option(None, help="Dataset folder (default: $FAMIPOSE_DATA/<dataset> or ./data/<dataset>)."),
    variant: str = typer.Option("w48", help="Model variant: w48, w32 or tiny (also picks the schedule preset)."),
    out: Path = typer.Option(None, "--out", "-o", help="Output folder for checkpoints and logs (default: runs/train, or the folder of --resume)."),
    backbone: Path = typer.Option(None, help="Pose-HRNet / DCPose / FAMI-Pose checkpoint initializing the backbone."),
    resume: Path = typer.Option(None, help="Continue a run from its last.pt (its saved configuration is used)."),
    epochs: int = typer.Option(None, help="Epochs (default: the variant's preset; 21 for w48)."),
    batch: int = typer.Option(None, help="Global batch size, split across torchrun processes."),
    lr: float = typer.Option(None, help="Adam learning rate (default 1e-3)."),
    lr_steps: str = typer.Option(None, help="Epochs at which the LR is multiplied by 0.1, comma-separated (w48: 8,12,16)."),
    freeze_backbone: bool = typer.Option(None, "--freeze-backbone/--no-freeze-backbone", help="Freeze the HRNet."),
    single_frame: bool = typer.Option(False, "--single-frame", help="Train the HRNet backbone alone on key frames (the single-frame baseline; its checkpoint is a --backbone)."),
    mi_estimator: str = typer.Option("official", help="MI estimator: official or corrected."),
    alpha: float = typer.Option(0.5, help="Weight of the MI terms (0: heatmap loss only)."),
    beta: float = typer.Option(0.1, help="Weight of the MI terms on the aggregated feature."),
    sigma: float = typer.Option(None, help="Gaussian target std in heatmap pixels (default: 3 at 96x72, scaled)."),
    grad_clip: float = typer.Option(0.0, help="Max gradient norm (0: off)."),
    workers: int = typer.Option(None, help="DataLoader workers per process."),
    seed: int = typer.Option(0, help="Random seed."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    no_val: bool = typer.Option(False, "--no-val", help="Skip validation after each epoch."),
    json_out: bool = typer.Option(False, "--json", help="Print the per-epoch summary as JSON on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train FAMI-Pose (heatmap MSE + mutual-information terms); DDP with torchrun -m famicli train."""
    from famicli.config import train_configs
    from famicli.engine.trainer import train

    steps = None
    if lr_steps is not None:
        try:
            steps = tuple(int(x) for x in lr_steps.split(",") if x.strip())
        except ValueError:
            raise typer.BadParameter(f"{lr_steps!r}: expected comma-separated epochs, e.g. 8,12,16") from None
    overrides = dict(epochs=epochs, batch_size=batch, lr=lr, lr_steps=steps, freeze_backbone=freeze_backbone, workers=workers,
                     single_frame=single_frame or None, seed=seed, grad_clip=grad_clip, validate=not no_val)  # fmt: skip
    cfgs = train_configs(variant, mi_estimator=mi_estimator, alpha=alpha, beta=beta, sigma=sigma, **overrides)
    if out is None:
        out = resume.parent if resume is not None else Path("runs/train")
    with progress_bar("train", quiet) as update:

        def on_event(e: dict) -> None:
            if e["event"] == "step":
                terms = "  ".join(f"{k}={v:.4g}" for k, v in e.items() if k in ("loss", "heatmap", "mi_1", "mi_2"))
                update(e["step"], e["steps"], description=f"epoch {e['epoch']}/{e['epochs']}", info=terms)

        result = train(root or default_root(dataset), out, *cfgs, backbone=backbone, resume=resume,
                       device=device, progress=on_event)  # fmt: skip
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 alone reports
        return
    if json_out:
        typer.echo(json.dumps({"checkpoint": str(result.checkpoint), "epochs": result.epochs}))
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
        table.add_row(str(e["epoch"]), f"{e['lr']:.0e}", f"{e['mean_loss']:.5f}", f"{e['mean_heatmap']:.5f}",
                      "-" if ap is None else f"{ap:.1f}", f"{e['seconds']:.0f}")  # fmt: skip
    Console().print(table)
