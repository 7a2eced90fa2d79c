"""Does a face detector see the rig's expressions? Per AU channel at full intensity, how far the
detector's landmarks move on Workbench renders, beside how far the rig's exact landmarks move.

    python tests/benchmarks/bench_detector_on_rig.py [--size 256] [--out DIR] [--mesh-brows]

For the neutral face and every AU channel at intensity 1 (identity at the base face, frontal),
the rig is rendered in Blender (Workbench, ``--size`` px) and the tracker's landmark backend
(MediaPipe's face mesh, mapped to the 68 iBUG points, the eyes from its attention mesh) reads the
render. The measure per channel, from neutral to full, on both the detector's points and the
rig's exact projection of the same frame:

* AU43 (eyes closed) and AU05/AU07: the eye opening of the channel's eye(s) (the mean of the two
  upper-to-lower lid distances over the eye's width, as the tracker's gaze reads it);
* AU01, AU02, AU04: the brow height of the channel's side(s) above the eye centre;
* every other AU: the landmarks of the AU's region (mouth, nose, chin, jaw, eyes), each point's
  motion projected on the rig's motion of that point (so detector noise does not count as motion).

The ratio is detector / rig (1 = the detector sees the whole motion; the goal is >= 0.5). The
detector's points of both renders come from one still-image run each (no tracking between).
The brows are placed by their look as the tracker does by default (``core.tracking.brows``), the
neutral render's look as the brows' typical one; ``--mesh-brows`` leaves them where the face mesh
puts them (the tracker's option of that name).
Writes ``DIR/detector_on_rig.png`` (each AU's render, the detector's points in green, the rig's in
red) when ``--out`` is given.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from au2rig.core.alignment.align import LEFT_EYE, RIGHT_EYE
from au2rig.core.tracking.gaze import eye_opening as opening_over_width

# iBUG 68 regions
MOUTH = list(range(48, 68))
NOSE = list(range(27, 36))
CHIN = list(range(5, 12))
JAW = list(range(0, 17))
EYES = list(range(36, 48))
REGION = {"AU06": EYES, "AU09": NOSE + [50, 51, 52], "AU10": NOSE[4:] + MOUTH, "AU12": MOUTH, "AU14": MOUTH,
          "AU15": MOUTH, "AU17": CHIN + MOUTH, "AU18": MOUTH, "AU20": MOUTH, "AU22": MOUTH, "AU23": MOUTH,
          "AU24": MOUTH, "AU25": MOUTH, "AU26": JAW + MOUTH, "AU30": JAW + MOUTH}
# the subject's left brow is on the image's right: iBUG 22-26
BROW = {"L": list(range(22, 27)), "R": list(range(17, 22))}


def _eyes(sides):
    return tuple({"L": LEFT_EYE, "R": RIGHT_EYE}[s] for s in sides)


def _sides(name: str) -> tuple[str, ...]:
    return (name[-1],) if name[-2:] in ("_L", "_R") else ("L", "R")


def eye_opening(points: np.ndarray, sides) -> float:
    """The sides' eye opening over the eye's width (``core.tracking.gaze.eye_opening``)."""
    return float(opening_over_width(points, _eyes(sides)))


def brow_height(points: np.ndarray, sides) -> float:
    """Mean height (pixels, up positive) of the side's brow points above its eye centre."""
    return float(np.mean([points[list(eye)].mean(0)[1] - points[BROW[s]].mean(0)[1]
                          for s, eye in zip(sides, _eyes(sides))]))


