"""Face-parsing labels (19 CelebAMask-HQ classes) without the network: from a rig render's region
mask (:func:`rig_mask_to_classes`), approximate ones from 68 landmarks of a real frame
(:func:`landmark_mask`), and colours for pictures (:func:`colorize`). numpy and OpenCV.
"""
from __future__ import annotations

import cv2
import numpy as np

# the public model's class order (CelebAMask-HQ); l_/r_ are the subject's left / right
CLASSES = ("background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear",
           "ear_r", "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat")
CLASS_INDEX = {name: i for i, name in enumerate(CLASSES)}


# --- labels --------------------------------------------------------------------------------
# rig region -> class name; a pair (subject's left, right) or (upper, lower) is split by landmarks
RIG_REGION_CLASSES = {
    "skin": "skin", "lids": "skin", "hair": "hair", "nose": "nose",
    "brows": ("l_brow", "r_brow"),
    "lashes": ("l_eye", "r_eye"), "sclera": ("l_eye", "r_eye"),
    "iris": ("l_eye", "r_eye"), "pupil": ("l_eye", "r_eye"),
    "lips": ("u_lip", "l_lip"),
    "mouth_interior": "mouth", "teeth": "mouth",
}
SHIFT = 4  # cv2 sub-pixel bits


def _cv(points) -> np.ndarray:
    """Landmarks (x right, y down, (0, 0) the top-left pixel's corner) -> cv2 fixed-point
    coordinates (cv2 puts pixel centres on integers)."""
    return np.round((np.asarray(points, np.float64) - 0.5) * (1 << SHIFT)).astype(np.int32)


def _check_landmarks(landmarks68) -> np.ndarray:
    lm = np.asarray(landmarks68, np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise ValueError(f"landmarks must be finite (68, 2) pixels, got shape {lm.shape}")
    return lm


def left_side(landmarks68, shape) -> np.ndarray:
    """(H, W) bool: pixels on the subject's left of the nose midline (the line through
    landmarks 27 and 33), the side the left eye (42-47) lies on."""
    lm = _check_landmarks(landmarks68)
    top, d = lm[27], lm[33] - lm[27]
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]

    def side(x, y):
        return d[0] * (y - top[1]) - d[1] * (x - top[0])

    ref = side(*lm[42:48].mean(0)) - side(*lm[36:42].mean(0))
    if abs(ref) < 1e-9:  # degenerate landmarks: fall back to image x
        return (xs + 0.5) > top[0]
    return side(xs + 0.5, ys + 0.5) * np.sign(ref) > 0


def upper_side(landmarks68, shape) -> np.ndarray:
    """(H, W) bool: pixels above the mouth line, the polyline through the inner-lip midpoints
    (60, (61+67)/2, (62+66)/2, (63+65)/2, 64) extended along the mouth axis past the corners;
    "above" is the side of the upper lip (51)."""
    lm = _check_landmarks(landmarks68)
    line = np.array([lm[60], (lm[61] + lm[67]) / 2, (lm[62] + lm[66]) / 2, (lm[63] + lm[65]) / 2, lm[64]])
    axis = line[-1] - line[0]
    if np.linalg.norm(axis) < 1e-9:
        axis = lm[54] - lm[48]
    axis = axis / max(np.linalg.norm(axis), 1e-9)
    up = np.array([axis[1], -axis[0]])
    if np.dot(up, lm[51] - lm[57]) < 0:
        up = -up
    far = 4.0 * float(max(shape[:2]) + np.abs(lm).max())
    poly = np.concatenate([[line[0] - far * axis], line, [line[-1] + far * axis],
                           [line[-1] + far * axis + far * up], [line[0] - far * axis + far * up]])
    out = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(out, [_cv(poly)], 1, lineType=cv2.LINE_8, shift=SHIFT)
    return out.astype(bool)


