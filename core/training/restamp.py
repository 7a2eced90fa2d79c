"""``python -m core restamp FILE...``: renew the rig stamp of models made for this very rig.

A model's stamp names the rig it was made for (:mod:`core.rig.identity`). The stamp changes
without the rig changing when the identity's inputs are edited in ways that compute the same
arrays (a comment in the mesh generator), or when a file carries the CPU-dependent hash of an
earlier au2rig. ``restamp`` writes the current identity and fingerprint into such a file, after
showing that its rig *is* the loaded one: its stored fingerprint agrees within tolerance, or its
earlier hash is this rig's. Anything else is refused: a model of another rig must be retrained.

Handles the landmark estimator (``.onnx`` and ``.pt``), G's weights and checkpoints, and the
image-path ONNX model; writes atomically.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..nets.checkpoints import read_checkpoint, save_checkpoint
from ..rig.identity import RigMismatchError, restamp_reason, stamp
from ..rig.layout import LAYOUT, ParameterLayout
from ..util.atomic import atomic_path

_OLD_KEYS = ("rig_hash",)


def _renew(meta: dict, rig, layout: ParameterLayout, where: str) -> tuple[dict, str]:
    if meta.get("layout_version") != layout.version or list(meta.get("channels", [])) != list(layout.names):
        raise RigMismatchError(f"{where}: made for parameter layout {meta.get('layout_version')!r}, this is "
                               f"{layout.version!r}; a model of another layout must be retrained, not re-stamped")
    if meta.get("rig_identity") == rig.identity and "rig_hash" not in meta:
        why = restamp_reason(meta, rig)
        if why is None:
            raise RigMismatchError(f"{where}: stamped for rig identity {rig.identity} but its fingerprint "
                                   f"disagrees with the loaded rig's; retrain it")
        return meta, "already current"
    why = restamp_reason(meta, rig)
    if why is None:
        old = meta.get("rig_identity", meta.get("rig_hash"))
        raise RigMismatchError(f"{where}: made for another rig (stamp {old!r}); nothing shows it is rig "
                               f"{rig.name!r} ({rig.identity}): retrain it")
    new = {k: v for k, v in meta.items() if k not in _OLD_KEYS}
    new.update(stamp(rig))
    return new, why


def restamp(path, rig, layout: ParameterLayout = LAYOUT) -> str:
    """Re-stamp the model at ``path`` for ``rig``; returns what showed it is that rig. Raises
    :class:`~core.rig.identity.RigMismatchError` (naming the file) when it cannot be shown."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx

        model = onnx.load(str(path))
        meta = {p.key: json.loads(p.value) for p in model.metadata_props}
        new, why = _renew(meta, rig, layout, str(path))
        if new is meta:
            return why
        del model.metadata_props[:]
        for key, value in new.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, json.dumps(value)
        with atomic_path(path) as tmp:
            onnx.save(model, str(tmp))
        return why
    if path.suffix == ".pt":
        ckpt = read_checkpoint(path, None, "model")
        nested = isinstance(ckpt.get("meta"), dict)
        meta = ckpt["meta"] if nested else ckpt
        new, why = _renew(meta, rig, layout, str(path))
        if new is meta:
            return why
        save_checkpoint(dict(ckpt, meta=new) if nested else new, path)
        return why
    raise ValueError(f"{path}: not a model file (.onnx or .pt)")


def main(args) -> int:
    """``python -m core restamp`` (arguments parsed in core/__main__.py)."""
    import sys

    from ..rig.load import load_rig

    rig = load_rig(args.rig)
    failed = 0
    for p in args.files:
        try:
            why = restamp(p, rig)
        except (ValueError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
            continue
        print(f"{p}: rig {rig.name!r} identity {rig.identity} ({why})")
    return 1 if failed else 0
