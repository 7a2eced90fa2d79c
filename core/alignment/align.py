"""Five-point similarity alignment, as the paper aligns faces.

The five points are the two eye centres (mean of each eye's six iBUG points), the nose
tip (30) and the mouth corners (48, 54). A least-squares similarity (scale, in-plane
rotation, translation) maps them onto a canonical template; the same transform
normalises all 68 points for the landmark estimator and cuts the aligned crop for the
image path. The rotation it removes is the head's roll, given back by :func:`roll_degrees`.

The template is the built-in rig's neutral, frontal face seen by its own camera,
normalised so that the eye centres are one unit apart, level, and the five points'
centroid is the origin (x right, y down, like image pixels).

Every function works on numpy arrays and on torch tensors alike (torch for the estimator's
graph, which exports to ONNX), on any leading batch shape.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..util.tensors import loaded_torch

BROW_POINTS = tuple(range(17, 27))  # iBUG: over the subject's right eye (17-21), then the left
RIGHT_EYE = tuple(range(36, 42))  # the subject's right eye: image left in a frontal view
LEFT_EYE = tuple(range(42, 48))
NOSE_TIP = 30
MOUTH_CORNERS = (48, 54)
FIVE_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_right", "mouth_left")


def _stack(arrays, axis):
    if isinstance(arrays[0], np.ndarray):
        return np.stack(arrays, axis)
    return loaded_torch().stack(arrays, axis)


def five_points(landmarks):
    """(..., 68, 2) iBUG landmarks -> (..., 5, 2) eye centres, nose tip, mouth corners."""
    return _stack([landmarks[..., RIGHT_EYE[0]:RIGHT_EYE[-1] + 1, :].mean(-2),
                   landmarks[..., LEFT_EYE[0]:LEFT_EYE[-1] + 1, :].mean(-2),
                   landmarks[..., NOSE_TIP, :],
                   landmarks[..., MOUTH_CORNERS[0], :],
                   landmarks[..., MOUTH_CORNERS[1], :]], -2)


def similarity(src, dst):
    """Least-squares similarity mapping points ``src`` (..., K, 2) onto ``dst`` (K, 2) or (..., K, 2).

    Returns ``(a, b, tx, ty)``, each of shape (...), with ``dst ~ [[a, -b], [b, a]] @ src + t``.
    Closed form (2-D Umeyama without reflection): no SVD, so it exports to ONNX.
    """
    src_c = src - src.mean(-2)[..., None, :]
    dst_mean = dst.mean(-2)
    dst_c = dst - dst_mean[..., None, :]
    sx, sy = src_c[..., 0], src_c[..., 1]
    dx, dy = dst_c[..., 0], dst_c[..., 1]
    norm = (sx * sx + sy * sy).sum(-1)
    a = (sx * dx + sy * dy).sum(-1) / norm
    b = (sx * dy - sy * dx).sum(-1) / norm
    src_mean = src.mean(-2)
    tx = dst_mean[..., 0] - (a * src_mean[..., 0] - b * src_mean[..., 1])
    ty = dst_mean[..., 1] - (b * src_mean[..., 0] + a * src_mean[..., 1])
    return a, b, tx, ty


def apply_similarity(transform, points):
    """Apply ``(a, b, tx, ty)`` to points (..., K, 2)."""
    a, b, tx, ty = (t[..., None] for t in transform)
    x, y = points[..., 0], points[..., 1]
    return _stack([a * x - b * y + tx, b * x + a * y + ty], -1)


def invert_similarity(transform):
    a, b, tx, ty = transform
    det = a * a + b * b
    ia, ib = a / det, -b / det
    return ia, ib, -(ia * tx - ib * ty), -(ib * tx + ia * ty)


def roll_degrees(transform):
    """The head's roll removed by an image -> template transform, in degrees (layout sign:
    positive tilts the head toward the subject's left shoulder)."""
    a, b = transform[0], transform[1]
    atan2 = np.arctan2 if isinstance(a, np.ndarray) or np.isscalar(a) else loaded_torch().atan2
    # a head rolled toward its left shoulder turns the eye line clockwise on screen (y down);
    # undoing it is a counter-clockwise (negative) rotation in image coordinates
    return -atan2(b, a) * (180.0 / math.pi)


@lru_cache(maxsize=4)
def template(rig_path: str | None = None) -> np.ndarray:
    """(5, 2) canonical five points: the rig's neutral frontal face, eyes one unit apart."""
    from ..rig.layout import LAYOUT
    from ..rig.load import load_rig

    rig = load_rig(rig_path)
    five = five_points(rig.landmarks_2d(LAYOUT.neutral(1))[0])
    iod = float(np.linalg.norm(five[1] - five[0]))
    out = (five - five.mean(0)) / iod
    out.setflags(write=False)
    return out


@lru_cache(maxsize=4)
def template_landmarks(rig_path: str | None = None) -> np.ndarray:
    """(68, 2) the rig's neutral frontal face, aligned (template units): the face the actor's
    expression is carried onto (:func:`core.tracking.actor.on_rig_face`)."""
    from ..rig.layout import LAYOUT
    from ..rig.load import load_rig

    out = align(load_rig(rig_path).landmarks_2d(LAYOUT.neutral(1))[0], template(rig_path))[0]
    out.setflags(write=False)
    return out


def align(landmarks, reference=None):
    """Normalise (..., 68, 2) landmarks: returns ``(aligned, transform)`` where ``aligned`` are
    the points in template units and ``transform`` maps image pixels to them."""
    if reference is None:
        reference = template()
    if not isinstance(landmarks, np.ndarray):
        reference = landmarks.new_tensor(reference)
    transform = similarity(five_points(landmarks), reference)
    return apply_similarity(transform, landmarks), transform


def crop_transform(landmarks, size: int, eye_distance: float = 0.4):
    """Image -> crop transform putting the template at the centre of a ``size`` px square,
    the eyes ``eye_distance * size`` apart. ``landmarks`` (..., 68, 2): numpy (one face or a
    batch) or a torch tensor (differentiable); returns ``(a, b, tx, ty)`` of shape (...)."""
    if isinstance(landmarks, np.ndarray) or not hasattr(landmarks, "new_tensor"):
        landmarks, reference = np.asarray(landmarks, float), template()
    else:
        reference = landmarks.new_tensor(template())
    a, b, tx, ty = similarity(five_points(landmarks), reference)
    k = eye_distance * size
    return a * k, b * k, tx * k + size / 2.0, ty * k + size / 2.0


def aligned_crop(image: np.ndarray, landmarks: np.ndarray, size: int, eye_distance: float = 0.4):
    """Cut the aligned face crop of the image path; returns ``(crop, transform)``."""
    import cv2

    t = crop_transform(landmarks, size, eye_distance)
    a, b, tx, ty = (float(v) for v in t)
    matrix = np.array([[a, -b, tx], [b, a, ty]], np.float64)
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crop, t
