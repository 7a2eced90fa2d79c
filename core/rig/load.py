"""Load a rig from its spec (cached per path and level of detail) and take its levels of detail."""
from __future__ import annotations

from pathlib import Path

from ..util.untrusted import reading
from .evaluate import DEFAULT_RIG, Rig, RigSpecError
from .layout import LAYOUT, ParameterLayout
from .spec import build_rig

_CACHE: dict[str, Rig] = {}


def load_rig(path: str | Path | None = None, layout: ParameterLayout = LAYOUT, lod: int = 0) -> Rig:
    """Load a rig spec (TOML) and build its mesh; cached per path, level of detail and layout.

    ``lod`` k > 0 gives a render level of detail: the same rig (bones, tables, camera,
    regions, parameter layout) with its mesh generated ``LOD_FACTORS[k]`` times coarser, for
    small images. Its own vertices, faces, weights and landmark vertices; ``rig.lod`` says k.
    Landmarks for training come from the full rig (lod 0), not from a LOD.
    """
    path = Path(path or DEFAULT_RIG).resolve()
    key = (str(path), int(lod), layout.version, layout.names)
    if key not in _CACHE:
        with reading(path, RigSpecError, "rig spec"):
            _CACHE[key] = build_rig(path, layout, int(lod))
    return _CACHE[key]


def lod_of(rig: Rig, lod: int) -> Rig:
    """Level of detail ``lod`` of ``rig`` (``rig`` itself for 0); the rig must come from a spec
    whose generator supports levels of detail (raises :class:`RigSpecError` otherwise)."""
    if lod == rig.lod:
        return rig
    if rig.lod:
        raise ValueError(f"{rig!r} is already a level of detail; take LODs of the full rig")
    if not str(rig.source).endswith(".toml") or not Path(rig.source).is_file():
        raise RigSpecError(f"{rig.source}: rig {rig.name!r} was not loaded from a spec; it has no levels of detail")
    if load_rig(rig.source, rig.layout).identity != rig.identity:
        raise RigSpecError(f"{rig.source}: changed since rig {rig.name!r} was loaded (or the rig was edited)")
    return load_rig(rig.source, rig.layout, lod)
