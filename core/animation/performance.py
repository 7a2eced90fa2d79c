"""The embedded default performance: a scripted face sequence over time.

The project ships no footage of real people. Its default input is this script: a character with
an identity other than the base face performs neutral, a smile, a blink, brows up, jaw open and
head turns. ``make demo`` animates the rig with it; rendered, it is a clip whose true parameters
are known, so tracking it measures how close the recovered values come to the script.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..rig.layout import LAYOUT, OPPOSED, ParameterLayout

# (label, seconds, {channel: value}) — the pose of each beat; between beats values ease smoothly
BEATS = (
    ("neutral", 0.6, {}),
    ("smile", 1.0, {"AU12_L": 0.9, "AU12_R": 0.9, "AU06": 0.6, "AU25": 0.3}),
    ("neutral", 0.5, {}),
    ("blink", 0.35, {"AU43_L": 1.0, "AU43_R": 1.0}),
    ("neutral", 0.4, {}),
    ("brows up", 0.9, {"AU01_L": 0.9, "AU01_R": 0.9, "AU02_L": 0.8, "AU02_R": 0.8, "AU05": 0.5}),
    ("neutral", 0.5, {}),
    ("jaw open", 0.9, {"AU26": 0.9, "AU25": 0.8}),
    ("neutral", 0.5, {}),
    ("frown", 0.8, {"AU04": 0.9, "AU15": 0.6, "AU17": 0.5}),
    ("turn left", 0.9, {"pose_yaw": 25.0}),
    ("turn right", 0.9, {"pose_yaw": -25.0, "pose_pitch": 8.0}),
    ("tilt", 0.8, {"pose_roll": 12.0, "pose_pitch": -8.0}),
    ("neutral", 0.6, {}),
)
HOLD = 0.45  # fraction of each beat held at its pose; the rest eases from the previous beat


@dataclass(frozen=True)
class Performance:
    times: np.ndarray  # (T,) seconds
    params: np.ndarray  # (T, P) parameter vectors
    labels: tuple[str, ...]  # (T,) beat label of each frame
    fps: float


def performer_identity(layout: ParameterLayout = LAYOUT, seed: int = 7) -> np.ndarray:
    """A fixed identity other than the base face (sliders drawn around 0.5, brow style 1)."""
    rng = np.random.default_rng(seed)
    p = layout.neutral()
    ident = layout.group_slice("identity")
    p[ident] = np.clip(0.5 + rng.normal(0, 0.18, ident.stop - ident.start), 0, 1)
    brows = layout.group_slice("brow_style")
    p[brows] = 0.0
    p[brows.start + 1] = 1.0
    return p


def scripted_performance(fps: float = 30.0, layout: ParameterLayout = LAYOUT, seed: int = 7) -> Performance:
    """Frame-by-frame parameters of the scripted sequence at ``fps``."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    base = performer_identity(layout, seed)
    keys = []
    for label, _, values in BEATS:
        p = base.copy()
        for name, v in values.items():
            p[layout.index[name]] = v
        keys.append(p)
    durations = np.array([d for _, d, _ in BEATS])
    starts = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    times = np.arange(0.0, durations.sum(), 1.0 / fps)
    beat = np.searchsorted(starts, times, side="right") - 1
    local = (times - starts[beat]) / durations[beat]
    ease = np.clip(local / (1 - HOLD), 0, 1)
    ease = ease * ease * (3 - 2 * ease)
    prev = np.array(keys)[np.maximum(beat - 1, 0)]
    params = prev + (np.array(keys)[beat] - prev) * ease[:, None]
    labels = tuple(BEATS[b][0] for b in beat)
    return Performance(times, params, labels, float(fps))


def random_performance(seed: int, seconds: float = 4.0, fps: float = 15.0, layout: ParameterLayout = LAYOUT,
                       yaw: float = 30.0, pitch: float = 20.0, roll: float = 20.0, beat: float = 0.6) -> Performance:
    """A held-out actor for synthetic recovery: a random identity and brow style, a neutral first
    beat, then beats of ``beat`` seconds easing to random expressions (two or three AUs, opposed
    channels never together) and head poses within the limits."""
    if fps <= 0 or seconds <= 0:
        raise ValueError(f"fps and seconds must be positive, got {fps}, {seconds}")
    rng = np.random.default_rng(seed)
    base = layout.neutral()
    ident, brows, au = (layout.group_slice(g) for g in ("identity", "brow_style", "au"))
    base[ident] = rng.uniform(0.0, 1.0, ident.stop - ident.start)
    base[brows] = np.eye(brows.stop - brows.start)[rng.integers(brows.stop - brows.start)]
    names = layout.group_names("au")
    opposed = {a: b for pair in OPPOSED for a, b in (pair, pair[::-1])}
    n_beats = max(2, int(round(seconds / beat)))
    keys = [base.copy()]
    for _ in range(n_beats - 1):
        p = base.copy()
        chosen: list[str] = []
        for name in rng.permutation(names):
            if len(chosen) == int(rng.integers(2, 4)):
                break
            if opposed.get(name) in chosen:
                continue
            chosen.append(name)
            p[layout.index[name]] = rng.uniform(0.4, 1.0)
        p[layout.group_slice("pose")] = rng.uniform(-1, 1, 3) * [yaw, pitch, roll]
        keys.append(p)
    times = np.arange(0.0, n_beats * beat, 1.0 / fps)
    k = np.minimum((times // beat).astype(int), n_beats - 1)
    local = np.clip((times - k * beat) / (beat * (1 - HOLD)), 0, 1)
    ease = local * local * (3 - 2 * local)
    keys_a = np.array(keys)
    prev = keys_a[np.maximum(k - 1, 0)]
    params = prev + (keys_a[k] - prev) * ease[:, None]
    labels = tuple("neutral" if i == 0 else f"beat {i}" for i in k)
    return Performance(times, params, labels, float(fps))
