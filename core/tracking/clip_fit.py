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
    bwt = np.swapaxes(bw, 1, 2)  # (N, 4, 136): matmul, not einsum (BLAS: ten times faster here)
    coef = np.linalg.solve(bwt @ basis, bwt @ columns)
    return columns - basis @ coef


WEIGHTS_2D = np.repeat(1.0 / POINT_SIGMA ** 2, 2)  # (136,) per coordinate of the 68 points


def _landmark_residual(rig, layout: ParameterLayout):
    """``(iod, residual)``: the rig's inter-ocular distance at neutral, and ``residual(params,
    points)`` giving (detections aligned onto the model - model) per row (N, 136) and the model's
    points (N, 68, 2), both in units of that distance."""
    ref = rig.landmarks_2d(layout.neutral())[0]
    iod = float(np.linalg.norm(ref[36:42].mean(0) - ref[42:48].mean(0)))
    wpt = WEIGHTS_2D[::2]

    def residual(params, points):
        model = rig.landmarks_2d(params) / iod
        return (_procrustes(points / iod, model, wpt) - model).reshape(len(params), -1), model

    return iod, residual


def detector_response(backend: str = "mediapipe", layout: ParameterLayout = LAYOUT) -> np.ndarray | None:
    """(A,) per AU channel, the share of its landmark motion ``backend``'s landmarks report, as
    fitted on the rig's renders (``core/data/detector_response.json``, made by
    ``tests/benchmarks/fit_detector_response.py``: 160 faces with two to four AUs each), at most 1;
    None for a backend never measured. The eyes' closing counts as followed whole: at full closure
    the detector's eyes close as far as the rig's (``bench_detector_on_rig.py``: 1.0-1.09), and the
    tracker's eyes come from the mesh's attention run, which closes them on real faces; the share
    fitted over partly closed lids (0.2) says how far it follows their small motions, which the
    estimator has already read as such."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "data" / "detector_response.json"
    data = json.loads(path.read_text())
    if data.get("backend") != backend or "au_response" not in data:
        return None
    shares = data["au_response"]
    out = np.array([min(1.0, float(shares.get(name, 1.0))) for name in layout.group_names("au")])
    out[[k for k, name in enumerate(layout.group_names("au")) if name.startswith(("AU43", "AU45"))]] = 1.0
    return out


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

    iod, raw_residual = _landmark_residual(rig, layout)

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
        jac[:, :, 2:] = -_without_similarity(dface.reshape(len(dface), -1).T[None], model_now, WEIGHTS_2D)
        for j in exact:  # the lids turn about the eye: far from linear, so per frame on the exact rig
            moved = x.copy()
            moved[:, free[j]] += step[j] * np.where(x[:, free[j]] + step[j] > hi[free[j]], -1.0, 1.0)
            jac[:, :, j] = (residual(moved)[0] - r) / (moved[:, free[j]] - x[:, free[j]])[:, None]
        # one Gauss-Newton step per frame with the prior, projected onto the AU bounds
        jw = jac * WEIGHTS_2D[None, :, None]
        jwt = np.swapaxes(jw, 1, 2)
        h = jwt @ jac + np.diag(1.0 / sig ** 2)[None]
        g = (jwt @ r[..., None])[..., 0] + (x[:, free] - prior[:, free]) / sig ** 2
        delta = -np.linalg.solve(h, g[..., None])[..., 0]
        x[:, free] = np.clip(x[:, free] + delta, lo[free], hi[free])
        r, model_now = residual(x)
    report["error_after"] = error(r)
    out[rows] = x
    return out, report


# --- the actor's range of motion ------------------------------------------------------------
# how far an actor's range may differ from the estimator's (a gain per AU channel), and how
# strongly it is held at its prior (the profile's range, or 1) where a take says little
RANGE_BOUNDS = (0.5, 3.0)
RANGE_SIGMA = 0.5
RANGE_ACTIVE = 0.15  # an AU counts as shown in a frame from this calibrated intensity on


@dataclass(frozen=True)
class RangeConfig:
    rounds: int = 4
    sigma: float = RANGE_SIGMA
    correlated_s: float = 1.0  # a detector's error lasts about this long: a second counts as one observation


def fit_range(rig, landmarks: np.ndarray, calibrated: np.ndarray, valid: np.ndarray | None = None,
              rest: np.ndarray | None = None, rest_pose: np.ndarray | None = None,
              prior: np.ndarray | None = None, fps: float = 30.0, response: np.ndarray | None = None,
              config: RangeConfig = RangeConfig(), layout: ParameterLayout = LAYOUT) -> tuple[np.ndarray, dict]:
    """The actor's range of motion: one gain per AU channel such that the rig, driven by
    ``gain x calibrated`` AUs (clipped to 0..1), best reproduces the detected ``landmarks``
    (N, 68, 2, pixels) over the whole take.

    The estimator is a regressor trained on many faces: it reads each expression at the
    strength an average face would need for it, so one actor's smile comes out at two thirds,
    another's at full. Per take the rig says how far this actor's landmarks move for each AU;
    a gain per channel, fitted on every frame at once against the detections (the frames' yaw
    and pitch refitted beside it, each frame's 2-D similarity projected out, what the rig cannot
    show of the actor's resting face taken out of every frame), restores the strength without touching
    the timing: the channel's curve is scaled, never stretched to its own range. A channel the
    take hardly shows keeps its prior (``prior``: a profile's gains, else 1), so an actor who
    never smiles is never made to. ``calibrated``: (N, P) parameters after neutral calibration;
    ``rest``: the actor's resting face, (K, 68, 2) landmarks in any frame (a take's resting frames,
    or an actor profile's neutral shape), with its head pose ``rest_pose`` ((K, 3) degrees; frontal
    when None). ``response`` (A,): the share of each AU channel's motion the detector reports
    (:func:`detector_response`); the rig shows the detections' side of it (the channel at that share
    of the actor's intensity), so a detector that reports a brow raise at a third of its size is not
    taken for an actor who raises the brows a third as far. Returns ``(gains (A,), report)``."""
    au, ident, pose = (layout.group_slice(g) for g in ("au", "identity", "pose"))
    n_au = au.stop - au.start
    prior = np.ones(n_au) if prior is None else np.asarray(prior, float)
    x0 = np.asarray(calibrated, float)
    ok = np.isfinite(x0).all(1) & np.isfinite(landmarks).all((1, 2))
    if valid is not None:
        ok &= np.asarray(valid, bool)
    rows = np.flatnonzero(ok)
    report = {"frames": int(len(rows))}
    if not len(rows):
        return prior.copy(), report
    det = np.asarray(landmarks, float)[rows]
    x = x0[rows].copy()
    x[:, ident] = np.median(x[:, ident], 0)  # one face for the whole take
    c = np.clip(x[:, au], 0.0, 1.0)  # the estimator's calibrated AUs: the curves the gains scale

    iod, raw_residual = _landmark_residual(rig, layout)
    seen = np.ones(n_au) if response is None else np.asarray(response, float)

    # the actor's own shape: what remains of the resting face, frontal with every AU at 0
    offset = 0.0
    if rest is not None and len(rest):
        rest = np.asarray(rest, float).reshape(-1, 68, 2)
        at = np.repeat(np.median(x, 0)[None], len(rest), 0)
        at[:, au] = 0.0
        at[:, pose] = 0.0 if rest_pose is None else np.asarray(rest_pose, float).reshape(len(rest), -1)
        offset = np.median(raw_residual(at, rest)[0], 0)

    def residual(gains, params):
        p = params.copy()
        p[:, au] = np.clip(seen * gains * c, 0.0, 1.0)  # what the detector shows of the actor's AUs
        res, model = raw_residual(p, det)
        return res - offset, model, p

    per_observation = max(1.0, fps * config.correlated_s)  # frames
    gains = np.clip(prior.copy(), *RANGE_BOUNDS)
    r, model, p = residual(gains, x)
    report["error_before"] = float(np.sqrt(np.mean(r ** 2) * 2))
    yp = pose.start + np.array([0, 1])
    for _ in range(config.rounds):
        # the frames' yaw and pitch: two unknowns per frame, finite differences on the exact rig
        jy = np.empty((len(rows), r.shape[1], 2))
        for j in range(2):
            moved = x.copy()
            moved[:, yp[j]] += STEP["pose"]
            jy[:, :, j] = (residual(gains, moved)[0] - r) / STEP["pose"]
        jw = jy * WEIGHTS_2D[None, :, None]
        jwt = np.swapaxes(jw, 1, 2)
        h = jwt @ jy + np.eye(2)[None] / PRIOR_SIGMA["pose"] ** 2
        g = (jwt @ r[..., None])[..., 0] + (x[:, yp] - x0[rows][:, yp]) / PRIOR_SIGMA["pose"] ** 2
        x[:, yp] -= np.linalg.solve(h, g[..., None])[..., 0]
        r, model, p = residual(gains, x)
        # the gains: one linear face model (frontal, at the take's median expression), each frame's
        # similarity projected out; a gain moves frame t's AU by the estimator's value there
        base = np.median(p, 0)
        base[pose] = 0.0
        probes = np.repeat(base[None], n_au + 1, 0)
        probes[1:, au] += np.eye(n_au) * STEP["au"]
        pts = rig.landmarks_2d(probes)
        dface = ((pts[1:] - pts[:1]) / STEP["au"] / iod).reshape(n_au, -1).T[None]
        live = seen * c * ((seen * gains * c) < 1.0)  # a clipped channel no longer moves with its gain
        jac = -_without_similarity(dface, model, WEIGHTS_2D) * live[:, None, :]  # (N, 136, A)
        jw = jac * WEIGHTS_2D[None, :, None]
        jw2 = jw.reshape(-1, n_au).T  # every frame's rows at once: one BLAS product
        h = jw2 @ jac.reshape(-1, n_au) / per_observation + np.eye(n_au) / config.sigma ** 2
        grad = jw2 @ r.reshape(-1) / per_observation + (gains - prior) / config.sigma ** 2
        gains = np.clip(gains - np.linalg.solve(h, grad), *RANGE_BOUNDS)
        r, model, p = residual(gains, x)
    report["error_after"] = float(np.sqrt(np.mean(r ** 2) * 2))
    report["active_frames"] = dict(zip(layout.group_names("au"), (c >= RANGE_ACTIVE).sum(0).tolist()))
    return gains, report
