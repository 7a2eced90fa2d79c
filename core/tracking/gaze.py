"""Gaze from the irises: where the eyes look in the head, in degrees.

MediaPipe's attention mesh (see :class:`~core.tracking.landmarks.MediaPipeBackend`) gives each
iris centre beside the contour of its eye. The iris centre's offset along the line between the
eye's corners, from the centroid of the eye's 16 contour points (steadier than the two corners,
which the lids drag), and across that line, from the corners' midpoint (the centroid would move
with the lids), in units of the line's length, is the eye's turn as seen from the front: an
eyeball of radius R turned by an angle a moves its iris by R sin a, and the eye opening is about
:data:`WIDTH_IN_RADII` eyeball radii wide (anthropometric averages: palpebral fissure about 30
mm, eyeball radius about 12 mm), so ``a = asin(WIDTH_IN_RADII * offset)``. The line turns with
the head, so head roll does not leak in.

Head yaw and pitch do leak in: the irises lie in front of the eye corners, so a head pitched up
with the eyes still in their sockets' rest moves the irises up against the corners, as a look up
would. :func:`head_parallax` measures that on the rig (its eyes fixed in the head, its head
turned: about half a degree of reading per degree of pitch, anatomy's figure too, the iris some
10 mm and the corners some 5 mm in front of the eyeball's centre), and :func:`gaze_angles`
takes it off, so the gaze is the eyes' turn in the head, as the rig's eye bones carry it: a head
turned while the eyes stay on the lens reads as the eyes turned the other way in the head.

Ahead is where the take's open eyes look most (the median over those frames: an actor looks
ahead more than anywhere else; the resting frames alone can catch the eyes turned); frames whose
eyes are closed or in a blink keep the gaze of the open frames around them (an iris under a
closed lid is a guess), and a lid lowered for longer than a blink is read (a look down).
"""
from __future__ import annotations

import numpy as np

from ..alignment.align import LEFT_EYE, RIGHT_EYE

# (iris centre, eye corner on the image's left, eye corner on the image's right, the eye's contour)
# in the 478 points of the attention mesh: the subject's right eye (image left), then the left eye
EYES = ((468, 33, 133, (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)),
        (473, 362, 263, (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)))
WIDTH_IN_RADII = 2.5
CLOSED_BELOW = 0.5  # an eye opening under half of the neutral's counts as lowered
HIDDEN_BELOW = 0.25  # and under a quarter as closed: the iris hidden
BLINK_SECONDS = 0.5  # a blink lasts 0.1-0.4 s: a lid lowered for longer is a look down (or a squint)


def eye_offsets(points: np.ndarray) -> np.ndarray:
    """(..., 478, 2) attention-mesh points (pixels, y down) -> (..., 2): the irises' offset in
    their eyes, mean of both eyes, along the corner line (+ toward the image's right, the
    subject's left; from the contour's centroid) and across it (+ up; from the corners'
    midpoint), in units of the corner line's length."""
    p = np.asarray(points, float)
    out = [_offset_in_eye(p[..., iris, :], p[..., left, :], p[..., right, :], p[..., list(contour), :].mean(-2))
           for iris, left, right, contour in EYES]
    return (out[0] + out[1]) / 2


def _offset_in_eye(iris, a, b, centroid) -> np.ndarray:
    """(..., 2): an iris centre's offset in its eye with corners ``a``, ``b`` (image left, right)
    and contour ``centroid``: along the corner line from the centroid, across it (+ up) from the
    corners' midpoint, in units of the line's length."""
    axis = b - a
    length = np.linalg.norm(axis, axis=-1)
    unit = axis / length[..., None]
    up = np.stack([unit[..., 1], -unit[..., 0]], -1)  # the axis turned by -90 degrees: image up
    along = ((iris - centroid) * unit).sum(-1)
    across = ((iris - (a + b) / 2) * up).sum(-1)
    return np.stack([along, across], -1) / length[..., None]


def _brief(mask: np.ndarray, times: np.ndarray, seconds: float) -> np.ndarray:
    """(N,) bool: the frames of ``mask``'s runs (consecutive True) that last under ``seconds``,
    from the run's first frame to the frame after its last (``times`` in seconds)."""
    out = np.zeros(len(mask), bool)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    for start, stop in zip(edges[::2], edges[1::2]):
        end = times[stop] if stop < len(times) else times[stop - 1] + step
        out[start:stop] = end - times[start] < seconds
    return out


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


