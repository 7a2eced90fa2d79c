"""Derive the MediaPipe face mesh (468 points) -> iBUG 68 map from headless renders of the rig.

    python tests/benchmarks/fit_mediapipe_map.py [--n 240] [--size 256] [--seed 0] [--out core/data/mediapipe68.json]

Renders ``--n`` random faces of the built-in rig with Blender Workbench (random identity sliders
uniform in 0..1, a random brow style, 0-4 random AUs at 0.3..1, yaw +-30, pitch +-20, roll +-20
degrees), runs MediaPipe's face mesh (static mode) on each render, and fits for every iBUG point
a convex combination of at most 3 of the 10 nearest mesh points against the rig's analytic
landmarks (``rig.landmarks_2d``), residuals normalized by each render's inter-ocular distance
(``core.tracking.landmarks.fit_mediapipe_map``). The last quarter of the renders is held out; the residuals
on it (pixels and fraction of inter-ocular distance, per point and overall) are printed and stored
in the JSON with the settings that made it. Renders and detections are cached in ``--cache``.

The points that expressions move (eyelids, brows, lips) are not fitted: they are the face mesh's
own points for the same anatomy (ANATOMICAL below, from the mesh's topology: the lid margins, the
brow's centre line, the lip contours). On rig renders the mesh never sees a lid close or a brow
knit, so a fit there learns to mix in points that stay still (an upper-lid iBUG point made of a
lower-lid point and two points above the eye), and on real faces that mixture loses the blink.
Fitting is kept for the jaw line, nose and eye corners, where renders and real faces agree.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from au2rig.core.rig.layout import LAYOUT
from au2rig.core.tracking.landmarks import MEDIAPIPE_MAP, fit_mediapipe_map, inter_ocular

ROOT = Path(__file__).resolve().parents[2]

POSE_RANGE = {"pose_yaw": 30.0, "pose_pitch": 20.0, "pose_roll": 20.0}
# iBUG point (0-based) -> (mesh point, weight) pairs for the same anatomy. Lids: iBUG 37/38 and
# 43/44 are the upper lid margin at a third and two thirds from the corner, 40/41 and 46/47 the
# lower; brows: the middle of the brow's upper (70 63 105 66 107 / 300 293 334 296 336) and lower
# (46 53 52 65 55 / 276 283 282 295 285) contours; lips: the outer and inner lip contours.
ANATOMICAL = {
    37: ((160, 1.0),), 38: ((158, 1.0),), 40: ((153, 1.0),), 41: ((144, 1.0),),
    43: ((385, 1.0),), 44: ((387, 1.0),), 46: ((373, 1.0),), 47: ((380, 1.0),),
    17: ((70, 0.5), (46, 0.5)), 18: ((63, 0.5), (53, 0.5)), 19: ((105, 0.5), (52, 0.5)),
    20: ((66, 0.5), (65, 0.5)), 21: ((107, 0.5), (55, 0.5)), 22: ((336, 0.5), (285, 0.5)),
    23: ((296, 0.5), (295, 0.5)), 24: ((334, 0.5), (282, 0.5)), 25: ((293, 0.5), (283, 0.5)),
    26: ((300, 0.5), (276, 0.5)),
    48: ((61, 1.0),), 49: ((40, 1.0),), 50: ((37, 1.0),), 51: ((0, 1.0),), 52: ((267, 1.0),),
    53: ((270, 1.0),), 54: ((291, 1.0),), 55: ((321, 1.0),), 56: ((314, 1.0),), 57: ((17, 1.0),),
    58: ((84, 1.0),), 59: ((91, 1.0),), 60: ((78, 1.0),), 61: ((81, 1.0),), 62: ((13, 1.0),),
    63: ((311, 1.0),), 64: ((308, 1.0),), 65: ((402, 1.0),), 66: ((14, 1.0),), 67: ((178, 1.0),),
}


def with_anatomical(mapping):
    """``mapping`` with the ANATOMICAL rows in place of the fitted ones."""
    idx, w = mapping.indices.copy(), mapping.weights.copy()
    for i, pairs in ANATOMICAL.items():
        idx[i], w[i] = idx[i, 0], 0.0
        for k, (point, weight) in enumerate(pairs):
            idx[i, k], w[i, k] = point, weight
    return type(mapping)(idx, w, mapping.meta)


def random_params(rng: np.random.Generator, n: int, layout=LAYOUT) -> np.ndarray:
    p = layout.neutral(n)
    ident, brows, aus = (layout.group_slice(g) for g in ("identity", "brow_style", "au"))
    p[:, ident] = rng.uniform(0.0, 1.0, (n, ident.stop - ident.start))
    p[:, brows] = np.eye(brows.stop - brows.start)[rng.integers(0, brows.stop - brows.start, n)]
    for i in range(n):
        for a in rng.choice(np.arange(aus.start, aus.stop), size=rng.integers(0, 5), replace=False):
            p[i, a] = rng.uniform(0.3, 1.0)
        for name, r in POSE_RANGE.items():
            p[i, layout.index[name]] = rng.uniform(-r, r)
    return p


def collect(n: int, size: int, seed: int, cache: Path, progress: bool = True):
    """(params (n, P), mesh (n, 468, 2) NaN where MediaPipe found no face, target (n, 68, 2))."""
    from au2rig.addon.contact_sheet import render_tile, setup_scene
    from au2rig.core.rig import load_rig
    from au2rig.core.tracking.landmarks import LandmarkMap, MediaPipeBackend

    rig = load_rig()
    params = random_params(np.random.default_rng(seed), n)
    target = rig.landmarks_2d(params, size)
    cache.mkdir(parents=True, exist_ok=True)
    scene, arm = setup_scene(rig, size)
    mesh = np.full((n, 468, 2), np.nan)
    t0 = time.time()
    placeholder = LandmarkMap(np.zeros((68, 1), int), np.ones((68, 1)), {})  # only raw meshes are used
    with MediaPipeBackend(video=False, max_faces=2, mapping=placeholder, lids=False) as backend:
        for i in range(n):
            img = render_tile(scene, arm, params[i], cache / f"render_{seed}_{size}_{i:04d}.png")
            found = backend.meshes(img)
            if found:  # the face whose box holds the most true landmarks
                inside = [np.sum((target[i] >= box[:2]).all(1) & (target[i] <= box[2:]).all(1))
                          for _, box, _, _ in found]
                mesh[i] = found[int(np.argmax(inside))][0]
            if progress and (i + 1) % 20 == 0:
                print(f"  {i + 1}/{n} renders, {time.time() - t0:.0f} s", file=sys.stderr)
    return params, mesh, target


def evaluate(mapping, mesh, target) -> dict:
    pred = mapping(mesh)
    err = np.linalg.norm(pred - target, axis=-1)  # (N, 68)
    iod = inter_ocular(target)[:, None]
    return {"n_images": int(len(mesh)),
            "mean_px": float(err.mean()), "max_px": float(err.max()),
            "mean_iod": float((err / iod).mean()), "max_iod": float((err / iod).max()),
            "median_iod_distance_px": float(np.median(iod)),
            "per_point_mean_px": np.round(err.mean(0), 3).tolist(),
            "per_point_mean_iod": np.round((err / iod).mean(0), 4).tolist()}


def _compact_json(d: dict) -> str:
    """JSON with one line per landmark row / per scalar entry."""
    lines = []
    for k, v in d.items():
        if isinstance(v, list) and v and isinstance(v[0], list):
            rows = ",\n  ".join(json.dumps(r) for r in v)
            lines.append(f"{json.dumps(k)}: [\n  {rows}]")
        else:
            lines.append(f"{json.dumps(k)}: {json.dumps(v)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=240)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--holdout", type=float, default=0.25)
    ap.add_argument("--out", type=Path, default=MEDIAPIPE_MAP)
    ap.add_argument("--cache", type=Path, default=ROOT / "out" / "mediapipe_map")
    args = ap.parse_args(argv)

    data_file = args.cache / f"data_{args.seed}_{args.size}_{args.n}.npz"
    if data_file.is_file():
        d = np.load(data_file)
        params, mesh, target = d["params"], d["mesh"], d["target"]
    else:
        params, mesh, target = collect(args.n, args.size, args.seed, args.cache)
        np.savez_compressed(data_file, params=params, mesh=mesh, target=target)
    found = ~np.isnan(mesh).any(axis=(1, 2))
    n_train = int(round(args.n * (1 - args.holdout)))
    train = np.flatnonzero(found[:n_train])
    test = n_train + np.flatnonzero(found[n_train:])
    print(f"MediaPipe found the face in {found.sum()}/{args.n} renders; fit on {len(train)}, "
          f"held out {len(test)}")
    mapping = with_anatomical(fit_mediapipe_map(mesh[train], target[train], scale=inter_ocular(target[train])))
    fit = {"train": evaluate(mapping, mesh[train], target[train]),
           "held_out": evaluate(mapping, mesh[test], target[test])}
    from au2rig.core.rig import load_rig

    meta = {
        "format": "au2rig landmark map 1",
        "source": "mediapipe 0.10.21 solutions.face_mesh (468 points, refine_landmarks=False)",
        "target": "iBUG 68 (0-based), pixels, x right, y down, (0,0) top-left corner",
        "made_by": "tests/benchmarks/fit_mediapipe_map.py " + " ".join(
            f"--{k} {v}" for k, v in (("n", args.n), ("size", args.size), ("seed", args.seed),
                                       ("holdout", args.holdout))),
        "method": "lids (37 38 40 41 43 44 46 47), brows (17-26) and lips (48-67): the mesh's own points "
                  "for the same anatomy (ANATOMICAL in the script); every other iBUG point: best subset "
                  "of <= 3 of the 10 mesh points nearest on average, non-negative weights summing to 1, "
                  "least squares over all training renders, residuals divided by each render's "
                  "inter-ocular distance (outer eye corners)",
        "rig": f"{load_rig().name} {load_rig().identity}",
        "renders": f"{args.n} Workbench renders at {args.size} px: identity uniform 0..1, random brow "
                   "style, 0-4 AUs at 0.3..1, yaw +-30, pitch +-20, roll +-20 deg",
        "found": int(found.sum()),
        "fit": {k: {kk: vv for kk, vv in v.items() if not kk.startswith("per_point")} for k, v in fit.items()},
        "held_out_per_point_mean_iod": fit["held_out"]["per_point_mean_iod"],
    }
    mapping = type(mapping)(mapping.indices, mapping.weights, meta)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(_compact_json(mapping.to_json()))
    for k, v in fit.items():
        print(f"{k:9s}: {v['n_images']} renders, mean {v['mean_px']:.2f} px (max {v['max_px']:.2f}), "
              f"mean {v['mean_iod']:.3f} IOD (max {v['max_iod']:.3f}); IOD ~{v['median_iod_distance_px']:.0f} px")
    per = np.array(fit["held_out"]["per_point_mean_iod"])
    worst = np.argsort(-per)[:8]
    print("held-out worst points (iBUG 0-based: mean IOD):", ", ".join(f"{i}: {per[i]:.3f}" for i in worst))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
