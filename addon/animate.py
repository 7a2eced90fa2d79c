"""Tracked values onto the built-in rig: thin glue between ``core.keyframes`` and the baker.

:func:`apply_tracking` keys the BDFM's channel properties (custom properties of the armature
object named like the layout channels, data path ``'["AU12_L"]'``) from a tracking result,
into one new Action, fcurves grouped by layout group (``core.keyframes.GROUP_LABELS``:
"Pose", "AUs", "Identity", "Brow style"). The frame mapping (tracking row -> scene frame)
is ``core.keyframes``'s: ``start_frame + (frame - first row's frame) // frame_step``, only
rows whose offset is a multiple of the step, and no key where there is no face.
"""
from __future__ import annotations

import os

import bpy

from ._core import LAYOUT, plan_keys, read_tracking, scene_fps
from .bake import Curve, bake_action


def load_tracking(path):
    """``core.tracking_io.read_tracking`` with a clear message for a missing file."""
    path = bpy.path.abspath(str(path))
    if not os.path.isfile(path):
        raise ValueError(f"tracking file not found: {path}")
    return read_tracking(path)


def missing_channels(obj, names) -> list[str]:
    """Channel names ``obj`` has no custom property for."""
    return [n for n in names if n not in obj.keys()]


def apply_tracking(arm_obj, tracking, *, channels="pose+au", start_frame: int = 1,
                   frame_step: int = 1, smoothing: float | None = None,
                   gains: dict | None = None, set_scene_fps: bool = False,
                   set_frame_range: bool = False, action_name: str | None = None,
                   cleanup: bool = False, scene=None):
    """Key ``tracking`` onto ``arm_obj``'s channel properties; return the new Action.

    ``channels``: "pose+au" (default), "pose", "au", "all", or channel names.
    ``smoothing``: One Euro strength 0..1 (None / 0: off); ``gains``: channel or FACS code
    -> gain (``core.filters.apply_gain``). ``set_scene_fps``: the scene's frame rate becomes
    the tracking's divided by ``frame_step``; ``set_frame_range``: the scene's start / end
    frames span the keys. ``cleanup``: drop keys linear interpolation reproduces within
    ``core.keyframes.CLEANUP_TOLERANCE``. ``action_name`` default: "<object>_tracking".

    Refused with ``ValueError`` before anything is written: a tracking whose parameters do
    not match the layout, a target without some channel properties (named), bad options.
    """
    scene = scene or bpy.context.scene
    plan = plan_keys(tracking, channels, start_frame=start_frame, frame_step=frame_step,
                     smoothing=smoothing, gains=gains, layout=LAYOUT)
    missing = missing_channels(arm_obj, plan.names)
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise ValueError(f"{arm_obj.name} is not an au2rig face rig: it has no channel "
                         f"properties {shown} (add the rig with Add > Armature > au2rig Face Rig)")
    fps = scene_fps(tracking.fps, frame_step) if set_scene_fps else None
    curves = [Curve(f'["{name}"]', plan.values[:, k], group=plan.groups[k],
                    tolerance=plan.tolerances[k] if cleanup else None)
              for k, name in enumerate(plan.names)]
    action = bake_action(arm_obj, action_name or f"{arm_obj.name}_tracking", plan.frames, curves)
    if fps is not None:
        scene.render.fps, scene.render.fps_base = fps
    if set_frame_range and len(plan.frames):
        scene.frame_start, scene.frame_end = int(plan.frames[0]), int(plan.frames[-1])
    return action
