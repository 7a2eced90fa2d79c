"""The brows from the image: each half brow found again by its look, in the eyes' frame.

A face mesh holds the brows close to its prior: on a real photo whose brows were moved alone, and
on the rig's renders, its brow points follow a half to a third of the motion, and spread a
one-sided raise over both brows. The brows themselves are plain to see. So the tracker keeps,
for every frame, the region above the eyes warped into the eyes' frame (a similarity that puts
the two eyes' corner midpoints at fixed places: the eyes' corners do not move with the brows,
and scale, roll and position drop out), as a small grey image. Over the take, the median of
those images is the brows' typical look. For each half brow (inner, outer; 4 patches) the
typical patch is found again in each frame's image by normalised cross-correlation (lighting's
gain and offset do not count), within a search range, with a sub-pixel peak. The half brow's
points then sit at their typical height (the mesh's median there) moved by that shift's vertical
part; along the eye line they stay where the mesh puts them (along a brow a sideways shift is
hardly determined, the aperture problem, and behind a fringe the brow heads' sideways shifts read
blinks as knitted brows: `liveportrait_d9`, looked at). Where the match is poor (hair, a hand,
the brow out of view) the mesh's points stay.
"""
from __future__ import annotations

import numpy as np

from ..alignment.align import BROW_POINTS, LEFT_EYE, RIGHT_EYE

BROWS = (BROW_POINTS[:5], BROW_POINTS[5:])  # iBUG: over the subject's right eye (image left), left eye
# half brows: (brow points, weight of the inner patch for each); the inner end is 21 and 22
HALVES = {17: 0.0, 18: 0.0, 19: 0.5, 20: 1.0, 21: 1.0, 22: 1.0, 23: 1.0, 24: 0.5, 25: 0.0, 26: 0.0}
SCALE = 40.0  # canonical pixels per inter-ocular distance
SPAN_X = 1.15  # the canonical image spans +-SPAN_X inter-ocular distances across
SPAN_Y = (-0.05, 0.85)  # and these heights above the eyes' line
PATCH = (0.36, 0.22)  # a half brow's patch: width, height (inter-ocular distances)
SEARCH = (0.08, 0.15)  # the largest shift looked for: across, up/down
LID_MARGIN = 0.04  # patches and their search keep this far above the upper lid's typical top
MIN_PATCH = 0.1  # the shortest patch (inter-ocular distances)
MIN_MATCH = 0.6  # normalised cross-correlation below which the mesh's points stay
SIZE = (int(round(2 * SPAN_X * SCALE)), int(round((SPAN_Y[1] - SPAN_Y[0]) * SCALE)))  # (width, height)


