"""Draw a backend's 68 landmarks on the real media in ../shared/media, as one grid PNG.

    python tests/benchmarks/landmarks_overlay.py [--backend mediapipe] [--out /tmp/landmarks_overlay.png]

Colors by part: jaw white, brows yellow, nose cyan, eyes green, mouth red; the box in gray.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from au2rig.core.tracking.landmarks import open_backend, pick_face

ROOT = Path(__file__).resolve().parents[2]

MEDIA = ROOT.parent / "shared" / "media"
PARTS = ((range(0, 17), (255, 255, 255)), (range(17, 27), (0, 255, 255)), (range(27, 36), (255, 255, 0)),
         (range(36, 48), (0, 255, 0)), (range(48, 68), (0, 0, 255)))
TILE = 360


def draw(img: np.ndarray, face) -> np.ndarray:
    s = TILE / max(img.shape[:2])
    out = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
    if face is None:
        cv2.putText(out, "no face", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 255), 2)
    else:
        b = np.round(face.box * s).astype(int)
        cv2.rectangle(out, (b[0], b[1]), (b[2], b[3]), (160, 160, 160), 1)
        for part, color in PARTS:
            pts = face.landmarks[list(part)] * s
            for a, c in zip(pts[:-1], pts[1:]):  # pixel center i + 0.5 -> drawing coordinate i
                cv2.line(out, tuple(np.round((a - 0.5) * 4).astype(int)), tuple(np.round((c - 0.5) * 4).astype(int)),
                         color, 1, cv2.LINE_AA, shift=2)
            for x, y in pts:
                cv2.circle(out, (round((x - 0.5) * 4), round((y - 0.5) * 4)), 8, color, -1, cv2.LINE_AA, shift=2)
        cv2.putText(out, f"{face.confidence:.2f}", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 255), 1)
    tile = np.full((TILE, TILE, 3), 20, np.uint8)
    tile[:out.shape[0], :out.shape[1]] = out
    return tile


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="mediapipe")
    ap.add_argument("--out", type=Path, default=Path("/tmp/landmarks_overlay.png"))
    args = ap.parse_args(argv)
    tiles = []
    with open_backend(args.backend, video=False) as b:
        for path in sorted(MEDIA.glob("*.jpg")):
            img = cv2.imread(str(path))
            tiles.append(draw(img, pick_face(b.detect(img), None, img.shape)))
    with open_backend(args.backend, video=True) as b:
        for name in ("single_face.mp4", "face_noface.mov"):
            cap = cv2.VideoCapture(str(MEDIA / name))
            picked, i = None, 0
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                picked = pick_face(b.detect(frame), picked, frame.shape)
                if i in (0, 40, 71) if name == "single_face.mp4" else i in (30, 120):
                    tiles.append(draw(frame, picked))
                i += 1
            b.reset()
    cols = 4
    rows = -(-len(tiles) // cols)
    tiles += [np.zeros_like(tiles[0])] * (rows * cols - len(tiles))
    grid = np.vstack([np.hstack(tiles[r * cols:(r + 1) * cols]) for r in range(rows)])
    cv2.imwrite(str(args.out), grid)
    print(f"wrote {args.out} ({len(tiles)} tiles)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
