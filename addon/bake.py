"""Write keyframes in bulk into a new named Action (Blender 4.2 LTS through 5.x).

:func:`bake_action` creates one fcurve per :class:`Curve`, grouped, and fills all of its keys
at once (``keyframe_points.add(n)`` + ``foreach_set("co", ...)`` + ``foreach_set`` of the
interpolation, and the handles of Bezier keys) instead of one ``keyframe_insert`` per key.

Two Action APIs, chosen by feature, not by version number:

- layered Actions (Blender 4.4+, the only kind from 5.0, where ``Action.fcurves`` is gone):
  ``action.slots.new(id_type, name)`` -> ``action.layers.new(name)`` ->
  ``layer.strips.new(type='KEYFRAME')`` -> ``strip.channelbag(slot, ensure=True)`` ->
  ``channelbag.fcurves.new(data_path, index=, group_name=)`` (5.0; on 4.4 / 4.5, which lack
  ``group_name``, ``channelbag.groups.new(name)`` + ``fcurve.group = group``), then
  ``animation_data.action`` and, only if Blender did not pick it already,
  ``animation_data.action_slot`` (re-assigning the slot Blender just picked crashes
  bpy 5.0.1);
- legacy Actions (4.2, 4.3): ``action.fcurves.new(data_path, index=, action_group=)``.

Only the 5.0 path is exercised here (the tests run bpy 5.0.1; the 4.4 group fallback is
tested by forcing it on 5.0); the legacy branch follows the 4.2 API documentation.

The Action is always new (``bpy.data.actions.new`` makes the name unique with a ``.001``
suffix if it is taken) and is assigned to the owner's animation data; an Action the owner
had before is left unchanged in ``bpy.data`` (given a fake user if the owner was its only
user, so saving the file keeps it). Any failure removes the new Action and gives the owner
back its previous Action: no partial Action is left behind.
"""
from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from ._core import redundant_keys

INTERPOLATIONS = ("CONSTANT", "LINEAR", "BEZIER")
_BEZIER = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["BEZIER"].value


@dataclass
class Curve:
    """One fcurve: ``owner.<data_path>[index]`` over time.

    ``group`` is the action group (a bone name, or e.g. ``"Channels"`` for custom
    properties); ``values`` (N,) matches the bake's frames, NaN = no key at that frame;
    ``tolerance``: drop keys linear interpolation reproduces within it (None: keep all,
    unless the bake gives a default ``cleanup``).
    """

    data_path: str
    values: np.ndarray
    index: int = 0
    group: str = "Channels"
    tolerance: float | None = None


def is_layered(action) -> bool:
    """True for the layered Action API as in 4.4+ (slots, layers, strips, channelbags);
    4.3's experimental one (``slots.new(for_id=)``) counts as legacy."""
    if not (hasattr(action, "layers") and hasattr(action, "slots")):
        return False
    return "id_type" in action.slots.bl_rna.functions["new"].parameters


def _has_group_param(channelbag) -> bool:
    """``channelbag.fcurves.new`` takes ``group_name`` (5.0+; not 4.4 / 4.5)."""
    return "group_name" in channelbag.fcurves.bl_rna.functions["new"].parameters


def action_fcurves(action) -> list:
    """Every fcurve of ``action`` (of all its slots, for a layered Action)."""
    if not is_layered(action):
        return list(action.fcurves)
    return [fc for layer in action.layers for strip in layer.strips
            for bag in getattr(strip, "channelbags", ()) for fc in bag.fcurves]


def action_groups(action) -> list[str]:
    """Names of ``action``'s fcurve groups, in order."""
    if not is_layered(action):
        return [g.name for g in action.groups]
    return [g.name for layer in action.layers for strip in layer.strips
            for bag in getattr(strip, "channelbags", ()) for g in bag.groups]


def _check(id_owner, frames, curves):
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 1:
        raise ValueError(f"frames must be (N,), got shape {frames.shape}")
    if not np.isfinite(frames).all():
        raise ValueError("frames must be finite")
    if (np.diff(frames) <= 0).any():
        raise ValueError("frames must increase")
    seen, missing, values = set(), [], []
    for c in curves:
        key = (c.data_path, c.index)
        if key in seen:
            raise ValueError(f"two curves for {c.data_path}[{c.index}]")
        seen.add(key)
        v = np.asarray(c.values, dtype=np.float64)
        if v.shape != frames.shape:
            raise ValueError(f"{c.data_path}[{c.index}]: values have shape {v.shape}, "
                             f"frames {frames.shape}")
        if np.isinf(v).any():
            raise ValueError(f"{c.data_path}[{c.index}]: infinite value")
        try:
            target = id_owner.path_resolve(c.data_path)
        except ValueError:
            missing.append(c.data_path)
        else:
            size = len(target) if hasattr(target, "__len__") and not isinstance(target, str) else 0
            if (size and not 0 <= c.index < size) or (not size and c.index not in (0, -1)):
                raise ValueError(f"{id_owner.name}: {c.data_path} has no index {c.index}")
        values.append(v)
    if missing:
        raise ValueError(f"{id_owner.name} has no {', '.join(missing)}")
    return frames, values


