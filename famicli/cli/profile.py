"""``famipose profile``: FLOPs (deformable convolutions counted), parameters, latency, memory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from famicli.cli import options as opt
from famicli.io import dumps

QUANTILES = ("p50", "p95", "p99", "mean")
MAX_BATCH = 4096  # largest --batch-size: a sane cap, beyond what one GPU holds for w48


def _ints(text: str) -> str:
    """``--batch-size``: comma-separated integers, else a usage error."""
    if not all(part.strip().isdigit() for part in text.split(",")):
        raise typer.BadParameter(f"expected comma-separated integers such as 1,4,16, got {text!r}")
    for part in text.split(","):
        if not 1 <= int(part) <= MAX_BATCH:
            raise opt.OutOfRange(
                f"{int(part)} is outside 1..{MAX_BATCH} (key frames per forward; more does not fit a GPU's memory)"
            )
    return text


def _dtypes(text: str) -> str:
    """``--dtype``: comma-separated choices of :class:`famicli.cli.options.Dtype`, else a usage error."""
    choices = [d.value for d in opt.Dtype]
    bad = [d for d in (part.strip() for part in text.split(",")) if d not in choices]
    if bad:
        raise typer.BadParameter(f"{bad[0]!r} is not one of {', '.join(choices)}")
    return text


def profile_command(
    variant: Annotated[
        opt.Variant | None, opt.variant("Architecture: w48 (default), w32, tiny; with --weights: the checkpoint's.")
    ] = None,
    weights: Annotated[
        Path | None, opt.weights("Checkpoint to time (FLOPs do not depend on it).", exists=True, dir_okay=False)
    ] = None,
    device: Annotated[str, opt.device()] = "auto",
    gpu: Annotated[bool, opt.flag("--gpu", help="Same as --device cuda: exit 1 when CUDA is not available.")] = False,
    batch_size: Annotated[
        str, opt.batch_size("Key frames per forward, comma-separated: 1,4,16.", callback=_ints)
    ] = "1",
    dtype: Annotated[
        str, opt.dtype("fp32, bf16, fp16, comma-separated (bf16/fp16: autocast).", callback=_dtypes)
    ] = "fp32",
    channels_last: Annotated[bool, opt.flag("--channels-last", help="channels_last memory format.")] = False,
    compile_: Annotated[bool, opt.flag("--compile", help="torch.compile the models before timing.")] = False,
    warmup: Annotated[
        int, typer.Option("--warmup", callback=opt.number(0), help="Untimed forwards per model, batch and dtype.")
    ] = 2,
    iters: Annotated[
        int,
        typer.Option(
            "--iters", callback=opt.number(0), help="Timed forwards per model, batch and dtype; 0: FLOPs only."
        ),
    ] = 10,
    gtm: Annotated[bool, opt.gtm(rich_help_panel="Ablations (without --weights)")] = True,
    lcm: Annotated[bool, opt.lcm(rich_help_panel="Ablations (without --weights)")] = True,
    support_offsets: Annotated[str | None, opt.support_offsets(rich_help_panel="Ablations (without --weights)")] = None,
    json_out: Annotated[bool, opt.json_out()] = False,
    csv: Annotated[
        Path | None,
        typer.Option("--csv", help="Also write one CSV row per model, batch and dtype to this file.", dir_okay=False),
    ] = None,
    quiet: Annotated[bool, opt.quiet()] = False,
) -> None:
    """FLOPs (deformable convs counted), params, latency, throughput and memory of FAMI-Pose.

    Per module and per key frame (= per person), next to the single-frame backbone and the
    machine's measured matmul peak, all in one run. See docs/profile.md."""
    if gpu:
        if device not in ("auto", "cuda") and not device.startswith("cuda:"):
            raise typer.BadParameter(f"--gpu conflicts with --device {device}")
        device = "cuda" if device == "auto" else device
    from famicli import profile_model
    from famicli.cli.progress import progress_bar
    from famicli.io import check_writable

    if csv is not None:
        check_writable(csv, "file")
    from famicli.profiling.profiler import ProfileConfig

    cfg = ProfileConfig(
        variant=None if variant is None else variant.value,
        weights=None if weights is None else str(weights),
        device=device,
        batch_sizes=tuple(int(b) for b in batch_size.split(",")),
        dtypes=tuple(d.strip() for d in dtype.split(",")),
        channels_last=channels_last,
        compile=compile_,
        warmup=warmup,
        iters=iters,
        gtm=gtm,
        lcm=lcm,
        support_offsets=None if support_offsets is None else opt.parse_offsets(support_offsets),
    )
    with progress_bar("profiling", quiet) as update:
        result = profile_model(cfg, progress=lambda done, total, desc: update(done, total, description=desc))
    if csv is not None:
        _write_csv(csv, result.rows())
    if json_out:
        typer.echo(dumps(result.to_dict(), 2))
    else:
        _render(result.to_dict())


