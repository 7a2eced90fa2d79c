"""Tracking result files: an OpenFace-compatible CSV and a JSON / NPZ twin.

:class:`Tracking` holds one video's result: per row (frame) the frame index, timestamp,
success flag, confidence, the full parameter vector (``core.rig.layout``) and 68 iBUG
landmarks in pixels (x right, y down, origin at the image's top-left corner).
Rows without a face have ``success`` False, ``confidence`` 0 and NaN params/landmarks.

CSV columns, in order
    ``frame, timestamp, confidence, success`` (success 1/0);
    ``gaze_angle_x, gaze_angle_y``: the eyes' direction in **radians**, mean of both eyes, in
    OpenFace's convention (x + looking toward the image's right, the subject's left; y + looking
    down): ``gaze_angle_x = radians(gaze_yaw)``, ``gaze_angle_y = -radians(gaze_pitch)``;
    ``pose_Rx, pose_Ry, pose_Rz``: head rotation in **radians** in OpenFace's convention
    (camera frame x right, y down, z away from the camera; Rx pitch, Ry yaw, Rz roll; by the
    right-hand rule). From our degrees (yaw + toward the subject's left, pitch + chin up,
    roll + toward the left shoulder) that is::

        pose_Rx = -radians(pitch)   (+Rx turns the face down)
        pose_Ry = -radians(yaw)     (+Ry turns the face toward the subject's right)
        pose_Rz = +radians(roll)    (+Rz tilts the top of the head toward image right)

    (derived from the axes above for a face looking down -z at zero rotation; it agrees
    with users' reports that looking up gives negative Rx and turning to one's right
    positive Ry, but has not been checked against an OpenFace run here);
    ``AU01_r, AU02_r, ...``: FACS 0..5 intensity of every code of ``LAYOUT.eval_codes()``,
    sorted (left/right as their mean, AU43 also as AU45), OpenFace's names;
    ``x_0 .. x_67, y_0 .. y_67``: landmarks in pixels, OpenFace's names;
    then every layout channel by its layout name (``pose_yaw`` in degrees, ``AU01_L``,
    ``id_*``, ``brow_*``), so the CSV alone carries the full vector.

Rows without a face
    ``frame`` and ``timestamp`` are written, ``confidence`` 0, ``success`` 0 and every other
    cell is **empty** (OpenFace writes zeros; empty cells cannot be mistaken for a neutral
    face, and spreadsheets and pandas read them as missing). Readers treat every row with
    ``success`` 0 as no face, whatever its cells hold, so OpenFace's zero rows read back as
    NaN too. An empty cell in a row with a face is an error for parameters; an empty
    landmark cell reads as NaN.

Numbers are written with Python's shortest round-trip repr, so CSV round trips are exact.
The CSV carries no metadata; on reading, ``fps`` is estimated from the timestamps and
``meta`` says where the data came from. The JSON and NPZ twins carry ``fps``, ``meta`` and
the layout (version and channel names), checked against ``LAYOUT`` on reading. Files of an
earlier layout this one extends (``layout.EARLIER_LAYOUTS``: 1.0, before the gaze) read with the
added channels at neutral.

A Live Link Face CSV (its header starts ``Timecode,BlendShapeCount``) reads too, through the
built-in ARKit map in the other direction (:mod:`core.animation.livelink`; no landmarks, every row
a face); :func:`write_livelink` writes one.

OpenFace's own CSV (its columns only, no layout channels) reads too: each layout AU
channel takes ``AU{code}_r / 5`` of its FACS code, else of the first other code it reports
as (AU43_L/R take AU45_r), clipped to 0..1, and both sides of a split channel take the
same value; AUs OpenFace does not estimate (18, 22, 24, 30, 43 without 45) are 0; the
pose and gaze are the inverse of the mappings above (gaze neutral without OpenFace's gaze
columns); identity and brow style are neutral. Column
names are stripped of spaces (OpenFace writes ``", "`` separators); extra columns are
ignored. Frames keep OpenFace's numbering (from 1).

Every write is atomic: the file is written to a temporary file in the same folder and
moved over the target with ``os.replace``; on any error the temporary file is removed and
an existing target is left as it was.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..rig.layout import EARLIER_LAYOUTS, FACS_SCALE, LAYOUT, ParameterLayout
from ..util.atomic import atomic_write
from ..util.untrusted import reading
from . import livelink

FORMAT = "au2rig-tracking"
FORMAT_VERSION = 1
N_LANDMARKS = 68
BASE_COLUMNS = ("frame", "timestamp", "confidence", "success")
POSE_COLUMNS = ("pose_Rx", "pose_Ry", "pose_Rz")
GAZE_COLUMNS = ("gaze_angle_x", "gaze_angle_y")
LANDMARK_COLUMNS = (tuple(f"x_{i}" for i in range(N_LANDMARKS))
                    + tuple(f"y_{i}" for i in range(N_LANDMARKS)))


@dataclass
class Tracking:
    """One video's tracking result; N rows.

    frames (N,) int; timestamps (N,) seconds; success (N,) bool; confidence (N,) 0..1;
    params (N, len(layout)) float, NaN rows where success is False; landmarks (N, 68, 2)
    pixels, NaN where there is no face; fps; meta: whatever the writer passes (video path,
    size, backend, model, calibration, smoothing, gains, rig hash, au2rig version ...).
    """

    frames: np.ndarray
    timestamps: np.ndarray
    success: np.ndarray
    confidence: np.ndarray
    params: np.ndarray
    landmarks: np.ndarray
    fps: float
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)


def check_tracking(t: Tracking, layout: ParameterLayout = LAYOUT, where: str = "tracking") -> Tracking:
    """Return a normalised copy (dtypes, NaN rows where success is False); refuse bad data.

    Shapes must agree; frames, timestamps and confidence must be finite, and params finite
    in every row with a face (``ValueError`` naming the frame and channel).
    """
    frames = np.asarray(t.frames)
    n = len(frames)
    if frames.ndim != 1:
        raise ValueError(f"{where}: frames must be (N,), got shape {frames.shape}")
    if not np.issubdtype(frames.dtype, np.integer):
        as_float = np.asarray(frames, dtype=np.float64)
        if not (np.isfinite(as_float).all() and (as_float == np.round(as_float)).all()):
            raise ValueError(f"{where}: frames must be integers")
    frames = frames.astype(np.int64)
    shapes = {"timestamps": (n,), "success": (n,), "confidence": (n,),
              "params": (n, len(layout)), "landmarks": (n, N_LANDMARKS, 2)}
    arrays = {}
    for name, shape in shapes.items():
        a = np.asarray(getattr(t, name))
        if a.shape != shape:
            raise ValueError(f"{where}: {name} must have shape {shape} for {n} frames "
                             f"(layout {layout.version}), got {a.shape}")
        arrays[name] = a.astype(bool) if name == "success" else a.astype(np.float64)
    ok = arrays["success"]
    for name in ("timestamps", "confidence"):
        bad = np.flatnonzero(~np.isfinite(arrays[name]))
        if len(bad):
            raise ValueError(f"{where}: frame {frames[bad[0]]}: {name} is not finite")
    params, lms = arrays["params"].copy(), arrays["landmarks"].copy()
    bad = np.argwhere(~np.isfinite(params) & ok[:, None])
    if len(bad):
        r, c = bad[0]
        raise ValueError(f"{where}: frame {frames[r]}: {layout.names[c]} is not finite "
                         f"in a row with a face")
    params[~ok] = np.nan
    lms[~ok] = np.nan
    conf = np.where(ok, arrays["confidence"], 0.0)
    try:
        fps = float(t.fps)
    except (TypeError, ValueError):
        fps = math.nan
    if not (math.isfinite(fps) and fps >= 0):
        raise ValueError(f"{where}: fps must be finite and >= 0, got {t.fps}")
    if not isinstance(t.meta, dict):
        raise ValueError(f"{where}: meta must be a dict, got {type(t.meta).__name__}")
    return Tracking(frames, arrays["timestamps"], ok, conf, params, lms, fps, dict(t.meta))


# --- pose conversion ----------------------------------------------------------------------
def pose_to_openface(pose_deg) -> np.ndarray:
    """(..., 3) yaw, pitch, roll in our degrees -> (..., 3) OpenFace Rx, Ry, Rz in radians."""
    p = np.radians(np.asarray(pose_deg, dtype=np.float64))
    return np.stack([-p[..., 1], -p[..., 0], p[..., 2]], axis=-1)


def pose_from_openface(rxyz) -> np.ndarray:
    """(..., 3) OpenFace Rx, Ry, Rz in radians -> (..., 3) our yaw, pitch, roll in degrees."""
    r = np.degrees(np.asarray(rxyz, dtype=np.float64))
    return np.stack([-r[..., 1], -r[..., 0], r[..., 2]], axis=-1)


def gaze_to_openface(gaze_deg) -> np.ndarray:
    """(..., 2) gaze yaw, pitch in our degrees -> (..., 2) OpenFace gaze_angle_x, _y in radians."""
    g = np.radians(np.asarray(gaze_deg, dtype=np.float64))
    return np.stack([g[..., 0], -g[..., 1]], axis=-1)


def gaze_from_openface(xy) -> np.ndarray:
    """(..., 2) OpenFace gaze_angle_x, _y in radians -> (..., 2) our gaze yaw, pitch in degrees."""
    g = np.degrees(np.asarray(xy, dtype=np.float64))
    return np.stack([g[..., 0], -g[..., 1]], axis=-1)


def au_columns(layout: ParameterLayout = LAYOUT) -> tuple[str, ...]:
    return tuple(f"AU{c:02d}_r" for c in layout.eval_codes())


def csv_columns(layout: ParameterLayout = LAYOUT) -> tuple[str, ...]:
    """Every column :func:`write_csv` writes, in order."""
    return BASE_COLUMNS + GAZE_COLUMNS + POSE_COLUMNS + au_columns(layout) + LANDMARK_COLUMNS + layout.names


# --- atomic writing -----------------------------------------------------------------------
def _atomic_write(path, write: Callable, binary: bool) -> Path:
    buf = io.BytesIO() if binary else io.StringIO(newline="")
    write(buf)
    data = buf.getvalue()
    return atomic_write(path, data if binary else data.encode("utf-8"), durable=True, suffix=".tmp")


def _fmt(v: float) -> str:
    return "" if not math.isfinite(v) else repr(float(v))


def _json_default(o):
    if isinstance(o, (np.generic, np.ndarray)):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"meta holds a {type(o).__name__}, which JSON cannot store")


def _dump_meta(meta: dict, where: str) -> str:
    try:
        return json.dumps(meta, default=_json_default, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: meta is not JSON-serialisable: {e}") from e


# --- CSV ------------------------------------------------------------------------------------
def write_csv(tracking: Tracking, path, layout: ParameterLayout = LAYOUT) -> Path:
    """Write the OpenFace-compatible CSV (columns: :func:`csv_columns`; see the module doc)."""
    t = check_tracking(tracking, layout, where=str(path))
    au = layout.group_slice("au")
    facs = t.params[:, au] @ layout.eval_matrix().T * FACS_SCALE
    rx = pose_to_openface(t.params[:, layout.group_slice("pose")])
    gaze = gaze_to_openface(t.params[:, layout.group_slice("gaze")])
    lms = np.concatenate([t.landmarks[:, :, 0], t.landmarks[:, :, 1]], axis=1)

    def write(f):
        w = csv.writer(f, lineterminator="\n")
        w.writerow(csv_columns(layout))
        for i in range(len(t)):
            ok = bool(t.success[i])
            head = [str(int(t.frames[i])), _fmt(t.timestamps[i]), _fmt(t.confidence[i]),
                    "1" if ok else "0"]
            values = np.concatenate([gaze[i], rx[i], facs[i], lms[i], t.params[i]])
            w.writerow(head + [_fmt(v) if ok else "" for v in values])

    return _atomic_write(path, write, binary=False)


def _cell(text: str, path, line: int, frame, column: str, empty_ok: bool) -> float:
    s = text.strip()
    if s == "" or s.lower() == "nan":
        if empty_ok:
            return math.nan
        raise ValueError(f"{path}: row {line} (frame {frame}), column {column!r}: empty cell "
                         f"in a row with a face")
    try:
        v = float(s)
    except ValueError:
        raise ValueError(f"{path}: row {line} (frame {frame}), column {column!r}: "
                         f"{s!r} is not a number") from None
    if not math.isfinite(v):
        raise ValueError(f"{path}: row {line} (frame {frame}), column {column!r}: "
                         f"{s!r} is not finite")
    return v


def write_livelink(tracking: Tracking, path, rmap=None, layout: ParameterLayout = LAYOUT) -> Path:
    """Write a Live Link Face CSV (:mod:`core.animation.livelink`) through ``rmap`` (default: the
    built-in ARKit 52 map); frames without a face are left out."""
    from .retarget import load_builtin

    t = check_tracking(tracking, layout, where=str(path))
    rmap = rmap or load_builtin("arkit52")
    rows = np.flatnonzero(t.success)
    values = livelink.to_livelink(t.params[rows], rmap, layout)
    fps = t.fps if t.fps and t.fps > 0 else 30.0

    def write(f):
        w = csv.writer(f, lineterminator="\n")
        w.writerow(livelink.HEADER)
        for r, v in zip(rows, values):
            w.writerow([livelink.timecode(float(t.timestamps[r]), fps), str(len(v))] + [_fmt(x) for x in v])

    return _atomic_write(path, write, binary=False)


def _read_livelink(path: Path, rows: list[list[str]], layout: ParameterLayout, rmap=None) -> Tracking:
    from .retarget import load_builtin

    header = [h.strip() for h in rows[0]]
    col = {h: i for i, h in enumerate(header)}
    for name in livelink.HEADER:
        if name not in col:
            raise ValueError(f"{path}: row 1 (header): missing column {name!r} (Live Link Face CSV)")
    n = len(rows) - 1
    seconds, frames_in = np.zeros(n), np.zeros(n)
    values = np.zeros((n, len(livelink.SHAPES) + len(livelink.ANGLES)))
    for r, row in enumerate(rows[1:]):
        line = r + 2
        if len(row) != len(header):
            raise ValueError(f"{path}: row {line}: {len(row)} cells, header has {len(header)}")
        try:
            seconds[r], frames_in[r] = livelink.parse_timecode(row[col["Timecode"]])
        except ValueError as e:
            raise ValueError(f"{path}: row {line}, column 'Timecode': {e}") from None
        for k, name in enumerate(livelink.SHAPES + livelink.ANGLES):
            values[r, k] = _cell(row[col[name]], path, line, row[col["Timecode"]].strip(), name, empty_ok=False)
    fps = float(livelink.frame_rate(frames_in))
    ts = seconds + frames_in / fps
    ts = ts - (ts[0] if n else 0.0)
    params = livelink.from_livelink(values, rmap or load_builtin("arkit52"), layout)
    frames = np.rint(ts * fps).astype(np.int64)
    meta = {"source": str(path), "format": "livelink-face-csv", "fps_from": "timecode frame numbers"}
    return check_tracking(Tracking(frames, ts, np.ones(n, bool), np.ones(n), params,
                                   np.full((n, N_LANDMARKS, 2), np.nan), fps, meta), layout, where=str(path))


def _read_csv(path: Path, layout: ParameterLayout) -> Tracking:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path}: empty file, no header row")
    if [h.strip() for h in rows[0][:2]] == list(livelink.HEADER[:2]):
        return _read_livelink(path, rows, layout)
    header = [h.strip() for h in rows[0]]
    col = {h: i for i, h in enumerate(header)}
    ours = any(name in col for name in layout.names)
    openface = not ours
    # an earlier layout's CSV has the first channels only; the rest read neutral
    stored = len(layout)
    if ours and not all(name in col for name in layout.names):
        stored = max((n for n in EARLIER_LAYOUTS.values() if all(name in col for name in layout.names[:n])),
                     default=len(layout))
    required = BASE_COLUMNS + POSE_COLUMNS + (() if openface else LANDMARK_COLUMNS + layout.names[:stored])
    for name in required:
        if name not in col:
            kind = "OpenFace CSV" if openface else f"au2rig CSV (layout {layout.version})"
            raise ValueError(f"{path}: row 1 (header): missing column {name!r} ({kind})")
    have_lms = all(name in col for name in LANDMARK_COLUMNS)
    codes = {c: f"AU{c:02d}_r" for c in range(100) if f"AU{c:02d}_r" in col}

    n = len(rows) - 1
    frames = np.zeros(n, np.int64)
    ts, conf = np.zeros(n), np.zeros(n)
    success = np.zeros(n, bool)
    params = np.full((n, len(layout)), np.nan)
    lms = np.full((n, N_LANDMARKS, 2), np.nan)
    pose, gaze = layout.group_slice("pose"), layout.group_slice("gaze")
    for r, row in enumerate(rows[1:]):
        line = r + 2
        if len(row) != len(header):
            raise ValueError(f"{path}: row {line}: {len(row)} cells, header has {len(header)}")
        frame_text = row[col["frame"]].strip()
        fr = _cell(frame_text, path, line, frame_text or "?", "frame", empty_ok=False)
        if fr != round(fr):
            raise ValueError(f"{path}: row {line}, column 'frame': {frame_text!r} is not an integer")
        frames[r] = int(fr)

        def num(name: str, empty_ok: bool = False) -> float:
            return _cell(row[col[name]], path, line, frames[r], name, empty_ok)

        ts[r] = num("timestamp")
        flag = num("success")
        if flag not in (0.0, 1.0):
            raise ValueError(f"{path}: row {line} (frame {frames[r]}), column 'success': "
                             f"{row[col['success']].strip()!r} is not 0 or 1")
        success[r] = flag == 1.0
        if not success[r]:
            continue
        conf[r] = num("confidence")
        if have_lms:
            lms[r, :, 0] = [num(f"x_{i}", True) for i in range(N_LANDMARKS)]
            lms[r, :, 1] = [num(f"y_{i}", True) for i in range(N_LANDMARKS)]
        if not openface:
            params[r] = layout.neutral()
            params[r, :stored] = [num(name) for name in layout.names[:stored]]
            continue
        params[r] = layout.neutral()
        params[r, pose] = pose_from_openface([num(c) for c in POSE_COLUMNS])
        if all(c in col for c in GAZE_COLUMNS):
            params[r, gaze] = gaze_from_openface([num(c) for c in GAZE_COLUMNS])
        for k, ch in enumerate(layout.au_channels):
            j = layout.group_slice("au").start + k
            for code in (ch.facs,) + tuple(c for c in ch.eval_as if c != ch.facs):
                if code in codes:
                    params[r, j] = min(max(num(codes[code]) / FACS_SCALE, 0.0), 1.0)
                    break
    fps = _estimate_fps(ts)
    meta = {"source": str(path), "format": "openface-csv" if openface else "au2rig-csv"}
    return check_tracking(Tracking(frames, ts, success, conf, params, lms, fps, meta),
                          layout, where=str(path))


def _estimate_fps(ts: np.ndarray) -> float:
    """1 / median frame step of all rows (rows without a face keep their timestamps)."""
    d = np.diff(ts)
    d = d[d > 0]
    return float(1.0 / np.median(d)) if len(d) else 0.0


# --- JSON -----------------------------------------------------------------------------------
def _nulls(a: np.ndarray):
    """Nested lists with None for NaN."""
    return [_nulls(v) for v in a] if a.ndim > 1 else [None if not math.isfinite(v) else float(v)
                                                      for v in a]


def write_json(tracking: Tracking, path, layout: ParameterLayout = LAYOUT) -> Path:
    """Write the JSON twin: layout, fps, meta and one object per frame (null for NaN)."""
    t = check_tracking(tracking, layout, where=str(path))
    meta = _dump_meta(t.meta, str(path))  # fail before touching the disk
    doc = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "layout": {"version": layout.version, "channels": list(layout.names)},
        "fps": t.fps, "meta": json.loads(meta),
        "frames": [{"frame": int(t.frames[i]), "timestamp": float(t.timestamps[i]),
                    "success": bool(t.success[i]), "confidence": float(t.confidence[i]),
                    "params": _nulls(t.params[i]) if t.success[i] else None,
                    "landmarks": _nulls(t.landmarks[i]) if t.success[i] else None}
                   for i in range(len(t))],
    }
    text = json.dumps(doc, allow_nan=False)
    return _atomic_write(path, lambda f: f.write(text), binary=False)


def _check_layout(path, version, names, layout: ParameterLayout) -> int:
    """How many of the layout's channels the file holds: all, or an earlier layout's first ones."""
    expected = len(layout) if version == layout.version else EARLIER_LAYOUTS.get(version)
    if expected is None:
        raise ValueError(f"{path}: layout version {version!r}, this au2rig reads "
                         f"{layout.version!r} (and {', '.join(EARLIER_LAYOUTS)})")
    names = list(names)
    for i, (got, want) in enumerate(zip(names, layout.names)):
        if got != want:
            raise ValueError(f"{path}: layout channel {i} is {got!r}, expected {want!r}")
    if len(names) != expected:
        raise ValueError(f"{path}: layout has {len(names)} channels, expected {expected} (layout {version})")
    return expected


def _widen(params: np.ndarray, layout: ParameterLayout, stored: int) -> np.ndarray:
    """(N, stored) parameters of an earlier layout -> (N, P), the added channels at neutral (NaN
    rows stay NaN); anything else as it is (the shape check names what is wrong)."""
    params = np.asarray(params)
    if stored == len(layout) or params.ndim != 2 or params.shape[1] != stored:
        return params
    params = params.astype(np.float64)
    out = np.tile(layout.neutral(), (len(params), 1))
    out[:, :params.shape[1]] = params
    out[~np.isfinite(params).all(1)] = np.nan
    return out


def _json_values(path, value, shape: tuple[int, ...], frame, field_name: str) -> np.ndarray:
    if value is None:
        return np.full(shape, np.nan)
    try:
        a = np.array([[math.nan if v is None else v for v in row] for row in value]
                     if len(shape) == 2 else [math.nan if v is None else v for v in value],
                     dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: frame {frame}, field {field_name!r}: not a list of "
                         f"numbers") from None
    if a.shape != shape:
        raise ValueError(f"{path}: frame {frame}, field {field_name!r}: shape {a.shape}, "
                         f"expected {shape}")
    return a


def _read_json(path: Path, layout: ParameterLayout) -> Tracking:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a JSON object at the top level")
    for key in ("format", "layout", "fps", "meta", "frames"):
        if key not in doc:
            raise ValueError(f"{path}: missing field {key!r}")
    if doc["format"] != FORMAT:
        raise ValueError(f"{path}: field 'format' is {doc['format']!r}, expected {FORMAT!r}")
    lay = doc["layout"]
    if not isinstance(lay, dict) or not isinstance(doc["frames"], list):
        raise ValueError(f"{path}: field 'layout' must be an object and 'frames' a list")
    stored = _check_layout(path, lay.get("version"), lay.get("channels", []), layout)
    n = len(doc["frames"])
    frames, ts, conf = np.zeros(n, np.int64), np.zeros(n), np.zeros(n)
    success = np.zeros(n, bool)
    params = np.full((n, len(layout)), np.nan)
    lms = np.full((n, N_LANDMARKS, 2), np.nan)
    for i, fr in enumerate(doc["frames"]):
        if not isinstance(fr, dict):
            raise ValueError(f"{path}: frames[{i}] is not an object")
        for key in ("frame", "timestamp", "success", "confidence", "params", "landmarks"):
            if key not in fr:
                raise ValueError(f"{path}: frames[{i}] (frame {fr.get('frame', '?')}): "
                                 f"missing field {key!r}")
        if not isinstance(fr["frame"], int) or isinstance(fr["frame"], bool):
            raise ValueError(f"{path}: frames[{i}], field 'frame': {fr['frame']!r} is not "
                             f"an integer")
        frames[i] = fr["frame"]
        for key, arr in (("timestamp", ts), ("confidence", conf)):
            v = fr[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{path}: frame {frames[i]}, field {key!r}: {v!r} is not "
                                 f"a number")
            arr[i] = v
        if not isinstance(fr["success"], bool):
            raise ValueError(f"{path}: frame {frames[i]}, field 'success': "
                             f"{fr['success']!r} is not true/false")
        success[i] = fr["success"]
        if success[i]:
            params[i] = _widen(_json_values(path, fr["params"], (stored,), frames[i], "params")[None], layout,
                               stored)[0]
            bad = np.flatnonzero(~np.isfinite(params[i]))
            if len(bad):
                raise ValueError(f"{path}: frame {frames[i]}, field 'params', channel "
                                 f"{layout.names[bad[0]]!r}: missing in a row with a face")
            lms[i] = _json_values(path, fr["landmarks"], (N_LANDMARKS, 2), frames[i],
                                  "landmarks")
    if not isinstance(doc["meta"], dict):
        raise ValueError(f"{path}: field 'meta' is not an object")
    return check_tracking(Tracking(frames, ts, success, conf, params, lms, doc["fps"],
                                   doc["meta"]), layout, where=str(path))


# --- NPZ ------------------------------------------------------------------------------------
NPZ_ARRAYS = ("frames", "timestamps", "success", "confidence", "params", "landmarks")


def write_npz(tracking: Tracking, path, layout: ParameterLayout = LAYOUT) -> Path:
    """Write the NPZ twin: the arrays, fps, and JSON strings for meta and layout names."""
    t = check_tracking(tracking, layout, where=str(path))
    meta = _dump_meta(t.meta, str(path))
    arrays = {name: getattr(t, name) for name in NPZ_ARRAYS}
    arrays.update(fps=np.array(t.fps), meta=np.array(meta), format=np.array(FORMAT),
                  format_version=np.array(FORMAT_VERSION),
                  layout_version=np.array(layout.version),
                  layout_channels=np.array(json.dumps(list(layout.names))))
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return _atomic_write(path, lambda f: f.write(buf.getvalue()), binary=True)


def _read_npz(path: Path, layout: ParameterLayout) -> Tracking:
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable NPZ file ({e})") from None
    with z:
        for key in NPZ_ARRAYS + ("fps", "meta", "format", "layout_version", "layout_channels"):
            if key not in z.files:
                raise ValueError(f"{path}: missing array {key!r}")
        if str(z["format"]) != FORMAT:
            raise ValueError(f"{path}: array 'format' is {str(z['format'])!r}, "
                             f"expected {FORMAT!r}")
        stored = _check_layout(path, str(z["layout_version"]), json.loads(str(z["layout_channels"])), layout)
        arrays = {name: z[name] for name in NPZ_ARRAYS}
        arrays["params"] = _widen(arrays["params"], layout, stored)
        fps, meta = float(z["fps"]), json.loads(str(z["meta"]))
    for name in ("timestamps", "confidence", "params", "landmarks"):
        if not np.issubdtype(arrays[name].dtype, np.number):
            raise ValueError(f"{path}: array {name!r} is not numeric ({arrays[name].dtype})")
    return check_tracking(Tracking(meta=meta, fps=fps, **arrays), layout, where=str(path))


# --- any ------------------------------------------------------------------------------------
READERS = {".csv": _read_csv, ".json": _read_json, ".npz": _read_npz}


class TrackingFileError(ValueError):
    """A tracking file cannot be read; the message names the file (and row, column or field)."""


def read_tracking(path, layout: ParameterLayout = LAYOUT) -> Tracking:
    """Read a tracking CSV (ours or OpenFace's), JSON or NPZ, chosen by extension.

    Refuses, with :class:`TrackingFileError` naming the file and the row (frame) and column or
    field at fault: a missing column, a wrong number of parameters, a layout version or channel
    names other than ``layout``'s, a non-numeric cell, and any damage to the file.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in READERS:
        raise TrackingFileError(f"{path}: unknown tracking file type {ext!r} "
                                f"(expected one of {', '.join(READERS)})")
    with reading(path, TrackingFileError, "tracking file"):
        try:
            return READERS[ext](path, layout)
        except TrackingFileError:
            raise
        except ValueError as e:  # the readers' own messages name the file and the field
            text = str(e) if path.name in str(e) else f"{path}: not a readable tracking file ({e})"
            raise TrackingFileError(text) from None
