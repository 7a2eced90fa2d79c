"""Tracked values onto the built-in rig: thin glue between ``core.animation.keyframes`` and the baker.

:func:`apply_tracking` keys the BDFM's channel properties (custom properties of the armature
object named like the layout channels, data path ``'["AU12_L"]'``) from a tracking result,
into one new Action, fcurves grouped by layout group (``core.animation.keyframes.GROUP_LABELS``:
"Pose", "AUs", "Identity", "Brow style"). The frame mapping (tracking row -> scene frame)
is ``core.animation.keyframes``'s: ``start_frame + (frame - first row's frame) // frame_step``, only
rows whose offset is a multiple of the step, and no key where there is no face.

:func:`apply_map` keys any rig through a retarget map (``core.animation.retarget``): bones of an
armature (``pose.bones["name"].location`` ..., grouped by bone, rotations converted to each
bone's rotation mode), shape keys of a mesh (its ``shape_keys`` datablock,
``key_blocks["name"].value``, group "Shape keys") or custom properties. :func:`apply_tracking`
is :func:`apply_map` with the built-in ``bdfm.json``.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields

import bpy
import numpy as np

from ._core import (
    LAYOUT,
    euler_quaternions,
    load_rig,
    parse_gains,
    plan_keys,
    read_tracking,
    retarget,
    scene_fps,
    select_channels,
)
from .bake import Curve, bake_action
from .stored import store_tracking


def load_tracking(path):
    """``core.animation.tracking_io.read_tracking`` with a clear message for a missing file."""
    path = bpy.path.abspath(str(path))
    if not os.path.isfile(path):
        raise ValueError(f"tracking file not found: {path}")
    return read_tracking(path)


def missing_channels(obj, names) -> list[str]:
    """Channel names ``obj`` has no custom property for."""
    return [n for n in names if n not in obj.keys()]


def apply_tracking(arm_obj, tracking, *, channels="motion", start_frame: int = 1,
                   frame_step: int = 1, smoothing: float | None = None,
                   gains: dict | None = None, set_scene_fps: bool = False,
                   set_frame_range: bool = False, action_name: str | None = None,
                   cleanup: bool = False, scene=None, neutral_frame: int | None = None, bones: bool = False):
    """Key ``tracking`` onto ``arm_obj``'s channel properties; return the new Action.

    ``channels``: "motion" (default: pose, AUs and gaze), "pose", "au", "gaze", "pose+au", "all",
    or channel names.
    ``smoothing``: One Euro strength 0..1 (None / 0: off); ``gains``: channel or FACS code
    -> gain (``core.animation.filters.apply_gain``). ``set_scene_fps``: the scene's frame rate becomes
    the tracking's divided by ``frame_step``; ``set_frame_range``: the scene's start / end
    frames span the keys. ``cleanup``: drop keys linear interpolation reproduces within
    ``core.animation.keyframes.CLEANUP_TOLERANCE``. ``action_name`` default: "<object>_tracking".
    ``neutral_frame``: a scene frame whose face becomes the neutral (every AU 0 there).
    ``bones``: also key the face bones themselves (:func:`bone_curves`), for FBX and glTF, which
    carry keyed bones but not the drivers that pose them from the channel properties.

    Refused with ``ValueError`` before anything is written: a tracking whose parameters do
    not match the layout, a target without some channel properties (named), bad options.
    """
    scene = scene or bpy.context.scene
    missing = missing_channels(arm_obj, [LAYOUT.names[i] for i in select_channels(channels, LAYOUT)])
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise ValueError(f"{arm_obj.name} is not an au2rig face rig: it has no channel "
                         f"properties {shown} (add the rig with Add > Armature > au2rig Face Rig)")
    action, _ = apply_map(arm_obj, tracking, retarget.load_builtin("bdfm"), channels=channels,
                          start_frame=start_frame, frame_step=frame_step, smoothing=smoothing,
                          gains=gains, set_scene_fps=set_scene_fps, set_frame_range=set_frame_range,
                          action_name=action_name, cleanup=cleanup, scene=scene, match=False,
                          neutral_frame=neutral_frame, bones=bones)
    return action


def bone_curves(arm_obj, values, channels, cleanup: bool = False) -> list[Curve]:
    """The face bones' local location, rotation and scale (the components any channel moves)
    for parameter rows ``values`` (M, P; NaN rows: no key), of which the layout indices
    ``channels`` are keyed; the other channels hold the armature's current property values, as
    its drivers would. Computed by ``core``'s rig (Blender equals it to 1e-4 of the head's
    height, tests/test_blender_rig.py), so the bones keyed here pose the face exactly as the
    drivers do, in every tool that reads keyed bones."""
    rig = load_rig(layout=LAYOUT)
    missing = [b for b in rig.bone_names if b not in arm_obj.pose.bones]
    if missing:
        raise ValueError(f"{arm_obj.name} lacks the face bones {', '.join(missing[:6])}"
                         f"{' ...' if len(missing) > 6 else ''}: baking to bones needs the au2rig face rig")
    current = np.array([float(arm_obj.get(c.name, c.neutral)) for c in LAYOUT.channels])
    full = np.repeat(current[None], len(values), 0)
    full[:, channels] = values
    ok = np.isfinite(full).all(1)
    local = np.full((len(full), len(rig.bone_names), 9), np.nan)
    if ok.any():
        local[ok] = rig.bone_locals(full[ok])
    moving = np.abs(rig.basis).sum(0) > 0  # (bones, 9): components some channel moves
    curves = []
    for b, name in enumerate(rig.bone_names):
        for k in np.flatnonzero(moving[b]):
            field = ("location", "rotation_euler", "scale")[k // 3]
            v = np.radians(local[:, b, k]) if k // 3 == 1 else local[:, b, k]
            curves.append(Curve(f'pose.bones["{name}"].{field}', v, index=int(k % 3), group=name,
                                tolerance=1e-4 if cleanup else None))
    return curves


def map_owner(obj, rmap):
    """The ID a map's keys go on: the armature object (bones, properties) or the mesh's
    shape-key datablock (shape keys)."""
    if rmap.kind == "bones":
        if obj.type != 'ARMATURE':
            raise ValueError(f"{rmap.name} drives bones: {obj.name} is a {obj.type.lower()}, "
                             f"not an armature")
        return obj
    if rmap.kind == "shape_keys":
        keys = getattr(obj.data, "shape_keys", None) if obj.type == 'MESH' else None
        if keys is None:
            raise ValueError(f"{rmap.name} drives shape keys: {obj.name} has none "
                             f"(a mesh with shape keys is needed)")
        return keys
    return obj


def target_names(obj, kind: str) -> list[str]:
    """Names a map of ``kind`` can drive on ``obj`` (bones, shape keys but the reference key,
    custom properties)."""
    if kind == "bones":
        return [b.name for b in obj.pose.bones] if obj.type == 'ARMATURE' else []
    if kind == "shape_keys":
        keys = getattr(obj.data, "shape_keys", None) if obj.type == 'MESH' else None
        if keys is None:
            return []
        return [k.name for k in keys.key_blocks if k != keys.reference_key]
    return list(obj.keys())


def detect_map(obj):
    """The built-in map that fits ``obj`` best, ``(name, score)``; name None if none fits."""
    cands = {}
    for name in retarget.BUILTIN:
        rmap = retarget.load_builtin(name)
        cands[name] = (rmap, target_names(obj, rmap.kind))
    return retarget.detect_map(cands)


def _rotations(obj, rmap, values):
    """Convert rotation entries to each bone's rotation mode: ``{key: (entry, values)}`` in,
    the same out with rotation_euler <-> rotation_quaternion swapped where the bone needs it."""
    from mathutils import Euler, Quaternion

    out, by_bone = {}, {}
    for key, (e, v) in values.items():
        if e.prop in ("rotation_euler", "rotation_quaternion"):
            by_bone.setdefault(e.target, {})[(e.prop, e.index)] = (e, v)
        else:
            out[key] = (e, v)
    for bone, comps in by_bone.items():
        pb = obj.pose.bones[bone]
        mode = pb.rotation_mode
        if mode == 'AXIS_ANGLE':
            raise ValueError(f"{obj.name}: bone {bone} uses axis-angle rotation; set it to "
                             f"quaternion or Euler to key it from {rmap.name}")
        props = {p for p, _ in comps}
        if len(props) == 2:
            raise ValueError(f"{rmap.source}: bone {bone} has both rotation_euler and "
                             f"rotation_quaternion entries")
        src = props.pop()
        want = "rotation_quaternion" if mode == 'QUATERNION' else "rotation_euler"
        first = next(iter(comps.values()))[0]
        n = len(next(iter(comps.values()))[1])
        if src == want and (src == "rotation_quaternion" or mode == 'XYZ'):
            for (p, i), (e, v) in comps.items():
                out[e.key] = (e, v)
            continue
        size = 4 if src == "rotation_quaternion" else 3
        rest = (1.0, 0.0, 0.0, 0.0) if size == 4 else (0.0, 0.0, 0.0)
        m = np.array([comps[(src, i)][1] if (src, i) in comps else np.full(n, rest[i])
                      for i in range(size)]).T  # (n, size)
        ok = np.isfinite(m).all(1)
        res = np.full((n, 4 if want == "rotation_quaternion" else 3), np.nan)
        if size == 3 and want == "rotation_quaternion":  # the common case (Rigify's face): at once, in numpy
            res[ok] = euler_quaternions(m[ok], "XYZ")
        else:  # onto an Euler bone of another order, or quaternion entries onto an Euler bone
            for r in np.flatnonzero(ok):
                rot = Quaternion(m[r]).normalized() if size == 4 else Euler(m[r], 'XYZ')
                res[r] = tuple(rot.to_matrix().to_euler(mode))
        for i in range(res.shape[1]):
            e = retarget.Entry(bone, {}, prop=want, index=i, group=first.group,
                               tolerance=first.tolerance)
            out[e.key] = (e, res[:, i])
    return out


def _data_path(rmap, e) -> str:
    if rmap.kind == "bones":
        return f'pose.bones["{e.target}"].{e.prop}'
    if rmap.kind == "shape_keys":
        return f'key_blocks["{e.target}"].value'
    return f'["{e.target}"]'


def apply_map(obj, tracking, rmap, *, channels="motion", start_frame: int = 1, frame_step: int = 1,
              smoothing: float | None = None, gains: dict | None = None,
              set_scene_fps: bool = False, set_frame_range: bool = False,
              action_name: str | None = None, cleanup: bool = False, scene=None,
              match: bool = True, partial: bool = False, neutral_frame: int | None = None,
              bones: bool = False):
    """Key ``tracking`` onto ``obj`` through the retarget map ``rmap``; ``(Action, MapReport)``.

    The tracking goes through ``core.animation.keyframes.plan_keys`` (smoothing, gains, frame mapping,
    as :func:`apply_tracking`), then ``core.animation.retarget.evaluate_map``; of the map, only entries
    whose channels are all in ``channels`` are keyed. ``match``: find renamed targets with
    ``core.animation.retarget.auto_match`` (else exact names). Targets the object lacks are refused with
    ``ValueError`` naming them, before anything is written, unless ``partial``: then they are
    skipped and listed in the report. Bones: the Action goes on the armature object; shape
    keys: on the mesh's shape-key datablock (``obj.data.shape_keys``). ``bones``: with the
    built-in rig's map, also key its face bones (:func:`bone_curves`).
    """
    scene = scene or bpy.context.scene
    owner = map_owner(obj, rmap)
    rmap = retarget.select_entries(rmap, select_channels(channels, LAYOUT))
    if not rmap.entries:
        raise ValueError(f"{rmap.name} drives nothing from the channels {channels!r}")
    names = target_names(obj, rmap.kind)
    rmap, report = retarget.auto_match(rmap, names, fuzzy=match)
    if report.missing:
        if not partial:
            what = {"bones": "bones", "shape_keys": "shape keys", "properties": "properties"}[rmap.kind]
            shown = ", ".join(report.missing[:8]) + (
                f" and {len(report.missing) - 8} more" if len(report.missing) > 8 else "")
            raise ValueError(f"{obj.name} has no {what} {shown} (needed by {rmap.name}; "
                             f"allow a partial import to skip them)")
        report.skipped = list(report.missing)
        rmap = retarget.drop_targets(rmap, report.missing)
        if not rmap.entries:
            raise ValueError(f"{obj.name} has none of the targets of {rmap.name}")
    plan = plan_keys(tracking, "all", start_frame=start_frame, frame_step=frame_step,
                     smoothing=smoothing, gains=gains, neutral_frame=neutral_frame, layout=LAYOUT)
    values = retarget.evaluate_map(rmap, plan.values)
    entries = {e.key: (e, values[e.key]) for e in rmap.entries}
    if rmap.kind == "bones":
        entries = _rotations(obj, rmap, entries)
    fps = scene_fps(tracking.fps, frame_step) if set_scene_fps else None
    curves = [Curve(_data_path(rmap, e), v, index=e.index, group=retarget.default_group(rmap, e),
                    tolerance=retarget.default_tolerance(rmap, e) if cleanup else None)
              for e, v in entries.values()]
    if bones:
        if rmap.kind != "properties" or obj.type != 'ARMATURE':
            raise ValueError(f"Bake to Bones is for the au2rig face rig, whose bones follow drivers; "
                             f"{rmap.name} keys {obj.name}'s {rmap.kind.replace('_', ' ')} directly")
        keyed = select_channels(channels, LAYOUT)
        curves += bone_curves(obj, plan.values[:, keyed], keyed, cleanup)
    action = bake_action(owner, action_name or f"{obj.name}_tracking", plan.frames, curves)
    if fps is not None:
        scene.render.fps, scene.render.fps_base = fps
    if set_frame_range and len(plan.frames):
        scene.frame_start, scene.frame_end = int(plan.frames[0]), int(plan.frames[-1])
    return action, report


@dataclass(frozen=True)
class KeyOptions:
    """How the keying operators (tracking file, video) put a tracking onto a rig: their shared
    options, named as the operators' properties (:meth:`of` reads them off an operator)."""

    target: str = ""             # object name; empty: the active object
    retarget_map: str = "auto"   # auto, bdfm, a built-in map name, or custom (map_path)
    map_path: str = ""
    partial: bool = False
    channels: str = "motion"
    start_frame: int = 1
    frame_step: int = 1
    smoothing: float = 0.0
    gains: str = ""
    scene_fps: bool = False
    frame_range: bool = True
    cleanup: bool = False
    action_name: str = ""
    neutral_frame: int = -1      # a scene frame whose face becomes the neutral (AUs 0 there); -1: as tracked
    bones: bool = False          # the built-in rig: also key its face bones (FBX / glTF carry no drivers)

    @classmethod
    def of(cls, op) -> "KeyOptions":
        return cls(**{f.name: getattr(op, f.name) for f in fields(cls)})


