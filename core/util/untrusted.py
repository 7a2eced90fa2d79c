"""One rule for every reader of a user's file: it reads the file, or raises the project's own
error naming the file. Files come from other people (shared models, tracking files, maps), so a
reader meets truncated, altered and hostile bytes; whatever fails inside the parser while it
reads them is the file's fault, and the user is told which file it was, never shown a bare
``BadZipFile`` or ``UnicodeDecodeError``.

    with reading(path, MapError, "retarget map"):
        data = json.loads(path.read_text(encoding="utf-8"))

A missing file stays :class:`FileNotFoundError` (it names the file too).
"""
from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def reading(path, error: type[Exception], what: str):
    """Turn any failure in the block into ``error`` naming ``path`` (``what`` the file is)."""
    name = str(path)
    try:
        yield
    except (FileNotFoundError, error):
        raise
    except RecursionError:
        raise error(f"{name}: not a readable {what} (nested too deeply)") from None
    except Exception as exc:  # noqa: BLE001 - the file is untrusted: any failure reading it is the file's
        detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise error(f"{name}: not a readable {what} ({type(exc).__name__}{': ' + detail if detail else ''})") \
            from None