def _fill(fcurve, x, y, interpolation: int) -> None:
    n = len(x)
    points = fcurve.keyframe_points
    points.add(n)
    co = np.empty((n, 2), np.float32)
    co[:, 0], co[:, 1] = x, y
    points.foreach_set("co", co.ravel())
    points.foreach_set("interpolation", np.full(n, interpolation, np.uint8))  # Blender's own width: a copy, 13x faster
    # the keys come sorted and unique (_check), so fcurve.update() (sort, de-duplicate, handles) is
    # not needed; handles shape Bezier segments only (Blender neither evaluates nor draws them for
    # linear or constant ones, and recomputes them on any edit), so only Bezier keys get them
    if interpolation == _BEZIER:
        points.handles_recalc()


class _Layered:
    """Blender 4.4+: one slot for the owner, one layer, one keyframe strip, one channelbag."""

    def __init__(self, action, id_owner):
        self.slot = action.slots.new(id_type=id_owner.id_type, name=id_owner.name)
        strip = action.layers.new("Layer").strips.new(type='KEYFRAME')
        self.bag = strip.channelbag(self.slot, ensure=True)
        self.group_param = _has_group_param(self.bag)
        self.groups = {}

    def fcurve(self, data_path, index, group):
        if self.group_param:
            return self.bag.fcurves.new(data_path, index=index, group_name=group)
        fc = self.bag.fcurves.new(data_path, index=index)
        if group not in self.groups:
            self.groups[group] = self.bag.groups.new(group)
        try:
            fc.group = self.groups[group]
        except (AttributeError, TypeError, RuntimeError):
            pass  # a Blender that cannot regroup: the fcurve stays ungrouped, its keys are whole
        return fc

    def assign(self, anim_data, action):
        anim_data.action = action
        current = anim_data.action_slot
        # Blender picks our slot itself (the Action's only slot for this ID type); assigning
        # the slot it has already picked crashes bpy 5.0.1, so only assign when it differs
        if current is None or current.handle != self.slot.handle:
            anim_data.action_slot = self.slot


class _Legacy:
    """Blender 4.2 / 4.3: fcurves directly on the Action."""

    def __init__(self, action, id_owner):
        self.action = action

    def fcurve(self, data_path, index, group):
        return self.action.fcurves.new(data_path, index=index, action_group=group)

    def assign(self, anim_data, action):
        anim_data.action = action


def bake_action(id_owner, action_name: str, frames, curves, *, interpolation: str = "LINEAR",
                cleanup: float | None = None):
    """Bake ``curves`` at ``frames`` (N,) into a new Action named ``action_name`` (made
    unique by Blender if taken), assign it to ``id_owner`` and return it.

    One fcurve per curve with keys where its value is finite (a curve with none gets no
    fcurve), in its ``group``. ``interpolation`` of every key: CONSTANT, LINEAR or BEZIER.
    ``cleanup``: default tolerance for curves whose own ``tolerance`` is None (see
    ``core.animation.keyframes.redundant_keys``; exact for LINEAR). Bad input (unknown data paths
    named, duplicate curves, shapes) raises ``ValueError`` before anything is created.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    frames, values = _check(id_owner, frames, curves)
    interp = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items[interpolation].value

    anim_data = id_owner.animation_data
    previous = anim_data.action if anim_data is not None else None
    # the owner is the previous Action's only user: give it a fake user so saving keeps it
    protect = previous is not None and previous.users == 1 and not previous.use_fake_user
    previous_slot = getattr(anim_data, "action_slot_handle", None) if previous else None
    action = bpy.data.actions.new(action_name)
    assigned = False
    try:
        api = (_Layered if is_layered(action) else _Legacy)(action, id_owner)
        for c, v in zip(curves, values):
            ok = np.isfinite(v)
            if not ok.any():
                continue
            x, y = frames[ok], v[ok]
            tol = c.tolerance if c.tolerance is not None else cleanup
            if tol is not None:
                keep = redundant_keys(x, y, tol)
                x, y = x[keep], y[keep]
            _fill(api.fcurve(c.data_path, c.index, c.group), x, y, interp)
        if anim_data is None:
            anim_data = id_owner.animation_data_create()
        assigned = True
        api.assign(anim_data, action)
        if protect:
            previous.use_fake_user = True
    except BaseException:
        if assigned:
            _restore(anim_data, previous, previous_slot)
        bpy.data.actions.remove(action)
        raise
    return action


def _restore(anim_data, previous, slot_handle) -> None:
    anim_data.action = previous
    if previous is not None and slot_handle is not None and hasattr(anim_data, "action_slot_handle"):
        if anim_data.action_slot_handle != slot_handle:
            anim_data.action_slot_handle = slot_handle
