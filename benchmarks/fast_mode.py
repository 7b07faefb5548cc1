"""Cached streaming mode (``predict --mode fast``) against exact mode: speed and accuracy (not a test).

In one process, with one set of weights:

1. speed: a multi-person SynthTrack video (generated here, every frame labeled so that every frame
   is a key frame; boxes from its annotations file, so famipose tracks them) streamed through
   :func:`famicli.inference.stream.run` in each configuration, interleaved, ``--repeats`` times
   after a warm-up; person key frames per second from the median wall time (decode, boxes, crops,
   model, tracking; no rendering, no files). Configurations:

   - ``exact``: ``--mode exact`` (the reference model, every window cropped with its key box);
   - ``fast own L``: ``--mode fast --chunk L`` (``--share own``, the default: each frame cut once with
     its own box; cached features + the exact fast path);
   - ``fast L/S``: ``--mode fast --share union --chunk L --max-shift S``;
   - ``cache only own L``: the cached mode on the reference model, to separate the two gains;
   - ``exact + fast path``: exact mode on the fast path.

2. accuracy: PoseTrack AP with ground-truth boxes (``famicli.engine.validator.evaluate_model``,
   i.e. ``famipose eval --weights CKPT --mode ...``) on SynthTrack val, exact and fast per chunk,
   and the difference (the same configurations). ``--root`` takes a SynthTrack folder; by default a val set is generated
   (``--val-videos`` videos of 12 frames, labels on every 4th frame, as ``famipose data synth``).
   ``--dense`` adds the same on val videos labeled on every frame (every chunk frame is a key frame
   there, so the union boxes span whole chunks).

    python benchmarks/fast_mode.py --weights CKPT [--root SYNTH] [--chunks 4 8 16] [--threads 1] [--json]

Threads: the default, 1, keeps timings stable on a shared 2-core machine; with more threads than
free cores, PyTorch's thread pool spins and small ops (tiny variant) slow down by 10x and more.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch


def speed_video(base: Path, frames: int, seed: int) -> tuple[Path, Path]:
    """A val video with every frame labeled, the one with the most persons of three: (annotations, frame folder)."""
    from famicli.data.synthtrack.generate import SynthConfig, generate

    root = base / "speed"
    generate(root, SynthConfig(videos=3, frames=frames, seed=seed, val_videos=3, val_label_every=1))
    anns = sorted((root / "annotations" / "val").glob("*.json"))
    ann = max(anns, key=lambda p: len(json.loads(p.read_text())["annotations"]))
    return ann, root / "images" / "val" / ann.stem


def settings(chunks: list[int], shifts: list[float]) -> list[tuple[int, float]]:
    return [(c, s) for c in chunks for s in shifts]


def label(chunk: int, shift: float | None) -> str:
    return f"fast own {chunk}" if shift is None else f"fast {chunk}/{shift:g}"


def time_configs(
    model,
    ann: Path,
    folder: Path,
    chunks: list[int],
    shifts: list[float],
    repeats: int,
    batch_size: int,
    bf16: bool = False,
) -> dict:
    from famicli.config import DataConfig
    from famicli.data.video import ImageSequence
    from famicli.inference.detect import BoxFile
    from famicli.inference.predictor import PoseEstimator, PredictConfig
    from famicli.inference.stream import run
    from famicli.inference.track import GreedyTracker

    files = sorted(folder.glob("*.jpg"))
    boxes = BoxFile(ann)
    ref = PoseEstimator(model, DataConfig(), torch.device("cpu"), torch.float32)
    fast = PoseEstimator(model, DataConfig(), torch.device("cpu"), torch.float32, fast_path=True)
    configs = {"exact": (ref, None, None), "exact + fast path": (fast, None, None)}
    for c in chunks:
        configs[label(c, None)] = (fast, c, None)  # share "own"
    for c, s in settings(chunks, shifts):
        configs[label(c, s)] = (fast, c, s)  # share "union"
    configs[f"cache only own {chunks[0]}"] = (ref, chunks[0], None)
    if bf16:  # the opt-in: convolutions under bf16 autocast (deformable ones in fp32), not exact
        half = PoseEstimator(model, DataConfig(), torch.device("cpu"), torch.bfloat16, fast_path=True)
        configs["exact + fast path, bf16"] = (half, None, None)
        configs[f"{label(chunks[0], None)}, bf16"] = (half, chunks[0], None)

    def once(estimator, chunk, shift):
        fast = {} if chunk is None else {"mode": "fast", "chunk": chunk, "share": "own" if shift is None else "union"}
        cfg = PredictConfig(batch_size=batch_size, **fast, **({} if shift is None else {"max_shift": shift}))
        t0 = time.perf_counter()
        poses, timings = run(
            ImageSequence(files, name=ann.stem), boxes.for_video(ann.stem, len(files)), estimator, GreedyTracker(), cfg
        )
        return time.perf_counter() - t0, sum(len(p.boxes) for p in poses), timings

    for config in configs.values():  # warm-up
        once(*config)
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    info = {}
    for _ in range(repeats):
        for name, config in configs.items():
            s, persons, timings = once(*config)
            seconds[name].append(s)
            info[name] = {
                "persons": persons,
                "backbone_crops": timings.get("backbone_crops"),
                "stage_seconds": timings["seconds"],
            }
    out = {}
    for name, ts in seconds.items():
        med = statistics.median(ts)
        out[name] = {"key_frames_per_s": round(info[name]["persons"] / med, 2), "seconds": round(med, 3), **info[name]}
    base = out["exact"]["key_frames_per_s"]
    for r in out.values():
        r["ratio_vs_exact"] = round(r["key_frames_per_s"] / base, 2)
    return {
        "video": str(folder),
        "frames": len(files),
        "persons": out["exact"]["persons"],
        "tracks": len({a["track_id"] for a in json.loads(ann.read_text())["annotations"]}),
        "configs": out,
    }


def accuracy(model, root: Path, chunks: list[int], shifts: list[float], batch_size: int, bf16: bool = False) -> dict:
    from famicli.engine.validator import evaluate_model
    from famicli.inference.predictor import PredictConfig

    rows = {}
    runs = [
        ("exact", 8, None, "fp32"),
        *(("fast", c, None, "fp32") for c in chunks),
        *(("fast", c, s, "fp32") for c, s in settings(chunks, shifts)),
    ]
    if bf16:
        runs += [("exact", 8, None, "bf16"), ("fast", chunks[0], None, "bf16")]
    for mode, chunk, shift, dtype in runs:
        t0 = time.perf_counter()
        cfg = PredictConfig(
            batch_size=batch_size,
            mode=mode,
            chunk=chunk,
            share="own" if shift is None else "union",
            dtype=dtype,
            **({} if shift is None else {"max_shift": shift}),
        )
        r = evaluate_model(model, root, cfg)
        name = ("exact" if mode == "exact" else label(chunk, shift)) + (", bf16" if dtype == "bf16" else "")
        rows[name] = {
            "ap": r["famipose"]["ap"],
            "backbone_ap": r["backbone"]["ap"]["Total"],
            "mota": r["famipose"]["mota"]["Total"],
            "seconds": round(time.perf_counter() - t0, 1),
        }
    base = rows["exact"]["ap"]["Total"]
    for r in rows.values():
        r["ap_change"] = round(r["ap"]["Total"] - base, 2)
    return {"root": str(root), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="checkpoint (trained tiny weights for meaningful AP)")
    parser.add_argument("--root", type=Path, default=None, help="SynthTrack folder for AP (default: generate one)")
    parser.add_argument("--chunks", type=int, nargs="+", default=[8, 16], help="the first is the default's")
    parser.add_argument(
        "--max-shifts",
        type=float,
        nargs="+",
        default=[0.1, 0.02, 0.05, 1.0],
        help="fast mode's max_shift values (box heights); the first is the default's",
    )
    parser.add_argument("--frames", type=int, default=48, help="frames of the speed video")
    parser.add_argument("--val-videos", type=int, default=40, help="val videos generated without --root")
    parser.add_argument("--seed", type=int, default=1001, help="seed of the generated sets (not the training seed)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dense", action="store_true", help="also AP on val videos labeled on every frame")
    parser.add_argument("--skip-ap", action="store_true")
    parser.add_argument(
        "--bf16", action="store_true", help="also time and score the bf16 opt-in (exact, first setting)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    torch.set_num_threads(args.threads)
    from famicli.data.synthtrack.generate import SynthConfig, generate
    from famicli.models.checkpoint import load_model

    model = load_model(args.weights, None, "cpu")
    result = {"weights": str(args.weights), "variant": model.cfg.variant, "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory(prefix="famipose-fast-mode-") as tmp:
        ann, folder = speed_video(Path(tmp), args.frames, args.seed)
        result["speed"] = time_configs(
            model, ann, folder, args.chunks, args.max_shifts, args.repeats, args.batch_size, args.bf16
        )
        if not args.skip_ap:
            root = args.root
            if root is None:
                root = Path(tmp) / "val"
                generate(
                    root, SynthConfig(videos=args.val_videos, frames=12, seed=args.seed + 1, val_videos=args.val_videos)
                )
            result["accuracy"] = accuracy(model, root, args.chunks, args.max_shifts, args.batch_size, args.bf16)
            if args.dense:
                dense = Path(tmp) / "dense"
                generate(dense, SynthConfig(videos=10, frames=24, seed=args.seed + 2, val_videos=10, val_label_every=1))
                result["accuracy_dense"] = accuracy(
                    model, dense, args.chunks, args.max_shifts, args.batch_size, args.bf16
                )
    if args.json:
        print(json.dumps(result, indent=2))
        return
    sp = result["speed"]
    print(f"{result['weights']} ({result['variant']}), {result['threads']} thread(s)")
    print(
        f"speed: {sp['frames']} frames, {sp['tracks']} tracks, {sp['persons']} person key frames, "
        "median of interleaved runs"
    )
    print(f"  {'config (chunk/max_shift)':26} {'key frames/s':>12} {'x exact':>8} {'crops/key frame':>16}")
    for name, r in sp["configs"].items():
        crops = r["backbone_crops"] if r["backbone_crops"] is not None else 5 * r["persons"]
        print(f"  {name:26} {r['key_frames_per_s']:12.1f} {r['ratio_vs_exact']:8.2f} {crops / r['persons']:16.2f}")
    for key, title in (("accuracy", "SynthTrack val"), ("accuracy_dense", "SynthTrack val, every frame labeled")):
        if key not in result:
            continue
        acc = result[key]
        print(f"PoseTrack AP, ground-truth boxes, {title} ({acc['root']}):")
        print(f"  {'config':18} {'AP Total':>9} {'change':>7} {'backbone AP':>12} {'MOTA':>6} {'seconds':>8}")
        for name, r in acc["rows"].items():
            print(
                f"  {name:18} {r['ap']['Total']:9.2f} {r['ap_change']:+7.2f} {r['backbone_ap']:12.2f} "
                f"{r['mota']:6.1f} {r['seconds']:8.1f}"
            )


if __name__ == "__main__":
    main()
