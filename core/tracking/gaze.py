"""Gaze from the irises: where the eyes look in the head, in degrees.

MediaPipe's attention mesh (see :class:`~core.tracking.landmarks.MediaPipeBackend`) gives each
iris centre beside the contour of its eye. The iris centre's offset along the line between the
eye's corners, from the centroid of the eye's 16 contour points (steadier than the two corners,
which the lids drag), and across that line, from the corners' midpoint (the centroid would move
with the lids), in units of the line's length, is the eye's turn as seen from the front: an
eyeball of radius R turned by an angle a moves its iris by R sin a, and the eye opening is about
:data:`WIDTH_IN_RADII` eyeball radii wide (anthropometric averages: palpebral fissure about 30
mm, eyeball radius about 12 mm), so ``a = asin(WIDTH_IN_RADII * offset)``. The line turns with
the head, so head roll does not leak in, and a head turned toward the camera's side while the
eyes stay on the lens reads as the eyes turned the other way in the head, as it should.

Offsets are measured against the actor's neutral (the median over the resting frames: a face at
rest looks ahead); frames whose eyes are closed keep the gaze of the open frames around them
(an iris under a closed lid is a guess).
"""
from __future__ import annotations

import numpy as np

from ..alignment.align import LEFT_EYE, RIGHT_EYE

# (iris centre, eye corner on the image's left, eye corner on the image's right, the eye's contour)
# in the 478 points of the attention mesh: the subject's right eye (image left), then the left eye
EYES = ((468, 33, 133, (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)),
        (473, 362, 263, (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)))
WIDTH_IN_RADII = 2.5
CLOSED_BELOW = 0.5  # an eye opening under half of the neutral's counts as closed


def eye_offsets(points: np.ndarray) -> np.ndarray:
    """(..., 478, 2) attention-mesh points (pixels, y down) -> (..., 2): the irises' offset in
    their eyes, mean of both eyes, along the corner line (+ toward the image's right, the
    subject's left; from the contour's centroid) and across it (+ up; from the corners'
    midpoint), in units of the corner line's length."""
    p = np.asarray(points, float)
    out = []
    for iris, left, right, contour in EYES:
        a, b = p[..., left, :], p[..., right, :]
        axis = b - a
        length = np.linalg.norm(axis, axis=-1)
        unit = axis / length[..., None]
        up = np.stack([unit[..., 1], -unit[..., 0]], -1)  # the axis turned by -90 degrees: image up
        along = ((p[..., iris, :] - p[..., list(contour), :].mean(-2)) * unit).sum(-1)
        across = ((p[..., iris, :] - (a + b) / 2) * up).sum(-1)
        out.append(np.stack([along, across], -1) / length[..., None])
    return (out[0] + out[1]) / 2


def eye_opening(landmarks: np.ndarray, eyes=(RIGHT_EYE, LEFT_EYE)) -> np.ndarray:
    """(..., 68, 2) iBUG landmarks -> (...,) mean height of the ``eyes``' openings (both by
    default) over their widths."""
    lm = np.asarray(landmarks, float)
    values = []
    for eye in eyes:
        e = lm[..., list(eye), :]
        height = (np.linalg.norm(e[..., 1, :] - e[..., 5, :], axis=-1) +
                  np.linalg.norm(e[..., 2, :] - e[..., 4, :], axis=-1)) / 2
        values.append(height / np.linalg.norm(e[..., 0, :] - e[..., 3, :], axis=-1))
    return sum(values) / len(values)


def gaze_angles(offsets: np.ndarray, landmarks: np.ndarray, neutral_rows) -> np.ndarray:
    """(N, 2) gaze yaw (+ toward the subject's left) and pitch (+ up), degrees, from per-frame
    iris ``offsets`` (N, 2; NaN where unknown) and the frames' 68 ``landmarks`` (N, 68, 2),
    relative to the median offset of ``neutral_rows``. Frames with closed eyes, or without
    irises, take the values of the nearest open frames (linear in between); NaN when no frame
    has open eyes and irises."""
    offsets = np.asarray(offsets, float)
    opening = eye_opening(landmarks)
    rows = np.asarray(neutral_rows, int)
    known = np.isfinite(offsets).all(1) & np.isfinite(opening)
    rest = rows[known[rows]] if len(rows) else rows
    out = np.full((len(offsets), 2), np.nan)
    if not len(rest):
        return out
    seen = known & (opening >= CLOSED_BELOW * np.median(opening[rest]))
    if not seen.any():
        return out
    delta = offsets - np.median(offsets[rest], axis=0)
    angles = np.degrees(np.arcsin(np.clip(WIDTH_IN_RADII * delta, -1.0, 1.0)))
    t = np.arange(len(offsets))
    for k in range(2):
        out[:, k] = np.interp(t, t[seen], angles[seen, k])
    return out