def key_target(context, target: str = ""):
    """The object to key: the one named ``target``, else the active object (``ValueError`` if none)."""
    obj = bpy.data.objects.get(target) if target else context.active_object
    if obj is None:
        raise ValueError(f"no object named {target!r}" if target
                         else "no active object: select the au2rig face rig")
    return obj


def key_map(obj, retarget_map: str = "auto", map_path: str = ""):
    """The retarget map for ``obj``: None for the built-in rig's channel properties, else a
    ``core.animation.retarget`` map (built-in, auto-detected, or a custom JSON file)."""
    if retarget_map == "custom":
        if not map_path:
            raise ValueError("Retarget Map is Custom: choose a Map File")
        return retarget.load_map(bpy.path.abspath(map_path))
    name = retarget_map
    if name == "auto":
        name, score = detect_map(obj)
        if name is None:
            raise ValueError(f"{obj.name} is not an au2rig face rig, and no built-in retarget map "
                             f"fits it (best: {score:.0%} of a map's targets found); add the "
                             f"au2rig face rig (Add > Armature), or choose a retarget map")
    return None if name == "bdfm" else retarget.load_builtin(name)


def key_tracking(context, opts: KeyOptions, tracking, obj=None, rmap=False, store: bool = True):
    """Key ``tracking`` as :class:`KeyOptions` say: ``(object, Action, MapReport or None)``.

    The one code path of the tracking-file importer and of animate-from-video. ``obj`` /
    ``rmap``: already resolved target and map (else from ``opts``; ``rmap=False``: not given).
    ``ValueError`` before anything is written when the target, map or options are wrong.
    ``store``: keep the tracking in the object (False: the caller keeps it).
    """
    obj = obj if obj is not None else key_target(context, opts.target)
    gains = parse_gains(opts.gains)
    if rmap is False:
        rmap = key_map(obj, opts.retarget_map, opts.map_path)
    options = dict(channels=opts.channels, start_frame=opts.start_frame, frame_step=opts.frame_step,
                   smoothing=opts.smoothing or None, gains=gains, set_scene_fps=opts.scene_fps,
                   set_frame_range=opts.frame_range, action_name=opts.action_name or None,
                   cleanup=opts.cleanup, scene=context.scene,
                   neutral_frame=None if opts.neutral_frame < 0 else opts.neutral_frame, bones=opts.bones)
    if rmap is None:  # the built-in rig (bdfm.json), with its own error messages
        action, report = apply_tracking(obj, tracking, **options), None
    else:
        action, report = apply_map(obj, tracking, rmap, partial=opts.partial, **options)
    if store:
        store_tracking(obj, tracking, asdict(opts), action)  # re-bakes later without the file (addon/stored.py)
    return obj, action, report


