"""From a tracking result to keyframes: channel choice, frame mapping, clean-up of keys.

Pure numpy, no ``bpy``: the add-on's baker (``addon/bake.py``, ``addon/animate.py``) writes
what this module plans, so the planning is testable without Blender.

Frame mapping
    Tracking row ``i`` (video frame ``frames[i]``) lands on scene frame
    ``start_frame + (frames[i] - frames[0]) // frame_step``, ``frames[0]`` being the video
    frame of the file's **first row** (whether or not it has a face), so the animation keeps
    the video's timing. With ``frame_step`` N only rows whose offset ``frames[i] - frames[0]``
    is a multiple of N are keyed (one scene frame per N video frames, e.g. a 60 fps video into
    a 30 fps scene: step 2); the rows in between are skipped, after smoothing has used them.
    Rows without a face (NaN parameters) get no key. Video frames must increase from row to
    row.

Scene frame rate
    :func:`scene_fps` gives Blender's ``(fps, fps_base)`` for ``tracking.fps / frame_step``.

Clean-up of redundant keys
    :func:`redundant_keys` keeps the first and last key and every key that linear
    interpolation between the kept keys does not reproduce within ``tolerance``; so the
    cleaned curve, linearly interpolated, differs from the full one by at most ``tolerance``
    everywhere (both are piecewise linear, so the largest difference is at a key).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ..rig.layout import GROUPS, LAYOUT, ParameterLayout
from .filters import apply_gain, calibrate, gain_channels, smooth

CHANNEL_SETS = {
    "motion": ("pose", "au", "gaze"),
    "pose": ("pose",),
    "au": ("au",),
    "gaze": ("gaze",),
    "pose+au": ("pose", "au"),
    "au+gaze": ("au", "gaze"),
    "all": GROUPS,
}
"""Names of channel selections -> layout groups they key."""

GROUP_LABELS = {"pose": "Pose", "au": "AUs", "identity": "Identity", "brow_style": "Brow style", "gaze": "Gaze"}
"""Action group (channel group in Blender's editors) of each layout group's fcurves."""

CLEANUP_TOLERANCE = {"pose": 0.01, "au": 0.001, "identity": 0.001, "brow_style": 0.001, "gaze": 0.01}
"""Default clean-up tolerance per layout group, in the channel's unit (pose degrees, 0..1)."""


def select_channels(channels="motion", layout: ParameterLayout = LAYOUT) -> list[int]:
    """Layout indices of a selection: a name of :data:`CHANNEL_SETS` or channel names."""
    if isinstance(channels, str):
        if channels not in CHANNEL_SETS:
            raise ValueError(f"unknown channel selection {channels!r}; expected one of "
                             f"{', '.join(CHANNEL_SETS)} or a list of channel names")
        groups = CHANNEL_SETS[channels]
        return [i for i, c in enumerate(layout.channels) if c.group in groups]
    names = list(channels)
    unknown = [n for n in names if n not in layout.index]
    if unknown:
        raise ValueError(f"unknown channels {', '.join(map(repr, unknown))} "
                         f"(not in layout {layout.version})")
    if not names:
        raise ValueError("no channels selected")
    return [layout.index[n] for n in names]


def frame_map(frames, start_frame: int = 1, frame_step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, scene_frames)``: the tracking rows that get keys and their scene frames.

    See the module doc for the rule. ``frames`` (N,) video frame numbers, increasing.
    """
    f = np.asarray(frames)
    if f.ndim != 1:
        raise ValueError(f"frames must be (N,), got shape {f.shape}")
    if not (isinstance(frame_step, (int, np.integer)) and frame_step >= 1):
        raise ValueError(f"frame step must be an integer >= 1, got {frame_step!r}")
    if not isinstance(start_frame, (int, np.integer)):
        raise ValueError(f"start frame must be an integer, got {start_frame!r}")
    f = f.astype(np.int64)
    back = np.flatnonzero(np.diff(f) <= 0)
    if len(back):
        r = int(back[0]) + 1
        raise ValueError(f"video frames must increase: row {r} (frame {f[r]}) follows "
                         f"frame {f[r - 1]}")
    if not len(f):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    offset = f - f[0]
    rows = np.flatnonzero(offset % frame_step == 0)
    return rows, int(start_frame) + offset[rows] // frame_step


def scene_fps(fps: float, frame_step: int = 1) -> tuple[int, float]:
    """Blender's ``(render.fps, render.fps_base)`` for ``fps / frame_step`` frames per second
    (``fps / fps_base`` is the rate; 29.97 -> (30, 1.001))."""
    rate = float(fps) / frame_step
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"the tracking has no frame rate (fps {fps!r}); cannot set the "
                         f"scene's frame rate from it")
    whole = round(rate)
    if whole >= 1 and abs(rate - whole) < 1e-6 * rate:
        return int(whole), 1.0
    up = math.ceil(rate)
    return int(up), up / rate


_GAIN = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=\s*([^=,;]+?)\s*$")


def parse_gains(text: str, layout: ParameterLayout = LAYOUT) -> dict[str, float]:
    """``"AU12=1.5, AU4=0.8"`` -> ``{"AU12": 1.5, "AU4": 0.8}`` (commas or semicolons).

    Names are layout channels (``AU12_L``) or FACS codes (``AU12``, ``AU4`` = ``AU04``);
    unknown names, non-numbers and negative gains raise ``ValueError`` naming the entry.
    """
    gains: dict[str, float] = {}
    for part in re.split(r"[,;]", text or ""):
        if not part.strip():
            continue
        m = _GAIN.match(part)
        if not m:
            raise ValueError(f"gain {part.strip()!r}: expected NAME=VALUE, e.g. AU12=1.5")
        name, value = m.group(1), m.group(2)
        try:
            g = float(value)
        except ValueError:
            raise ValueError(f"gain {part.strip()!r}: {value!r} is not a number") from None
        if not (math.isfinite(g) and g >= 0):
            raise ValueError(f"gain {part.strip()!r}: must be a finite number >= 0")
        try:
            gain_channels(name, layout)
        except ValueError:
            raise ValueError(f"gain {part.strip()!r}: unknown channel {name!r} (a layout "
                             f"channel such as AU12_L, or a FACS code such as AU12)") from None
        gains[name] = g
    return gains


def parse_expression(text: str, layout: ParameterLayout = LAYOUT) -> np.ndarray:
    """``"AU6+AU12+AU25"`` or ``"AU12:0.6 + AU4_L"`` -> the neutral parameter vector with those AU
    channels set (``:value`` an intensity 0..1, default 1; a FACS code sets both sides). Parts are
    joined by ``+``, commas or spaces; an unknown name, a channel that is not an AU, or an
    intensity outside 0..1 raises ``ValueError`` naming the part."""
    params = layout.neutral()
    parts = [part for part in re.split(r"[+,\s]+", text or "") if part]
    if not parts:
        raise ValueError(f"expression {text!r}: name at least one AU, e.g. AU6+AU12+AU25")
    for part in parts:
        name, _, value = part.partition(":")
        try:
            idx = gain_channels(name, layout)
        except ValueError:
            raise ValueError(f"expression {text!r}: unknown AU {name!r} (a FACS code such as AU12, or a "
                             f"channel such as AU12_L)") from None
        if any(layout.channels[i].group != "au" for i in idx):
            raise ValueError(f"expression {text!r}: {name!r} is not an AU channel")
        try:
            v = float(value) if value else 1.0
        except ValueError:
            raise ValueError(f"expression {text!r}: intensity {value!r} of {name!r} is not a number") from None
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"expression {text!r}: intensity of {name!r} must be within 0..1, got {v}")
        params[idx] = v
    return params


@dataclass
class KeyPlan:
    """What to key: ``frames`` (M,) scene frames, ``values`` (M, C) with NaN = no key,
    ``channels`` (C,) layout indices, ``names`` and ``groups`` (action group per channel)."""

    frames: np.ndarray
    values: np.ndarray
    channels: list[int]
    names: list[str]
    groups: list[str]
    tolerances: list[float]


def plan_keys(tracking, channels="motion", *, start_frame: int = 1, frame_step: int = 1,
              smoothing: float | None = None, gains: dict | None = None, neutral_frame: int | None = None,
              layout: ParameterLayout = LAYOUT) -> KeyPlan:
    """Smooth (strength 0..1, over every row), calibrate, apply gains, select channels, map frames.

    ``neutral_frame``: a scene frame whose face becomes the neutral: its AU values are taken
    as the actor's rest (``filters.calibrate``), so every AU is 0 there and the rest is
    rescaled from it."""
    params = np.asarray(tracking.params, dtype=np.float64)
    if params.ndim != 2 or params.shape[1] != len(layout):
        raise ValueError(f"the tracking has {params.shape[-1] if params.ndim else 0} parameters "
                         f"per frame; layout {layout.version} has {len(layout)}")
    idx = select_channels(channels, layout)
    rows, frames = frame_map(tracking.frames, start_frame, frame_step)
    valid = np.asarray(tracking.success, bool) & np.isfinite(params).all(1)
    if smoothing:
        params = smooth(params, tracking.timestamps, float(smoothing), valid=valid, layout=layout)
    if neutral_frame is not None:
        hit = rows[frames == int(neutral_frame)]
        if not len(hit):
            span = f"keys on frames {int(frames[0])}..{int(frames[-1])}" if len(frames) else "no keys"
            raise ValueError(f"neutral frame {neutral_frame}: the tracking keys no face there ({span})")
        if not valid[hit[0]]:
            raise ValueError(f"neutral frame {neutral_frame}: the tracking has no face there; choose a frame "
                             f"with a face")
        params = np.where(valid[:, None], calibrate(params, params[hit[0]], layout), params)
    if gains:
        params = apply_gain(params, gains, layout)
    params = np.where(valid[:, None], params, np.nan)
    chans = [layout.channels[i] for i in idx]
    return KeyPlan(frames=frames, values=params[rows][:, idx], channels=idx,
                   names=[c.name for c in chans], groups=[GROUP_LABELS[c.group] for c in chans],
                   tolerances=[CLEANUP_TOLERANCE[c.group] for c in chans])


def redundant_keys(x, y, tolerance: float) -> np.ndarray:
    """Keep mask (N,) bool over keys ``(x, y)`` (x increasing): see the module doc.

    First and last keys are always kept. From them, each pass adds, in every span between
    kept keys whose line misses a key by more than ``tolerance``, the key it misses most
    (Ramer-Douglas-Peucker, all spans at once), until no key is missed. Keys on straight or
    flat runs go; ``tolerance`` 0 drops only keys on the line through the kept ones (up to
    float rounding).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"keys must be two (N,) arrays, got {x.shape} and {y.shape}")
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"clean-up tolerance must be finite and >= 0, got {tolerance}")
    n = len(x)
    keep = np.zeros(n, bool)
    keep[[0, -1]] = True
    if n <= 2:
        return np.ones(n, bool)
    limit = tolerance + 1e-12 * max(1.0, float(np.abs(y).max()))
    while True:
        idx = np.flatnonzero(keep)
        err = np.abs(np.interp(x, x[idx], y[idx]) - y)
        err[keep] = 0.0
        span_max = np.maximum.reduceat(err, idx[:-1])  # span j: keys idx[j] .. idx[j+1] - 1
        if not (span_max > limit).any():
            return keep
        span = np.cumsum(keep)[:n] - 1  # the span each key lies in
        span[-1] = len(idx) - 2
        worst = (err > limit) & (err == span_max[span])
        first = np.unique(span[worst], return_index=True)[1]
        keep[np.flatnonzero(worst)[first]] = True
