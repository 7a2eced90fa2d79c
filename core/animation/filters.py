"""Clean-up of tracked parameters: smoothing, per-actor neutral calibration, per-channel gain.

All pure numpy, on (N, C) parameter arrays in the layout's order; rows without a face are
NaN rows (see ``core.animation.tracking_io``) and stay untouched.

Smoothing
    :class:`OneEuroFilter` is the 1€ filter (Casiez, Roussel & Vogel, CHI 2012): an
    exponential low-pass whose cutoff rises with the speed of the signal, so slow motion is
    smoothed hard (no jitter) and fast motion passes with little lag. :func:`smooth` maps one
    ``strength`` in 0..1 onto per-group settings (:data:`GROUP_SETTINGS`).

Missing frames
    A frame is missing for a channel when it is flagged invalid or its value is NaN. The
    filter then outputs NaN for that channel and holds its state. At the next valid sample it
    continues from the held state when the gap since the last valid sample is at most
    ``max_gap`` seconds (a dropped detection or two), and otherwise restarts cleanly: the
    output equals the input and the speed estimate is reset, as on the very first sample.
    So a face that comes back after a long gap never blends with where it was before.

Calibration
    :func:`neutral_baseline` finds an actor's resting AU values, :func:`calibrate` subtracts
    them and rescales baseline..1 onto 0..1 (see their docs for the rule).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ..rig.layout import LAYOUT, ParameterLayout


def _alpha(cutoff: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """Smoothing factor of an exponential low-pass with ``cutoff`` Hz over ``dt`` seconds."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """The 1€ filter over C channels at once.

    ``min_cutoff`` (Hz), ``beta`` (1 / value unit) and ``d_cutoff`` (Hz) are scalars or (C,)
    arrays. Per sample: speed ``dx = (x - x_prev) / dt`` is low-passed with ``d_cutoff``;
    the cutoff is ``min_cutoff + beta * |dx_hat|``; the value is low-passed with that cutoff.
    Lower ``min_cutoff`` = less jitter at rest; higher ``beta`` = less lag in fast motion.
    Missing samples and gaps: see the module doc (``max_gap`` in seconds).
    """

    def __init__(self, channels: int, min_cutoff=1.0, beta=0.0, d_cutoff=1.0,
                 max_gap: float = 0.25):
        self.channels = int(channels)
        shape = (self.channels,)
        self.min_cutoff = np.broadcast_to(np.asarray(min_cutoff, float), shape).copy()
        self.beta = np.broadcast_to(np.asarray(beta, float), shape).copy()
        self.d_cutoff = np.broadcast_to(np.asarray(d_cutoff, float), shape).copy()
        for name, v in (("min_cutoff", self.min_cutoff), ("d_cutoff", self.d_cutoff)):
            if not (np.isfinite(v).all() and (v > 0).all()):
                raise ValueError(f"OneEuroFilter: {name} must be finite and > 0, got {v}")
        if not (np.isfinite(self.beta).all() and (self.beta >= 0).all()):
            raise ValueError(f"OneEuroFilter: beta must be finite and >= 0, got {self.beta}")
        if not max_gap > 0:
            raise ValueError(f"OneEuroFilter: max_gap must be > 0 seconds, got {max_gap}")
        self.max_gap = float(max_gap)
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next valid sample starts the filter afresh."""
        self.x_prev = np.full(self.channels, np.nan)
        self.dx_prev = np.zeros(self.channels)
        self.t_prev = np.full(self.channels, np.nan)

    def __call__(self, x, t: float, valid: bool = True) -> np.ndarray:
        """Filter one sample ``x`` (C,) taken at ``t`` seconds; NaN where missing."""
        x = np.asarray(x, dtype=np.float64).reshape(self.channels)
        t = float(t)
        present = np.isfinite(x) & bool(valid)
        out = np.full(self.channels, np.nan)
        if not present.any():
            return out
        started = np.isfinite(self.t_prev)
        dt = t - self.t_prev
        if (present & started & ~(dt > 0)).any():
            raise ValueError(f"OneEuroFilter: time {t:g} s does not increase "
                             f"(last sample at {np.nanmax(self.t_prev):g} s)")
        go = present & started & (dt <= self.max_gap)
        fresh = present & ~go

        out[fresh] = x[fresh]
        self.x_prev[fresh] = x[fresh]
        self.dx_prev[fresh] = 0.0
        if go.any():
            d = dt[go]
            dx = (x[go] - self.x_prev[go]) / d
            a_d = _alpha(self.d_cutoff[go], d)
            dx_hat = a_d * dx + (1.0 - a_d) * self.dx_prev[go]
            cutoff = self.min_cutoff[go] + self.beta[go] * np.abs(dx_hat)
            a = _alpha(cutoff, d)
            x_hat = a * x[go] + (1.0 - a) * self.x_prev[go]
            out[go] = x_hat
            self.x_prev[go] = x_hat
            self.dx_prev[go] = dx_hat
        self.t_prev[present] = t
        return out

    def run_dense(self, xs, ts) -> np.ndarray:
        """Filter a whole (N, C) sequence in which every sample is present (no NaN), from the
        filter's current state: the filter's arithmetic rearranged (the steps' alphas of the speed
        and their time factors computed for all samples at once, each update in place), equal to
        calling it sample by sample within 1e-12 and a sixth of its time (re-baking 10,000 frames
        of every channel, addon/stored.py)."""
        xs = np.asarray(xs, dtype=np.float64)
        ts = np.asarray(ts, dtype=np.float64)
        out = np.empty_like(xs)
        if not len(xs):
            return out
        if not np.isfinite(xs).all():
            raise ValueError("OneEuroFilter.run_dense: every sample must be present (no NaN); use run")
        if np.isfinite(self.t_prev).any() and not np.isfinite(self.t_prev).all():
            return self.run(xs, ts)  # channels with different histories: the general path
        t_first = float(self.t_prev[0]) if np.isfinite(self.t_prev[0]) else None
        gaps = np.diff(ts, prepend=np.nan if t_first is None else t_first)
        bad = np.flatnonzero(~(gaps > 0) & np.isfinite(gaps))
        if len(bad):
            k = int(bad[0])
            last = ts[k - 1] if k else t_first
            raise ValueError(f"OneEuroFilter: time {ts[k]:g} s does not increase (last sample at {last:g} s)")
        restart = ~(gaps <= self.max_gap)  # the first sample of a fresh filter, or after a long gap
        d = np.where(restart, 1.0, gaps)
        a_d = 1.0 / (1.0 + 1.0 / (2.0 * math.pi * self.d_cutoff[None] * d[:, None]))  # (N, C) speed alphas
        keep_d, take_d = 1.0 - a_d, a_d / d[:, None]  # speed' = keep x speed + take x (x - x_prev)
        # 2 pi dt x (min_cutoff + beta |speed|): the value's alpha is that over itself + 1
        k_beta = (2.0 * math.pi * d)[:, None] * self.beta[None]
        k_min = (2.0 * math.pi * d)[:, None] * self.min_cutoff[None]
        x_prev, dx_prev = self.x_prev.copy(), self.dx_prev.copy()
        diff, tmp, c = (np.empty(self.channels) for _ in range(3))
        for x, fresh, kd, td, kb, km, row in zip(xs, restart.tolist(), keep_d, take_d, k_beta, k_min, out):
            if fresh:
                row[:] = x
                dx_prev = np.zeros(self.channels)
            else:
                np.subtract(x, x_prev, out=diff)
                dx_prev *= kd
                np.multiply(diff, td, out=tmp)
                dx_prev += tmp  # the low-passed speed
                np.abs(dx_prev, out=c)
                c *= kb
                c += km
                np.add(c, 1.0, out=tmp)
                c /= tmp
                diff *= c
                np.add(x_prev, diff, out=row)
            x_prev = row
        self.x_prev, self.dx_prev, self.t_prev = x_prev.copy(), dx_prev.copy(), np.full(self.channels, ts[-1])
        return out
        if not np.isfinite(xs).all():
            raise ValueError("OneEuroFilter.run_dense: every sample must be present (no NaN); use run")
        if np.isfinite(self.t_prev).any() and not np.isfinite(self.t_prev).all():
            return self.run(xs, ts)  # channels with different histories: the general path
        x_prev, dx_prev = self.x_prev.copy(), self.dx_prev.copy()
        t_prev = float(self.t_prev[0]) if np.isfinite(self.t_prev[0]) else None
        min_cutoff, beta, d_cutoff = self.min_cutoff, self.beta, self.d_cutoff
        for k in range(len(xs)):
            x, t = xs[k], float(ts[k])
            if t_prev is not None and not t - t_prev > 0:
                raise ValueError(f"OneEuroFilter: time {t:g} s does not increase (last sample at {t_prev:g} s)")
            if t_prev is None or t - t_prev > self.max_gap:
                out[k] = x_prev = x.copy()
                dx_prev = np.zeros(self.channels)
            else:
                d = t - t_prev
                dx = (x - x_prev) / d
                a_d = _alpha(d_cutoff, d)
                dx_prev = a_d * dx + (1.0 - a_d) * dx_prev
                a = _alpha(min_cutoff + beta * np.abs(dx_prev), d)
                out[k] = x_prev = a * x + (1.0 - a) * x_prev
            t_prev = t
        self.x_prev, self.dx_prev, self.t_prev = x_prev.copy(), dx_prev, np.full(self.channels, t_prev)
        return out

    def run(self, xs, ts, valid=None) -> np.ndarray:
        """Filter a whole (N, C) sequence at times ``ts`` (N,); ``valid`` (N,) bool."""
        xs = np.asarray(xs, dtype=np.float64)
        ts = np.asarray(ts, dtype=np.float64)
        valid = np.ones(len(xs), bool) if valid is None else np.asarray(valid, bool)
        return np.stack([self(x, t, v) for x, t, v in zip(xs, ts, valid)]) if len(xs) \
            else np.zeros((0, self.channels))


