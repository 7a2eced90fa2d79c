"""Fit one clip through the rig: the actor's face, and every frame's expression at full strength.

The landmark estimator is a regressor: where a face is ambiguous it answers near the average,
so on real faces its AUs come out weaker than the landmarks show. A video shows one actor, so
after the estimator has run, this module fits the clip through the rig itself (numpy, no torch:
it runs inside Blender too):

* unknowns: per frame the head's yaw and pitch and every AU; the identity sliders are the
  median of the estimator's over the clip (one face for the whole clip). Roll and the brow style
  stay the estimator's (the 2-D alignment absorbs in-plane rotation; the style is a one-hot choice);
* residual: the rig's projected landmarks against the detected ones, aligned per frame by a
  least-squares similarity, in units of the rig's inter-ocular distance; the jaw line counts
  less (:data:`POINT_SIGMA`), since the detector places it least reliably;
* prior: the estimator's own values, each group with a scale (:data:`PRIOR_SIGMA`), so where the
  landmarks say little (AU6 and AU7 lie almost in the span of identity and pose) the estimate
  stays the estimator's, and where they move, the fit follows them to full strength;
* solver: a few Gauss-Newton rounds with AU bounds enforced by projection. The Jacobians come from
  a linear model of the face (finite differences around the clip's current face, once per
  round) and of the head (finite differences of yaw and pitch per frame); residuals always come
  from the exact rig.

Cost: (2 + 1) rig evaluations per frame and round, plus ~100 per round for the linear model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..rig.layout import LAYOUT, ParameterLayout

# landmark noise in inter-ocular units: the jaw line (iBUG 0-16) is the detector's least stable part
POINT_SIGMA = np.r_[np.full(17, 0.08), np.full(51, 0.03)]
# how far the fit may move from the estimator's value before the prior weighs as much as one
# landmark off by its noise: degrees for the pose, intensity (0..1) for AUs
PRIOR_SIGMA = {"pose": 5.0, "au": 0.35}
STEP = {"pose": 0.25, "au": 1e-3}  # finite-difference steps
# channels whose Jacobian is taken per frame on the exact rig (rotations about the eye)
EXACT_CHANNELS = ("AU05", "AU07", "AU43_L", "AU43_R")


@dataclass(frozen=True)
class FitConfig:
    rounds: int = 3


def _procrustes(src: np.ndarray, dst: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``src`` (N, K, 2) mapped onto ``dst`` (N, K, 2) by each row's weighted least-squares
    similarity (scale, rotation, translation)."""
    w = w / w.sum()
    ms = np.einsum("k,nkc->nc", w, src)
    md = np.einsum("k,nkc->nc", w, dst)
    s, d = src - ms[:, None], dst - md[:, None]
    a = np.einsum("k,nk->n", w, s[..., 0] * d[..., 0] + s[..., 1] * d[..., 1])
    b = np.einsum("k,nk->n", w, s[..., 0] * d[..., 1] - s[..., 1] * d[..., 0])
    norm = np.einsum("k,nk->n", w, (s ** 2).sum(-1))
    a, b = a / norm, b / norm  # scale * (cos, sin)
    x = a[:, None] * s[..., 0] - b[:, None] * s[..., 1]
    y = b[:, None] * s[..., 0] + a[:, None] * s[..., 1]
    return np.stack([x, y], -1) + md[:, None]


