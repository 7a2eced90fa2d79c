"""Torch checkpoints of the project's trainers: written atomically, read with the file and
the expected format named in every error."""
from __future__ import annotations

from pathlib import Path

from ..util.atomic import atomic_path


def save_checkpoint(obj: dict, path) -> Path:
    """``torch.save`` through a temporary file: a killed run never leaves half a checkpoint."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def read_checkpoint(path, fmt: str, what: str) -> dict:
    """The checkpoint dict at ``path``; its ``format`` field must be ``fmt`` (``what`` names it)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing
        raise ValueError(f"{path}: not a readable torch checkpoint ({exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path}: not an au2rig {what} checkpoint (format field {found!r})")
    return ckpt