@dataclass(frozen=True)
class GroupSmoothing:
    """1€ settings of one parameter group at full strength.

    ``min_cutoff`` (Hz) at strength 1; ``beta`` in 1 / (group unit); ``d_cutoff`` (Hz).
    ``min_cutoff=None`` means the group is never smoothed.
    """

    min_cutoff: float | None
    beta: float = 0.0
    d_cutoff: float = 1.0


# Pose in degrees: a 60 deg/s turn raises the cutoff by ~1.8 Hz. AUs in 0..1: a blink
# (0 -> 1 in ~0.1 s, 10 /s) raises it by ~15 Hz, so blinks survive strong smoothing.
# Identity is one face per video, smoothed hard; brow styles are discrete (one-hot) and
# would stop being one-hot if low-passed, so they pass through. Gaze in degrees moves in
# saccades (10 deg in ~40 ms, 250 deg/s raises the cutoff by ~12 Hz) and rests in between.
GROUP_SETTINGS: dict[str, GroupSmoothing] = {
    "pose": GroupSmoothing(min_cutoff=0.5, beta=0.03, d_cutoff=1.0),
    "au": GroupSmoothing(min_cutoff=0.8, beta=1.5, d_cutoff=1.0),
    "identity": GroupSmoothing(min_cutoff=0.05, beta=0.0, d_cutoff=1.0),
    "brow_style": GroupSmoothing(min_cutoff=None),
    "gaze": GroupSmoothing(min_cutoff=0.8, beta=0.05, d_cutoff=1.0),
}
LIGHT_CUTOFF_HZ = 25.0  # min_cutoff as strength -> 0 (barely any smoothing at video rates)


