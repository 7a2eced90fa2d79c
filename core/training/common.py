"""What the trainers share: the shuffled order over training items (checkpointed with the run),
the schedule of validation and checkpoints, refusing to resume another configuration, crops as
tensors, and the PNG grid of rendered beside generated images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


class Order:
    """Shuffled passes over n items from a numpy Generator; its state is checkpointed."""

    def __init__(self, n: int, seed: int):
        self.n, self.rng = n, np.random.default_rng(seed)
        self.perm, self.pos = self.rng.permutation(n), 0

    def take(self, b: int) -> np.ndarray:
        out = []
        while len(out) < b:
            if self.pos >= self.n:
                self.perm, self.pos = self.rng.permutation(self.n), 0
            k = min(b - len(out), self.n - self.pos)
            out.extend(self.perm[self.pos:self.pos + k].tolist())
            self.pos += k
        return np.asarray(out)

    def state(self) -> dict:
        # plain lists and ints: checkpoints are read with torch.load(weights_only=True)
        return {"rng": self.rng.bit_generator.state, "perm": self.perm.tolist(), "pos": int(self.pos)}

    def load(self, s: dict) -> None:
        self.rng.bit_generator.state = s["rng"]
        self.perm, self.pos = np.asarray(s["perm"]), int(s["pos"])


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


def to_tensor(crops: np.ndarray) -> torch.Tensor:
    """(N, S, S, 3) uint8 RGB -> (N, 3, S, S) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div_(255.0)


def write_grid(path, rendered, generated, gap: int = 2) -> Path:
    """PNG: one row per pair, rendered | generated ((3, H, W) tensors in [0, 1]); written atomically."""
    from ..tracking.overlay import tile_grid, to_bgr8, write_image

    return write_image(path, tile_grid([[to_bgr8(a), to_bgr8(b)] for a, b in zip(rendered, generated)], gap))
