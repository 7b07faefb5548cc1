"""``famipose eval``: PoseTrack AP/MOT (poseval's numbers), COCO OKS AP, Sub-JHMDB PCK."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from famicli.cli import options as opt
from famicli.cli.options import Dataset
from famicli.io import dumps

MODEL = "Model in the loop (with --weights)"  # help panel of the options that run a model


class Tracker(str, Enum):
    famipose = "famipose"
    motmetrics = "motmetrics"


class Order(str, Enum):
    listdir = "listdir"
    sorted = "sorted"


def eval_command(
    dataset: Annotated[Dataset, opt.dataset("Benchmark: its rules and default --root.")] = Dataset.posetrack18,
    pred: Annotated[Path | None, typer.Option("--pred", help="Prediction folder (one JSON per sequence).")] = None,
    gt: Annotated[
        Path | None, typer.Option("--gt", help="GT folder (default: ROOT/annotations/val; ROOT for jhmdb).")
    ] = None,
    root: Annotated[Path | None, opt.root()] = None,
    json_out: Annotated[bool, opt.json_out()] = False,
    out: Annotated[Path | None, opt.out("Also write the JSON result (what --json prints) to this file.")] = None,
    per_sequence: Annotated[bool, opt.flag("--per-sequence", help="Add AP/MOT per sequence.")] = False,
    strict: Annotated[
        bool, opt.flag("--strict/--no-strict", help="Refuse suspicious input (default) or warn and score.")
    ] = True,
    tracker: Annotated[
        Tracker,
        typer.Option(
            "--tracker", help="MOT accumulators: famipose's vectorised ones or motmetrics itself (same numbers)."
        ),
    ] = Tracker.famipose,
    order: Annotated[
        Order, typer.Option("--order", help="Sequence order: poseval's (directory order) or sorted.")
    ] = Order.listdir,
    coco: Annotated[bool, opt.flag("--coco/--no-coco", help="Also compute COCO OKS AP.")] = True,
    quiet: Annotated[bool, opt.quiet()] = False,
    weights: Annotated[
        Path | None,
        opt.weights(
            "Run this checkpoint on the val sequences first (instead of "
            "--pred): backbone-only and FAMI-Pose rows (default with "
            "--dataset synthtrack: the bundled demo weights).",
            rich_help_panel=MODEL,
        ),
    ] = None,
    variant: Annotated[opt.Variant | None, opt.variant(rich_help_panel=MODEL)] = None,
    heads: Annotated[opt.Heads | None, opt.heads(rich_help_panel=MODEL)] = None,
    schema: Annotated[opt.Schema | None, opt.schema(rich_help_panel=MODEL)] = None,
    boxes: Annotated[
        Path | None,
        opt.boxes(
            "Detections JSON for the val sequences (PoseTrack18 image ids; default: the ground-truth boxes).",
            rich_help_panel=MODEL,
        ),
    ] = None,
    box_threshold: Annotated[
        float | None, opt.box_threshold("With --boxes: minimum box score (default 0.2).", rich_help_panel=MODEL)
    ] = None,
    device: Annotated[str, opt.device(rich_help_panel=MODEL)] = "auto",
    dtype: Annotated[opt.Dtype, opt.dtype(rich_help_panel=MODEL)] = opt.Dtype.fp32,
    flip: Annotated[bool, opt.flip(rich_help_panel=MODEL)] = False,
    batch_size: Annotated[int, opt.batch_size(rich_help_panel=MODEL)] = 16,
    mode: Annotated[opt.Mode, opt.mode(rich_help_panel=MODEL)] = opt.Mode.exact,
    share: Annotated[opt.Share, opt.share(rich_help_panel=MODEL)] = opt.Share.own,
    chunk: Annotated[int, opt.chunk(rich_help_panel=MODEL)] = 16,
    max_shift: Annotated[float, opt.max_shift(rich_help_panel=MODEL)] = 0.02,
    pred_out: Annotated[
        Path | None,
        typer.Option(
            "--pred-out", help="Keep the prediction files in DIR/famipose and DIR/backbone.", rich_help_panel=MODEL
        ),
    ] = None,
) -> None:
    """Score predictions: PoseTrack AP and MOTA (poseval's), COCO OKS AP, or Sub-JHMDB PCK.

    With --weights, run the model over the val sequences first (torchrun: sequences split across
    processes) and show backbone-only and FAMI-Pose AP side by side.
    """
    from famicli import evaluate
    from famicli.io import check_writable

    if out is not None:
        check_writable(out, "file")
    if pred_out is not None:
        check_writable(pred_out, "folder")
    if dataset is Dataset.synthtrack and pred is None and weights is None:
        from famicli.data.synthtrack import demo

        weights = demo.default_weights()  # the bundled weights were trained on SynthTrack
    if (pred is None) == (weights is None):
        raise typer.BadParameter(
            "give --pred DIR (score prediction files) or --weights CKPT (run a model first)",
            param_hint="'--pred' / '--weights'",
        )
    if weights is not None:
        from famicli.inference.predictor import PredictConfig

        cfg = PredictConfig(
            boxes=boxes,
            box_threshold=box_threshold,
            device=device,
            dtype=dtype.value,
            flip=flip,
            batch_size=batch_size,
            mode=mode.value,
            chunk=chunk,
            max_shift=max_shift,
            share=share.value,
            heads=None if heads is None else heads.value,
        )
        variant_name = None if variant is None else variant.value
        schema_name = None if schema is None else schema.value
        return _eval_weights(
            dataset.value, root, weights, cfg, variant_name, pred_out, json_out, out, quiet, schema_name
        )
    scoring = "posetrack18" if dataset is Dataset.synthtrack else dataset.value
    gt_dir = gt if gt is not None else _default_gt(dataset.value, root)
    with _warnings_to_stderr(quiet), _progress(quiet) as progress:
        result = evaluate(
            gt_dir,
            pred,
            scoring,
            strict=strict,
            tracker=tracker.value,
            coco=coco,
            per_sequence=per_sequence,
            order=order.value,
            progress=progress,
        )
    report = result.to_dict()
    report["provenance"]["options"] = {
        "dataset": dataset.value,
        "gt": str(gt_dir),
        "pred": str(pred),
        "strict": strict,
        "tracker": tracker.value,
        "order": order.value,
        "coco": coco,
        "per_sequence": per_sequence,
    }
    _emit(report, out, json_out, _render)


def _default_gt(dataset: str, root: Path | None) -> Path:
    from famicli.errors import InputError

    root = root if root is not None else opt.default_root(dataset)
    gt = root if dataset == "jhmdb" else root / "annotations" / "val"
    if not gt.is_dir():
        layout = (
            "<root>/joint_positions/<action>/<video>/joint_positions.mat and <root>/splits/"
            if dataset == "jhmdb"
            else f"{dataset}/annotations/val/<sequence>.json"
        )
        raise InputError(
            f"{dataset} annotations not found at {gt}; put the dataset there "
            f"({layout}), set FAMIPOSE_DATA to the folder holding {dataset}/, or "
            "pass --root or --gt"
        )
    return gt


def _emit(report: dict, out: Path | None, json_out: bool, render) -> None:
    """Write ``report`` to ``out`` (atomically), then print it as JSON or as tables."""
    if out is not None:
        from famicli.io import write_json_atomic

        write_json_atomic(out, report)
    if json_out:
        typer.echo(dumps(report, 2))
    else:
        render(report)


class _StderrWarnings(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        typer.echo(f"Warning: {record.getMessage()}", err=True)


@contextmanager
def _warnings_to_stderr(quiet: bool = False):
    """Library warnings (logging) become ``Warning: ...`` lines on stderr; ``-q`` drops them (they stay in
    ``--json``'s ``warnings``). The evaluator logs at most one line per kind of warning."""
    loggers = [logging.getLogger(name) for name in ("famicli.metrics", "famicli.formats")]
    handler = _StderrWarnings(logging.WARNING) if not quiet else logging.NullHandler()
    old = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, propagate in zip(loggers, old, strict=True):
            logger.removeHandler(handler)
            logger.propagate = propagate


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
            t = table(
                title=f"Sub-JHMDB {title}, mean of splits {pck['splits']}",
                caption=f"normalized by {pck['normalization'][norm]}",
            )
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
    mot.add_row(*(fmt(v) for v in report["mota"].values()), fmt(tot["MOTP"]), fmt(tot["Prec"]), fmt(tot["Rec"]))
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
    console.print(
        f"{prov['sequences']} sequences{release}, {prov['scored_frames']} scored "
        f"frames, {prov['gt_persons']} GT persons",
        style="dim",
    )


def _eval_weights(
    dataset: str,
    root: Path | None,
    weights: Path,
    cfg,
    variant: str | None,
    pred_out: Path | None,
    json_out: bool,
    out: Path | None,
    quiet: bool,
    schema: str | None = None,
) -> None:
    """``eval --weights``: the model in the loop on the val sequences, two rows (backbone, FAMI-Pose), or
    the backbone's alone with ``heads`` backbone; ``cfg``: the
    :class:`famicli.inference.predictor.PredictConfig` of the options."""
    import dataclasses

    from famicli import load_model
    from famicli.cli.progress import progress_bar
    from famicli.engine.validator import evaluate_model
    from famicli.errors import ConfigError
    from famicli.runtime import resolve_device

    if dataset == "jhmdb":
        raise ConfigError(
            "--weights runs on PoseTrack-format datasets, not jhmdb; choose from: posetrack18, posetrack17, synthtrack"
        )
    if root is None:
        root = opt.default_root(dataset)
        if dataset == "synthtrack":
            from famicli.data.synthtrack import demo

            if demo.needs_synthtrack(root):  # deterministic: the set the demo weights were trained on
                typer.echo(f"Generating SynthTrack at {root} ({demo.recipe_text()}), the demo weights' set", err=True)
                demo.generate_synthtrack(root)
    _default_gt(dataset, root)  # a clear error when the dataset is not there
    device = resolve_device(cfg.device)
    model = load_model(weights, variant, device, schema)
    with _warnings_to_stderr(quiet), progress_bar("eval", quiet) as update:
        result = evaluate_model(
            model,
            root,
            cfg,
            pred_dir=pred_out,
            progress=lambda i, n, name: update(i, n, info=name),
            notes=None if quiet else lambda line: typer.echo(line, err=True),
        )
    if result is None:  # a torchrun process other than rank 0
        return
    backbone = result["backbone"]
    if result["heads"] == "backbone":  # the single-frame HRNet alone: its scores are the report
        report = dict(backbone)
    else:
        report = dict(result["famipose"])
        keep = ("ap", "mota", "mot_totals", "ap_per_joint", "coco")
        report["backbone"] = {k: backbone[k] for k in keep if k in backbone}
    for key in (
        "heads",
        "schema",
        "boxes",
        "reference",
        "sequences",
        "frames",
        "persons",
        "processes",
        "seconds",
        "inference",
    ):
        report[key] = result[key]
    report["model"] = getattr(model, "checkpoint_info", {"path": str(weights)}) | {"variant": model.cfg.variant}
    report["provenance"]["options"] = {
        "dataset": dataset,
        "root": str(root),
        "weights": str(weights),
        "variant": variant,
        "pred_out": None if pred_out is None else str(pred_out),
        "schema": schema,
        **dataclasses.asdict(cfg),
    }
    _emit(report, out, json_out, _render_model)


def _render_model(report: dict) -> None:
    """One AP table: backbone-only and FAMI-Pose rows, then reference numbers."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    boxes = report["boxes"]
    which = (
        "ground-truth boxes"
        if boxes["source"] == "ground truth"
        else f"boxes from {boxes['path']} (score >= {boxes['threshold']})"
    )
    inference = report.get("inference") or {}
    if inference.get("mode") == "fast":
        which += f", fast mode, {inference['share']} boxes, chunk {inference['chunk']}"
        if inference["share"] == "union":
            which += f", max shift {inference['max_shift']:g}"
    table = Table(
        title=f"PoseTrack AP, model in the loop ({which})", box=box.SIMPLE_HEAVY, pad_edge=False, collapse_padding=True
    )
    table.add_column("model")
    cols = list(report["ap"])
    for col in (*cols, "MOTA", "COCO AP"):
        table.add_column(col, justify="right")
    if report.get("heads") == "backbone":
        rows = ((f"backbone ({report.get('schema', 'posetrack')})", report),)
    else:
        rows = (("backbone only", report["backbone"]), ("FAMI-Pose", report))
    for name, r in rows:
        coco = (r.get("coco") or {}).get("AP")
        table.add_row(name, *(fmt(r["ap"][c]) for c in cols), fmt(r["mota"]["Total"]), fmt(coco))
    console = Console()
    console.print(table)
    for name, total in report["reference"].items():
        console.print(f"  reference: {name}: Total AP {total:.1f}", style="dim", highlight=False)
    console.print(
        f"{report['model'].get('path')}: {report['sequences']} sequences, {report['frames']} frames, "
        f"{report['persons']} persons predicted in {report['seconds']:.1f} s "
        f"({report['processes']} process(es))",
        style="dim",
        highlight=False,
    )
