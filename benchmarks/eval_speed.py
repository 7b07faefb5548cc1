"""How fast is ``famicli.evaluate`` on a PoseTrack18-val-sized case? (not a test)

Builds 170 sequences × 40 labeled frames (~19k GT persons; predictions with keypoint noise,
gross errors, missed persons, false positives and track-id swaps; a few ignore regions), writes
them as PoseTrack18 JSON in a temporary folder, then times ``famicli.evaluate`` (AP + MOT, then
with COCO AP) and reports peak memory. The baseline, run in the same process, is the same
evaluation with ``tracker="motmetrics"`` (poseval's accumulators, fed frame by frame) on the
full case, or on the first ``--baseline-seqs`` sequences extrapolated linearly (it says which).

    python benchmarks/eval_speed.py [--seqs 170] [--frames 40] [--baseline-seqs N]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

NAMES = ["nose", "head_bottom", "head_top", "left_ear", "right_ear", "left_shoulder",
         "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
         "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"]  # fmt: skip
# a standing person, offsets in units of head size (x right, y down)
POSE = np.array([[0, 0.2], [0, 0.9], [0, -0.8], [0.3, 0.1], [-0.3, 0.1], [0.9, 1.3],
                 [-0.9, 1.3], [1.1, 2.6], [-1.1, 2.6], [1.2, 3.8], [-1.2, 3.8], [0.6, 4.0],
                 [-0.6, 4.0], [0.6, 5.8], [-0.6, 5.8], [0.6, 7.6], [-0.6, 7.6]])  # fmt: skip


def make_case(root: Path, n_seqs: int, n_frames: int, seed: int = 0) -> tuple[Path, Path]:
    """Write ``root/gt`` and ``root/pred`` and return them."""
    rng = np.random.default_rng(seed)
    gt_dir, pred_dir = root / "gt", root / "pred"
    gt_dir.mkdir(parents=True)
    pred_dir.mkdir(parents=True)
    for s in range(n_seqs):
        name = f"{10000 + s:06d}_mpii_test"
        images = [{"id": 10000000000 + (10000 + s) * 10000 + f, "file_name":
                   f"images/val/{name}/{f:06d}.jpg", "frame_id": f, "is_labeled": True,
                   "nframes": n_frames, "vid_id": name[:6]} for f in range(n_frames)]  # fmt: skip
        for img in images:
            if rng.random() < 0.05:
                x0, y0 = rng.uniform(0, 1000, 2)
                img["ignore_regions_x"] = [[x0, x0 + 150, x0 + 150, x0]]
                img["ignore_regions_y"] = [[y0, y0, y0 + 200, y0 + 200]]
        n_people = int(rng.integers(2, 4)) + (rng.random() < 0.45)
        start = rng.uniform([100, 100], [1100, 300], (n_people, 2))
        vel = rng.normal(0, 4, (n_people, 2))
        size = rng.uniform(25, 60, n_people)
        swap_at = int(rng.integers(5, n_frames)) if rng.random() < 0.5 else n_frames
        gts, preds = [], []
        for f, img in enumerate(images):
            ids = np.arange(n_people) + 100
            if f >= swap_at and n_people > 1:
                ids[[0, 1]] = ids[[1, 0]]  # the tracker swaps two identities
            for p in range(n_people):
                if rng.random() < 0.05:
                    continue  # person not annotated in this frame
                centre = start[p] + vel[p] * f
                kp = centre + POSE * size[p] + rng.normal(0, 2, (17, 2))
                vis = rng.random(17) > 0.08
                vis[3:5] = False  # ears are never annotated
                gk = np.c_[kp, np.ones(17)] * vis[:, None]
                head = [centre[0] - 0.4 * size[p], centre[1] - 0.9 * size[p], 0.8 * size[p],
                        1.1 * size[p]]  # fmt: skip
                gts.append({"image_id": img["id"], "track_id": p, "category_id": 1,
                            "keypoints": np.round(gk, 2).reshape(-1).tolist(), "bbox_head": head,
                            "bbox": [*(kp.min(0) - 10), *(kp.max(0) - kp.min(0) + 20)]})
                if rng.random() < 0.08:
                    continue  # missed by the detector
                noise = rng.normal(0, 0.12 * size[p], (17, 2))
                gross = rng.random(17) < 0.07
                noise[gross] *= 8
                preds.append(_pred(img["id"], int(ids[p]), kp + noise, rng))
            for k in range(rng.poisson(0.4)):  # false positives
                centre = rng.uniform([0, 0], [1280, 500])
                preds.append(_pred(img["id"], 500 + k,
                                   centre + POSE * rng.uniform(20, 60), rng))
        cats = [{"id": 1, "name": "person", "keypoints": NAMES}]
        (gt_dir / f"{name}.json").write_text(json.dumps(
            {"images": images, "annotations": gts, "categories": cats}))
        (pred_dir / f"{name}.json").write_text(json.dumps(
            {"images": images, "annotations": preds, "categories": cats}))
    return gt_dir, pred_dir


def _pred(image_id, track_id, kp, rng) -> dict:
    """A predicted person with 17 keypoints and scores."""
    return {"image_id": image_id, "track_id": track_id, "category_id": 1,
            "keypoints": np.c_[np.round(kp, 2), np.ones(17)].reshape(-1).tolist(),
            "scores": np.round(rng.uniform(0.05, 1.0, 17), 3).tolist()}


def _subset(src: Path, dst: Path, n: int) -> Path:
    dst.mkdir(parents=True)
    for f in sorted(src.glob("*.json"))[:n]:
        shutil.copy(f, dst / f.name)
    return dst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seqs", type=int, default=170)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--baseline-seqs", type=int, default=None, help="default: all")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import famicli

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        gt, pred = make_case(root / "full", args.seqs, args.frames)
        size_mb = sum(p.stat().st_size for p in root.rglob("*.json")) / 2**20
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            result = famicli.evaluate(gt, pred, coco=False, order="sorted")
            times.append(time.perf_counter() - t)
        prov = result.provenance
        t = time.perf_counter()
        with_coco = famicli.evaluate(gt, pred, coco=True, order="sorted")
        t_coco = time.perf_counter() - t
        tracemalloc.start()
        famicli.evaluate(gt, pred, coco=False, order="sorted")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        n = min(args.baseline_seqs or args.seqs, args.seqs)
        sub_gt, sub_pred = gt, pred
        if n < args.seqs:
            sub_gt = _subset(gt, root / "sub" / "gt", n)
            sub_pred = _subset(pred, root / "sub" / "pred", n)
        t = time.perf_counter()
        base = famicli.evaluate(sub_gt, sub_pred, coco=False, tracker="motmetrics", order="sorted")
        t_base = time.perf_counter() - t
        fast_sub = famicli.evaluate(sub_gt, sub_pred, coco=False, order="sorted")
        same = all(np.allclose(list(base.per_joint[k].values()),
                               list(fast_sub.per_joint[k].values()), atol=1e-9, equal_nan=True)
                   for k in base.per_joint)  # fmt: skip
        t_base_full = t_base * args.seqs / n

    best = min(times)
    print(f"case: {prov['sequences']} sequences, {prov['frames']} frames, {prov['gt_persons']} GT "
          f"persons, {prov['pred_persons']} predicted persons, {size_mb:.1f} MiB of JSON")
    print(f"famicli.evaluate (AP + MOT): best {best:.3f} s of {args.repeat} "
          f"(runs: {', '.join(f'{x:.3f}' for x in times)}); stages {prov['timings']}")
    print(f"  with COCO OKS AP too: {t_coco:.3f} s")
    print(f"  AP total {result.ap['Total']:.2f}, MOTA total {result.mota['Total']:.2f}, "
          f"COCO AP {with_coco.coco['AP']:.2f}")
    print(f"peak memory: {peak / 2**20:.1f} MiB traced by tracemalloc in evaluate; process max "
          f"RSS {maxrss_mb:.0f} MiB")
    how = "full case" if n == args.seqs else f"{n} sequences, {t_base:.2f} s, extrapolated"
    print(f"baseline tracker='motmetrics' ({how}): {t_base_full:.1f} s -> famipose is "
          f"{t_base_full / best:.1f}x faster; same numbers: {same}")


if __name__ == "__main__":
    main()
