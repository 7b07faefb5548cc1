"""The ``famipose`` command: a Typer app with one module per command.

Every command module keeps heavy imports (torch, matplotlib) inside its function so that
``famipose --help`` stays fast. Library errors (:class:`famicli.errors.FamiposeError`) are turned
into one ``Error: ...`` line on stderr and exit code 1 here, in one place.
"""

from __future__ import annotations

import os
import signal
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
from famicli.cli.options import Command, Group, OutOfRange, flag
from famicli.errors import FamiposeError


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class _Group(Group):
    """Root command group: every failure is one ``Error: ...`` line on stderr, never a traceback.

    A library error (:class:`FamiposeError`) prints its message and an OS error (disk full, permission
    denied) its path and reason, exit 1; an interrupt (Ctrl-C, SIGTERM) exits 130; anything else is a bug,
    reported as ``internal error (...)``, exit 1 (``FAMIPOSE_DEBUG=1``: the traceback instead). A number
    out of its option's range (:class:`OutOfRange`) is a bad value like any other: one line, exit 1. Usage
    errors (an unknown option, a bad choice, a word where a number goes) stay Typer's (exit 2).
    """

    def invoke(self, ctx):  # noqa: D102 - click API
        try:
            return super().invoke(ctx)
        except FamiposeError as exc:
            typer.echo(f"Error: {_one_line(exc)}", err=True)
            raise typer.Exit(1) from None
        except OutOfRange as exc:
            typer.echo(f"Error: {_one_line(exc.format_message())}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("Error: interrupted", err=True)
            raise typer.Exit(130) from None
        except Exception as exc:
            if type(exc).__module__.split(".")[0] in ("typer", "click"):
                raise  # usage errors (exit 2), typer.Exit, typer.Abort: Typer reports them
            if os.environ.get("FAMIPOSE_DEBUG", "") not in ("", "0"):
                raise
            if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
                typer.echo(f"Error: {exc.filename}: {_one_line(exc.strerror)}", err=True)
            else:
                detail = f"{type(exc).__name__}: {_one_line(exc)}" if str(exc) else type(exc).__name__
                typer.echo(f"Error: internal error ({detail}); please report it", err=True)
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


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM as Ctrl-C: temp files and locks are cleaned up on the way out


def main() -> None:
    """Console-script entry point."""
    try:
        signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # pragma: no cover - not the main thread
        pass
    app()
