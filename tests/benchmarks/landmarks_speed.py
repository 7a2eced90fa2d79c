"""Milliseconds per frame of the MediaPipe landmark backend on ../shared/media/single_face.mp4.

    python tests/benchmarks/landmarks_speed.py [--repeats 3]

Decodes the clip once, then times ``backend.detect`` per frame in video mode (max_faces 1: the
face detector runs only when the mesh loses the face; max_faces 4: the detector runs on every
frame since fewer than 4 faces are tracked) and static mode, MediaPipe's face detector alone
(``solutions.face_detection``, short range) and the Python side of the backend (mesh to numpy,
the 68-point map).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from au2rig.core.tracking.landmarks import load_landmark_map, open_backend

ROOT = Path(__file__).resolve().parents[2]

MEDIA = ROOT.parent / "shared" / "media"


def frames_of(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            return out
        out.append(f)


def timed(fn, frames, repeats, reset=None) -> tuple[float, float]:
    """Best wall-clock and process-CPU milliseconds per frame over ``repeats`` passes.

    CPU time sums all threads of this process: on a machine shared with other jobs it is the
    steadier number; wall time is what a user sees.
    """
    wall = cpu = np.inf
    for _ in range(repeats):
        if reset:
            reset()
        t, c = time.perf_counter(), time.process_time()
        for f in frames:
            fn(f)
        wall = min(wall, (time.perf_counter() - t) / len(frames))
        cpu = min(cpu, (time.process_time() - c) / len(frames))
    return wall * 1000, cpu * 1000


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", type=Path, default=MEDIA / "single_face.mp4")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    frames = frames_of(args.video)
    h, w = frames[0].shape[:2]
    print(f"{args.video.name}: {len(frames)} frames {w}x{h}, cv2 threads {cv2.getNumThreads()}")
    for video, max_faces in ((True, 1), (True, 4), (False, 1), (False, 4)):
        with open_backend("mediapipe", video=video, max_faces=max_faces) as b:
            # each pass reads the clip from the start as a new video
            wall, cpu = timed(b.detect, frames, args.repeats, reset=b.reset)
        print(f"mediapipe {'video ' if video else 'static'} max_faces={max_faces}: {wall:6.2f} ms/frame wall "
              f"({1000 / wall:.0f} fps), {cpu:6.2f} ms CPU")
    import mediapipe as mp

    with mp.solutions.face_detection.FaceDetection(model_selection=0) as det:
        wall, cpu = timed(lambda f: det.process(np.ascontiguousarray(f[..., ::-1])), frames, args.repeats)
    print(f"face detector alone (short range): {wall:6.2f} ms/frame wall, {cpu:6.2f} ms CPU")
    m = load_landmark_map()
    mesh = np.random.default_rng(0).uniform(0, 300, (468, 2))
    t = time.perf_counter()
    for _ in range(1000):
        m(mesh)
    print(f"468 -> 68 map: {(time.perf_counter() - t):.3f} ms/call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