def _eye_centres(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The subject's right and left eye: the midpoints of their corners (iBUG 36/39, 42/45)."""
    return (lm[RIGHT_EYE[0]] + lm[RIGHT_EYE[3]]) / 2, (lm[LEFT_EYE[0]] + lm[LEFT_EYE[3]]) / 2


def to_canonical(landmarks: np.ndarray) -> np.ndarray:
    """(2, 3) affine map from image pixels to the canonical image of ``landmarks``' eyes."""
    right, left = _eye_centres(np.asarray(landmarks, float))
    d = left - right
    iod = float(np.hypot(*d))
    c, s = d / iod  # the eye line's direction in the image
    k = SCALE / iod
    # image -> eye frame (x along the eye line, y up), then to canonical pixels (x right, row down)
    rot = np.array([[c, s], [s, -c]]) * k  # rows: along, up (image y points down, so up = (s, -c))
    mid = (left + right) / 2
    offset = np.array([SPAN_X * SCALE, SPAN_Y[1] * SCALE])
    a = np.array([[1.0, 0.0], [0.0, -1.0]]) @ rot  # canonical row grows downward
    return np.hstack([a, (offset - a @ mid)[:, None]])


def brow_image(image_bgr: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
    """The region above the eyes in the eyes' frame: (height, width) uint8 grey (:data:`SIZE`), or
    None when the eyes cannot be placed."""
    import cv2

    lm = np.asarray(landmarks, float)
    right, left = _eye_centres(lm)
    if not (np.isfinite(right).all() and np.isfinite(left).all()) or np.hypot(*(left - right)) < 4:
        return None
    m = to_canonical(lm)
    small = cv2.warpAffine(image_bgr, m, SIZE, flags=cv2.INTER_AREA if m[0, 0] ** 2 + m[0, 1] ** 2 < 1
                           else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small  # grey only what is kept


def _canonical_points(landmarks: np.ndarray) -> np.ndarray:
    lm = np.asarray(landmarks, float)
    m = to_canonical(lm)
    return lm @ m[:, :2].T + m[:, 2]


def _patches(typical: np.ndarray):
    """Per half brow: (its points, the patch's box (x0, y0, x1, y1) and the lowest row its search
    may reach, in canonical pixels). Patch and search stay above the upper lid (its typical top,
    less :data:`LID_MARGIN`), so a blink or a look down is not taken for the brow's motion: a low
    brow gets a shorter patch, then a shorter search downward."""
    out = []
    w, h = PATCH[0] * SCALE / 2, PATCH[1] * SCALE / 2
    for brow, lids in zip(BROWS, ((37, 38), (43, 44))):
        floor = typical[list(lids), 1].min() - LID_MARGIN * SCALE  # rows grow downward
        inner = [k for k in brow if HALVES[k] >= 0.5]
        outer = [k for k in brow if HALVES[k] <= 0.5]
        for half in (inner, outer):
            cx, cy = typical[half].mean(0)
            y1 = min(cy + h, max(floor, cy - h + MIN_PATCH * SCALE))
            out.append((half, np.array([cx - w, cy - h, cx + w, y1, floor])))
    return out


def patch_shifts(template: np.ndarray, images: np.ndarray, boxes) -> tuple[np.ndarray, np.ndarray]:
    """For each box (x0, y0, x1, y1, lowest row) of ``template`` (H, W) found again in each of
    ``images`` (N, H, W): the shift (N, boxes, 2; canonical pixels, x right and y down) and the
    match's normalised cross-correlation (N, boxes; NaN where the box or its search range leaves
    the image, or nothing is left to search)."""
    import cv2

    sx, sy = int(round(SEARCH[0] * SCALE)), int(round(SEARCH[1] * SCALE))
    n = len(images)
    shift = np.full((n, len(boxes), 2), np.nan)
    score = np.full((n, len(boxes)), np.nan)
    height, width = template.shape
    for b, box in enumerate(boxes):
        x0, y0, x1, y1 = np.round(box[:4]).astype(int)
        down = min(sy, int(np.floor(box[4])) - y1)  # the search downward stops above the lid
        if x0 - sx < 0 or y0 - sy < 0 or x1 + sx > width or y1 + down > height or down < 1:
            continue
        patch = template[y0:y1, x0:x1].astype(np.float32)
        if patch.std() < 1.0:  # nothing to find: a flat patch
            continue
        for i in range(n):
            region = images[i, y0 - sy:y1 + down, x0 - sx:x1 + sx].astype(np.float32)
            r = cv2.matchTemplate(region, patch, cv2.TM_CCOEFF_NORMED)
            _, peak, _, (px, py) = cv2.minMaxLoc(r)
            d = []
            for pos, line in ((px, r[py]), (py, r[:, px])):
                frac = 0.0
                if 0 < pos < len(line) - 1:
                    curve = line[pos - 1] - 2 * line[pos] + line[pos + 1]
                    if curve < 0:
                        frac = 0.5 * (line[pos - 1] - line[pos + 1]) / curve
                d.append(pos + frac)
            shift[i, b] = d[0] - sx, d[1] - sy
            score[i, b] = peak
    return shift, score


def refine_brows(landmarks: np.ndarray, images, rows=None, template_frames: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """(N, 68, 2) landmarks with the brow points placed by the brows' look (:func:`brow_image` of
    each frame in ``images``, None where there is none), against the typical look of ``rows`` (all
    frames with landmarks and an image by default; at most ``template_frames`` of them, evenly
    spread, make the median), and the (N, 4) match quality per half brow (NaN where not read)."""
    lm = np.array(landmarks, float, copy=True)
    ok = np.array([im is not None for im in images]) & np.isfinite(lm).all((1, 2))
    quality = np.full((len(lm), 4), np.nan)
    pool = np.nonzero(ok)[0] if rows is None else np.asarray(rows, int)[ok[np.asarray(rows, int)]]
    if not len(pool):
        return lm, quality
    pool = pool[np.linspace(0, len(pool) - 1, min(len(pool), template_frames)).round().astype(int)]
    template = np.median(np.stack([images[i] for i in pool]).astype(np.float32), 0)
    typical = np.median(np.stack([_canonical_points(lm[i]) for i in pool]), 0)
    patches = _patches(typical)
    frames = np.nonzero(ok)[0]
    shift, quality[frames] = patch_shifts(template, np.stack([images[i] for i in frames]), [b for _, b in patches])
    for i, frame in enumerate(frames):
        m = to_canonical(lm[frame])
        back = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
        mesh = _canonical_points(lm[frame])
        for brow, (inner, outer) in zip(BROWS, ((0, 1), (2, 3))):
            for k in brow:
                weights = {inner: HALVES[k], outer: 1.0 - HALVES[k]}
                found = {b: w for b, w in weights.items() if w > 0 and quality[frame, b] >= MIN_MATCH}
                if not found:
                    continue
                dy = sum(w * shift[i, b, 1] for b, w in found.items()) / sum(found.values())
                p = np.array([mesh[k, 0], typical[k, 1] + dy])  # across: the mesh's; height: the image's
                lm[frame, k] = back[:, :2] @ p + back[:, 2]
    return lm, quality
