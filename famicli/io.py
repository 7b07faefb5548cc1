"""Atomic file writes and the provenance record every run leaves behind."""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from famicli import __version__


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path in ``path``'s folder; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes owner-only files; give the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json_atomic(path: str | Path, data, indent: int | None = 2) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (temp file in the same folder, then rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=indent) + "\n")
    return Path(path)


def provenance(**fields) -> dict:
    """The small record each run writes: versions, command line, time, plus ``fields``."""
    import torch

    record = {
        "famipose": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cuda": torch.version.cuda,
    }
    return record | fields
