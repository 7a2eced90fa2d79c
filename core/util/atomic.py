"""Atomic file output: write to a temporary name in the target's folder, then move into place.

A final name never holds a partial file; on any error the temporary file is removed and an
existing file at the target is left as it was.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path, suffix: str | None = None):
    """Yield a temporary path beside ``path`` (same suffix unless given, so writers that go by
    the extension work); when the block ends without error it replaces ``path``."""
    path = Path(path)
    if path.parent.exists() and not path.parent.is_dir():
        raise NotADirectoryError(f"cannot write {path}: {path.parent} is a file, not a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix if suffix is None else suffix,
                               dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path, data: bytes, durable: bool = False, suffix: str | None = None) -> Path:
    """Write ``data`` to ``path`` through :func:`atomic_path`; ``durable``: on disk (fsync)
    before it takes the final name, so a power cut leaves the old file or the new one."""
    with atomic_path(path, suffix) as tmp:
        write_file(tmp, data, durable)
    return Path(path)


def write_file(path, data: bytes, durable: bool) -> None:
    """The one low-level write (tests replace it to simulate a full disk)."""
    with open(path, "wb") as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())