def _without_similarity(columns: np.ndarray, points: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``columns`` (N, 136, K) of point motions less their (``w``-weighted) least-squares part that a
    2-D similarity of ``points`` (N, 68, 2) makes: translation, scale and rotation."""
    c = points - np.einsum("k,nkc->nc", w[::2], points)[:, None] / w[::2].sum()
    ones, zeros = np.ones(c.shape[:2]), np.zeros(c.shape[:2])
    basis = np.stack([np.stack([ones, zeros], -1), np.stack([zeros, ones], -1), c,
                      np.stack([-c[..., 1], c[..., 0]], -1)], -1).reshape(len(points), -1, 4)  # (N, 136, 4)
    bw = basis * w[None, :, None]
    coef = np.linalg.solve(np.einsum("nik,nil->nkl", bw, basis), np.einsum("nik,nil->nkl", bw, columns))
    return columns - basis @ coef


def fit_clip(rig, landmarks: np.ndarray, init: np.ndarray, valid: np.ndarray | None = None,
             reference: int | None = None, config: FitConfig = FitConfig(),
             layout: ParameterLayout = LAYOUT) -> tuple[np.ndarray, dict]:
    """Fitted parameters (N, P) for detected ``landmarks`` (N, 68, 2, pixels of any video) and the
    estimator's ``init`` (N, P); rows where ``valid`` is False (or ``init`` is NaN) come back as
    they were. Returns ``(params, report)`` with the landmark error before and after (IOD units)."""
    init = np.asarray(init, float)
    out = init.copy()
    valid = np.isfinite(init).all(1) & np.isfinite(landmarks).all((1, 2)) if valid is None else \
        np.asarray(valid, bool) & np.isfinite(init).all(1) & np.isfinite(landmarks).all((1, 2))
    rows = np.flatnonzero(valid)
    if not len(rows):
        return out, {"frames": 0}
    det = np.asarray(landmarks, float)[rows]
    x = init[rows].copy()
    pose, au, ident = (layout.group_slice(g) for g in ("pose", "au", "identity"))
    free = np.r_[pose.start + np.array([0, 1]), np.arange(au.start, au.stop)]  # yaw, pitch, AUs
    prior = x.copy()
    sig = np.r_[np.full(2, PRIOR_SIGMA["pose"]), np.full(au.stop - au.start, PRIOR_SIGMA["au"])]
    step = np.r_[np.full(2, STEP["pose"]), np.full(au.stop - au.start, STEP["au"])]
    exact = [k for k, c in enumerate(free) if layout.names[c] in EXACT_CHANNELS]
    face = np.median(x[:, ident], 0)
    x[:, ident] = face
    lo, hi = layout.lo, layout.hi

    neutral = layout.neutral()
    ref = rig.landmarks_2d(neutral)[0]
    iod = float(np.linalg.norm(ref[36:42].mean(0) - ref[42:48].mean(0)))
    wpt = 1.0 / POINT_SIGMA ** 2
    weights_2d = np.repeat(wpt, 2)  # (136,)

    def raw_residual(params, points):
        """(aligned detections - model) per row, and the model's points, in IOD units."""
        model = rig.landmarks_2d(params) / iod
        return (_procrustes(points / iod, model, wpt) - model).reshape(len(params), -1), model

    # what the rig cannot show of this actor's face (shape, the detector's habits) is in every
    # frame alike: measured on the neutral reference frame (its AUs zero) and taken out
    offset = 0.0
    if reference is not None and valid[reference]:
        at = init[reference].copy()
        at[au] = 0.0
        at[ident] = face
        offset = raw_residual(at[None], np.asarray(landmarks, float)[reference][None])[0][0]

    def residual(params):
        res, model = raw_residual(params, det)
        return res - offset, model

    def error(res):
        return float(np.sqrt(np.mean((res.reshape(len(res), 68, 2) ** 2).sum(-1))))

    r, model_now = residual(x)
    report = {"frames": int(len(rows)), "error_before": error(r)}
    n, k = len(rows), len(free)
    for _ in range(config.rounds):
        # per-frame Jacobian: finite differences of yaw and pitch on the exact rig; the AUs' from the
        # linear face model at this round's median expression, seen frontally
        jac = np.empty((n, 136, k))
        for j in range(2):
            moved = x.copy()
            moved[:, free[j]] += step[j]
            jac[:, :, j] = (residual(moved)[0] - r) / step[j]
        base = np.median(x, 0)
        base[pose] = 0.0
        probes = np.repeat(base[None], au.stop - au.start + 1, 0)
        probes[1:, au] += np.eye(au.stop - au.start) * step[2]
        face_pts = rig.landmarks_2d(probes)
        dface = (face_pts[1:] - face_pts[:1]) / step[2] / iod  # (A, 68, 2) per AU, frontal
        # aligned - model: the model moves, and the alignment follows the part of that motion that
        # a similarity can make (variable projection), so only the rest changes the residual
        jac[:, :, 2:] = -_without_similarity(dface.reshape(len(dface), -1).T[None], model_now, weights_2d)
        for j in exact:  # the lids turn about the eye: far from linear, so per frame on the exact rig
            moved = x.copy()
            moved[:, free[j]] += step[j] * np.where(x[:, free[j]] + step[j] > hi[free[j]], -1.0, 1.0)
            jac[:, :, j] = (residual(moved)[0] - r) / (moved[:, free[j]] - x[:, free[j]])[:, None]
        # one Gauss-Newton step per frame with the prior, projected onto the AU bounds
        jw = jac * weights_2d[None, :, None]
        h = np.einsum("nik,nil->nkl", jw, jac) + np.diag(1.0 / sig ** 2)[None]
        g = np.einsum("nik,ni->nk", jw, r) + (x[:, free] - prior[:, free]) / sig ** 2
        delta = -np.linalg.solve(h, g[..., None])[..., 0]
        x[:, free] = np.clip(x[:, free] + delta, lo[free], hi[free])
        r, model_now = residual(x)
    report["error_after"] = error(r)
    out[rows] = x
    return out, report
