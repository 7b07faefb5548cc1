"""``famipose info``: versions, device, and the model variants with parameter counts per module."""

from __future__ import annotations

from typing import Annotated

import typer

from famicli.cli import options as opt
from famicli.io import dumps


def info(json_out: Annotated[bool, opt.json_out()] = False) -> None:
    """Show library versions, the device famipose would use, and each variant's parameters."""
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
