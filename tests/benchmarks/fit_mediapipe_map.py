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
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.rig.layout import LAYOUT  # noqa: E402 (after the repository is put on sys.path)
from core.tracking.landmarks import MEDIAPIPE_MAP, fit_mediapipe_map, inter_ocular  # noqa: E402 (after the repository is put on sys.path)

POSE_RANGE = {"pose_yaw": 30.0, "pose_pitch": 20.0, "pose_roll": 20.0}


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
    from addon.contact_sheet import render_tile, setup_scene
    from core.rig import load_rig
    from core.tracking.landmarks import LandmarkMap, MediaPipeBackend

    rig = load_rig()
    params = random_params(np.random.default_rng(seed), n)
    target = rig.landmarks_2d(params, size)
    cache.mkdir(parents=True, exist_ok=True)
    scene, arm = setup_scene(rig, size)
    mesh = np.full((n, 468, 2), np.nan)
    t0 = time.time()
    placeholder = LandmarkMap(np.zeros((68, 1), int), np.ones((68, 1)), {})  # only raw meshes are used
    with MediaPipeBackend(video=False, max_faces=2, mapping=placeholder) as backend:
        for i in range(n):
            img = render_tile(scene, arm, params[i], cache / f"render_{seed}_{size}_{i:04d}.png")
            found = backend.meshes(img)
            if found:  # the face whose box holds the most true landmarks
                inside = [np.sum((target[i] >= box[:2]).all(1) & (target[i] <= box[2:]).all(1))
                          for _, box, _ in found]
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
    mapping = fit_mediapipe_map(mesh[train], target[train], scale=inter_ocular(target[train]))
    fit = {"train": evaluate(mapping, mesh[train], target[train]),
           "held_out": evaluate(mapping, mesh[test], target[test])}
    from core.rig import load_rig

    meta = {
        "format": "au2rig landmark map 1",
        "source": "mediapipe 0.10.21 solutions.face_mesh (468 points, refine_landmarks=False)",
        "target": "iBUG 68 (0-based), pixels, x right, y down, (0,0) top-left corner",
        "made_by": "tests/benchmarks/fit_mediapipe_map.py " + " ".join(
            f"--{k} {v}" for k, v in (("n", args.n), ("size", args.size), ("seed", args.seed),
                                       ("holdout", args.holdout))),
        "method": "per iBUG point: best subset of <= 3 of the 10 mesh points nearest on average, "
                  "non-negative weights summing to 1, least squares over all training renders, "
                  "residuals divided by each render's inter-ocular distance (outer eye corners)",
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
