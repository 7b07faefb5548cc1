"""``famipose viz offsets|mi|heatmaps``: figures of the alignment, the MI terms and the heatmaps."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from famicli.cli import options as opt
from famicli.io import dumps
from famicli.keypoints import JOINT_NAMES

app = typer.Typer(cls=opt.Group, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

Joint = Enum("Joint", {name: name for name in JOINT_NAMES}, type=str)  # --joint: nose, ..., right_ankle

# The options every figure takes (each command lists them).
Weights = Annotated[Path | None, opt.weights("Checkpoint (default: the bundled demo weights, when installed).")]
Dataset = Annotated[opt.TrackingDataset | None, opt.dataset("Benchmark holding the clip: sets the default --root.")]
Root = Annotated[
    Path | None,
    opt.root(
        "PoseTrack-format folder holding the clip, e.g. from famipose data synth "
        "(default with --dataset: $FAMIPOSE_DATA/<dataset>, else "
        "./data/<dataset>)."
    ),
]
Seq = Annotated[str | None, typer.Option("--seq", help="Sequence name in --root (annotation file stem).")]
Video = Annotated[
    Path | None, typer.Option("--video", help="Video file (instead of --root; default: the bundled demo clip).")
]
Boxes = Annotated[
    Path | None,
    opt.boxes(
        "COCO-style boxes for --video (default: <stem>_boxes.json next to the video, if present, else the full frame)."
    ),
]
Frame = Annotated[int, typer.Option("--frame", callback=opt.number(0), help="Key frame, 0-based.")]
Person = Annotated[
    int | None, typer.Option("--person", help="Track id (dataset) or box id (video); default: the lowest.")
]
JointOption = Annotated[Joint | None, typer.Option("--joint", help="Show one joint only.")]
Out = Annotated[Path, opt.out("Figure file written: .png, .svg or .pdf.")]
Device = Annotated[str, opt.device()]
Json = Annotated[bool, opt.json_out("Print the numbers behind the figure as JSON on stdout.")]


@app.command("offsets", cls=opt.Command)
def offsets_command(
    weights: Weights = None,
    dataset: Dataset = None,
    root: Root = None,
    seq: Seq = None,
    video: Video = None,
    boxes: Boxes = None,
    frame: Frame = 0,
    person: Person = None,
    joint: JointOption = None,
    out: Out = Path("viz-offsets.png"),
    device: Device = "auto",
    json_out: Json = False,
) -> None:
    """GTM translation per supporting frame, deformable sampling points per joint, offset magnitudes."""
    _run("offsets", weights, dataset, root, seq, video, boxes, frame, person, joint, out, device, json_out)


@app.command("mi", cls=opt.Command)
def mi_command(
    weights: Weights = None,
    dataset: Dataset = None,
    root: Root = None,
    seq: Seq = None,
    video: Video = None,
    boxes: Boxes = None,
    frame: Frame = 0,
    person: Person = None,
    joint: JointOption = None,
    out: Out = Path("viz-mi.png"),
    device: Device = "auto",
    json_out: Json = False,
) -> None:
    """The six MI terms per joint (official and corrected estimators) and the weighted total; needs --root."""
    _run("mi", weights, dataset, root, seq, video, boxes, frame, person, joint, out, device, json_out)


@app.command("heatmaps", cls=opt.Command)
def heatmaps_command(
    weights: Weights = None,
    dataset: Dataset = None,
    root: Root = None,
    seq: Seq = None,
    video: Video = None,
    boxes: Boxes = None,
    frame: Frame = 0,
    person: Person = None,
    joint: JointOption = None,
    out: Out = Path("viz-heatmaps.png"),
    device: Device = "auto",
    json_out: Json = False,
    heads: Annotated[
        opt.Heads | None,
        opt.heads(
            "fami: the backbone's and FAMI-Pose's heatmaps side by side; backbone: the single-frame HRNet's "
            "alone (default for pose-HRNet/DCPose checkpoints)."
        ),
    ] = None,
) -> None:
    """Backbone-only vs FAMI-Pose heatmaps per joint on the key crop, with the ground truth marked."""
    heads_name = None if heads is None else heads.value
    _run("heatmaps", weights, dataset, root, seq, video, boxes, frame, person, joint, out, device, json_out, heads_name)


def _run(
    kind, weights, dataset, root, seq, video, boxes, frame, person, joint, out, device, json_out, heads=None
) -> None:
    from famicli.data.synthtrack import demo
    from famicli.errors import InputError
    from famicli.io import check_writable
    from famicli.viz.inspect import ClipSource, check_output, visualize

    check_output(out)
    check_writable(out, "file")
    if root is None and dataset is not None:
        root = opt.default_root(dataset.value)
    if root is None and video is None:
        video = demo.default_video()
        if video is None:
            raise InputError(
                "no clip given (no bundled demo clip is installed); pass --root DIR --seq NAME or --video FILE"
            )
    if video is not None and boxes is None:
        boxes = demo.sidecar_boxes(video)  # <stem>_boxes.json next to the video, as predict
    if boxes is not None and video is None:
        raise InputError("--boxes goes with --video")
    source = ClipSource(frame=frame, person=person, root=root, sequence=seq, video=video, boxes=boxes)
    joint_name = None if joint is None else joint.value
    data = visualize(kind, source, weights, out, joint=joint_name, device=device, heads=heads)
    if json_out:
        typer.echo(dumps(data))
        return
    clip = data["clip"]
    where = clip.get("sequence") or clip.get("video")
    typer.echo(f"viz {kind}: wrote {out} ({where}, frame {clip['frame']}, person {clip['person']})")
