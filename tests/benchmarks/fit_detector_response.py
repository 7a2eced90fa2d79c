"""How far the face detector follows an expression, per landmark, measured on the rig's renders.

    python tests/benchmarks/fit_detector_response.py [--n 160] [--size 256] [--seed 0] [--out FILE.json]

The tracker's landmarks come from MediaPipe's face mesh (mapped to the 68 iBUG points, the eyes
from its attention mesh). The mesh is a regression with a strong prior toward an ordinary face:
it follows where a face is and how it is turned, but only part of how far an expression moves a
brow or a lip (``bench_detector_on_rig.py``: a full brow raise at 0.07-0.40 of the rig's motion).
The estimator, which learnt the rig's exact landmarks, reads such damped motion as a weaker
expression.

For ``--n`` random faces (identity, brow style, head pose within yaw +-20, pitch +-15, roll +-15
degrees, two to four AUs at 0.5..1), the face is rendered (Workbench, ``--size`` px) with its AUs
and again with its AUs at 0 (same identity and pose), and the detector reads both. Per landmark,
the gain is the detector's change projected on the rig's exact change, over all faces
(``sum(d_det . d_rig) / sum(|d_rig|^2)``), with its standard error from the faces' spread; the
gains are printed per region. The last quarter of the faces is held out to ask whether a gain
per landmark describes the detector: the detector's change, as measured and divided by the
gains, against the rig's change (the error as a fraction of the rig's motion). ``--out`` also
writes the gains as JSON. Renders are cached in ``--cache``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from au2rig.core.rig.layout import LAYOUT, OPPOSED

ROOT = Path(__file__).resolve().parents[2]
GAIN_RANGE = (0.2, 1.5)  # a landmark the detector hardly moves would be amplified 5x at most


def random_faces(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, P) faces with two to four AUs at 0.5..1 (opposed channels never together)."""
    p = LAYOUT.neutral(n)
    ident, brows = LAYOUT.group_slice("identity"), LAYOUT.group_slice("brow_style")
    p[:, ident] = rng.uniform(0, 1, (n, ident.stop - ident.start))
    p[:, brows] = 0.0
    p[np.arange(n), brows.start + rng.integers(0, brows.stop - brows.start, n)] = 1.0
    p[:, LAYOUT.group_slice("pose")] = rng.uniform(-1, 1, (n, 3)) * [20.0, 15.0, 15.0]
    names = list(LAYOUT.group_names("au"))
    opposed = {a: b for pair in OPPOSED for a, b in (pair, pair[::-1])}
    for i in range(n):
        chosen: list[str] = []
        for name in rng.permutation(names):
            if len(chosen) == int(rng.integers(2, 5)):
                break
            if opposed.get(name) not in chosen:
                chosen.append(str(name))
        for name in chosen:
            p[i, LAYOUT.index[name]] = rng.uniform(0.5, 1.0)
    return p


def detect_pairs(n: int, size: int, seed: int, cache: Path, progress: bool = True):
    """``(params, det, det0, rig, rig0)``: the detector's and the rig's 68 points (pixels) of each
    face with its AUs and with them at 0; NaN where the detector found no face."""
    from au2rig.addon.contact_sheet import render_tile, setup_scene
    from au2rig.core.rig import load_rig
    from au2rig.core.tracking.landmarks import open_backend

    rig = load_rig()
    params = random_faces(np.random.default_rng(seed), n)
    still = params.copy()
    still[:, LAYOUT.group_slice("au")] = 0.0
    cache.mkdir(parents=True, exist_ok=True)
    scene, arm = setup_scene(rig, size)
    det = np.full((2, n, 68, 2), np.nan)
    t0 = time.time()
    with open_backend("mediapipe", video=False, max_faces=1) as backend:
        for i in range(n):
            for k, p in enumerate((params[i], still[i])):
                faces = backend.detect(render_tile(scene, arm, p, cache / f"face_{seed}_{size}_{i:04d}_{k}.png"))
                if faces:
                    det[k, i] = faces[0].landmarks
            if progress and (i + 1) % 20 == 0:
                print(f"  {i + 1}/{n} faces, {time.time() - t0:.0f} s", file=sys.stderr)
    return params, det[0], det[1], rig.landmarks_2d(params, size), rig.landmarks_2d(still, size)


