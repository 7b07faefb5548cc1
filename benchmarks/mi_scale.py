"""How large the MI terms are against the heatmap loss, in value and in gradient (not a test).

On a few training batches of a SynthTrack set, with a trained FAMI-Pose (default: the bundled demo model,
stage 2 with alpha = 0, frozen backbone as in training), it computes the heatmap loss and the MI part of
the objective, ``alpha * (-beta*T1 + beta*T2 + T3 - T4 + T5 - T6)`` at alpha = 1, beta = 0.1, for:

- the official estimator and the corrected one (``--mi-estimator``), at temperatures 0.05 (the paper's),
  0.5 and 1;
- the corrected KL summed over the h*w positions (as implemented, a true KL per row) and averaged over them
  (the "per-element mean": the same divided by h*w).

and the gradient norm of each with respect to the trainable (temporal) parameters. The ratio of the two
norms says which alpha makes the MI terms pull as hard as the heatmap loss: alpha ~ 1 / ratio.

    python benchmarks/mi_scale.py --root data/synthtrack [--weights assets/demo_tiny.pt] [--batches 4]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import famicli
from famicli.config import DataConfig, LossConfig
from famicli.data.posetrack import PoseTrackDataset
from famicli.losses.heatmap import JointsMSELoss
from famicli.losses.mutual_info import MutualInformation
from famicli.losses.objective import mi_weights

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def grad_norm(value: torch.Tensor, params: list[torch.Tensor]) -> float:
    grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
    return float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads if g is not None)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--weights", type=Path, default=ASSETS / "demo_tiny.pt")
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = famicli.load_model(args.weights)
    model.train()
    model.freeze_backbone()  # stage 2: BN of the frozen backbone in eval mode, as training runs it
    params = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    cfg = model.cfg
    dataset = PoseTrackDataset(
        args.root,
        "train",
        DataConfig(sigma=3.0 * cfg.heatmap_size[1] / 72, offsets=cfg.support_offsets),
        cfg.input_size,
        cfg.heatmap_size,
        train=True,
        seed=0,
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True)
    weights = mi_weights(LossConfig(alpha=1.0, beta=0.1))
    hw = cfg.heatmap_size[0] * cfg.heatmap_size[1]
    rows: dict[str, list[tuple[float, float]]] = {}
    heat: list[tuple[float, float]] = []
    for b, batch in enumerate(loader):
        if b == args.batches:
            break
        out = model(batch["key"], batch["support"])
        hm = JointsMSELoss()(out.heatmaps, batch["target"], batch["target_weight"])
        heat.append((hm.item(), grad_norm(hm, params)))
        f = out.features
        for estimator in ("official", "corrected"):
            for tau in (0.05, 0.5, 1.0):
                terms = MutualInformation(estimator, tau)(
                    model.backbone.final_layer, f["key"], f["support"], f["aggregated"], out.heatmaps
                )
                mi = sum(weights[k] * terms[k] for k in weights)
                scales = [("sum", 1.0)] + ([("mean", 1.0 / hw)] if estimator == "corrected" else [])
                for how, scale in scales:
                    name = f"{estimator} tau={tau:g}" + (f" ({how} over h*w)" if estimator == "corrected" else "")
                    rows.setdefault(name, []).append((float(mi) * scale, grad_norm(mi, params) * scale))
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    h_val, h_grad = mean([v for v, _ in heat]), mean([g for _, g in heat])
    print(f"{args.weights.name}, {len(heat)} batches of {args.batch_size} from {args.root} (h*w = {hw}):")
    print(f"  heatmap loss: value {h_val:.3e}, gradient norm {h_grad:.3e}")
    head = ("MI part at alpha=1, beta=0.1", "value", "grad norm", "grad ratio", "alpha for 1x")
    print(f"  {head[0]:44s} {head[1]:>11s} {head[2]:>11s} {head[3]:>11s} {head[4]:>12s}")
    for name, vals in rows.items():
        v, g = mean([x for x, _ in vals]), mean([x for _, x in vals])
        ratio = g / h_grad
        print(f"  {name:44s} {v:11.3e} {g:11.3e} {ratio:11.3e} {1 / ratio if ratio else float('inf'):12.3e}")


if __name__ == "__main__":
    main()
