"""JSON reading, atomic file writes and the provenance record every run leaves behind."""

from __future__ import annotations

import errno
import hashlib
import json
import math
import numbers
import os
import platform
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from famicli import __version__
from famicli.errors import ConfigError

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
    fd, tmp = tempfile.mkstemp(prefix=f".{short_name(path.name)}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    usual_mode(tmp)  # mkstemp makes owner-only files; give the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def usual_mode(path: str | Path) -> None:
    """Give a file (0o666) or folder (0o777) made by ``tempfile`` (owner-only) the modes the umask gives."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~umask)


def short_name(name: str, limit: int = 200) -> str:
    """``name``, or a 16-character hash of it when the temp name ``.{name}.XXXXXXXX.tmp`` would pass the
    255-byte limit on file names."""
    if len(name.encode()) <= limit:
        return name
    return hashlib.sha256(name.encode(errors="surrogateescape")).hexdigest()[:16]


NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems


def check_writable(path: str | Path, kind: str = "folder") -> Path:
    """Raise :class:`ConfigError` (``<path>: ...``) unless a ``kind`` ("folder" or "file") can be written
    at ``path``: checked before any computing, so a bad ``--out`` fails at once. Creates nothing."""
    path = Path(path)
    for part in path.parts:
        if len(part.encode(errors="surrogateescape")) > NAME_MAX:
            raise ConfigError(
                f"{path}: file name too long ({len(part.encode(errors='surrogateescape'))} bytes; at most {NAME_MAX})"
            )
    if path.exists():
        if kind == "folder" and not path.is_dir():
            raise ConfigError(f"{path}: is a file, not a folder; choose another --out")
        if kind == "file" and path.is_dir():
            raise ConfigError(f"{path}: is a folder, not a file; choose another --out")
        where = path if kind == "folder" else path.parent
        if not os.access(where, os.W_OK | os.X_OK):
            raise ConfigError(f"{path}: permission denied (cannot write in {where})")
        return path
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"{path}: lies under a file ({ancestor}), not a folder; choose another --out")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"{path}: permission denied (cannot create it in {ancestor})")
    return path


LOCK_NAME = ".famipose.lock"


@contextmanager
def out_lock(folder: str | Path):
    """Hold ``folder/.famipose.lock`` (``fcntl.flock``, non-blocking) for the block: a second run writing
    the same folder gets :class:`ConfigError`. The lock file is removed at the end (the OS releases the
    lock if the process dies); the folders this call created are removed too if they are left empty."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        yield
        return
    folder = Path(folder)
    created = [d for d in (folder, *folder.parents) if not d.exists()]  # deepest first
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            pid = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise ConfigError(
                f"{folder}: another famipose run is writing here (pid {pid}); wait for it to end or choose "
                "another --out"
            ) from None
        try:  # the holder before us may have removed the file between our open and our flock
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        try:
            lock.unlink()
        except FileNotFoundError:
            pass
        os.close(fd)
        for d in created:
            try:
                d.rmdir()  # only if empty
            except OSError:
                break


def jsonable(value):
    """``value`` with NaN and infinities as None, numpy scalars as Python numbers and keys as strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return value
    if isinstance(value, numbers.Integral):  # numpy registers its scalar types with numbers
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def dumps(data, indent: int | None = None) -> str:
    """JSON text of ``data``, refusing NaN and Infinity (``ValueError``): every JSON famipose writes or prints."""
    return json.dumps(data, indent=indent, allow_nan=False)


def write_json_atomic(path: str | Path, data, indent: int | None = 2) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (temp file in the same folder, then rename).

    Raises:
        ValueError: ``data`` holds NaN or Infinity (not valid JSON); nothing is written.
    """
    text = dumps(data, indent)  # before the temp file: a refusal leaves nothing
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