def _write_csv(path: Path, rows: list[dict]) -> None:
    import csv as csv_module

    from famicli.io import atomic_path

    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv_module.DictWriter(f, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
        writer.writeheader()
        writer.writerows(rows)


def _render(report: dict) -> None:
    from famicli.config import ablation_label

    ablation = ablation_label(report["model"]["config"])
    ablation = f", {ablation}" if ablation else ""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console()
    flops, params = report["flops"], report["params"]
    h, w = report["model"]["config"]["input_size"]
    t = Table(
        title=f"FAMI-Pose {report['model']['variant']} ({h}×{w}{ablation}): cost per key frame",
        box=box.SIMPLE_HEAVY,
        caption="GFLOPs = 2 × GMACs; batch norm, ReLU, adds not counted (as in published figures)",
    )
    for col in ("module", "params", "GMACs", "GFLOPs", "share"):
        t.add_column(col, justify="left" if col == "module" else "right")
    crops = flops["backbone_per_crop"]["crops_per_key_frame"]
    for name, f in flops["modules"].items():
        label = f"{name} (×{crops} crops)" if name == "backbone" else name
        t.add_row(label, f"{params.get(name, 0):,}", f"{f['gmacs']:.3f}", f"{f['gflops']:.3f}", f"{f['share']:.1%}")
    d = flops["deformable"]
    t.add_row(
        f"  of which {len(d['layers'])} deformable convs",
        "",
        f"{d['gmacs']:.3f}",
        f"{d['gflops']:.3f}",
        f"{d['flops'] / flops['per_key_frame']['flops']:.1%}",
        style="dim",
    )
    tot, crop = flops["per_key_frame"], flops["backbone_per_crop"]
    t.add_row("total", f"{params['total']:,}", f"{tot['gmacs']:.3f}", f"{tot['gflops']:.3f}", "100%", style="bold")
    t.add_row(
        "baseline: backbone, 1 crop",
        f"{params['backbone_baseline']:,}",
        f"{crop['gmacs']:.3f}",
        f"{crop['gflops']:.3f}",
        "",
    )
    console.print(t)
    if report["latency"]:
        lat = Table(
            title=f"Latency, ms per key frame (= per person), {report['device']['name']}",
            box=box.SIMPLE_HEAVY,
            pad_edge=False,
            collapse_padding=True,
        )
        for col in ("B", "dtype", "model", "p50", "p95", "p99", "mean", "kf/s", "GFLOP/s", "%peak", "MB"):
            lat.add_column(col, justify="left" if col in ("dtype", "model") else "right")
        for e in report["latency"]:
            for m in ("famipose", "backbone"):
                if m in e:
                    x, ms = e[m], e[m]["per_key_frame_ms"]
                    lat.add_row(
                        str(e["batch"]),
                        e["dtype"],
                        m,
                        *(f"{ms[q]:.1f}" for q in QUANTILES),
                        f"{x['key_frames_per_s']:.1f}",
                        f"{x['achieved_gflop_s']:.0f}",
                        f"{x['fraction_of_peak']:.0%}",
                        f"{x['peak_memory_mb']:.0f}",
                    )
        console.print(lat)
        console.print(
            "kf/s: key frames per second; GFLOP/s: counted FLOPs / mean latency; %peak: of the "
            "matmul peak below; MB: " + report["device"]["memory_kind"],
            style="dim",
        )
        for name, p in report["matmul_peak"].items():
            console.print(
                f"matmul peak {name}: {p['peak_gflop_s']:.0f} GFLOP/s (torch.mm {p['mm_gflop_s']:.0f}, "
                f"1×1 conv {p['conv1x1_gflop_s']:.0f}; n = {p['n']})",
                style="dim",
            )
    unc = flops["uncounted"]
    if unc:
        est = sum(u["estimated_flops"] or 0 for u in unc.values()) / 1e9
        console.print(f"not counted: {', '.join(unc)} (elementwise ≈ {est:.2f} GFLOPs)", style="dim")
