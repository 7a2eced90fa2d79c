"""Tracker speed: end-to-end frames per second vs the bare landmark backend, same video, one run.

    python tests/benchmarks/bench_tracker.py [VIDEO] [--repeat 3]

VIDEO defaults to ../shared/media/single_face.mp4 when present, else the demo clip
(out/demo_clip.mp4, made by `make demo`). Three figures, each the best of ``--repeat`` passes:

* backend alone: the backend's ``detect`` on frames decoded beforehand (no decoding counted);
* decode + backend: the same, decoding included, in one thread;
* tracker: ``track_video`` end to end (decoding thread, detection, face following, ONNX
  estimator, calibration, smoothing), without writing files;
* tracker, plain-mesh eyes: the same without the attention mesh that reads the lids (``lids=False``);
* tracker, mesh brows: the same without placing the brows by their look (``brows=False``);
* reference: ``../shared/reference/mediapipe_reference.py`` on the same video, when present (a
  subprocess writing its CSV, start-up included as in the tracker's figure).
Goals on 2 cores: tracker >= 0.7 of the reference's rate and of the bare backend run over the same
video (decode + backend); the ratio to detection alone, on frames decoded beforehand, is printed too.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from au2rig.core.tracking.landmarks import open_backend
from au2rig.core.tracking.track import TrackConfig, read_frames, track_video, video_info

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT.parent / "shared" / "reference" / "mediapipe_reference.py"


def default_video() -> Path | None:
    """../shared/media/single_face.mp4 when present, else out/demo_clip.mp4 when present, else None."""
    for candidate in (ROOT.parent / "shared" / "media" / "single_face.mp4", ROOT / "out" / "demo_clip.mp4"):
        if candidate.is_file():
            return candidate
    return None


def measure(video, repeat: int = 3, max_frames: int | None = None) -> dict:
    """Best-of-``repeat`` seconds of the three runs over the same frames of ``video`` (the first
    ``max_frames`` when given). Returns ``{"video", "info", "frames", "repeat", "seconds": {name: s},
    "fps": {name: frames/s}, "tracking"}`` (the last tracker run's ``Tracking``)."""
    video = Path(video)
    info = video_info(video)
    frames = [img for _, img in read_frames(video, max_frames=max_frames)]
    n = len(frames)
    last = {}

    def backend_alone():
        with open_backend("mediapipe", video=True, max_faces=1) as b:
            start = time.perf_counter()
            for img in frames:
                b.detect(img)
            return time.perf_counter() - start

    def decode_and_backend():
        with open_backend("mediapipe", video=True, max_faces=1) as b:
            start = time.perf_counter()
            for _, img in read_frames(video, prefetch=1, max_frames=max_frames):
                b.detect(img)
            return time.perf_counter() - start

    def tracker(lids=True, brows=True):
        start = time.perf_counter()
        last["tracking"] = track_video(video, TrackConfig(max_frames=max_frames, lids=lids, brows=brows),
                                       progress=False)
        return time.perf_counter() - start

    def reference():
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            subprocess.run([sys.executable, str(REFERENCE), str(video), str(Path(tmp) / "ref.csv")], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return time.perf_counter() - start

    runs = [("backend alone", backend_alone), ("decode + backend", decode_and_backend),
            ("tracker, plain-mesh eyes", lambda: tracker(lids=False)),
            ("tracker, mesh brows", lambda: tracker(brows=False)), ("tracker end to end", tracker)]
    if REFERENCE.is_file() and max_frames is None:
        runs.append(("reference", reference))
    best = {name: min(fn() for _ in range(repeat)) for name, fn in runs}
    return {"video": video, "info": info, "frames": n, "repeat": repeat, "seconds": best,
            "fps": {name: n / s for name, s in best.items()}, "tracking": last.get("tracking")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    video = args.video or default_video()
    if video is None:
        sys.exit("no video: give one, or run `make demo` to make out/demo_clip.mp4")
    r = measure(video, args.repeat)
    info, n = r["info"], r["frames"]
    print(f"video: {video} ({info['width']}x{info['height']}, {n} frames); best of {args.repeat}")
    print(f"{'':22s} {'frames/s':>9s} {'ms/frame':>9s} {'vs backend':>11s} {'vs decode+backend':>18s}")
    base, bare = r["fps"]["backend alone"], r["fps"]["decode + backend"]
    for name, fps in r["fps"].items():
        print(f"{name:22s} {fps:9.1f} {1000 / fps:9.2f} {fps / base:11.2f} {fps / bare:18.2f}")
    print("(the tracker's figure includes its start-up: opening the video, the face-count probe, "
          "the backend's graph, the ONNX session)")
    if "reference" in r["fps"]:
        print(f"tracker / reference: {r['fps']['tracker end to end'] / r['fps']['reference']:.2f} (goal >= 0.7)")
    else:
        print(f"reference: {REFERENCE} is not here; no side-by-side figure")


if __name__ == "__main__":
    main()
