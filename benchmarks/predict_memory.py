"""Does ``famipose predict`` keep memory bounded as videos get longer? (not a test)

For each length, writes a synthetic video (one SynthTrack figure walking on a textured background,
160x120 by default, h264 mp4), then predicts it in a fresh process with the ``tiny`` variant
(random weights), full-frame boxes (or ``--boxes file``: a detections file with the figure's
box on every frame), tracking and the overlay video, and reports that process's peak resident
memory (``ru_maxrss``) and its RSS sampled at 10 %, 50 % and 100 % of the frames. The baseline
is the shortest video, run the same way: memory that grows with the video shows as a ratio > 1.
For scale, the table also says how much holding the decoded video in RAM would take.

    python benchmarks/predict_memory.py [--lengths 250,1000,2000] [--size 160x120] [--boxes full-frame|file]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def write_video(path: Path, n: int, size: tuple[int, int], seed: int = 0) -> Path:
    """A figure walking back and forth for ``n`` frames (streamed to the encoder); returns its boxes file."""
    from PIL import Image, ImageDraw

    from famicli.data.synthtrack import figure as F
    from famicli.data.video import VideoWriter

    w, h = size
    rng = np.random.default_rng(seed)
    background = rng.integers(60, 200, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    background = np.asarray(Image.fromarray(background).resize((w, h), Image.Resampling.BICUBIC))
    spec = F.random_figure(rng, 1, (w, h), 0.4 * h, 0)
    boxes = []
    with VideoWriter(path, 25, size) as writer:
        for t in range(n):
            image = Image.fromarray(background.copy())
            mask = Image.new("L", (w, h))
            fig = F.pose(spec, t % 200)  # walks across and starts again every 200 frames
            F.draw(ImageDraw.Draw(image), ImageDraw.Draw(mask), fig, 1, (0, 0))
            writer.write(np.asarray(image))
            x1, y1, x2, y2 = (float(v) for v in fig.extent)
            boxes.append({"frame_index": t, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": 1.0})
    box_file = path.with_suffix(".boxes.json")
    box_file.write_text(json.dumps(boxes))
    return box_file


def rss_mib() -> float:
    """Current resident set size of this process, MiB (Linux)."""
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(video: str, weights: str, boxes: str | None, out: str) -> None:
    """Predict ``video`` in this process and print one JSON line: peak RSS, RSS samples, speed."""
    import torch

    import famicli

    torch.set_num_threads(max(1, torch.get_num_threads()))
    samples: dict[str, float] = {}

    def progress(done: int, total: int) -> None:
        for frac in (0.1, 0.5, 1.0):
            if done == max(1, int(total * frac)):
                samples[f"{int(frac * 100)}%"] = round(rss_mib(), 1)

    kw = {"boxes": boxes} if boxes else {"detector": "full-frame"}
    result = famicli.predict_video(video, weights, device="cpu", out=out, progress=progress, **kw)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    print(
        json.dumps(
            {
                "peak_rss_mib": round(peak, 1),
                "rss_mib": samples,
                "frames": len(result),
                "frames_per_s": result.record["frames_per_s"],
                "frames_buffered_max": result.record["timings"]["frames_buffered_max"],
                "ms_per_frame": result.record["speed_ms_per_frame"],
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", default="250,1000,2000", help="comma-separated frame counts")
    ap.add_argument("--size", default="160x120", help="frame WxH")
    ap.add_argument("--boxes", choices=("full-frame", "file"), default="full-frame")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        video, weights, boxes, out = args.child
        return child(video, weights, None if boxes == "-" else boxes, out)
    import famicli

    lengths = [int(v) for v in args.lengths.split(",")]
    size = tuple(int(v) for v in args.size.lower().split("x"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="famipose-mem-") as tmp:
        tmp = Path(tmp)
        weights = tmp / "tiny.pt"
        famicli.save_checkpoint(famicli.build_model("tiny"), weights)
        for n in lengths:
            video = tmp / f"walk_{n}.mp4"
            box_file = write_video(video, n, size)
            cmd = [
                sys.executable,
                __file__,
                "--child",
                str(video),
                str(weights),
                str(box_file) if args.boxes == "file" else "-",
                str(tmp / f"out_{n}"),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"length {n}: child failed:\n{proc.stderr}")
            rows.append((n, json.loads(proc.stdout.strip().splitlines()[-1])))
            print(f"  {n} frames done: {rows[-1][1]}", file=sys.stderr)
    base = rows[0][1]["peak_rss_mib"]
    w, h = size
    print(f"famipose predict, tiny variant (random weights), {w}x{h} h264, boxes: {args.boxes}, overlay on")
    print(
        f"{'frames':>7} {'peak RSS':>9} {'ratio':>6} {'RSS@10%':>8} {'RSS@50%':>8} {'RSS@100%':>9} "
        f"{'held':>5} {'frames/s':>9} {'video in RAM':>13}"
    )
    for n, r in rows:
        s = r["rss_mib"]
        print(
            f"{n:>7} {r['peak_rss_mib']:>7.0f}Mi {r['peak_rss_mib'] / base:>6.3f} {s.get('10%', 0):>6.0f}Mi "
            f"{s.get('50%', 0):>6.0f}Mi {s.get('100%', 0):>7.0f}Mi {r['frames_buffered_max']:>5} "
            f"{r['frames_per_s']:>9.2f} {n * w * h * 3 / 2**20:>11.0f}Mi"
        )
    print(
        f"ratio = peak RSS / peak RSS of the {lengths[0]}-frame run (baseline, same settings); "
        "held = most decoded frames in memory at once"
    )


if __name__ == "__main__":
    main()
