"""The README's picture: the demo clip's performer beside the rig animated from its tracking.

    python tests/benchmarks/readme_picture.py [--out addon/docs/demo_preview.png]   (after `make demo`)

Takes one frame per beat of the scripted performance (smile, blink, brows up, jaw open, frown,
head turn) from `out/demo_clip.mp4` and its tracking `out/demo_tracking.npz`, renders the rig keyed
from the tracking at those frames (addon/preview.py, Workbench) and writes them as one strip.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from au2rig.addon.demo import beat_frames
from au2rig.addon.preview import render_preview
from au2rig.core.animation.performance import scripted_performance
from au2rig.core.animation.tracking_io import Tracking, read_tracking
from au2rig.core.tracking.track import read_frames

ROOT = Path(__file__).resolve().parents[2]

BEATS = ("smile", "blink", "brows up", "jaw open", "frown", "turn left")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "addon" / "docs" / "demo_preview.png")
    ap.add_argument("--clip", type=Path, default=ROOT / "out" / "demo_clip.mp4")
    ap.add_argument("--size", type=int, default=200)
    args = ap.parse_args(argv)
    t = read_tracking(args.clip.with_name("demo_tracking.npz"))
    frames = dict(beat_frames(scripted_performance(t.fps)))
    rows = [int(np.flatnonzero(t.frames == frames[b] - 1)[0]) for b in BEATS if b in frames]
    sub = Tracking(t.frames[rows], t.timestamps[rows], t.success[rows], t.confidence[rows], t.params[rows],
                   t.landmarks[rows], t.fps, t.meta)
    video = render_preview(args.clip, sub, args.out.with_suffix(".mp4"), args.size, progress=False)
    tiles = [image for _, image in read_frames(video)]
    video.unlink()
    strip = np.vstack([np.hstack(tiles[i:i + 3]) for i in range(0, len(tiles), 3)])
    cv2.imwrite(str(args.out), strip, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out} ({len(tiles)} beats)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