def fit_gains(d_det: np.ndarray, d_rig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per landmark (68,): the gain and its standard error, from (N, 68, 2) changes."""
    num = (d_det * d_rig).sum(-1)  # (N, 68)
    den = (d_rig ** 2).sum(-1)
    gain = num.sum(0) / np.maximum(den.sum(0), 1e-9)
    resid = num - gain * den  # each face's excess projection
    se = np.sqrt((resid ** 2).sum(0)) / np.maximum(den.sum(0), 1e-9)
    return gain, se


def au_components(params: np.ndarray, size: int) -> np.ndarray:
    """(N, A, 68, 2): each AU channel's own part of each face's landmark motion (pixels), the rig's
    landmarks of the face less those of the same face with that channel at 0."""
    from au2rig.core.rig import load_rig

    rig = load_rig()
    au = LAYOUT.group_slice("au")
    full = rig.landmarks_2d(params, size)
    out = np.zeros((len(params), au.stop - au.start, 68, 2))
    for k, c in enumerate(range(au.start, au.stop)):
        on = np.flatnonzero(params[:, c] > 0)
        if len(on):
            without = params[on].copy()
            without[:, c] = 0.0
            out[on, k] = full[on] - rig.landmarks_2d(without, size)
    return out


def fit_au_response(d_det: np.ndarray, parts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per AU channel: how much of its landmark motion the detector reports (least squares of the
    detector's change on the channels' parts, every landmark counted), its standard error, and the
    number of faces that showed it."""
    n, a = parts.shape[:2]
    m = parts.reshape(n, a, -1).transpose(0, 2, 1).reshape(-1, a)  # (N*136, A)
    y = d_det.reshape(-1)
    shown = (np.abs(parts).reshape(n, a, -1).max(-1) > 0).sum(0)
    h = m.T @ m + np.eye(a) * 1e-6
    rho = np.linalg.solve(h, m.T @ y)
    resid = y - m @ rho
    sigma2 = resid @ resid / max(len(y) - a, 1)
    se = np.sqrt(np.diag(np.linalg.inv(h)) * sigma2)
    return np.where(shown > 0, rho, 1.0), se, shown


def score(gains: np.ndarray, d_det: np.ndarray, d_rig: np.ndarray) -> dict:
    """The detector's change (raw and divided by ``gains``) against the rig's: the error as a
    fraction of the rig's motion, over the landmarks that move."""
    moving = (d_rig ** 2).sum(-1) > 1.0  # pixels^2
    out = {}
    for name, d in (("raw", d_det), ("corrected", d_det / gains[None, :, None])):
        err = np.sqrt(((d - d_rig) ** 2).sum(-1)[moving].sum() / (d_rig ** 2).sum(-1)[moving].sum())
        out[name] = round(float(err), 4)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=160)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--holdout", type=float, default=0.25)
    ap.add_argument("--out", type=Path, default=None, help="also write the gains here (JSON)")
    ap.add_argument("--cache", type=Path, default=ROOT / "out" / "detector_response")
    args = ap.parse_args(argv)
    params, det, det0, rig, rig0 = detect_pairs(args.n, args.size, args.seed, args.cache)
    ok = np.isfinite(det).all((1, 2)) & np.isfinite(det0).all((1, 2))
    d_det, d_rig = (det - det0)[ok], (rig - rig0)[ok]
    n_fit = int(round(len(d_det) * (1 - args.holdout)))
    gains, se = fit_gains(d_det[:n_fit], d_rig[:n_fit])
    gains = np.clip(gains, *GAIN_RANGE)
    held = score(gains, d_det[n_fit:], d_rig[n_fit:])
    parts = au_components(params[ok], args.size)
    rho, rho_se, shown = fit_au_response(d_det[:n_fit], parts[:n_fit])
    rho = np.clip(rho, *GAIN_RANGE)
    predicted = np.einsum("a,nakc->nkc", rho, parts[n_fit:])
    moving = (d_rig[n_fit:] ** 2).sum(-1) > 1.0
    held["per_au"] = round(float(np.sqrt(((predicted - d_det[n_fit:]) ** 2).sum(-1)[moving].sum()
                                         / (d_det[n_fit:] ** 2).sum(-1)[moving].sum())), 4)
    per_landmark = gains[None, :, None] * d_rig[n_fit:]
    held["per_landmark"] = round(float(np.sqrt(((per_landmark - d_det[n_fit:]) ** 2).sum(-1)[moving].sum()
                                               / (d_det[n_fit:] ** 2).sum(-1)[moving].sum())), 4)
    held["none"] = round(float(np.sqrt(((d_rig[n_fit:] - d_det[n_fit:]) ** 2).sum(-1)[moving].sum()
                                       / (d_det[n_fit:] ** 2).sum(-1)[moving].sum())), 4)
    regions = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48),
               "mouth": range(48, 68)}
    print(f"the detector found {int(ok.sum())}/{args.n} face pairs; gains fitted on {n_fit}, held out "
          f"{len(d_det) - n_fit}")
    for name, idx in regions.items():
        g = gains[list(idx)]
        print(f"  {name:6s} gain {g.mean():.2f} (min {g.min():.2f}, max {g.max():.2f})")
    print(f"held-out error of the detector's change, as a fraction of the rig's motion: raw {held['raw']}, "
          f"divided by the gains {held['corrected']}")
    print("per AU channel, the share of its landmark motion the detector reports (faces showing it, standard error):")
    for name, r, e, k in zip(LAYOUT.group_names("au"), rho, rho_se, shown):
        print(f"  {name:7s} {r:5.2f}  ({k} faces, +-{e:.2f})")
    print(f"held-out prediction of the detector's change, error as a fraction of it: the rig's motion as it is "
          f"{held['none']}, times the per-landmark gains {held['per_landmark']}, times the per-AU shares "
          f"{held['per_au']}")
    data = {"format": "au2rig-detector-response", "version": 1, "backend": "mediapipe",
            "made_by": "tests/benchmarks/fit_detector_response.py",
            "settings": {"n": args.n, "size": args.size, "seed": args.seed, "holdout": args.holdout,
                         "gain_range": list(GAIN_RANGE)},
            "faces": int(ok.sum()), "held_out_error": held,
            "gains": np.round(gains, 4).tolist(), "standard_error": np.round(se, 4).tolist(),
            "au_response": dict(zip(LAYOUT.group_names("au"), np.round(rho, 4).tolist())),
            "au_response_standard_error": dict(zip(LAYOUT.group_names("au"), np.round(rho_se, 4).tolist())),
            "au_response_faces": dict(zip(LAYOUT.group_names("au"), shown.tolist()))}
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
