"""Actor profiles: one take's neutral face, reused on the actor's next takes.

A take is tracked relative to the actor's neutral: the estimator reads every frame beside a
neutral frame of the same face, and calibration removes what the actor shows at rest. Within
one take the neutral is found automatically (the most relaxed frame), which fails on a take that
never rests: a surprised face throughout would become the neutral, and the surprise vanish.
A profile carries the neutral of a take that did rest to the others:

    au2rig track take1.mp4 -o t1.csv --save-actor anna.json
    au2rig track take2.mp4 -o t2.csv --actor anna.json

It holds the actor's neutral shape (the median of the take's resting frames' 68 landmarks, each
normalised by the five-point alignment, so the camera, distance and roll of the take do not
matter), the calibration baseline of the AU channels, the actor's range of motion (a gain per AU
channel fitted through the rig, :func:`core.tracking.clip_fit.fit_range`: on the next take it is
the prior, so a take that hardly shows a channel still plays it at this actor's strength), and
where they came from. JSON; written atomically; every reading error names the file and field.
Version 1 profiles (no range) still read.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..alignment.align import BROW_POINTS
from ..rig.layout import LAYOUT, ParameterLayout
from ..util.atomic import atomic_path

FORMAT = "au2rig actor profile"
VERSION = 2
READS = (1, 2)


class ActorProfileError(ValueError):
    """An actor profile cannot be used; the message names the file and field."""


@dataclass(frozen=True)
class ActorProfile:
    reference: np.ndarray  # (68, 2) the actor's neutral shape, five-point aligned (template units)
    baseline: np.ndarray  # (n AU,) the AU channels' resting values, for core.filters.calibrate
    source: dict  # video, frame, tracker settings
    motion_range: np.ndarray | None = None  # (n AU,) gain per AU channel; None: not fitted


# the brows: their iBUG points, the eye corners they are measured from, and their AUs (FACS codes)
EYE_CORNERS = (36, 39, 42, 45)
BROW_AUS = (1, 2, 4)


def brow_channels(layout: ParameterLayout = LAYOUT) -> np.ndarray:
    """(A,) bool over the layout's AU channels: those of the brows (:data:`BROW_AUS`, every side)."""
    return np.array([c.facs in BROW_AUS for c in layout.channels if c.group == "au"])


def neutral_shape(landmarks: np.ndarray, brows: np.ndarray | None = None) -> np.ndarray:
    """The actor's neutral face from resting frames' landmarks ((68, 2) or (K, 68, 2), pixels):
    the per-point median of the five-point aligned frames (template units, as the estimator and
    profiles take it). One frame alone carries its moment (lips pressed, eyes lowered); the
    median of the resting frames keeps what they share.

    ``brows``: the frames where the brows rest (same form), when those differ. The face's parts
    rest at different moments: a talker raises the brows for emphasis while the mouth and eyes
    rest (on ``tpsmm_driving`` the frames most relaxed overall had the brows raised, so every
    lower brow read as zero). Each brow whose median height above the eye corners
    (:func:`with_brows`) is lower in those frames is taken from them. Never a higher one: a low
    brow while the face rests is more often the actor's own than a frown held with a relaxed
    face (on ``edtalk_uncrop_Obama`` the brows' own resting frames, found from single frames,
    whose prior is an average face, had them raised, and his ordinary brows read as a frown)."""
    from ..alignment.align import align

    def aligned(frames):
        lm = np.asarray(frames, float).reshape(-1, 68, 2) if np.ndim(frames) >= 2 else np.asarray(frames)
        if lm.ndim != 3 or lm.shape[1:] != (68, 2) or not len(lm) or not np.isfinite(lm).all():
            raise ValueError(f"an actor's neutral needs frames of 68 finite landmarks, got {np.shape(frames)}")
        return np.stack([align(frame)[0] for frame in lm])

    shape = np.median(aligned(landmarks), axis=0)
    if brows is None:
        return shape
    resting = np.median(with_brows(shape, aligned(brows)), axis=0)
    for brow in (BROW_POINTS[:5], BROW_POINTS[5:]):  # the subject's right brow, then the left
        if resting[list(brow), 1].mean() > shape[list(brow), 1].mean():  # lower (y grows downward)
            shape[list(brow)] = resting[list(brow)]
    return shape


def with_brows(shape: np.ndarray, aligned: np.ndarray) -> np.ndarray:
    """(N, 68, 2): the face ``shape`` (68, 2) with the brows of each of the ``aligned`` frames
    (N, 68, 2), both in template units; each frame's brows keep their place above its eye corners."""
    out = np.repeat(np.asarray(shape, float)[None], len(aligned), 0)
    above_eyes = aligned[:, BROW_POINTS] - aligned[:, EYE_CORNERS].mean(1, keepdims=True)
    out[:, BROW_POINTS] = above_eyes + out[:, EYE_CORNERS].mean(1, keepdims=True)
    return out


