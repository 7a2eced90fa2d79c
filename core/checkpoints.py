"""Torch checkpoints of the project's trainers: written atomically, read with the file and
the expected format named in every error."""
from __future__ import annotations

from pathlib import Path

from .atomic import atomic_path


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


def refuse_other_config(path, saved: dict, current: dict) -> None:
    """A resumed run must use the configuration it started with: raise, naming the fields that
    differ, when the checkpoint at ``path`` was made with another."""
    if saved != current:
        diff = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        raise ValueError(f"{path}: a checkpoint of a different training configuration is in the way "
                         f"({', '.join(diff)} differ); use another run folder or delete it")


def end_of_step(step: int, steps: int, validate_every: int, checkpoint_every: int, validate, save,
                done: int = 0, stop_after: int | None = None) -> bool:
    """The trainers' schedule after step ``step`` of ``steps``: ``validate()`` every
    ``validate_every`` steps and at the last, ``save()`` every ``checkpoint_every`` steps and at
    the last; True, after a save, once this call has done ``stop_after`` steps (``done``)."""
    last = step == steps
    if step % validate_every == 0 or last:
        validate()
    if step % checkpoint_every == 0 or last:
        save()
    if stop_after is not None and done >= stop_after:
        save()
        return True
    return False
