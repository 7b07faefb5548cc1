"""How fast is famipose's deformable convolution against torchvision's CPU kernel? (not a test)

Times the forward pass and the backward pass (gradients for input, offset, mask, weight and bias)
of ``famicli.ops.deform_conv2d`` and ``torchvision.ops.deform_conv2d`` on the same random tensors,
interleaved in one process, at the model's shapes:

- ``w48``: one image, C = 48 at 96x72, 12 offset groups, 3x3 kernel, dilation = padding = 3 (the
  paper's Local Calibration layer);
- ``tiny``: the tiny variant's training step, batch 8, C = 16 at 32x24, 4 offset groups, dilation 3.

Prints the median time of each and the ratio famipose / torchvision (below 1 = faster), and the
largest relative difference of the outputs and gradients, as a sanity check.

With ``--train-step`` it also times a whole training step of the tiny model (batch 8, forward, loss,
backward, Adam) under each implementation.

    python benchmarks/dcn_speed.py [--repeats 7] [--threads N] [--dilation 3] [--train-step] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torchvision.ops

from famicli.config import VARIANTS
from famicli.losses import MutualInformation
from famicli.ops import deform_conv2d


def shapes(dilation: int) -> dict[str, dict]:
    """Benchmark cases read off the variants: batch, channels, feature size, offset groups."""
    w48, tiny = VARIANTS["w48"], VARIANTS["tiny"]
    cases = {"w48": (w48, 1), "tiny_train": (tiny, 8)}
    return {
        name: {
            "batch": b,
            "channels": cfg.width,
            "size": cfg.heatmap_size,
            "offset_groups": cfg.dcn_offset_groups,
            "dilation": dilation,
        }
        for name, (cfg, b) in cases.items()
    }


def make_inputs(case: dict, seed: int = 0) -> tuple:
    """Random input, offsets of a few pixels, raw (unsquashed) mask, weight and bias."""
    g = torch.Generator().manual_seed(seed)
    b, c, (h, w), groups = case["batch"], case["channels"], case["size"], case["offset_groups"]
    x = torch.randn(b, c, h, w, generator=g)
    offset = 2.0 * torch.randn(b, 2 * groups * 9, h, w, generator=g)
    mask = torch.randn(b, groups * 9, h, w, generator=g)
    weight = torch.randn(c, c, 3, 3, generator=g) / (3 * c**0.5)
    bias = torch.randn(c, generator=g)
    return x, offset, weight, bias, mask


def bench(case: dict, repeats: int) -> dict:
    """Median wall-clock and CPU times of the forward and backward passes of both implementations.

    The calls are interleaved (in alternating order) so that a change of machine load hits both
    alike; CPU time (this process, all threads) is reported beside wall time because on a
    shared machine it is the steadier measure of the work done.
    """
    x, offset, weight, bias, mask = make_inputs(case)
    d = case["dilation"]
    impls = {"famipose": deform_conv2d, "torchvision": torchvision.ops.deform_conv2d}
    leaves = [t.requires_grad_() for t in (x, offset, weight, bias, mask)]

    def forward(op, grad: bool):
        with torch.set_grad_enabled(grad):
            return op(x, offset, weight, bias, padding=d, dilation=d, mask=mask)

    grad_out = torch.randn(forward(deform_conv2d, False).shape, generator=torch.Generator().manual_seed(1))
    keys = ("forward_ms", "backward_ms", "forward_cpu_ms", "backward_cpu_ms")
    times = {name: {k: [] for k in keys} for name in impls}
    results = {}
    for i in range(repeats + 1):  # the first round warms up; the order alternates (cache state)
        for name, op in list(impls.items())[:: 1 if i % 2 else -1]:
            wall, cpu = time.perf_counter(), time.process_time()
            out = forward(op, False)
            fwd = (time.perf_counter() - wall, time.process_time() - cpu)
            graph = forward(op, True)  # built outside the timed region
            wall, cpu = time.perf_counter(), time.process_time()
            grads = torch.autograd.grad(graph, leaves, grad_out)
            bwd = (time.perf_counter() - wall, time.process_time() - cpu)
            if i:
                for key, seconds in zip(keys, (fwd[0], bwd[0], fwd[1], bwd[1]), strict=True):
                    times[name][key].append(seconds * 1e3)
            results[name] = (out, *grads)
    row: dict = {name: {k: statistics.median(v) for k, v in t.items()} for name, t in times.items()}
    names = ("output", "grad_input", "grad_offset", "grad_weight", "grad_bias", "grad_mask")
    row["max_rel_diff"] = {
        n: ((a - b).abs().max() / b.abs().max()).item()
        for n, a, b in zip(names, results["famipose"], results["torchvision"], strict=True)
    }
    row["ratio"] = {k: row["famipose"][k] / row["torchvision"][k] for k in keys}
    return row


def bench_train_step(repeats: int, batch: int = 8) -> dict:
    """Median wall-clock and CPU seconds of one training step (forward, MSE + MI loss, backward, Adam
    step) of the tiny variant with each implementation, steps interleaved in alternating order."""
    import famicli  # the model, only for this case
    from famicli.ops import set_dcn_implementation

    torch.manual_seed(0)
    model = famicli.build_model("tiny").train()
    h, w = model.cfg.input_size
    g = torch.Generator().manual_seed(0)
    key = torch.randn(batch, 3, h, w, generator=g)
    support = torch.randn(batch, model.cfg.num_support, 3, h, w, generator=g)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    times: dict = {"famipose": [], "torchvision": []}
    previous = set_dcn_implementation(None)
    try:
        for i in range(repeats + 1):
            for name in list(times)[:: 1 if i % 2 else -1]:
                set_dcn_implementation(name)
                wall, cpu = time.perf_counter(), time.process_time()
                out = model(key, support)
                mi = MutualInformation()(model.backbone.final_layer, *out.features.values(), out.heatmaps)
                loss = out.heatmaps.square().mean() + sum(mi.values())
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                if i:
                    times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    finally:
        set_dcn_implementation(previous)
    row = {
        name: {"step_s": statistics.median(t[0] for t in v), "step_cpu_s": statistics.median(t[1] for t in v)}
        for name, v in times.items()
    }
    row["ratio"] = {k: row["famipose"][k] / row["torchvision"][k] for k in ("step_s", "step_cpu_s")}
    return {"batch": batch, **row}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per measurement (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--dilation", type=int, default=3, help="dilation = padding of the 3x3 kernel")
    parser.add_argument("--train-step", action="store_true", help="also time a training step of the tiny model")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "threads": torch.get_num_threads(),
        "cases": {},
    }
    for name, case in shapes(args.dilation).items():
        report["cases"][name] = {"shape": case, **bench(case, args.repeats)}
    if args.train_step:
        report["train_step"] = bench_train_step(max(3, args.repeats // 2))
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"torch {report['torch']}, torchvision {report['torchvision']}, {report['threads']} threads; "
        f"median of {args.repeats}; ratio = famipose / torchvision (wall clock, CPU time in brackets)"
    )
    print(f"{'case':<34} {'pass':<9} {'famipose ms':>16} {'torchvision ms':>16} {'ratio':>14} {'speed-up':>9}")
    for name, row in report["cases"].items():
        s = row["shape"]
        label = (
            f"{name} B={s['batch']} C={s['channels']} {s['size'][0]}x{s['size'][1]} "
            f"G={s['offset_groups']} d={s['dilation']}"
        )
        for key, pass_name in (("forward", "forward"), ("backward", "backward")):
            wall, cpu = f"{key}_ms", f"{key}_cpu_ms"
            ours = f"{row['famipose'][wall]:.2f} ({row['famipose'][cpu]:.1f})"
            ref = f"{row['torchvision'][wall]:.2f} ({row['torchvision'][cpu]:.1f})"
            ratio = f"{row['ratio'][wall]:.3f} ({row['ratio'][cpu]:.3f})"
            print(f"{label:<34} {pass_name:<9} {ours:>16} {ref:>16} {ratio:>14} {1 / row['ratio'][wall]:>8.1f}x")
            label = ""
        worst = max(row["max_rel_diff"].values())
        print(f"{'':<34} max |famipose - torchvision| / max |torchvision| over output and grads: {worst:.1e}")
    if "train_step" in report:
        t = report["train_step"]
        ours = f"{t['famipose']['step_s'] * 1e3:.0f} ({t['famipose']['step_cpu_s'] * 1e3:.0f})"
        ref = f"{t['torchvision']['step_s'] * 1e3:.0f} ({t['torchvision']['step_cpu_s'] * 1e3:.0f})"
        ratio = f"{t['ratio']['step_s']:.3f} ({t['ratio']['step_cpu_s']:.3f})"
        label = f"tiny model training step B={t['batch']}"
        print(f"{label:<34} {'step':<9} {ours:>16} {ref:>16} {ratio:>14} {1 / t['ratio']['step_s']:>8.1f}x")


if __name__ == "__main__":
    main()