def strength_settings(strength: float, layout: ParameterLayout = LAYOUT,
                      settings: dict[str, GroupSmoothing] | None = None):
    """Per-channel (min_cutoff, beta, d_cutoff, smoothed mask) for ``strength`` in (0, 1].

    ``min_cutoff`` falls geometrically from :data:`LIGHT_CUTOFF_HZ` (strength -> 0) to the
    group's full-strength value (strength 1): ``light * (full / light) ** strength``.
    ``beta`` and ``d_cutoff`` stay the group's: they set how much fast motion escapes.
    """
    settings = GROUP_SETTINGS if settings is None else settings
    n = len(layout)
    mc, beta, dc = np.full(n, LIGHT_CUTOFF_HZ), np.zeros(n), np.ones(n)
    mask = np.zeros(n, bool)
    for i, ch in enumerate(layout.channels):
        if ch.group not in settings:
            raise ValueError(f"smooth: no smoothing settings for group {ch.group!r} "
                             f"(channel {ch.name})")
        g = settings[ch.group]
        if g.min_cutoff is None:
            continue
        mask[i] = True
        full = min(g.min_cutoff, LIGHT_CUTOFF_HZ)
        mc[i] = LIGHT_CUTOFF_HZ * (full / LIGHT_CUTOFF_HZ) ** strength
        beta[i], dc[i] = g.beta, g.d_cutoff
    return mc, beta, dc, mask


