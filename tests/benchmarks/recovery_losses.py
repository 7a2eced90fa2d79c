"""Where synthetic recovery loses its ICC: the detector's reading of the pose, of the expression,
or of one region of the face.

    python tests/benchmarks/recovery_losses.py [--actors 4] [--out out/recovery_losses]

The held-out actors of ``au2rig recovery`` (same seeds, 4 s at 15 fps, Workbench under the same
turned lights) are rendered twice: as they are, and with every AU at rest (the same identity and
head poses). Both clips are tracked; the landmark estimator then reads mixtures of the detector's
68 points and the rig's exact ones, with the first frame as reference (as recovery's "exact"
row does), and the mean ICC over the AUs is printed for each:

* exact / detected: all 68 points from the rig / from the detector;
* exact pose + detected expression: the rig's points of the AU-free twin plus the detector's
  change from that twin to the full frame (what the detector makes of the expressions alone);
* detected pose + exact expression: the other way round (what it makes of the head's turns);
* exact, with one region's expression as the detector reads it (jaw line, brows, nose, eyes,
  mouth: that region's change from the AU-free twin taken from the detector).

The gap between "exact" and "detected" is what ``au2rig recovery`` reports; the rows say which
part of the detector's reading costs it.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

REGIONS = {"jaw line": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48),
           "mouth": range(48, 68)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--actors", type=int, default=4, help="held-out actors (default 4, as recovery)")
    ap.add_argument("--out", type=Path, default=Path("out/recovery_losses"), help="folder for the clips")
    args = ap.parse_args(argv)

    from au2rig.addon import demo
    from au2rig.addon._core import load_rig, random_performance, tracker
    from au2rig.addon.tools.recovery import LOOKS

    track, metrics, _ = tracker()
    rig = load_rig()
    layout = rig.layout
    estimator = track.OnnxEstimator()
    au = layout.group_slice("au")
    args.out.mkdir(parents=True, exist_ok=True)
    det, exact, det_rest, exact_rest, truth = [], [], [], [], []
    for k in range(args.actors):
        perf = random_performance(5000 + k, 4.0, 15.0)
        rest = perf.params.copy()
        rest[:, au] = layout.neutral()[au]
        look = LOOKS["workbench"][k % len(LOOKS["workbench"])]
        tracked = []
        for params, name in ((perf.params, f"actor_{k}.mp4"), (rest, f"actor_{k}_at_rest.mp4")):
            clip = demo.render_clip(rig, dataclasses.replace(perf, params=params), args.out / name, False, **look)
            t = track.track_video(clip, track.TrackConfig(adapt=False), progress=False)
            tracked.append(t)
        rows = np.intersect1d(tracked[0].frames[tracked[0].success], tracked[1].frames[tracked[1].success])
        by_frame = [dict(zip(t.frames.tolist(), range(len(t.frames)))) for t in tracked]
        det.append(tracked[0].landmarks[[by_frame[0][r] for r in rows]])
        det_rest.append(tracked[1].landmarks[[by_frame[1][r] for r in rows]])
        exact.append(rig.landmarks_2d(perf.params, demo.CLIP_SIZE[1])[rows])
        exact_rest.append(rig.landmarks_2d(rest, demo.CLIP_SIZE[1])[rows])
        truth.append(perf.params[rows])
    truth_all = np.concatenate(truth)

    def score(mix) -> tuple[float, dict]:
        pred = []
        for parts in zip(det, exact, det_rest, exact_rest):
            points = mix(*parts)
            pred.append(estimator(points, points[0]))
        report = metrics.au_report(np.concatenate(pred), truth_all, layout)
        return report["mean"]["icc"], {k: v["icc"] for k, v in report["per_au"].items()}

    rows_out = [("exact", lambda d, e, dr, er: e), ("detected", lambda d, e, dr, er: d),
                ("exact pose + detected expression", lambda d, e, dr, er: er + (d - dr)),
                ("detected pose + exact expression", lambda d, e, dr, er: dr + (e - er))]
    for name, idx in REGIONS.items():
        idx = list(idx)

        def one(d, e, dr, er, idx=idx):  # the region's expression as the detector reads it
            out = e.copy()
            out[:, idx] = er[:, idx] + (d - dr)[:, idx]
            return out

        rows_out.append((f"exact, {name}: expression detected", one))
    print(f"{args.actors} held-out actors, {len(truth_all)} frames; mean ICC over the AUs (and the lowest AUs)")
    for name, mix in rows_out:
        mean, per = score(mix)
        low = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per.items(), key=lambda kv: kv[1])[:4])
        print(f"{name:40s} {mean:6.3f}   ({low})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
