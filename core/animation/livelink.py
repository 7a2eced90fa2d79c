"""Live Link Face CSVs: the capture format of Epic's iPhone app, read by Faceit, MetaHuman and
Unreal (pure Python + numpy).

A file is a header ``Timecode,BlendShapeCount`` then :data:`SHAPES` (ARKit's 52 blendshapes by
their PascalCase names, in ARKit's order) and :data:`ANGLES` (head, left eye, right eye: yaw,
pitch, roll), one row per frame: the timecode ``HH:MM:SS:FF.fff`` (FF the frame within the
second, .fff the fraction of a frame), the count 61, the 52 scores (0..1) and the 9 angles.

Written from a tracking through a retarget map of kind ``shape_keys`` (the built-in ``arkit52``
by default), so any ARKit rig in any tool can play our capture. Angles are in radians, with the
layout's signs (yaw + toward the subject's left, pitch + up, roll + toward the left shoulder);
both eyes carry the gaze, their roll is 0. Frames without a face are left out (the format has no
such row); their timecodes are missing from the file.

Read back through the same map in the other direction: per frame, the layout channels the map
drives are the least-squares solution of ``clip(map(channels)) = scores`` within the channels'
ranges (active-set iterations: a score of 0 only bounds its terms from above, and joins the
solve when they pass it; a score of 1 is reached with the least change), the pose and the gaze
come from the angles (the gaze is the two eyes' mean), every other channel stays neutral. So a
capture read back and mapped again gives the scores it was written with, whenever the map can
produce them; two channels the map only ever adds together (AU23 and AU24 in mouthPress) come
back as the least-norm split of their sum. Scores the map cannot produce together (the jaw open
with the lips neither apart nor closed) get the least-squares compromise.
"""
from __future__ import annotations

import math
import re

import numpy as np

from ..rig.layout import LAYOUT, ParameterLayout
from .retarget import RetargetMap, evaluate_map

SHAPES = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft", "EyeSquintLeft",
    "EyeWideLeft", "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight", "EyeLookOutRight", "EyeLookUpRight",
    "EyeSquintRight", "EyeWideRight", "JawForward", "JawLeft", "JawRight", "JawOpen", "MouthClose", "MouthFunnel",
    "MouthPucker", "MouthLeft", "MouthRight", "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft",
    "MouthFrownRight", "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight",
    "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper", "MouthPressLeft", "MouthPressRight",
    "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft", "MouthUpperUpRight", "BrowDownLeft",
    "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft", "BrowOuterUpRight", "CheekPuff", "CheekSquintLeft",
    "CheekSquintRight", "NoseSneerLeft", "NoseSneerRight", "TongueOut")
ANGLES = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw",
          "RightEyePitch", "RightEyeRoll")
HEADER = ("Timecode", "BlendShapeCount") + SHAPES + ANGLES
FRAME_RATES = (24, 25, 30, 48, 50, 60, 120)  # a file's rate, when not given: the first above its frame numbers
_TIMECODE = re.compile(r"^(\d+):(\d{2}):(\d{2}):(\d+)(?:\.(\d+))?$")


def arkit_name(shape_key: str) -> str:
    """ARKit's camelCase shape-key name (``mouthSmileLeft``) -> the file's PascalCase column."""
    return shape_key[:1].upper() + shape_key[1:]


def timecode(seconds: float, fps: float) -> str:
    """``HH:MM:SS:FF.fff`` of a time in seconds at ``fps`` frames per second."""
    frames = seconds * fps
    whole = int(math.floor(frames + 1e-9))
    sub = min(999, int(round((frames - whole) * 1000)))
    s, ff = divmod(whole, int(round(fps)))
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{h:02d}:{m:02d}:{s:02d}:{ff:02d}.{sub:03d}"


def parse_timecode(text: str) -> tuple[int, float]:
    """``HH:MM:SS:FF.fff`` -> (whole seconds, frames within the second, fraction included)."""
    m = _TIMECODE.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a timecode HH:MM:SS:FF.fff")
    h, mi, s, ff = (int(g) for g in m.groups()[:4])
    sub = float(f"0.{m.group(5)}") if m.group(5) else 0.0
    return h * 3600 + mi * 60 + s, ff + sub


