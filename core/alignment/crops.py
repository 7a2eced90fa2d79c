"""Aligned face crops cut from a frame (numpy and OpenCV; the transform also on torch tensors).

A crop is a ``CROP_SIZE`` px square in which the five-point similarity of :mod:`core.alignment.align`
puts the rig's canonical face at the centre, eyes level and ``EYE_DISTANCE * size`` apart
(0.3 of the crop matches the scale of the rig's faces in a 128 px render, so generated images
need little magnification). The alignment removes the head's roll, kept in ``roll``.

Pixel convention: continuous coordinates, (0, 0) the top-left *corner* of the image (pixel i
covers [i, i + 1)), as the rig's projection and the landmark backends use. A transform
``(a, b, tx, ty)`` maps image points to crop points: ``crop = [[a, -b], [b, a]] @ image + t``.
OpenCV's ``warpAffine`` puts pixel centres on integers, so its matrix gets a half-pixel
correction; ``warp_to_crop`` (core/training/chain.py, torch, differentiable) samples the same
points with ``grid_sample``.
"""
from __future__ import annotations

import numpy as np

from . import align

CROP_SIZE = 128
EYE_DISTANCE = 0.3


# --- transforms --------------------------------------------------------------------------------
def crop_transform(landmarks68, size: int = CROP_SIZE, eye_distance: float = EYE_DISTANCE):
    """Image -> crop similarity ``(a, b, tx, ty)`` for (..., 68, 2) landmarks in pixels: numpy (one
    face or a batch; float64) or torch (batched, differentiable)."""
    return align.crop_transform(landmarks68, size, eye_distance)


def transform_points(transform, points):
    """Apply an image -> crop transform to points (..., K, 2) (numpy or torch)."""
    if not hasattr(points, "new_tensor"):
        transform = tuple(np.asarray(v, np.float64) for v in transform)
        points = np.asarray(points, np.float64)
    return align.apply_similarity(transform, points)


def _scalars(transform) -> tuple[float, float, float, float]:
    values = [np.asarray(v, np.float64).reshape(-1) for v in transform]
    if len(values) != 4 or any(v.size != 1 for v in values):
        raise ValueError("expected the transform of one face: four scalars (a, b, tx, ty)")
    return tuple(float(v[0]) for v in values)


def cv_matrix(transform) -> np.ndarray:
    """The 2x3 ``cv2.warpAffine`` matrix of a transform in continuous (corner-origin) coordinates:
    ``idx_dst = A idx_src + A (0.5, 0.5) + t - (0.5, 0.5)``."""
    a, b, tx, ty = _scalars(transform)
    m = np.array([[a, -b, tx], [b, a, ty]], np.float64)
    m[:, 2] += m[:, :2] @ [0.5, 0.5] - 0.5
    return m


def _resolve(landmarks68, size, eye_distance, transform):
    if transform is None:
        if landmarks68 is None:
            raise ValueError("give the face's landmarks or a transform")
        lm = np.asarray(landmarks68, np.float64)
        if lm.shape != (68, 2) or not np.isfinite(lm).all():
            raise ValueError(f"landmarks must be finite (68, 2) pixels, got shape {lm.shape}")
        transform = crop_transform(lm, size, eye_distance)
    return tuple(float(v) for v in _scalars(transform))


def crop_image(image_rgb, landmarks68=None, size: int = CROP_SIZE, eye_distance: float = EYE_DISTANCE,
               transform=None):
    """The aligned ``size`` x ``size`` crop of an (H, W, 3) uint8 image (bilinear, border pixels
    repeated); returns ``(crop, transform)``. ``transform``: use this one instead of the landmarks'."""
    import cv2

    image = np.asarray(image_rgb)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    t = _resolve(landmarks68, size, eye_distance, transform)
    crop = cv2.warpAffine(image, cv_matrix(t), (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return crop, t


def crop_labels(labels, landmarks68=None, size: int = CROP_SIZE, eye_distance: float = EYE_DISTANCE,
                transform=None):
    """The aligned crop of an (H, W) label map (nearest, background 0 outside); ``(crop, transform)``."""
    import cv2

    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"expected an (H, W) label map, got shape {labels.shape}")
    t = _resolve(landmarks68, size, eye_distance, transform)
    crop = cv2.warpAffine(labels.astype(np.uint8), cv_matrix(t), (size, size), flags=cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return crop, t
