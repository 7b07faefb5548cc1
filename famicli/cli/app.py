"""The ``famipose`` command: a Typer app with one module per command.

Every command module keeps heavy imports (torch, matplotlib) inside its function so that
``famipose --help`` stays fast. Library errors (:class:`famicli.errors.FamiposeError`) are turned
into one ``Error: ...`` line on stderr and exit code 1 here, in one place.
"""

from __future__ import annotations

from typing import Annotated

import typer

from famicli import __version__
from famicli.cli import data as data_cmd
from famicli.cli import eval as eval_cmd
from famicli.cli import info as info_cmd
from famicli.cli import predict as predict_cmd
from famicli.cli import profile as profile_cmd
from famicli.cli import train as train_cmd
from famicli.cli import viz as viz_cmd
from famicli.cli.options import Command, Group, flag
from famicli.errors import FamiposeError


class _Group(Group):
    """Root command group: reports library errors as one line and exit code 1."""

    def invoke(self, ctx):  # noqa: D102 - click API
        try:
            return super().invoke(ctx)
        except FamiposeError as exc:
            message = " ".join(str(exc).split("\n"))
            typer.echo(f"Error: {message}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_Group,
    name="famipose",
    help="Train, run, evaluate, profile and inspect FAMI-Pose video pose estimation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"famipose {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, flag("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Train, run, evaluate, profile and inspect FAMI-Pose video pose estimation."""


app.command("info", cls=Command)(info_cmd.info)
app.command("predict", cls=Command)(predict_cmd.predict_command)
app.command("eval", cls=Command)(eval_cmd.eval_command)
app.command("profile", cls=Command)(profile_cmd.profile_command)
app.command("train", cls=Command)(train_cmd.train_command)
app.add_typer(data_cmd.app, name="data", help="Generate SynthTrack or validate a PoseTrack-format dataset.")
app.add_typer(viz_cmd.app, name="viz", help="Figures: alignment offsets, MI terms per joint, heatmaps.")


def main() -> None:
    """Console-script entry point."""
    app()
