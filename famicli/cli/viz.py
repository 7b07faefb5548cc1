"""``famipose viz offsets|mi|heatmaps``: figures of the alignment, the MI terms and the heatmaps."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

# The options every figure takes (shared OptionInfo objects; each command lists them).
WEIGHTS = typer.Option(None, "--weights", help="Checkpoint (default: the bundled demo weights, when installed).")
DATASET = typer.Option(None, "--dataset", help="PoseTrack-format folder (e.g. from famipose data synth).")
SEQ = typer.Option(None, "--seq", help="Sequence name in --dataset (annotation file stem).")
VIDEO = typer.Option(None, "--video", help="Video file (instead of --dataset; default: the bundled demo clip).")
BOXES = typer.Option(None, "--boxes", help="COCO-style boxes for --video (default: the full frame).")
FRAME = typer.Option(0, "--frame", help="Key frame, 0-based.")
PERSON = typer.Option(None, "--person", help="Track id (dataset) or box id (video); default: the lowest.")
JOINT = typer.Option(None, "--joint", help="Show one joint only, e.g. left_wrist.")
DEVICE = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N.")
JSON_OUT = typer.Option(False, "--json", help="Print the numbers behind the figure as JSON on stdout.")


def _out(kind: str) -> typer.Option:
    return typer.Option(Path(f"viz-{kind}.png"), "--out", "-o", help="Figure file: .png, .svg or .pdf.")


@app.command("offsets")
def offsets_command(weights: Path = WEIGHTS, dataset: Path = DATASET, seq: str = SEQ, video: Path = VIDEO,
                    boxes: Path = BOXES, frame: int = FRAME, person: int = PERSON, joint: str = JOINT,
                    out: Path = _out("offsets"), device: str = DEVICE, json_out: bool = JSON_OUT) -> None:  # fmt: skip
    """GTM translation per supporting frame, deformable sampling points per joint, offset magnitudes."""
    _run("offsets", weights, dataset, seq, video, boxes, frame, person, joint, out, device, json_out)


@app.command("mi")
def mi_command(weights: Path = WEIGHTS, dataset: Path = DATASET, seq: str = SEQ, video: Path = VIDEO,
               boxes: Path = BOXES, frame: int = FRAME, person: int = PERSON, joint: str = JOINT,
               out: Path = _out("mi"), device: str = DEVICE, json_out: bool = JSON_OUT) -> None:  # fmt: skip
    """The six MI terms per joint (official and corrected estimators) and the weighted total; needs --dataset."""
    _run("mi", weights, dataset, seq, video, boxes, frame, person, joint, out, device, json_out)


@app.command("heatmaps")
def heatmaps_command(weights: Path = WEIGHTS, dataset: Path = DATASET, seq: str = SEQ, video: Path = VIDEO,
                     boxes: Path = BOXES, frame: int = FRAME, person: int = PERSON, joint: str = JOINT,
                     out: Path = _out("heatmaps"), device: str = DEVICE,
                     json_out: bool = JSON_OUT) -> None:  # fmt: skip
    """Backbone-only vs FAMI-Pose heatmaps per joint on the key crop, with the ground truth marked."""
    _run("heatmaps", weights, dataset, seq, video, boxes, frame, person, joint, out, device, json_out)


def _run(kind, weights, dataset, seq, video, boxes, frame, person, joint, out, device, json_out) -> None:
    from famicli.errors import InputError
    from famicli.viz.figures import ClipSource, check_output, joint_index, visualize

    check_output(out)
    joint_index(joint)
    from famicli.data.synthtrack import demo

    if dataset is None and video is None:
        video = demo.default_video()
        if video is None:
            raise InputError("no clip given (no bundled demo clip is installed); pass --dataset DIR --seq NAME "
                             "or --video FILE")  # fmt: skip
    if video is not None and boxes is None:
        boxes = demo.sidecar_boxes(video)  # <stem>_boxes.json next to the video, as predict
    if boxes is not None and video is None:
        raise InputError("--boxes goes with --video")
    source = ClipSource(frame=frame, person=person, dataset=dataset, sequence=seq, video=video, boxes=boxes)
    data = visualize(kind, source, weights, out, joint=joint, device=device)
    if json_out:
        typer.echo(json.dumps(data))
        return
    clip = data["clip"]
    where = clip.get("sequence") or clip.get("video")
    typer.echo(f"viz {kind}: wrote {out} ({where}, frame {clip['frame']}, person {clip['person']})")
