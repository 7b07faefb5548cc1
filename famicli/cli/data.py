"""``famipose data synth`` / ``famipose data check``: write a SynthTrack dataset, validate a dataset folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from famicli.cli import options as opt
from famicli.cli.progress import progress_bar
from famicli.io import dumps

app = typer.Typer(cls=opt.Group, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _size(value: str) -> str:
    parts = value.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise typer.BadParameter(f"{value!r} is not WIDTHxHEIGHT (e.g. 320x240)")
    return value


@app.command("synth", cls=opt.Command)
def synth_command(
    out: Annotated[
        Path, opt.out("Destination folder: annotations/, images/ and the SynthTrack record (created; see --overwrite).")
    ],
    videos: Annotated[int, typer.Option("--videos", callback=opt.number(1), help="Videos in all (train + val).")] = 20,
    frames: Annotated[int, typer.Option("--frames", callback=opt.number(1), help="Frames per video.")] = 40,
    seed: Annotated[int, opt.seed("Random seed: the same seed gives identical files.")] = 0,
    size: Annotated[str, typer.Option("--size", callback=_size, help="Frame size WIDTHxHEIGHT.")] = "320x240",
    val_videos: Annotated[
        int | None,
        typer.Option("--val-videos", callback=opt.number(0), help="Videos in the val split (default: a quarter)."),
    ] = None,
    val_every: Annotated[
        int, typer.Option("--val-every", callback=opt.number(1), help="Val labels every N-th frame (train labels all).")
    ] = 4,
    overwrite: Annotated[bool, opt.flag("--overwrite", help="Replace an existing SynthTrack folder.")] = False,
    json_out: Annotated[bool, opt.json_out("Print the summary as one JSON object on stdout.")] = False,
    quiet: Annotated[bool, opt.quiet()] = False,
) -> None:
    """Generate SynthTrack: rendered people in the PoseTrack18 layout, with tracks, occluders, blur."""
    from famicli.data.synthtrack.generate import SynthConfig, generate
    from famicli.io import check_writable

    check_writable(out, "folder")

    w, h = (int(v) for v in size.lower().split("x"))
    cfg = SynthConfig(
        videos=videos, frames=frames, size=(w, h), seed=seed, val_videos=val_videos, val_label_every=val_every
    )
    with progress_bar("synth", quiet) as update:
        summary = generate(out, cfg, overwrite=overwrite, progress=lambda done, total: update(done, total))
    if json_out:
        typer.echo(dumps(summary))
        return
    rows = [
        ("folder", summary["out"]),
        ("videos", f"{summary['videos']['train']} train, {summary['videos']['val']} val"),
        ("frames", f"{summary['frames']} ({summary['labeled_frames']} labeled, {w}x{h})"),
        ("persons", f"{summary['persons']} annotations, {summary['tracks']} tracks"),
        (
            "occluded / blurred / shaken frames",
            f"{summary['occluded_frames']} / {summary['blurred_frames']} / {summary['shake_frames']}",
        ),
        ("seconds", f"{summary['seconds']:.1f}"),
    ]
    _table("SynthTrack", rows)


@app.command("check", cls=opt.Command)
def check_command(
    root: Annotated[Path, opt.root("Dataset folder (annotations/<split>/*.json + images).")],
    split: Annotated[
        list[str] | None, typer.Option("--split", help="Split to check (repeatable; default: all).")
    ] = None,
    decode: Annotated[bool, opt.flag("--decode", help="Decode every frame (slow) instead of opening headers.")] = False,
    json_out: Annotated[bool, opt.json_out("Print the summary as one JSON object on stdout.")] = False,
    quiet: Annotated[bool, opt.quiet()] = False,
) -> None:
    """Validate a PoseTrack-format dataset: layout, frame naming, ids, tracks, images. Exit 1 on errors."""
    from famicli.errors import InputError
    from famicli.formats.check import check_dataset

    with progress_bar("check", quiet) as update:
        report = check_dataset(root, split or None, decode=decode, progress=lambda d, t: update(d, t))
    if json_out:
        typer.echo(dumps(report))
    else:
        _render_check(report)
    if not report["ok"]:
        first = next(i["message"] for i in report["issues"] if i["level"] == "error")
        raise InputError(f"{root}: {report['errors']} error(s) in the dataset; first: {first}")


def _render_check(report: dict) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    table = Table(title=f"Dataset {escape(report['root'])}")
    splits = list(report["splits"])
    table.add_column("")
    for s in splits:
        table.add_column(s, justify="right")
    for key in (
        "format",
        "sequences",
        "frames",
        "labeled_frames",
        "persons",
        "tracks",
        "frames_with_ignore_regions",
        "image_sizes",
        "never_annotated_joints",
    ):
        cells = []
        for s in splits:
            v = report["splits"][s][key]
            cells.append(
                ", ".join(f"{k} ({n})" for k, n in v.items())
                if isinstance(v, dict)
                else ", ".join(v) or "-"
                if isinstance(v, list)
                else str(v)
            )
        table.add_row(key.replace("_", " "), *cells)
    console.print(table)
    err = Console(stderr=True)
    for issue in report["issues"]:
        style = "red" if issue["level"] == "error" else "yellow"
        err.print(f"[{style}]{issue['level']}[/{style}]: {escape(issue['message'])}", markup=True, highlight=False)
    if report.get("synthtrack"):
        console.print(f"SynthTrack set (seed {report['synthtrack']['config']['seed']}), complete.")
    console.print(f"{report['errors']} errors, {report['warnings']} warnings")


def _table(title: str, rows) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=False)
    for k, v in rows:
        table.add_row(k, str(v))
    Console().print(table)
