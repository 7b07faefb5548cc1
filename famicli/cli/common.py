"""Pieces every command shares: dataset roots, progress bars on stderr."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

DATASET_NAMES = ("posetrack18", "posetrack17", "jhmdb", "synthtrack")


def default_root(dataset: str) -> Path:
    """``$FAMIPOSE_DATA/<dataset>`` if FAMIPOSE_DATA is set, else ``./data/<dataset>``."""
    base = os.environ.get("FAMIPOSE_DATA")
    return Path(base) / dataset if base else Path("data") / dataset


@contextmanager
def progress_bar(description: str, quiet: bool = False):
    """A rich progress bar on stderr, or nothing with ``quiet`` / a non-TTY stderr.

    Yields ``update(completed, total, **fields)``; ``fields`` are shown after the bar.
    """
    if quiet or not sys.stderr.isatty():
        yield lambda *a, **k: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[info]}"))  # fmt: skip
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=None, info="")

        def update(completed: int, total: int | None, description: str | None = None, info: str = "") -> None:
            bar.update(task, completed=completed, total=total, info=info,
                       **({"description": description} if description else {}))  # fmt: skip

        yield update
