"""``famipose predict VIDEO``: boxes, tracks and FAMI-Pose keypoints for every frame, written to files."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from famicli.cli import options as opt
from famicli.cli.progress import progress_bar
from famicli.io import dumps


class Detector(str, Enum):
    torchvision = "torchvision"
    torchvision_mobilenet = "torchvision-mobilenet"
    full_frame = "full-frame"


def predict_command(
    video: Annotated[Path, typer.Argument(help="Video file (mp4, avi, webm, mov, ...) or a folder of frames.")],
    weights: Annotated[
        Path | None,
        opt.weights(
            "Checkpoint: famipose, official FAMI-Pose, DCPose or HRNet (default: the bundled SynthTrack demo weights)."
        ),
    ] = None,
    variant: Annotated[opt.Variant | None, opt.variant()] = None,
    heads: Annotated[opt.Heads | None, opt.heads()] = None,
    schema: Annotated[opt.Schema | None, opt.schema()] = None,
    boxes: Annotated[
        Path | None,
        opt.boxes(
            "COCO-style detections JSON (image_id or frame_index; default: "
            "<stem>_boxes.json next to the video, if present)."
        ),
    ] = None,
    detector: Annotated[
        Detector | None, typer.Option("--detector", help="Person boxes without --boxes (default: torchvision).")
    ] = None,
    box_threshold: Annotated[float | None, opt.box_threshold()] = None,
    detect_every: Annotated[
        int,
        typer.Option(
            "--detect-every",
            callback=opt.number(1),
            help="Run the detector every N frames; boxes follow the poses in between.",
        ),
    ] = 1,
    device: Annotated[str, opt.device()] = "auto",
    dtype: Annotated[opt.Dtype, opt.dtype()] = opt.Dtype.fp32,
    flip: Annotated[bool, opt.flip()] = False,
    batch_size: Annotated[int, opt.batch_size()] = 16,
    mode: Annotated[opt.Mode, opt.mode()] = opt.Mode.exact,
    share: Annotated[opt.Share, opt.share()] = opt.Share.own,
    chunk: Annotated[int, opt.chunk()] = 16,
    max_shift: Annotated[float, opt.max_shift()] = 0.02,
    fps: Annotated[
        float | None,
        typer.Option(
            "--fps", callback=opt.number(0, above=True), help="Frame rate of a folder of frames (default: 25)."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        opt.out(
            "Output folder: <stem>.posetrack.json, <stem>.coco.json, "
            "<stem>.overlay.mp4, run.json (default: ./famipose_out/<stem>)."
        ),
    ] = None,
    render: Annotated[bool, opt.flag("--render/--no-render", help="Write <stem>.overlay.mp4.")] = True,
    kpt_threshold: Annotated[
        float,
        typer.Option(
            "--kpt-threshold", callback=opt.number(0, 1), help="Overlay: joints scoring below it are not drawn."
        ),
    ] = 0.2,
    json_out: Annotated[bool, opt.json_out("Print the run record (run.json) as JSON on stdout.")] = False,
    quiet: Annotated[bool, opt.quiet()] = False,
) -> None:
    """Predict every person's pose in every frame: PoseTrack18 JSON, COCO results, overlay video, run.json."""
    import time

    from famicli import predict_video
    from famicli.data.synthtrack import demo
    from famicli.errors import InputError
    from famicli.inference.predictor import PredictConfig
    from famicli.io import check_writable, out_lock

    stem = video.name if video.is_dir() else video.stem
    out = check_writable(out if out is not None else Path("famipose_out") / stem, "folder")
    if not video.exists():
        raise InputError(f"{video}: no such file or folder")
    notes = []  # printed once the first frame is done: a bad checkpoint or video fails before them
    if boxes is None and detector is None:
        boxes = demo.sidecar_boxes(video)
        if boxes is not None:
            notes.append(f"Using the boxes next to the video: {boxes}")
    cfg = PredictConfig(
        detector=None if detector is None else detector.value,
        boxes=boxes,
        box_threshold=box_threshold,
        detect_every=detect_every,
        device=device,
        dtype=dtype.value,
        flip=flip,
        batch_size=batch_size,
        fps=fps,
        mode=mode.value,
        chunk=chunk,
        max_shift=max_shift,
        share=share.value,
        heads=None if heads is None else heads.value,
        kpt_threshold=kpt_threshold,
    )
    if weights is None:
        weights = demo.default_weights()
        notes.append(demo.note_if_not_synthtrack(video))
    notes = [n for n in notes if n and not quiet]
    t0 = time.perf_counter()
    with out_lock(out):  # held for the whole run: a second run writing to the same --out is refused
        with progress_bar("predict", quiet) as update:

            def progress(done: int, total: int) -> None:
                while notes:
                    typer.echo(notes.pop(0), err=True)
                update(done, total, info=f"{done / max(time.perf_counter() - t0, 1e-9):.1f} frames/s")

            result = predict_video(
                video,
                weights,
                cfg,
                variant=None if variant is None else variant.value,
                schema=None if schema is None else schema.value,
                out=out,
                render=render,
                progress=progress,
                notes=None if quiet else notes.append,
            )
    record = result.record
    if not quiet:
        typer.echo(speed_line(record), err=True)
    if json_out:
        typer.echo(dumps(record, 2))
        return
    typer.echo(f"{len(result)} frames, {result.persons} persons, {result.tracks} tracks -> {out}")
    for path in record["outputs"].values():
        typer.echo(f"  {path}")


def speed_line(record: dict) -> str:
    """ultralytics-style: ``Speed: 1.2ms decode, 0.0ms detect, 45.1ms pose, ... per frame at 160x120``."""
    ms = record["speed_ms_per_frame"]
    stages = [
        ("decode", ms.get("decode", 0)),
        ("detect", ms.get("detect", 0)),
        ("pose", ms.get("crop", 0) + ms.get("pose", 0)),
        ("track", ms.get("track", 0)),
        ("render", ms.get("render", 0)),
        ("write", ms.get("write", 0)),
    ]
    video = record["video"]
    parts = ", ".join(f"{v:.1f}ms {k}" for k, v in stages)
    return (
        f"Speed: {parts} per frame at {video['width']}x{video['height']} "
        f"({record['timings']['frames']} frames, {record['frames_per_s']:.1f} frames/s)"
    )