def smooth(params, timestamps, strength: float, valid=None,
           layout: ParameterLayout = LAYOUT, max_gap: float = 0.25) -> np.ndarray:
    """Smooth an (N, C) parameter sequence with one control, ``strength`` in 0..1.

    0 is off: the input comes back unchanged (a copy). 1 is strong (see
    :data:`GROUP_SETTINGS` and :func:`strength_settings`). ``timestamps`` (N,) in seconds,
    increasing over valid rows. ``valid`` (N,) bool, default: rows without NaN. Invalid rows
    come back as they went in (NaN rows in tracking results) while the filter holds its
    state across them; gaps longer than ``max_gap`` seconds restart it (module doc).
    """
    x = np.asarray(params, dtype=np.float64)
    ts = np.asarray(timestamps, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(layout):
        raise ValueError(f"smooth: params must be (N, {len(layout)}) for layout "
                         f"{layout.version}, got shape {x.shape}")
    if ts.shape != (len(x),):
        raise ValueError(f"smooth: timestamps must be ({len(x)},), got shape {ts.shape}")
    if not (np.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise ValueError(f"smooth: strength must be in 0..1, got {strength}")
    ok = np.isfinite(x).all(1) if valid is None else np.asarray(valid, bool)
    if ok.shape != (len(x),):
        raise ValueError(f"smooth: valid must be ({len(x)},), got shape {ok.shape}")
    rows = np.flatnonzero(ok)
    bad_t = rows[~np.isfinite(ts[rows])]
    if len(bad_t):
        raise ValueError(f"smooth: timestamp of row {bad_t[0]} is not finite")
    back = np.flatnonzero(np.diff(ts[rows]) <= 0)
    if len(back):
        raise ValueError(f"smooth: timestamps must increase; row {rows[back[0] + 1]} "
                         f"({ts[rows[back[0] + 1]]:g} s) follows row {rows[back[0]]} "
                         f"({ts[rows[back[0]]]:g} s)")
    out = x.copy()
    if strength == 0.0 or not len(rows):
        return out
    mc, beta, dc, mask = strength_settings(strength, layout)
    if not mask.any():
        return out
    f = OneEuroFilter(int(mask.sum()), mc[mask], beta[mask], dc[mask], max_gap=max_gap)
    cols = np.flatnonzero(mask)
    block = x[np.ix_(rows, cols)]
    if np.isfinite(block).all():  # the usual case: every smoothed channel present in every row
        out[np.ix_(rows, cols)] = f.run_dense(block, ts[rows])
        return out
    for i in rows:
        y = f(x[i, mask], ts[i])
        keep = np.isfinite(y)
        out[i, cols[keep]] = y[keep]
    return out


# --- neutral calibration ---------------------------------------------------------------
RELAXED_FRACTION = 0.15  # the most relaxed 15% of the frames with a face
BASELINE_PERCENTILE = 25.0  # per AU channel, over those frames


def neutral_baseline(params, valid=None, layout: ParameterLayout = LAYOUT,
                     frame: int | None = None) -> np.ndarray:
    """The actor's neutral parameter vector (len(layout),), for :func:`calibrate`.

    ``frame`` given: that row of ``params`` (the user points at a neutral frame; rows are
    the tracking's rows, 0-based). It must exist and have a face, else ``ValueError``
    naming it.

    Automatic (``frame=None``): among the rows with a face (``valid`` and finite AUs), the
    most relaxed ones are the :data:`RELAXED_FRACTION` (15%, at least one row) with the
    lowest total AU activation (sum of the AU channels); per AU channel the baseline is the
    :data:`BASELINE_PERCENTILE` (25th percentile) over those rows. A low percentile of
    relaxed frames is conservative: it removes what the actor always shows at rest and
    never a real expression that happens to be frequent. Non-AU channels get the median
    over all rows with a face (informative only; :func:`calibrate` leaves them alone).
    """
    x = np.asarray(params, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(layout):
        raise ValueError(f"neutral_baseline: params must be (N, {len(layout)}), "
                         f"got shape {x.shape}")
    au = layout.group_slice("au")
    ok = np.isfinite(x[:, au]).all(1)
    if valid is not None:
        v = np.asarray(valid, bool)
        if v.shape != (len(x),):
            raise ValueError(f"neutral_baseline: valid must be ({len(x)},), got {v.shape}")
        ok &= v
    if frame is not None:
        if not (isinstance(frame, (int, np.integer)) and 0 <= frame < len(x)):
            raise ValueError(f"neutral_baseline: frame {frame} is out of range "
                             f"(0..{len(x) - 1})")
        if not (ok[frame] and np.isfinite(x[frame]).all()):
            raise ValueError(f"neutral_baseline: frame {frame} has no face")
        return x[frame].copy()
    rows = np.flatnonzero(ok)
    if not len(rows):
        raise ValueError("neutral_baseline: no frame with a face")
    total = x[rows, au].sum(1)
    k = max(1, int(math.ceil(RELAXED_FRACTION * len(rows))))
    relaxed = rows[np.argsort(total, kind="stable")[:k]]
    base = np.nanmedian(x[rows], axis=0)
    base[au] = np.percentile(x[relaxed, au], BASELINE_PERCENTILE, axis=0)
    return base


def calibrate(params, baseline, layout: ParameterLayout = LAYOUT) -> np.ndarray:
    """Remove the actor's neutral from the AU channels: baseline..1 becomes 0..1.

    ``au' = clip((au - b) / (1 - b), 0, 1)`` per AU channel (b >= 1 gives 0); pose,
    identity and brow style pass unchanged, NaN rows stay NaN. ``baseline`` is a full
    vector (len(layout),) or just the AU part.
    """
    x = np.array(params, dtype=np.float64)
    au = layout.group_slice("au")
    n_au = au.stop - au.start
    b = np.asarray(baseline, dtype=np.float64)
    if b.shape == (len(layout),):
        b = b[au]
    elif b.shape != (n_au,):
        raise ValueError(f"calibrate: baseline must have length {len(layout)} or {n_au} "
                         f"(AU channels), got shape {b.shape}")
    if not np.isfinite(b).all():
        i = int(np.flatnonzero(~np.isfinite(b))[0])
        raise ValueError(f"calibrate: baseline of {layout.names[au][i]} is not finite")
    if x.shape[-1] != len(layout):
        raise ValueError(f"calibrate: params must end in {len(layout)} channels, "
                         f"got shape {x.shape}")
    b = np.clip(b, 0.0, 1.0)
    span = 1.0 - b
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.where(span > 1e-9, (x[..., au] - b) / np.where(span > 1e-9, span, 1.0), 0.0)
    scaled = np.where(np.isnan(x[..., au]), np.nan, scaled)
    x[..., au] = np.clip(scaled, 0.0, 1.0)
    return x


# --- gain ------------------------------------------------------------------------------
_FACS = re.compile(r"^AU(\d+)$")


def gain_channels(name: str, layout: ParameterLayout = LAYOUT) -> list[int]:
    """Channel indices a gain name addresses: a layout channel name, or a FACS code
    ("AU12") meaning every AU channel of that code (AU12_L and AU12_R)."""
    if name in layout.index:
        return [layout.index[name]]
    m = _FACS.match(name)
    if m:
        code = int(m.group(1))
        idx = [i for i, c in enumerate(layout.channels) if c.group == "au" and c.facs == code]
        if idx:
            return idx
    raise ValueError(f"apply_gain: unknown channel {name!r} (not a channel of layout "
                     f"{layout.version} nor a FACS code of its AU channels)")


def combine_gains(groups: dict[str, float] | None = None, codes: dict[str, float] | None = None,
                  layout: ParameterLayout = LAYOUT) -> dict[str, float]:
    """Per-channel gains from a gain per layout group (``{"au": 1.2, "pose": 0.8}``) times a gain
    per channel or FACS code (``{"AU12": 1.5}``): ``{channel: gain}``, only those not 1."""
    total = np.ones(len(layout))
    for group, g in (groups or {}).items():
        idx = [i for i, c in enumerate(layout.channels) if c.group == group]
        if not idx:
            raise ValueError(f"gain of group {group!r}: layout {layout.version} has no such group")
        total[idx] *= float(g)
    for name, g in (codes or {}).items():
        total[gain_channels(name, layout)] *= float(g)
    return {layout.names[i]: float(total[i]) for i in np.flatnonzero(total != 1.0)}


def apply_gain(params, gains: dict[str, float], layout: ParameterLayout = LAYOUT) -> np.ndarray:
    """Scale channels about their neutral value: ``v' = neutral + g * (v - neutral)``.

    For AUs and pose (neutral 0) that is ``g * v``; identity sliders scale about 0.5.
    Gained channels are clipped to their range; other channels are untouched. A name is a
    layout channel or a FACS code (see :func:`gain_channels`); an unknown name, or a
    negative or non-finite gain, raises ``ValueError`` naming it.
    """
    x = np.array(params, dtype=np.float64)
    if x.shape[-1] != len(layout):
        raise ValueError(f"apply_gain: params must end in {len(layout)} channels, "
                         f"got shape {x.shape}")
    neutral = layout.neutral()
    for name, g in gains.items():
        idx = gain_channels(name, layout)
        g = float(g)
        if not (math.isfinite(g) and g >= 0):
            raise ValueError(f"apply_gain: gain of {name!r} must be finite and >= 0, got {g}")
        n = neutral[idx]
        x[..., idx] = np.clip(n + g * (x[..., idx] - n), layout.lo[idx], layout.hi[idx])
    return x