def measure(name: str, neutral: np.ndarray, moved: np.ndarray, rig_neutral: np.ndarray,
            rig_moved: np.ndarray) -> tuple[str, float, float]:
    """``(measure, detector change, rig change)`` for channel ``name``: signed changes of the
    channel's measure (eye opening over the eye's width; brow height and projected region motion in
    pixels, the rig's change being its motion's norm)."""
    code, sides = name.split("_")[0], _sides(name)
    for what, codes, f in (("eye opening", ("AU43", "AU05", "AU07"), eye_opening),
                           ("brow height", ("AU01", "AU02", "AU04"), brow_height)):
        if code in codes:
            return what, f(moved, sides) - f(neutral, sides), f(rig_moved, sides) - f(rig_neutral, sides)
    region = REGION[code]
    rig_d = (rig_moved - rig_neutral)[region]
    det_d = (moved - neutral)[region]
    norm = float(np.sqrt((rig_d ** 2).sum()))
    along = float((det_d * rig_d).sum() / max(norm, 1e-9))
    return "region motion", along, norm


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--out", type=Path, default=None, help="also write the picture here")
    ap.add_argument("--mesh-brows", action="store_true", help="the brows where the face mesh puts them")
    args = ap.parse_args(argv)
    import cv2

    from au2rig.addon import contact_sheet
    from au2rig.core.rig import load_rig
    from au2rig.core.rig.layout import LAYOUT
    from au2rig.core.tracking.brows import brow_image, refine_brows
    from au2rig.core.tracking.landmarks import BackendUnavailable, open_backend

    rig = load_rig()
    try:
        backend = open_backend("mediapipe", video=False, max_faces=1)
    except BackendUnavailable as e:
        print(f"skipped: {e}")
        return 0
    scene, arm_obj = contact_sheet.setup_scene(rig, args.size)
    neutral_params = LAYOUT.neutral()
    channels = LAYOUT.group_names("au")
    rows, tiles = [], []
    with tempfile.TemporaryDirectory() as tmp:
        def read(params):
            img = contact_sheet.render_tile(scene, arm_obj, params, Path(tmp) / "tile.png")
            faces = backend.detect(img)
            return img, (faces[0].landmarks if faces else None), rig.landmarks_2d(params[None], args.size)[0]

        img0, det0, rig0 = read(neutral_params)
        if det0 is None:
            print("the detector finds no face in the neutral render")
            return 1
        for name in channels:
            p = neutral_params.copy()
            p[LAYOUT.index[name]] = 1.0
            img, det, rig1 = read(p)
            if det is None:
                rows.append((name, "no face found", np.nan, np.nan, np.nan))
                continue
            if not args.mesh_brows:
                pair = np.stack([det0, det])
                det = refine_brows(pair, [brow_image(img0, det0), brow_image(img, det)], rows=[0])[0][1]
            what, d_det, d_rig = measure(name, det0, det, rig0, rig1)
            rows.append((name, what, d_det, d_rig, d_det / d_rig if abs(d_rig) > 1e-6 else np.nan))
            if args.out is not None:
                tile = contact_sheet.draw_landmarks(contact_sheet.draw_landmarks(img, rig1, (0, 0, 255)), det)
                tiles.append(contact_sheet.labelled(tile, name, f"{what}: {d_det:+.3g} / {d_rig:+.3g}"))
    backend.close()
    print(f"detector (MediaPipe face mesh -> 68 points{', brows by their look' if not args.mesh_brows else ''}) on "
          f"Workbench renders at {args.size} px, each AU at "
          f"full intensity; change from neutral (pixels; eye opening: over the eye's width)")
    print(f"{'channel':8s} {'measure':14s} {'detector':>9s} {'rig':>8s} {'ratio':>6s}")
    ratios = []
    for name, what, d_det, d_rig, ratio in rows:
        ratios.append(ratio)
        ok = "" if not np.isfinite(ratio) else ("  >= 0.5" if ratio >= 0.5 else "  SHORT")
        print(f"{name:8s} {what:14s} {d_det:9.3g} {d_rig:8.3g} {ratio:6.2f}{ok}")
    ratios = np.array(ratios, float)
    print(f"channels at >= 0.5: {int((ratios >= 0.5).sum())}/{len(ratios)}; median ratio "
          f"{np.nanmedian(ratios):.2f}")
    if args.out is not None and tiles:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / "detector_on_rig.png"
        cv2.imwrite(str(path), contact_sheet.compose(tiles, 7))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
