"""Torch checkpoints of the project's trainers: written atomically, read with the file and
the expected format named in every error.

Reading never runs code from the file: ``torch.load(weights_only=True)`` unpickles tensors,
numbers, strings, lists and dicts and refuses anything else (a crafted ``.pt`` that would call a
function while loading is refused before it runs). Checkpoints hold only such plain data, so the
files written so far load as they are."""
from __future__ import annotations

from pathlib import Path

from ..util.atomic import atomic_path


class CheckpointError(ValueError):
    """A checkpoint cannot be read (damaged, of another kind, or holding more than plain data);
    the message names the file."""


def plain(obj):
    """``obj`` with numpy arrays and scalars turned into lists and Python numbers (tensors, dicts,
    lists and tuples kept): what :func:`read_checkpoint`'s safe loading accepts."""
    import numpy as np

    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def save_checkpoint(obj: dict, path) -> Path:
    """``torch.save`` of :func:`plain` ``obj`` through a temporary file: a killed run never
    leaves half a checkpoint."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(plain(obj), tmp)
    return Path(path)


def read_checkpoint(path, fmt: str | None, what: str) -> dict:
    """The checkpoint dict at ``path``; its ``format`` field must be ``fmt`` (``what`` names it;
    ``fmt`` None: any checkpoint dict)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable au2rig {what} checkpoint: it holds something other than "
                         f"tensors, numbers, strings, lists and dicts, or is damaged ({first[:200]}). A run "
                         f"checkpoint of au2rig 0.1 before this check holds numpy arrays: finish that run with "
                         f"the version that started it, or start it again in a new folder") from None
    if not isinstance(ckpt, dict) or (fmt is not None and ckpt.get("format") != fmt):
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: not an au2rig {what} checkpoint (format field {found!r})")
    return ckpt
