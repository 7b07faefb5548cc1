"""Rebuild the bundled demo in this folder: the clip and its boxes, and (with --weights) the weights.

    python assets/make_demo.py                                   # demo.mp4 + demo_boxes.json
    python assets/make_demo.py --weights runs/demo_fami/last.pt  # + demo_tiny.pt (weights only, recipe inside)

The weights come from the commands in RECIPE (assets/README.md explains them); this script strips the
training state (optimizer, epoch), keeps the run's data/loss/train configurations (``configs``, read by
``famipose viz``) and records the recipe in the checkpoint (``recipe`` entry).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECIPE = {
    "seed": 0,  # famipose train --seed (the default)
    "synthtrack": {"videos": 160, "frames": 12, "seed": 1},
    "commands": [
        "famipose data synth --out data/synthtrack --videos 160 --frames 12 --seed 1",
        (
            "famipose train --dataset synthtrack --root data/synthtrack --variant tiny --single-frame "
            "--epochs 8 --lr-steps 6 --batch-size 16 --lr 5e-3 --seed 0 --out runs/demo_sf"
        ),
        (
            "famipose train --dataset synthtrack --root data/synthtrack --variant tiny --backbone runs/demo_sf/last.pt "
            "--freeze-backbone --epochs 6 --lr-steps 4 --batch-size 16 --lr 5e-3 --alpha 0 --seed 0 "
            "--out runs/demo_fami"
        ),
    ],
}


def last_val_ap(weights: Path) -> dict | None:
    """The last validated epoch's PoseTrack AP table, from the run's train_log.jsonl beside ``weights``."""
    import json

    log = weights.parent / "train_log.jsonl"
    epochs = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    validated = [e for e in epochs if e.get("event") == "epoch" and e.get("val")]
    return validated[-1]["val"]["ap"] if validated else None


def main(argv: list[str] | None = None) -> int:
    import famicli
    from famicli.data.synthtrack import demo
    from famicli.models.checkpoint import file_sha256, read_checkpoint

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", type=Path, help="last.pt of the recipe's final command")
    ap.add_argument("--out", type=Path, default=HERE, help="destination folder (default: assets/)")
    args = ap.parse_args(argv)
    if RECIPE["synthtrack"] != demo.SYNTH_RECIPE:
        raise SystemExit("Error: RECIPE['synthtrack'] differs from famicli.data.synthtrack.demo.SYNTH_RECIPE")
    summary = demo.write_demo_clip(args.out)
    print(
        f"{summary['video']}: {summary['frames']} frames, {summary['persons']} boxes, "
        f"{summary['blurred_frames']} blurred frames, {summary['occluded_frames']} frames with occlusions"
    )
    if args.weights:
        model = famicli.load_model(args.weights)
        configs = read_checkpoint(args.weights).get("train_state", {}).get("configs", {})  # data, loss, train
        record = {**RECIPE, "source_sha256": file_sha256(args.weights), "val_ap": last_val_ap(args.weights)}
        path = famicli.save_checkpoint(model, args.out / demo.WEIGHTS_NAME, recipe=record, configs=configs)
        print(f"{path}: {path.stat().st_size / 2**20:.1f} MiB, weights only, recipe recorded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
