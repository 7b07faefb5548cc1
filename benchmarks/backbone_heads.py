"""``predict --heads backbone`` against the full temporal model with the same backbone (not a test).

A pose-HRNet checkpoint used to run the whole FAMI-Pose with random temporal modules; now it runs its
single-frame HRNet alone, one crop per person. This script measures the two on the same frames and boxes,
in one process, interleaved, ``--repeats`` times:

- ``full``: a famipose checkpoint of a randomly initialized model (``--variant``, default w48): the temporal
  model, exact mode (five crops per person and key frame, the backbone on each, then GTM, LCM, aggregation);
- ``backbone``: the same model's backbone saved as a pose-HRNet checkpoint (bare ``conv1.weight``, ...):
  ``--heads backbone`` by default (one crop per person, its key frame's).

The clip is the first ``--frames`` frames of ``assets/demo.mp4`` with their boxes from
``assets/demo_boxes.json`` (the whole 75-frame clip takes w48's full model about 15 minutes on 2 cores).
It prints the pose time per frame and per person key frame of each, the ratio, and checks that the
backbone column of the full run equals the backbone run's keypoints.

    python benchmarks/backbone_heads.py [--variant w48] [--frames 8] [--repeats 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

import famicli
from famicli.data.video import VideoWriter, open_video
from famicli.inference.predictor import PredictConfig
from famicli.models.checkpoint import save_checkpoint

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def cut_clip(folder: Path, frames: int) -> tuple[Path, Path]:
    """The first ``frames`` frames of the demo clip, and their boxes."""
    video, boxes = folder / "clip.mp4", folder / "clip_boxes.json"
    with open_video(ASSETS / "demo.mp4") as source:
        it = source.frames()
        first = [next(it) for _ in range(frames)]
        fps = source.info.fps
    with VideoWriter(video, fps, (first[0].shape[1], first[0].shape[0])) as writer:
        for frame in first:
            writer.write(frame)
    kept = [b for b in json.loads((ASSETS / "demo_boxes.json").read_text()) if b["frame_index"] < frames]
    boxes.write_text(json.dumps(kept))
    return video, boxes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="w48", choices=["w48", "w32", "tiny"])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        video, boxes = cut_clip(tmp, args.frames)
        model = famicli.build_model(args.variant)
        full = save_checkpoint(model, tmp / "full.pt")
        hrnet = tmp / "pose_hrnet.pth"
        torch.save({"state_dict": model.backbone.state_dict()}, hrnet)
        cfg = PredictConfig(boxes=str(boxes), device="cpu", batch_size=args.batch_size)
        times: dict[str, list[float]] = {"full": [], "backbone": []}
        results = {}
        for _ in range(args.repeats):
            for name, weights in (("full", full), ("backbone", hrnet)):
                result = famicli.predict_video(video, weights, cfg, variant=args.variant)
                times[name].append(result.record["timings"]["seconds"]["pose"])
                results[name] = result
        persons = results["full"].persons
        backbone_equal = max(
            float(np.abs(a.backbone - b.keypoints)[..., :2].max()) if len(a.boxes) else 0.0
            for a, b in zip(results["full"].frames, results["backbone"].frames, strict=True)
        )
    print(
        f"{args.variant}, first {args.frames} frames of assets/demo.mp4, {persons} person key frames, "
        f"{args.threads} threads, {args.repeats} runs each (median):"
    )
    medians = {k: statistics.median(v) for k, v in times.items()}
    for name, label in (
        ("full", "full model (--heads fami), exact"),
        ("backbone", "pose-HRNet checkpoint (--heads backbone)"),
    ):
        s = medians[name]
        print(
            f"  {label:44s} pose {s / args.frames:7.2f} s/frame  {s / persons:6.2f} s/person  "
            f"{persons / s:5.2f} person key frames/s   runs: {', '.join(f'{t:.1f}' for t in times[name])} s"
        )
    print(
        f"  backbone alone is {medians['full'] / medians['backbone']:.2f}x faster; "
        f"max |full run's backbone keypoints - backbone run's| = {backbone_equal:.2e} px"
    )


if __name__ == "__main__":
    main()