def _rig_offsets(rig, yaw: float, pitch: float) -> np.ndarray:
    """:func:`eye_offsets` of the rig's neutral face at a head pose (degrees), eyes looking ahead:
    the centroid of each eye's iris vertices against its 68-point corners and contour."""
    layout = rig.layout
    params = layout.neutral(1)
    params[0, layout.names.index("pose_yaw")], params[0, layout.names.index("pose_pitch")] = yaw, pitch
    right, left = rig.iris_vertices()
    points = rig.project(np.concatenate([rig.skin(params, right)[0].mean(0, keepdims=True),
                                         rig.skin(params, left)[0].mean(0, keepdims=True),
                                         rig.landmarks_3d(params)[0]]))
    lm = points[2:]
    return np.mean([_offset_in_eye(centre, lm[eye[0]], lm[eye[3]], lm[list(eye)].mean(0))
                    for centre, eye in ((points[0], RIGHT_EYE), (points[1], LEFT_EYE))], 0)


def head_parallax(rig) -> np.ndarray:
    """(2,): degrees of iris reading (yaw, pitch) per degree of head yaw and pitch when the eyes do
    not turn in the head, measured on ``rig`` over +-10 degrees (a few milliseconds)."""
    def reading(yaw, pitch):
        return np.degrees(np.arcsin(WIDTH_IN_RADII * _rig_offsets(rig, yaw, pitch)))

    return np.array([(reading(10, 0) - reading(-10, 0))[0], (reading(0, 10) - reading(0, -10))[1]]) / 20


def gaze_angles(offsets: np.ndarray, landmarks: np.ndarray, neutral_rows, pose: np.ndarray | None = None,
                parallax=(0.0, 0.0), times: np.ndarray | None = None) -> np.ndarray:
    """(N, 2) gaze yaw (+ toward the subject's left) and pitch (+ up), degrees, from per-frame
    iris ``offsets`` (N, 2; NaN where unknown) and the frames' 68 ``landmarks`` (N, 68, 2). With
    the frames' head ``pose`` (N, 2: yaw, pitch in degrees), ``parallax`` (:func:`head_parallax`)
    times its change is taken off: the eyes' turn in the head. Zero is the median iris offset (and
    head pose) of the frames with open eyes: an actor looks ahead more than anywhere else, while a
    few resting frames can catch the eyes turned (``liveportrait_d3``: half her resting frames look
    to her right, and her gaze read 10-30 degrees to her left where she looked ahead). The eye
    opening is measured against the ``neutral_rows``' (the lids at rest). Frames whose eyes are closed (opening under
    :data:`HIDDEN_BELOW` of the neutral's) or in a blink (under :data:`CLOSED_BELOW` for less than
    :data:`BLINK_SECONDS`, ``times`` in seconds, frame numbers at 30 fps by default), or without
    irises, take the values of the nearest seen frames (linear in between); NaN when no frame is
    seen. A lid lowered for longer than a blink is read: the upper lid follows the eye down, so a
    look down lowers it (``liveportrait_d3``, frames 106-135, 141-160, 217-255: she looks down
    at her lap, her eyes at a third of their opening, for one to one and a half seconds at a time),
    and the iris still shows under it."""
    offsets = np.asarray(offsets, float)
    opening = eye_opening(landmarks)
    rows = np.asarray(neutral_rows, int)
    known = np.isfinite(offsets).all(1) & np.isfinite(opening)
    if pose is not None:
        pose = np.asarray(pose, float)
        known &= np.isfinite(pose).all(1)
    rest = rows[known[rows]] if len(rows) else rows
    out = np.full((len(offsets), 2), np.nan)
    if not len(rest):
        return out
    neutral = np.median(opening[rest])
    times = np.arange(len(offsets)) / 30.0 if times is None else np.asarray(times, float)
    lowered = known & (opening < CLOSED_BELOW * neutral)
    seen = known & (opening >= HIDDEN_BELOW * neutral) & ~(lowered & _brief(lowered, times, BLINK_SECONDS))
    if not seen.any():
        return out
    ahead = known & ~lowered  # where the open eyes look most, not where the resting frames do
    ahead = ahead if ahead.any() else seen
    delta = offsets - np.median(offsets[ahead], axis=0)
    angles = np.degrees(np.arcsin(np.clip(WIDTH_IN_RADII * delta, -1.0, 1.0)))
    if pose is not None:
        angles = angles - np.asarray(parallax, float) * (pose - np.median(pose[ahead], axis=0))
    t = np.arange(len(offsets))
    for k in range(2):
        out[:, k] = np.interp(t, t[seen], angles[seen, k])
    return out
