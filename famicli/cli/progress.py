"""Progress on stderr: a rich progress bar, or nothing with ``--quiet`` or a non-TTY stderr."""

from __future__ import annotations

import sys
from contextlib import contextmanager


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

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=None, info="")

        def update(completed: int, total: int | None, description: str | None = None, info: str = "") -> None:
            bar.update(
                task,
                completed=completed,
                total=total,
                info=info,
                **({"description": description} if description else {}),
            )

        yield update