def rig_mask_to_classes(mask, landmarks68, regions, background: int = 255) -> np.ndarray:
    """A rig render's region mask (H, W) -> 19-class labels (H, W) uint8.

    ``mask`` labels index ``regions`` (the rig's region names, e.g. the pairs manifest's
    "regions"), ``background`` elsewhere; ``landmarks68`` are the render's iBUG points in pixels.
    Skin and lids -> skin, hair -> hair, nose -> nose, mouth interior and teeth -> mouth; brows
    and the eye parts (lashes, sclera, iris, pupil) are split into the subject's left / right by
    the nose midline (:func:`left_side`), lips into upper / lower by the mouth line
    (:func:`upper_side`).
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    regions = list(regions)
    unknown = [r for r in regions if r not in RIG_REGION_CLASSES]
    if unknown:
        raise ValueError(f"rig region(s) {unknown} have no face-parsing class; known: {sorted(RIG_REGION_CLASSES)}")
    bad = (mask != background) & (mask >= len(regions))
    if bad.any():
        raise ValueError(f"mask labels {sorted(np.unique(mask[bad]).tolist())[:5]} are no region "
                         f"(0..{len(regions) - 1}) nor background {background}")
    out = np.zeros(mask.shape, np.uint8)
    left = upper = None
    for i, name in enumerate(regions):
        sel = mask == i
        if not sel.any():
            continue
        target = RIG_REGION_CLASSES[name]
        if isinstance(target, str):
            out[sel] = CLASS_INDEX[target]
            continue
        if name == "lips":
            upper = upper_side(landmarks68, mask.shape) if upper is None else upper
            first = upper
        else:
            left = left_side(landmarks68, mask.shape) if left is None else left
            first = left
        out[sel & first] = CLASS_INDEX[target[0]]
        out[sel & ~first] = CLASS_INDEX[target[1]]
    return out


def landmark_mask(landmarks68, shape, forehead: float = 0.3) -> np.ndarray:
    """Approximate 19-class labels (H, W) uint8 drawn from 68 landmarks of a real frame.

    Only what the landmarks outline: the face (skin) is the hull of the jaw (0-16) and the brows
    (17-26) moved up by ``forehead`` times the brow-to-eye distance, so most of the forehead,
    the ears, hair and neck stay background; brows are thick polylines (0.08 of the
    inter-ocular distance), eyes the 36-41 / 42-47 polygons, the nose a slightly widened hull
    of 27-35, the lips the polygons between the outer and inner lip contours and the mouth the
    inner-lip polygon 60-67. Later parts are drawn over earlier ones (smaller parts win).
    """
    lm = _check_landmarks(landmarks68)
    out = np.zeros(tuple(shape[:2]), np.uint8)
    iod = max(float(np.linalg.norm(lm[45] - lm[36])), 1.0)
    eyes = lm[36:48].mean(0)
    brows = lm[17:27]
    lift = forehead * (brows.mean(0) - eyes)
    face = np.concatenate([lm[0:17], brows + lift])
    cv2.fillConvexPoly(out, cv2.convexHull(_cv(face)), CLASS_INDEX["skin"], cv2.LINE_8, SHIFT)

    axis = lm[33] - lm[27]
    axis = axis / max(np.linalg.norm(axis), 1e-9)
    across = np.array([axis[1], -axis[0]])
    nose = lm[27:36]
    centre = nose.mean(0)
    rel = nose - centre
    widened = centre + np.outer(rel @ axis, axis) + 1.3 * np.outer(rel @ across, across)
    bridge = np.concatenate([lm[[27, 30]] + 0.06 * iod * across, lm[[27, 30]] - 0.06 * iod * across])
    cv2.fillConvexPoly(out, cv2.convexHull(_cv(np.concatenate([widened, bridge]))),
                       CLASS_INDEX["nose"], cv2.LINE_8, SHIFT)

    thick = max(1, int(round(0.08 * iod)))
    for idx, name in ((range(17, 22), "r_brow"), (range(22, 27), "l_brow")):
        cv2.polylines(out, [_cv(lm[list(idx)])], False, CLASS_INDEX[name], thick, cv2.LINE_8, SHIFT)
    for idx, name in ((range(36, 42), "r_eye"), (range(42, 48), "l_eye")):
        cv2.fillPoly(out, [_cv(lm[list(idx)])], CLASS_INDEX[name], cv2.LINE_8, SHIFT)
    upper_lip = list(range(48, 55)) + [64, 63, 62, 61, 60]
    lower_lip = [54, 55, 56, 57, 58, 59, 48, 60, 67, 66, 65, 64]
    cv2.fillPoly(out, [_cv(lm[upper_lip])], CLASS_INDEX["u_lip"], cv2.LINE_8, SHIFT)
    cv2.fillPoly(out, [_cv(lm[lower_lip])], CLASS_INDEX["l_lip"], cv2.LINE_8, SHIFT)
    cv2.fillPoly(out, [_cv(lm[60:68])], CLASS_INDEX["mouth"], cv2.LINE_8, SHIFT)
    return out


PALETTE = np.array([
    [0, 0, 0], [204, 153, 119], [255, 140, 0], [160, 60, 255], [0, 90, 255], [0, 230, 230],
    [255, 255, 255], [255, 153, 51], [255, 204, 0], [255, 0, 255], [0, 200, 0], [255, 255, 120],
    [230, 0, 0], [140, 0, 60], [120, 120, 200], [80, 0, 160], [60, 60, 60], [90, 50, 20], [0, 80, 80],
], np.uint8)  # RGB, one row per class


def colorize(labels) -> np.ndarray:
    """Labels (..., H, W) -> RGB uint8 (..., H, W, 3) with the fixed :data:`PALETTE`."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= len(PALETTE)):
        raise ValueError(f"labels must be in 0..{len(PALETTE) - 1}")
    return PALETTE[labels.astype(np.intp)]
