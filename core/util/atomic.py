"""Atomic file output: write to a temporary name in the target's folder, then move into place.

A final name never holds a partial file; on any error the temporary file is removed and an
existing file at the target is left as it was. A run folder is held by one run at a time
(:func:`claim_run_folder`), so two runs never write one checkpoint.
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


class RunFolderBusy(RuntimeError):
    """Another run is training into this run folder."""


class RunFolder:
    """A run folder held by this run (see :func:`claim_run_folder`); ``close()`` lets it go, as
    does the end of the process."""

    def __init__(self, folder: Path, handle):
        self.folder, self._handle = folder, handle

    def close(self) -> None:
        self._handle.close()


def claim_run_folder(out_dir) -> RunFolder:
    """Hold the run folder ``out_dir`` (created) for this run while the returned
    :class:`RunFolder` lives: a second run into the same folder, in another process, is refused
    naming the folder and the holder's process id, so two runs never write one checkpoint. The
    hold is an OS lock on ``out_dir/run.lock``, which the system releases when the holder ends,
    even when it is killed: a killed run resumes."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    handle = open(out_dir / "run.lock", "a+")
    try:
        _lock(handle)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise RunFolderBusy(f"{out_dir}: another run (process {holder}) is training into this folder; "
                            f"wait for it or use another output folder") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return RunFolder(out_dir, handle)


def _lock(handle) -> None:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
