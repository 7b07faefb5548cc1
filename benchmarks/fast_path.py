"""How much faster is the exact fast inference path than the reference model? (not a test)

Builds each variant with random weights (BatchNorm statistics randomized so that folding matters),
and times, interleaved in one process on the same random crops:

- ``reference``: ``FamiPose`` in eval mode under ``torch.no_grad`` (as ``famicli.inference`` runs it);
- ``fast``: ``famicli.models.folded.optimize_for_inference(model)`` (BN folded, in-place residuals,
  inference mode, batched GTM regressions, channels-last backbone);
- ``fast, NCHW``: the same with ``channels_last=False``;
- ``fast bf16`` (not exact, an opt-in: ``--dtype bf16``): the fast path under
  ``torch.autocast(device, bfloat16)``; the deformable convolutions run in fp32 on CPU.

Prints key frames/s (batch / median seconds per forward), the ratios to the reference (above 1 =
faster), the largest relative L2 difference of the exact paths' heatmaps (a sanity check), and the
bf16 path's relative L2 difference (its accuracy cost on these weights).

    python benchmarks/fast_path.py [--variants w48 tiny] [--batch 1] [--repeats 3] [--threads N] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from famicli.models.famipose import build_model
from famicli.models.folded import optimize_for_inference


def random_model(variant: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(variant)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def bench(variant: str, batch: int, repeats: int) -> dict:
    model = random_model(variant)
    h, w = model.cfg.input_size
    key, support = torch.randn(batch, 3, h, w), torch.randn(batch, model.cfg.num_support, 3, h, w)

    def reference():
        with torch.no_grad():
            return model(key, support)

    def fast_bf16():
        with torch.autocast(key.device.type, dtype=torch.bfloat16):
            return fast(key, support)

    fast, fast_nchw = optimize_for_inference(model), optimize_for_inference(model, channels_last=False)
    paths = {
        "reference": reference,
        "fast": lambda: fast(key, support),
        "fast_nchw": lambda: fast_nchw(key, support),
        "fast_bf16": fast_bf16,
    }
    ref = reference().heatmaps
    rel = {name: ((p().heatmaps.float() - ref).norm() / ref.norm()).item() for name, p in paths.items()}  # warms up
    diff = max(v for k, v in rel.items() if k != "fast_bf16")
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, fn in paths.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    fps = {name: batch / statistics.median(ts) for name, ts in times.items()}
    return {
        "variant": variant,
        "batch": batch,
        "key_frames_per_s": fps,
        "ratio_fast": fps["fast"] / fps["reference"],
        "ratio_fast_nchw": fps["fast_nchw"] / fps["reference"],
        "ratio_fast_bf16": fps["fast_bf16"] / fps["reference"],
        "max_rel_l2_heatmaps": diff,
        "bf16_rel_l2_heatmaps": rel["fast_bf16"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["w48", "tiny"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = {v: args.repeats if v in ("w48", "w32") else max(args.repeats, 20) for v in args.variants}
    results = [bench(v, args.batch, repeats[v]) for v in args.variants]
    if args.json:
        print(json.dumps({"threads": torch.get_num_threads(), "results": results}, indent=2))
        return
    print(f"threads: {torch.get_num_threads()}, batch {args.batch}")
    header = (
        "variant",
        "reference",
        "fast",
        "fast NCHW",
        "fast bf16",
        "ratio",
        "NCHW ratio",
        "bf16 ratio",
        "rel L2",
        "bf16 rel L2",
    )
    print("{:8} {:>10} {:>10} {:>10} {:>10} {:>7} {:>10} {:>10} {:>9} {:>11}".format(*header))
    for r in results:
        f = r["key_frames_per_s"]
        print(
            f"{r['variant']:8} {f['reference']:10.2f} {f['fast']:10.2f} {f['fast_nchw']:10.2f} {f['fast_bf16']:10.2f} "
            f"{r['ratio_fast']:7.2f} {r['ratio_fast_nchw']:10.2f} {r['ratio_fast_bf16']:10.2f} "
            f"{r['max_rel_l2_heatmaps']:9.1e} {r['bf16_rel_l2_heatmaps']:11.1e}"
        )


if __name__ == "__main__":
    main()
