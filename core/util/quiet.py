"""Silence a C-level output stream for a while (Blender's "Saved: ..." lines on stdout,
MediaPipe / TFLite start-up chatter on stderr), so progress bars stay readable."""
from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def quiet_fd(fd: int):
    """Point file descriptor ``fd`` (1 = stdout, 2 = stderr) at /dev/null inside the block;
    Python exceptions still come through."""
    (sys.stdout if fd == 1 else sys.stderr).flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)