def rebake(context, obj, replace: bool = True, **changes):
    """Key the tracking kept in ``obj`` again (``addon/stored.py``): the keying options last used,
    with ``changes`` (:class:`KeyOptions` fields). ``replace``: the Action the last keying made
    gives way to the new one, which takes its name (a slider re-baking as it moves leaves one
    Action, not one per step); else the old Action stays beside the new. ``(object, Action,
    MapReport or None)``; ``ValueError`` when there is nothing stored or an option is wrong."""
    from .stored import baked_action_name, stored_options, stored_tracking, update_stored

    tracking = stored_tracking(obj)
    if tracking is None:
        raise ValueError(f"{obj.name} has no stored tracking: import a tracking file or a video onto it first")
    last = stored_options(obj)
    names = {f.name for f in fields(KeyOptions)}
    unknown = set(changes) - names
    if unknown:
        raise ValueError(f"re-bake: unknown options {', '.join(sorted(unknown))}")
    opts = KeyOptions(**{**{k: v for k, v in last.items() if k in names}, **changes})
    previous = bpy.data.actions.get(baked_action_name(obj)) if replace else None
    obj, action, report = key_tracking(context, opts, tracking, obj, store=False)
    if previous is not None and previous != action and previous.users - int(previous.use_fake_user) == 0:
        name = previous.name
        bpy.data.actions.remove(previous)
        action.name = name
    update_stored(obj, asdict(opts), action)  # the tracking itself is unchanged: only what was done with it
    return obj, action, report