def to_livelink(params: np.ndarray, rmap: RetargetMap, layout: ParameterLayout = LAYOUT) -> np.ndarray:
    """(N, 61) file values (52 scores, 9 angles in radians) for parameters (N, P) through ``rmap``."""
    if rmap.kind != "shape_keys":
        raise ValueError(f"map {rmap.name!r} drives {rmap.kind}; a Live Link Face file needs a map of shape keys")
    values = evaluate_map(rmap, params, layout)
    keyed = {arkit_name(k): v for k, v in values.items()}
    out = np.zeros((len(params), len(SHAPES) + len(ANGLES)))
    for j, name in enumerate(SHAPES):
        if name in keyed:
            out[:, j] = keyed[name]
    pose = np.radians(np.asarray(params)[:, layout.group_slice("pose")])
    gaze = np.radians(np.asarray(params)[:, layout.group_slice("gaze")])
    k = len(SHAPES)
    out[:, k:k + 3] = pose
    out[:, k + 3:k + 5] = gaze
    out[:, k + 6:k + 8] = gaze
    return out


def _map_matrix(rmap: RetargetMap, layout: ParameterLayout):
    """(rows of SHAPES the map drives, channel indices, M (rows, channels), offsets)."""
    entries = {arkit_name(e.key): e for e in rmap.entries}
    rows = [j for j, name in enumerate(SHAPES) if name in entries]
    channels = sorted({layout.index[c] for j in rows for c in entries[SHAPES[j]].terms})
    col = {c: i for i, c in enumerate(channels)}
    m = np.zeros((len(rows), len(channels)))
    offsets = np.zeros(len(rows))
    for r, j in enumerate(rows):
        e = entries[SHAPES[j]]
        offsets[r] = e.offset
        for name, w in e.terms.items():
            m[r, col[layout.index[name]]] += w
    return rows, channels, m, offsets


def from_livelink(values: np.ndarray, rmap: RetargetMap, layout: ParameterLayout = LAYOUT,
                  iterations: int = 8) -> np.ndarray:
    """(N, P) parameters from (N, 61) file values through ``rmap`` in the other direction (see the
    module docstring)."""
    values = np.asarray(values, float)
    rows, channels, m, offsets = _map_matrix(rmap, layout)
    lo, hi = layout.lo[channels], layout.hi[channels]
    target = np.clip(values[:, rows], 0.0, 1.0) - offsets
    params = layout.neutral(len(values))
    at_zero = target <= -offsets + 1e-9  # a score of 0 only says the map's value is 0 or below
    for i in range(len(values)):
        v = target[i]
        p = layout.neutral()[channels]
        active = ~at_zero[i]  # scores above 0 are met exactly (1 included: the least change that reaches it)
        for _ in range(iterations):
            if active.any():
                p = np.clip(np.linalg.lstsq(m[active], v[active], rcond=None)[0], lo, hi)
            violated = at_zero[i] & ~active & (m @ p > v + 1e-9)
            if not violated.any():
                break
            active = active | violated  # a bound once hit stays in the solve: no cycling
        params[i, channels] = p
    k = len(SHAPES)
    pose, gaze = layout.group_slice("pose"), layout.group_slice("gaze")
    params[:, pose] = np.clip(np.degrees(values[:, k:k + 3]), layout.lo[pose], layout.hi[pose])
    eyes = (values[:, k + 3:k + 5] + values[:, k + 6:k + 8]) / 2
    params[:, gaze] = np.clip(np.degrees(eyes), layout.lo[gaze], layout.hi[gaze])
    return params


def frame_rate(frames_in_second: np.ndarray) -> int:
    """The file's frame rate, not written in it: the first common rate above its frame numbers."""
    top = float(np.max(frames_in_second)) if len(frames_in_second) else 0.0
    return next((r for r in FRAME_RATES if r > top), int(math.floor(top)) + 1)
