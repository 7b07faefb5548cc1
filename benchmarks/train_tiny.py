"""Train the tiny variant on a generated SynthTrack set on CPU; compare val AP with the untrained model.

    python benchmarks/train_tiny.py [--videos 12] [--frames 32] [--epochs 3] [--batch 8] [--lr 2e-3] [--sigma 2]

Prints the wall time of each epoch, the loss at the start and end of epoch 1, and PoseTrack AP
(GT boxes, val split) of the untrained model (same initialization) and of the trained one, with
their ratio — both measured in this run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from famicli.config import train_configs
from famicli.data.synthtrack.generate import SynthConfig, generate
from famicli.engine.trainer import train
from famicli.engine.validator import validate
from famicli.models.famipose import FamiPose


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=None, help="default: the tiny preset's")
    parser.add_argument("--batch", type=int, default=None, help="default: the tiny preset's")
    parser.add_argument("--lr", type=float, default=None, help="default: the tiny preset's")
    parser.add_argument("--sigma", type=float, default=None, help="target std, heatmap pixels (default 1 for tiny)")
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of the MI terms (0: heatmap loss only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="keep data and run here (default: a temp dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="famipose-bench-") as tmp:
        base = args.out or Path(tmp)
        root = base / "synthtrack"
        if not root.exists():
            generate(root, SynthConfig(videos=args.videos, frames=args.frames, seed=args.seed))
        model_cfg, data_cfg, loss_cfg, train_cfg = train_configs(
            "tiny", seed=args.seed, sigma=args.sigma, alpha=args.alpha
        )
        train_cfg = replace(
            train_cfg,
            workers=1,
            **{
                k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch), ("lr", args.lr)) if v is not None
            },
        )
        print(f"data: {root} ({args.videos} videos x {args.frames} frames); {train_cfg}")

        torch.manual_seed(args.seed * 1000)  # the engine's initialization seed for epoch 0
        untrained = FamiPose(model_cfg)
        t0 = time.perf_counter()
        before = validate(untrained, root, data_cfg)
        eval_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        result = train(root, base / "run", model_cfg, data_cfg, loss_cfg, train_cfg, device="cpu")
        train_s = time.perf_counter() - t0
        steps = [json.loads(line) for line in (base / "run" / "train_log.jsonl").read_text().splitlines()]
        epoch1 = [s for s in steps if s.get("epoch") == 1 and "step" in s]
        k = max(1, len(epoch1) // 10)
        first = sum(s["heatmap"] for s in epoch1[:k]) / k
        last = sum(s["heatmap"] for s in epoch1[-k:]) / k
        print(f"epoch 1 heatmap loss: first {k} steps {first:.5f} -> last {k} steps {last:.5f} ({last / first:.2f}x)")
        for e in result.epochs:
            ap = e["val"]["ap"]["Total"] if e.get("val") else float("nan")
            print(
                f"epoch {e['epoch']}: {e['seconds']:.0f} s, mean loss {e['mean_loss']:.5f}, "
                f"heatmap {e['mean_heatmap']:.5f}, val AP {ap:.1f}"
            )
        after = result.epochs[-1]["val"]
        print(f"training: {train_s:.0f} s for {train_cfg.epochs} epochs (validation included); eval {eval_s:.1f} s")
        print(f"val AP (GT boxes): untrained {before['ap']['Total']:.1f}, trained {after['ap']['Total']:.1f}")
        print("per joint group, trained:", {k: round(v, 1) for k, v in after["ap"].items()})


if __name__ == "__main__":
    main()
