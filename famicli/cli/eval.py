"""``famipose eval``: PoseTrack AP/MOT (poseval's numbers), COCO OKS AP, Sub-JHMDB PCK."""

from __future__ import annotations

import json
import logging
import os
import sys
from contextlib import contextmanager
from enum import Enum
from pathlib import Path

import typer


class Dataset(str, Enum):
    posetrack18 = "posetrack18"
    posetrack17 = "posetrack17"
    jhmdb = "jhmdb"


class Tracker(str, Enum):
    fast = "fast"
    motmetrics = "motmetrics"


class Order(str, Enum):
    listdir = "listdir"
    sorted = "sorted"


def eval_command(
    dataset: Dataset = typer.Option(Dataset.posetrack18, "--dataset", help="Benchmark and rules."),
    pred: Path = typer.Option(..., "--pred", help="Prediction folder (one JSON per sequence)."),
    gt: Path | None = typer.Option(
        None, "--gt", help="GT folder (default: ROOT/annotations/val; ROOT for jhmdb)."
    ),
    root: Path | None = typer.Option(
        None, "--root", help="Dataset root (default: $FAMIPOSE_DATA/DATASET, else ./data/DATASET)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    out: Path | None = typer.Option(None, "--out", help="Also write the JSON result to FILE."),
    per_sequence: bool = typer.Option(False, "--per-sequence", help="Add AP/MOT per sequence."),
    strict: bool = typer.Option(
        True, "--strict/--no-strict", help="Refuse suspicious input (default) or warn and score."
    ),
    tracker: Tracker = typer.Option(
        Tracker.fast, "--tracker", help="MOT accumulators: famipose's (fast) or motmetrics itself."
    ),
    order: Order = typer.Option(
        Order.listdir, "--order", help="Sequence order: poseval's (directory order) or sorted."
    ),
    coco: bool = typer.Option(True, "--coco/--no-coco", help="Also compute COCO OKS AP."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
) -> None:
    """Score predictions: PoseTrack AP and MOTA (poseval's), COCO OKS AP, or Sub-JHMDB PCK."""
    from famicli import evaluate

    gt_dir = gt if gt is not None else _default_gt(dataset.value, root)
    with _warnings_to_stderr(), _progress(quiet) as progress:
        result = evaluate(gt_dir, pred, dataset.value, strict=strict, tracker=tracker.value,
                          coco=coco, per_sequence=per_sequence, order=order.value,
                          progress=progress)  # fmt: skip
    report = result.to_dict()
    report["provenance"]["options"] = {
        "dataset": dataset.value, "gt": str(gt_dir), "pred": str(pred), "strict": strict,
        "tracker": tracker.value, "order": order.value, "coco": coco, "per_sequence": per_sequence,
    }  # fmt: skip
    if out is not None:
        _write_atomic(out, json.dumps(report, indent=2))
    if json_out:
        typer.echo(json.dumps(report, indent=2))
    else:
        _render(report)


def _default_gt(dataset: str, root: Path | None) -> Path:
    from famicli.errors import InputError

    if root is None:
        base = os.environ.get("FAMIPOSE_DATA")
        root = Path(base) / dataset if base else Path("data") / dataset
    gt = root if dataset == "jhmdb" else root / "annotations" / "val"
    if not gt.is_dir():
        layout = ("<root>/joint_positions/<action>/<video>/joint_positions.mat and "
                  "<root>/splits/" if dataset == "jhmdb" else
                  f"{dataset}/annotations/val/<sequence>.json")  # fmt: skip
        raise InputError(f"{dataset} annotations not found at {gt}; put the dataset there "
                         f"({layout}), set FAMIPOSE_DATA to the folder holding {dataset}/, or "
                         "pass --root or --gt")  # fmt: skip
    return gt


def _write_atomic(path: Path, text: str) -> None:
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _StderrWarnings(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        typer.echo(f"Warning: {record.getMessage()}", err=True)


@contextmanager
def _warnings_to_stderr():
    """Library warnings (logging) become ``Warning: ...`` lines on stderr, once each."""
    logger = logging.getLogger("famicli.metrics")
    handler = _StderrWarnings(logging.WARNING)
    old = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = old


@contextmanager
def _progress(quiet: bool):
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console

    with Console(stderr=True).status("evaluating") as status:
        yield lambda msg: status.update(msg)


def _render(report: dict) -> None:
    from functools import partial

    from rich import box
    from rich.console import Console
    from rich.table import Table

    # compact tables: the MOT table's 11 columns fit in 80 characters
    table = partial(Table, box=box.SIMPLE_HEAVY, pad_edge=False, collapse_padding=True)
    console = Console()
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    if report.get("pck"):
        pck = report["pck"]
        for norm, title in (("box", "PCK@0.2"), ("torso", "tPCK@0.2")):
            t = table(title=f"Sub-JHMDB {title}, mean of splits {pck['splits']}",
                      caption=f"normalized by {pck['normalization'][norm]}")  # fmt: skip
            for col in pck[norm]:
                t.add_column(col, justify="right")
            t.add_row(*(fmt(v) for v in pck[norm].values()))
            console.print(t)
        return
    ap = table(title="Average Precision (AP)")
    for col in report["ap"]:
        ap.add_column(col, justify="right")
    ap.add_row(*(fmt(v) for v in report["ap"].values()))
    console.print(ap)
    mot = table(title="Multiple Object Tracking (MOT)")
    for col in report["mota"]:
        mot.add_column(f"MOTA\n{col}", justify="right")
    for col in ("MOTP", "Prec", "Rec"):
        mot.add_column(f"{col}\nTotal", justify="right")
    tot = report["mot_totals"]
    mot.add_row(*(fmt(v) for v in report["mota"].values()), fmt(tot["MOTP"]), fmt(tot["Prec"]),
                fmt(tot["Rec"]))  # fmt: skip
    console.print(mot)
    if report.get("coco"):
        c = report["coco"]
        t = table(title="COCO OKS AP (COCO sigmas)")
        for col in ("AP", "AP50", "AP75", "APm", "APl", "AR"):
            t.add_column(col, justify="right")
        t.add_row(*(fmt(c[k]) for k in ("AP", "AP50", "AP75", "APm", "APl", "AR")))
        console.print(t)
    if report.get("per_sequence"):
        t = table(title="Per sequence")
        t.add_column("sequence")
        for col in report["ap"]:
            t.add_column(f"AP\n{col}", justify="right")
        t.add_column("MOTA\nTotal", justify="right")
        for name, s in report["per_sequence"].items():
            t.add_row(name, *(fmt(v) for v in s["ap"].values()), fmt(s["mota"]["Total"]))
        console.print(t)
    prov = report["provenance"]
    release = f" ({prov['release']})" if prov.get("release") else ""
    console.print(f"{prov['sequences']} sequences{release}, {prov['scored_frames']} scored "
                  f"frames, {prov['gt_persons']} GT persons", style="dim")  # fmt: skip
