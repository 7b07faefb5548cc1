"""``famipose info [CKPT]``: versions, device and the variants; with a checkpoint, what it holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from famicli.cli import options as opt
from famicli.io import dumps


def info(
    checkpoint: Annotated[
        Path | None,
        typer.Argument(help="A checkpoint (famipose, official FAMI-Pose, DCPose, pose-HRNet): what it holds."),
    ] = None,
    variant: Annotated[opt.Variant | None, opt.variant()] = None,
    schema: Annotated[opt.Schema | None, opt.schema()] = None,
    json_out: Annotated[bool, opt.json_out()] = False,
) -> None:
    """Show library versions, the device famipose would use, and each variant's parameters; with CKPT, the
    checkpoint's kind, variant, keypoint schema and which modules it initializes."""
    if checkpoint is not None:
        return _checkpoint(checkpoint, variant, schema, json_out)
    from famicli.models.famipose import variant_summary
    from famicli.runtime import environment_info

    report = {"environment": environment_info(), "variants": variant_summary()}
    if json_out:
        typer.echo(dumps(report, 2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    env = Table(title="famipose environment", show_header=False)
    for key, value in report["environment"].items():
        env.add_row(key, str(value))
    console.print(env)
    variants = Table(title="Model variants: parameters per module")
    names = list(report["variants"])
    variants.add_column("module")
    for name in names:
        h, w = report["variants"][name]["input_size"]
        variants.add_column(f"{name} ({h}×{w})", justify="right")
    for module in report["variants"][names[0]]["parameters"]:
        variants.add_row(module, *(f"{report['variants'][n]['parameters'][module]:,}" for n in names))
    console.print(variants)


def checkpoint_report(path: Path, variant: str | None = None, schema: str | None = None) -> dict:
    """What ``famipose info CKPT`` reports: kind, variant, schema, heads it runs, modules it initializes."""
    from famicli.inference.predictor import resolve_heads
    from famicli.keypoints import get_schema
    from famicli.models.checkpoint import load_model, read_checkpoint, saved_configs

    model = load_model(path, variant, "cpu", schema)
    ck = model.checkpoint_info
    backbone_only = ck["initialized"] == "backbone"
    modules = {
        name: {"parameters": count, "initialized": name == "backbone" or not backbone_only}
        for name, count in model.parameter_groups().items()
    }
    obj = read_checkpoint(path) if ck["format"] == "famipose" else {}
    train = saved_configs(obj).get("train", {})
    keypoints = get_schema(model.cfg.schema)
    return {
        "path": str(path),
        "kind": ck["format"],
        "variant": model.cfg.variant,
        "input_size": list(model.cfg.input_size),
        "schema": model.cfg.schema,
        "keypoints": list(keypoints.names),
        "posetrack_missing": list(keypoints.missing_in_posetrack),
        "heads": resolve_heads(model, None)[0],
        "initialized": ck["initialized"],
        "modules": modules,
        "parameters": sum(m["parameters"] for m in modules.values()),
        "famipose_version": obj.get("famipose_version"),
        "trained": {k: train[k] for k in ("epochs", "single_frame", "freeze_backbone", "lr") if k in train} or None,
        "file_sha256": ck["file_sha256"],
    }


def _checkpoint(path: Path, variant, schema, json_out: bool) -> None:
    report = checkpoint_report(
        path, None if variant is None else variant.value, None if schema is None else schema.value
    )
    if json_out:
        typer.echo(dumps(report, 2))
        return
    from rich.console import Console
    from rich.table import Table

    kinds = {
        "famipose": "famipose checkpoint",
        "official": "official FAMI-Pose state dict",
        "dcpose": "DCPose checkpoint (its pose-HRNet)",
        "hrnet": "pose-HRNet checkpoint",
    }
    console = Console()
    table = Table(title=f"{path}", show_header=False)
    table.add_row("kind", kinds.get(report["kind"], report["kind"]))
    h, w = report["input_size"]
    table.add_row("variant", f"{report['variant']} ({h}×{w} crops)")
    missing = report["posetrack_missing"]
    table.add_row(
        "keypoints",
        f"{report['schema']}: "
        + ", ".join(report["keypoints"][:3])
        + ", ..."
        + (f" (PoseTrack files: no {', '.join(missing)})" if missing else ""),
    )
    heads = "the temporal model (fami)" if report["heads"] == "fami" else "the single-frame HRNet alone (backbone)"
    table.add_row("predict runs", heads)
    for name, module in report["modules"].items():
        state = "trained weights" if module["initialized"] else "random (not in the checkpoint)"
        table.add_row(f"  {name}", f"{module['parameters']:,} parameters, {state}")
    if report["trained"]:
        table.add_row("trained", ", ".join(f"{k} {v}" for k, v in report["trained"].items()))
    table.add_row("sha256", report["file_sha256"])
    console.print(table)