def on_rig_face(landmarks: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The actor's expression carried onto the rig's neutral face, for the estimator's AUs.

    ``landmarks`` (N, 68, 2) pixels, ``reference`` (68, 2) the actor's neutral (template units,
    :func:`neutral_shape`). Returns (N, 68, 2): the rig's neutral landmarks plus each frame's
    displacement from the actor's neutral (five-point aligned, template units). The estimator
    learnt the rig's faces; a real actor's own proportions (mouth, jaw, lids) lie outside them and
    read as expressions (a jaw opening on a real face came out as lips parting and a funnel, AU26
    0.1-0.2; carried onto the rig's face, 0.5-0.9). The displacement is what the actor does, the
    neutral who they are."""
    from ..alignment.align import align, template_landmarks

    return template_landmarks() + (align(np.asarray(landmarks, float))[0] - np.asarray(reference, float))


def make_profile(landmarks: np.ndarray, baseline: np.ndarray, source: dict,
                 layout: ParameterLayout = LAYOUT, motion_range=None, brows: np.ndarray | None = None) -> ActorProfile:
    """A profile from resting frames' landmarks ((68, 2) or (K, 68, 2), pixels) and those of the
    brows' own resting frames (see :func:`neutral_shape`), a full or AU baseline and optionally the
    range of motion."""
    b = np.asarray(baseline, float)
    au = layout.group_slice("au")
    b = b[au] if b.shape == (len(layout),) else b
    rng = None if motion_range is None else np.asarray(motion_range, float)
    return ActorProfile(reference=neutral_shape(landmarks, brows), baseline=b, source=dict(source), motion_range=rng)


def write_profile(profile: ActorProfile, path, layout: ParameterLayout = LAYOUT) -> Path:
    path = Path(path)
    data = {"format": FORMAT, "version": VERSION, "layout_version": layout.version,
            "au_channels": list(layout.group_names("au")),
            "reference_landmarks": np.round(profile.reference, 6).tolist(),
            "baseline": np.round(profile.baseline, 6).tolist(), "source": profile.source}
    if profile.motion_range is not None:
        data["motion_range"] = np.round(profile.motion_range, 6).tolist()
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=1))
    return path


def read_profile(path, layout: ParameterLayout = LAYOUT) -> ActorProfile:
    """Read an actor profile; :class:`ActorProfileError` names the file and the field at fault."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ActorProfileError(f"{path}: no actor profile there") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ActorProfileError(f"{path}: not a readable actor profile ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ActorProfileError(f"{path}: not an au2rig actor profile (format field "
                                f"{data.get('format') if isinstance(data, dict) else None!r})")
    if data.get("version") not in READS:
        raise ActorProfileError(f"{path}: version {data.get('version')!r}; this code reads versions "
                                f"{', '.join(map(str, READS))}")
    names = list(layout.group_names("au"))
    if data.get("au_channels") != names:  # what a profile holds: the AU channels' baseline
        raise ActorProfileError(f"{path}: au_channels: made for layout {data.get('layout_version')!r}, "
                                f"this is {layout.version!r}; track a take of the actor again with --save-actor")
    try:
        ref = np.asarray(data["reference_landmarks"], float)
        base = np.asarray(data["baseline"], float)
        source = dict(data.get("source") or {})
        rng = None if data.get("motion_range") is None else np.asarray(data["motion_range"], float)
    except KeyError as e:
        raise ActorProfileError(f"{path}: missing field {e.args[0]!r}") from None
    except (TypeError, ValueError) as e:
        raise ActorProfileError(f"{path}: reference_landmarks / baseline / motion_range: {e}") from None
    if ref.shape != (68, 2) or not np.isfinite(ref).all():
        raise ActorProfileError(f"{path}: reference_landmarks must be 68 finite (x, y) pairs, got {ref.shape}")
    if base.shape != (len(names),) or not np.isfinite(base).all() or (base < 0).any() or (base > 1).any():
        raise ActorProfileError(f"{path}: baseline must be {len(names)} values in 0..1, one per AU channel")
    if rng is not None and (rng.shape != (len(names),) or not np.isfinite(rng).all() or (rng <= 0).any()):
        raise ActorProfileError(f"{path}: motion_range must be {len(names)} positive gains, one per AU channel")
    return ActorProfile(reference=ref, baseline=base, source=source, motion_range=rng)


def profile_from_tracking(tracking, layout: ParameterLayout = LAYOUT) -> ActorProfile:
    """The profile of a tracked take: the neutral shape of its resting frames (or of the frame the
    user named), its calibration baseline and the range of motion fitted on it (when it was)."""
    notes = tracking.meta.get("calibration", {})
    frame = notes.get("reference_frame")
    if frame is None or notes.get("baseline") is None:
        raise ValueError("this take has no neutral frame to save (tracked with --neutral none, with an actor "
                         "profile, or without a face)")
    frames = notes.get("neutral_frames") or [frame]
    def rows_of(numbers):
        return [int(np.flatnonzero(np.asarray(tracking.frames) == f)[0]) for f in numbers]

    rows = rows_of(frames)
    brow_frames = notes.get("brow_neutral_frames")
    source = {"video": str(tracking.meta.get("video", {}).get("path", "")), "frame": int(frame),
              "frames": [int(f) for f in frames]}
    if brow_frames:
        source["brow_frames"] = [int(f) for f in brow_frames]
    fitted = (notes.get("motion_range") or {}).get("range")
    motion_range = None if fitted is None else [fitted[n] for n in layout.group_names("au")]
    return make_profile(tracking.landmarks[rows], np.asarray(notes["baseline"], float), source, layout,
                        motion_range, tracking.landmarks[rows_of(brow_frames)] if brow_frames else None)
