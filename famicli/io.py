"""JSON reading, atomic file writes and the provenance record every run leaves behind."""

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

try:  # orjson parses several times faster than json; it is optional
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None


def loads(raw: bytes | str):
    """Parse a JSON document with orjson when it is installed, else with json.

    A document orjson refuses (invalid JSON, NaN or Infinity tokens, invalid UTF-8) is parsed again by
    ``json``, so what is accepted and every error (``json.JSONDecodeError``, ``UnicodeDecodeError``) are
    json's. One difference remains: orjson reads an integer beyond 64 bits as a float. A document
    nested too deeply for ``json`` raises ``RecursionError``; callers turn it into their ``InputError``.
    """
    if orjson is not None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw)


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
    """Write ``data`` as JSON to ``path`` atomically (temp file in the same folder, then rename).

    Raises:
        ValueError: ``data`` holds NaN or Infinity (not valid JSON); nothing is written.
    """
    text = json.dumps(data, indent=indent, allow_nan=False)  # before the temp file: a refusal leaves nothing
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")
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
