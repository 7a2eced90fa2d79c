"""The tracking kept in the .blend: what was keyed onto an object, so that it re-bakes with
other gains, smoothing or frames after the file is reopened, on another machine, without the
video or the tracking file.

Kept as an ID property group on the keyed object (``obj["au2rig_tracking"]``): the layout's
version and channel names, fps, the per-row frame numbers, timestamps, face flags, confidences
and parameter vectors (flat doubles; NaN where a row has no face), where it came from and how it
was calibrated (the tracker's notes: neutral, actor profile, range of motion), and the keying
options last used. The landmarks are not kept (keying does not use them).
"""
from __future__ import annotations

import json

import numpy as np

from ._core import LAYOUT, Tracking

PROPERTY = "au2rig_tracking"


def store_tracking(obj, tracking, options: dict | None = None, action=None) -> None:
    """Keep ``tracking`` (the keying ``options``, and the name of the ``action`` it was keyed
    into) in ``obj``'s custom properties."""
    params = np.asarray(tracking.params, np.float64)
    obj[PROPERTY] = {
        "layout_version": LAYOUT.version, "channels": json.dumps(list(LAYOUT.names)),
        "fps": float(tracking.fps or 0.0), "rows": int(len(params)),
        "frames": [int(f) for f in tracking.frames], "timestamps": np.asarray(tracking.timestamps, float).tolist(),
        "success": [int(s) for s in tracking.success], "confidence": np.asarray(tracking.confidence, float).tolist(),
        "params": params.ravel().tolist(),
        "source": json.dumps({k: v for k, v in (tracking.meta or {}).items()
                              if k in ("source", "video", "format", "calibration")}, default=str),
        "options": json.dumps(options or {}, default=str),
        "action": action.name if action is not None else "",
    }


def update_stored(obj, options: dict, action=None) -> None:
    """Record new keying ``options`` (and the ``action`` keyed) beside the stored tracking."""
    data = obj[PROPERTY]
    data["options"] = json.dumps(options or {}, default=str)
    data["action"] = action.name if action is not None else ""


def stored_tracking(obj) -> Tracking | None:
    """The tracking kept in ``obj`` (None if there is none); ``ValueError`` naming the object when
    it was kept by a layout this add-on does not read."""
    data = obj.get(PROPERTY)
    if data is None:
        return None
    channels = json.loads(data["channels"])
    if data["layout_version"] != LAYOUT.version or channels != list(LAYOUT.names):
        raise ValueError(f"{obj.name}: its stored tracking is of parameter layout {data['layout_version']!r}; "
                         f"this add-on reads {LAYOUT.version!r}: import the tracking again")
    n = int(data["rows"])

    def copied(key, dtype):  # np.asarray would share the ID property's memory, freed when it is rewritten
        return np.array(data[key], dtype, copy=True)

    params = copied("params", np.float64).reshape(n, len(channels))
    meta = dict(json.loads(data["source"]), stored_in=obj.name)
    return Tracking(copied("frames", np.int64), copied("timestamps", np.float64), copied("success", bool),
                    copied("confidence", np.float64), params, np.full((n, 68, 2), np.nan), float(data["fps"]), meta)


def baked_action_name(obj) -> str:
    """The name of the Action the stored tracking was last keyed into ("" if none)."""
    data = obj.get(PROPERTY)
    return str(data.get("action", "")) if data is not None else ""


def stored_options(obj) -> dict:
    """The keying options last used with the stored tracking ({} if none)."""
    data = obj.get(PROPERTY)
    return json.loads(data["options"]) if data is not None else {}
