"""Image-path speed, measured side by side in one run: F_seg + R through ONNX Runtime (faces/s),
the tracker end to end with the image model vs the landmark model on the same video, and
GE-Net fitting (seconds per face).

    python tests/benchmarks/bench_image_path.py [--model IMAGE.onnx] [--generator G.pt --parser P.pt]
                                                [--video V] [--threads 2] [--iterations 100]

Speed does not depend on the weights: without --model an untrained F_seg + R of the same
architecture is exported to a temporary file (and said so); without --generator / --parser an
untrained G (128 px) and F_seg are used for GE-Net.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from au2rig.core.nets.face_parser import FaceParser
from au2rig.core.nets.generator import GeneratorConfig, build_generator
from au2rig.core.nets.regressor import Regressor, RegressorConfig, region_channels
from au2rig.core.rig import load_rig
from au2rig.core.rig.layout import LAYOUT
from au2rig.core.tracking.estimator import OnnxImageEstimator
from au2rig.core.training.chain import LossWeights, Objective, RenderChain
from au2rig.core.training.image_estimator import export_image_estimator

ROOT = Path(__file__).resolve().parents[2]


def best(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--generator")
    ap.add_argument("--parser")
    ap.add_argument("--video", default=str(ROOT.parent / "shared" / "media" / "single_face.mp4"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=100)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp())
    if args.generator and args.parser:
        from au2rig.core.training.train_regressor import load_chain

        chain = load_chain(args.generator, args.parser)
    else:
        chain = RenderChain(build_generator(GeneratorConfig(resolution=128)), FaceParser(19), load_rig())
        print("GE-Net: untrained G and F_seg of the shipped architecture (speed only)")
    model = args.model
    if not model:
        r = Regressor(region_channels(chain.parser), RegressorConfig(crop_size=chain.size)).eval()
        model, _ = export_image_estimator(Objective(chain, r, None, LossWeights(identity=0.0)), tmp / "image.onnx")
        print(f"ONNX: untrained F_seg + R exported to {model} (speed only)")
    est = OnnxImageEstimator(model, threads=args.threads)
    s = est.crop_size
    crops = np.random.default_rng(0).integers(0, 255, (64, s, s, 3), dtype=np.uint8)
    est(crops[:4])
    one = best(lambda: [est(crops[i:i + 1]) for i in range(32)]) / 32
    batched = best(lambda: est(crops, batch=32)) / len(crops)
    print(f"F_seg + R, {s} px crops, ONNX Runtime {args.threads} threads: {1 / one:.0f} faces/s one at a time, "
          f"{1 / batched:.0f} faces/s in batches of 32")

    video = Path(args.video)
    if video.is_file():
        from au2rig.core.tracking.estimator import DEFAULT_ONNX
        from au2rig.core.tracking.track import TrackConfig, track_video

        fps = {}
        for name, path in (("landmark model", DEFAULT_ONNX), ("image model", model)):
            cfg = TrackConfig(model=str(path), threads=args.threads)
            secs = best(lambda: track_video(video, cfg, progress=False), repeat=2)
            fps[name] = track_video(video, cfg, progress=False).meta["frames_with_face"] / secs
        print(f"tracker end to end on {video.name} (start-up included): " +
              ", ".join(f"{k} {v:.0f} fps" for k, v in fps.items()) +
              f"; image / landmark {fps['image model'] / fps['landmark model']:.2f}")
    else:
        print(f"{video} absent: tracker comparison skipped")

    from au2rig.core.training.genet import FitConfig, fit

    params = torch.from_numpy(LAYOUT.neutral(16).astype(np.float32))
    with torch.no_grad():
        faces = chain.generate(params)
    cfg = FitConfig(iterations=args.iterations)
    for n in (1, 16):
        secs = best(lambda: fit(chain, faces[:n], None, cfg), repeat=1)
        print(f"GE-Net, {args.iterations} iterations, batch {n}: {secs / n:.2f} s per face")
    return 0


if __name__ == "__main__":
    sys.exit(main())
