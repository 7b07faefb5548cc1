"""The paper's claim in miniature: single-frame backbone vs FAMI-Pose on SynthTrack, overall and on
occluded / motion-blurred frames.

Each checkpoint is run once over a split with ground-truth boxes (as ``famipose train`` validates);
its prediction files are then scored with the official PoseTrack rules on the whole split and on
person subsets taken from SynthTrack's records: persons with at least 4 labelled joints hidden behind
an occluder or another person (``occluded_joints``), persons on motion-blurred frames
(``images[].synth``), and clean persons (no hidden joint, no blur, no camera shake).

    python benchmarks/synthtrack_claim.py --root data/synth_test --split val \\
        --backbone runs/tiny_sf/last.pt \\
        --fami "alpha 0=runs/tiny_a0/last.pt" --fami "official MI=runs/tiny_fami/last.pt"

Prints one markdown table (AP in %, person counts in the header); ``--json FILE`` also writes it.
A label given to several checkpoints (seeds) also gets a row with their mean and spread (half the range,
``±``). Below the table, each row's training command (the ``command`` of the ``run.json`` beside the
checkpoint, else the checkpoint's own ``recipe``). ``--cache DIR`` keeps each checkpoint's row (by the
file's sha256), so a table can grow as runs finish. docs/synthtrack.md has the recipe and the numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

OCCLUDED = 4  # a person counts as occluded with at least this many labelled joints hidden
# person subsets: (image entry, GT annotation) -> kept
SUBSETS = {
    "all": lambda im, a: True,
    "occluded": lambda im, a: len(a["occluded_joints"]) >= OCCLUDED,
    "blurred": lambda im, a: im["synth"]["blurred"],
    "clean": lambda im, a: not a["occluded_joints"] and not im["synth"]["blurred"] and not im["synth"]["shake"],
}


def subset_gt(gt_dir: Path, out: Path, keep) -> set[tuple[int, int]]:
    """Copy the GT files keeping only the persons for which ``keep(image, annotation)`` holds; returns
    their (image_id, track_id) pairs. Frames left without persons are not scored (poseval's rule)."""
    out.mkdir(parents=True)
    kept: set[tuple[int, int]] = set()
    for path in sorted(gt_dir.glob("*.json")):
        doc = json.loads(path.read_text())
        if any("synth" not in im for im in doc["images"]):
            raise SystemExit(f"Error: {path}: images[].synth: not a SynthTrack annotation file")
        images = {im["id"]: im for im in doc["images"]}
        doc["annotations"] = [a for a in doc["annotations"] if keep(images[a["image_id"]], a)]
        kept.update((a["image_id"], a["track_id"]) for a in doc["annotations"])
        (out / path.name).write_text(json.dumps(doc))
    return kept


def subset_pred(pred_dir: Path, out: Path, kept: set[tuple[int, int]]) -> None:
    """Copy the prediction files (ground-truth boxes, so ground-truth track ids) keeping ``kept`` persons."""
    out.mkdir(parents=True)
    for path in sorted(pred_dir.glob("*.json")):
        doc = json.loads(path.read_text())
        doc["annotations"] = [a for a in doc["annotations"] if (a["image_id"], a["track_id"]) in kept]
        (out / path.name).write_text(json.dumps(doc))


def training_command(path: Path) -> str:
    """The command that trained ``path``: its run.json's, else the recipe recorded in the checkpoint."""
    run = path.parent / "run.json"
    if run.is_file():
        return json.loads(run.read_text()).get("command", "")
    ck = torch.load(path, map_location="cpu", weights_only=True)
    recipe = ck.get("recipe") or {}
    commands = recipe.get("commands") if isinstance(recipe, dict) else None
    return " && ".join(commands) if isinstance(commands, list) else ""


def main(argv: list[str] | None = None) -> int:
    from famicli.config import train_configs
    from famicli.engine.validator import validate
    from famicli.metrics.scoring import evaluate
    from famicli.models.checkpoint import load_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", required=True, type=Path, help="SynthTrack folder")
    ap.add_argument("--split", default="val")
    ap.add_argument("--backbone", type=Path, help="stage-1 checkpoint (famipose train --single-frame)")
    ap.add_argument("--fami", action="append", default=[], metavar="LABEL=CKPT", help="FAMI-Pose checkpoint")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--json", type=Path, help="also write the table as JSON")
    ap.add_argument("--cache", type=Path, help="keep each checkpoint's row here (by sha256) and reuse it")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.getLogger("famicli").setLevel(logging.ERROR)  # subsets leave one-frame sequences: AP only

    runs = [("single-frame backbone", args.backbone, "backbone")] if args.backbone else []
    for item in args.fami:
        label, sep, path = item.partition("=")
        if not sep:
            ap.error(f"--fami {item!r}: expected LABEL=CKPT")
        runs.append((label, Path(path), "famipose"))
    if not runs:
        ap.error("give --backbone and/or --fami")
    gt_dir = args.root / "annotations" / args.split
    rows = []
    with tempfile.TemporaryDirectory(prefix="famipose-claim-") as tmp:
        tmp = Path(tmp)
        kept = {name: subset_gt(gt_dir, tmp / "gt" / name, keep) for name, keep in SUBSETS.items()}
        counts = {name: len(pairs) for name, pairs in kept.items()}
        for i, (label, path, heads) in enumerate(runs):
            from famicli.models.checkpoint import file_sha256

            cached = None
            if args.cache is not None:
                cached = args.cache / f"{file_sha256(path)}-{heads}-{args.split}.json"
                if cached.is_file():
                    rows.append(json.loads(cached.read_text()) | {"model": label, "checkpoint": str(path)})
                    print(f"{label}: cached {cached}", file=sys.stderr)
                    continue
            model = load_model(path)
            _, data_cfg, _, _ = train_configs(model.cfg.variant)
            t0 = time.perf_counter()
            pred_dir = tmp / f"pred{i}"
            validate(model, args.root, data_cfg, split=args.split, heads=heads, pred_dir=pred_dir)
            pred_dir = pred_dir / heads
            row = {"model": label, "checkpoint": str(path), "heads": heads}
            for name in SUBSETS:
                subset_pred(pred_dir, tmp / f"pred{i}_{name}", kept[name])
                result = evaluate(
                    tmp / "gt" / name, tmp / f"pred{i}_{name}", "posetrack18", order="sorted", coco=False, strict=False
                )
                row[name] = round(float(result.to_dict()["ap"]["Total"]), 1)
            row["seconds"] = round(time.perf_counter() - t0, 1)
            row["command"] = training_command(path)
            rows.append(row)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_text(json.dumps(row, indent=2) + "\n")
            print(f"{label}: {row}", file=sys.stderr)
    header = " | ".join(f"{n} ({counts[n]} persons)" for n in SUBSETS)
    print(f"\nPoseTrack AP (%), {args.root} {args.split}, ground-truth boxes\n")
    print(f"| model | {header} |")
    print("|---|" + "---|" * len(SUBSETS))
    labels = list(dict.fromkeys(row["model"] for row in rows))
    for label in labels:
        mine = [row for row in rows if row["model"] == label]
        for row in mine:
            seed = f" ({Path(row['checkpoint']).parent.name})" if len(mine) > 1 else ""
            print(f"| {label}{seed} | " + " | ".join(f"{row[n]:.1f}" for n in SUBSETS) + " |")
        if len(mine) > 1:
            cells = []
            for n in SUBSETS:
                values = [row[n] for row in mine]
                mean, spread = sum(values) / len(values), (max(values) - min(values)) / 2
                cells.append(f"**{mean:.1f} ± {spread:.1f}**")
            print(f"| {label}, mean ± half range of {len(mine)} | " + " | ".join(cells) + " |")
    print("\nCommands:\n")
    for row in rows:
        print(f"- {row['model']} ({row['checkpoint']}): `{row.get('command', '')}`")
    if args.json:
        args.json.write_text(json.dumps({"persons": counts, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
