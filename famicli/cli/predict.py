"""``famipose predict VIDEO``: boxes, tracks and FAMI-Pose keypoints for every frame, written to files."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer

from famicli.cli.common import progress_bar


class Detector(str, Enum):
    torchvision = "torchvision"
    torchvision_mobilenet = "torchvision-mobilenet"
    full_frame = "full-frame"


class Mode(str, Enum):
    exact = "exact"
    fast = "fast"


class Share(str, Enum):
    own = "own"
    union = "union"


class Dtype(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


def predict_command(
    video: Path = typer.Argument(..., help="Video file (mp4, avi, webm, mov, ...) or a folder of frames."),
    weights: Path = typer.Option(None, "--weights", "-w", help="Checkpoint: famipose or official FAMI-Pose (default: the bundled SynthTrack demo weights)."),
    variant: str = typer.Option(None, help="Architecture (w48, w32, tiny) for checkpoints that do not record it."),
    boxes: Path = typer.Option(None, "--boxes", help="COCO-style detections JSON (image_id or frame_index; default: <stem>_boxes.json next to the video, if present)."),
    detector: Detector = typer.Option(None, "--detector", help="Person boxes without --boxes (default: torchvision)."),
    box_threshold: float = typer.Option(None, help="Minimum box score (default: 0.2 for --boxes, 0.5 for a detector)."),
    detect_every: int = typer.Option(1, help="Run the detector every N frames; boxes follow the poses in between."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    dtype: Dtype = typer.Option(Dtype.fp32, help="fp32, or bf16/fp16 autocast (CUDA)."),
    flip: bool = typer.Option(False, "--flip/--no-flip", help="Flip test (twice the model time)."),
    batch_size: int = typer.Option(16, help="Persons per forward pass."),
    mode: Mode = typer.Option(Mode.exact, "--mode", help="exact, or fast: each frame's backbone feature computed "
                              "once and reused by its neighbours (docs/predict.md, Fast mode)."),
    share: Share = typer.Option(Share.own, "--share", help="With --mode fast: own (each frame cut with its own box) "
                                "or union (one box per track and chunk)."),
    chunk: int = typer.Option(16, "--chunk", help="With --mode fast: frames processed together (with --share union: "
                              "most frames sharing one crop box per track)."),
    max_shift: float = typer.Option(None, "--max-shift", help="With --mode fast --share union: largest offset of a "
                                    "shared crop box's centre from a person's own, in box heights (default 0.02)."),
    fps: float = typer.Option(None, help="Frame rate of a folder of frames (default: 25)."),
    out: Path = typer.Option(None, "--out", "-o", help="Output folder (default: ./famipose_out/<video stem>)."),
    render: bool = typer.Option(True, "--render/--no-render", help="Write <stem>.overlay.mp4."),
    json_out: bool = typer.Option(False, "--json", help="Print the run record as JSON on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar nor speed line on stderr."),
) -> None:
    """Predict every person's pose in every frame: PoseTrack18 JSON, COCO results, overlay video, run.json."""
    import time

    from famicli import predict_video

    from famicli.data.synthtrack import demo

    if weights is None:
        weights = demo.default_weights()
        note = demo.note_if_not_synthtrack(video)
        if note:
            typer.echo(note, err=True)
    if boxes is None and detector is None:
        boxes = demo.sidecar_boxes(video)
        if boxes is not None and not quiet:
            typer.echo(f"Using the boxes next to the video: {boxes}", err=True)
    stem = video.name if video.is_dir() else video.stem
    out = out if out is not None else Path("famipose_out") / stem
    t0 = time.perf_counter()
    with progress_bar("predict", quiet) as update:

        def progress(done: int, total: int) -> None:
            update(done, total, info=f"{done / max(time.perf_counter() - t0, 1e-9):.1f} frames/s")

        result = predict_video(video, weights, variant=variant, out=out, render=render, boxes=boxes,
                               detector=None if detector is None else detector.value, box_threshold=box_threshold,
                               detect_every=detect_every, device=device, dtype=dtype.value, flip=flip,
                               batch_size=batch_size, fps=fps, mode=mode.value, chunk=chunk, max_shift=max_shift,
                               share=share.value,
                               progress=progress)  # fmt: skip
    record = result.record
    if not quiet:
        typer.echo(speed_line(record), err=True)
    if json_out:
        typer.echo(json.dumps(record, indent=2))
        return
    typer.echo(f"{len(result)} frames, {result.persons} persons, {result.tracks} tracks -> {out}")
    for path in record["outputs"].values():
        typer.echo(f"  {path}")


def speed_line(record: dict) -> str:
    """ultralytics-style: ``Speed: 1.2ms decode, 0.0ms detect, 45.1ms pose, ... per frame at 160x120``."""
    ms = record["speed_ms_per_frame"]
    stages = [("decode", ms.get("decode", 0)), ("detect", ms.get("detect", 0)),
              ("pose", ms.get("crop", 0) + ms.get("pose", 0)), ("track", ms.get("track", 0)),
              ("render", ms.get("render", 0)), ("write", ms.get("write", 0))]  # fmt: skip
    video = record["video"]
    parts = ", ".join(f"{v:.1f}ms {k}" for k, v in stages)
    return (f"Speed: {parts} per frame at {video['width']}x{video['height']} "
            f"({record['timings']['frames']} frames, {record['frames_per_s']:.1f} frames/s)")  # fmt: skip

