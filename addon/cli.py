"""The console script ``au2rig``: one subcommand per task, the core's (``core/cli.py``) and the
add-on's, which run Blender (``bpy``) headless. ``python -m au2rig.addon <command>`` is the same.

    au2rig demo [-o out] [--size 256] [--fps 30]
    au2rig contact-sheet -o sheet.png [--size 256] [--columns 8] [--seed 0] [--rig spec.toml] [--generator G.pt]
                         [--beside PHOTO=AU6+AU12+AU25 ...]
    au2rig render-pairs OUT --count N [--size 128] [--engine workbench|cycles] [--seed 0] [--sparse-k K] [--masks]
                        [--gaze-limits YAW PITCH]
                        [--randomize light,background,colors] [--workers W] [--lod auto|full|N]
    au2rig verify-pairs OUT [--no-images]
    au2rig recovery [-o out/recovery] [--actors 4] [--cycles-actors 1] [--seconds 4]
    au2rig bench [--preset small|full] [-o out/bench]
    au2rig preview VIDEO -o preview.mp4 [--tracking T.csv] [--size 360] [--max-frames N]
    au2rig track | faces | train-* | fit | eval-* | restamp ...   (core/cli.py)

Nothing of Blender, torch or the tracker is imported until a command runs.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from au2rig.core import cli as core_cli
from au2rig.core.cli import Command


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default="out", help="folder for demo.blend and demo_strip.png (default out)")
    p.add_argument("--size", type=int, default=256, help="size of the strip's frames in pixels (default 256)")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate of the animation (default 30)")


def _demo(args) -> int:
    start = time.perf_counter()
    from .demo import run_demo

    result = run_demo(Path(args.output), args.size, args.fps)
    print(f"animated {result['frames']} frames at {result['fps']:g} fps ({result['keys']} keys) in "
          f"{time.perf_counter() - start:.1f} s\n  scene: {result['blend']}\n  strip: {result['strip']}",
          file=sys.stderr)
    return 0


def _contact_sheet_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--size", type=int, default=256, help="tile size in pixels (default 256)")
    p.add_argument("--columns", type=int, default=8, help="tiles per row (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random identities (default 0)")
    p.add_argument("--rig", default=None, help="rig spec TOML (default: the built-in rig)")
    p.add_argument("--generator", help="a trained G (train-generator checkpoint or weights): each tile "
                                       "shows the render beside G's image, at G's resolution")
    p.add_argument("--beside", action="append", default=[], metavar="PHOTO=AUS",
                   help="a real face beside the rig performing the named AUs, e.g. smile.jpg=AU6+AU12+AU25 "
                        "(AU12:0.6 for an intensity below full); repeatable; the sheet then holds these pairs")


def _contact_sheet(args) -> int:
    start = time.perf_counter()
    from ._core import load_rig
    from .contact_sheet import render_contact_sheet, sheet_entries

    rig = load_rig(args.rig)
    if args.beside:
        from .contact_sheet import render_beside

        items = []
        for entry in args.beside:
            photo, sep, expression = entry.rpartition("=")
            if not sep or not photo:
                raise ValueError(f"--beside {entry!r}: expected PHOTO=AUS, e.g. smile.jpg=AU6+AU12+AU25")
            if not Path(photo).is_file():
                raise FileNotFoundError(f"--beside {entry!r}: no photo at {photo}")
            items.append((photo, expression))
        render_beside(rig, items, args.output, args.size)
        print(f"wrote {args.output}: {len(items)} photos beside the rig in {time.perf_counter() - start:.1f} s",
              file=sys.stderr)
        return 0
    generator = None
    if args.generator:
        from au2rig.core.nets.generator import load_generator  # a dev command: torch is there

        generator, _ = load_generator(args.generator, rig=rig)
    report: dict = {}
    render_contact_sheet(rig, args.output, args.size, args.columns, args.seed, generator=generator, report=report)
    for group, m in report.items():
        print(f"G's change from neutral points the rig's way: {group} {m['recognised']}/{m['count']} "
              f"(chance 1/{m['count']}; mean cosine {m['cosine']:.2f})"
              + (f"; missed: {', '.join(m['missed'])}" if m["missed"] else ""))
    seconds = time.perf_counter() - start
    n = len(sheet_entries(rig, args.seed))
    print(f"wrote {args.output}: {n} renders in {seconds:.1f} s ({seconds / n:.2f} s per tile, "
          f"scene setup included)", file=sys.stderr)
    return 0


RANDOMIZE = ("light", "background", "colors")


def _render_pairs_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("output", help="dataset folder (created; a killed run resumes into it)")
    p.add_argument("--count", type=int, default=1000, help="number of pairs (default 1000)")
    p.add_argument("--size", type=int, default=128, help="image size in pixels (default 128)")
    p.add_argument("--engine", default="workbench", help="workbench (fast, default) or cycles (quality)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--pose-limits", type=float, nargs=3, default=(45.0, 30.0, 30.0),
                   metavar=("YAW", "PITCH", "ROLL"), help="pose drawn within +-these degrees (default 45 30 30)")
    p.add_argument("--gaze-limits", type=float, nargs=2, default=(30.0, 20.0), metavar=("YAW", "PITCH"),
                   help="the eyes' turn in the head drawn within +-these degrees (default 30 20; 0 0: ahead)")
    p.add_argument("--sparse-k", type=int, default=None,
                   help="only K random AU channels active per pair (default: all AUs uniform)")
    p.add_argument("--masks", action="store_true", help="also write region masks (one label per pixel)")
    p.add_argument("--randomize", default="",
                   help=f"domain randomisation, comma-separated from {','.join(RANDOMIZE)} (default none)")
    p.add_argument("--workers", type=int, default=None,
                   help="render processes (default: one per CPU core available)")
    p.add_argument("--chunk-size", type=int, default=16, help="pairs per chunk record (default 16)")
    p.add_argument("--aa", default="FXAA", help="Workbench anti-aliasing: OFF, FXAA (default), 5, 8, 11, 16, 32")
    p.add_argument("--samples", type=int, default=16, help="Cycles samples per pixel (default 16)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of validation pairs (default 0.1)")
    p.add_argument("--rig", default=None, help="rig spec TOML (default: the built-in rig)")
    p.add_argument("--lod", default="auto",
                   help="mesh level of detail: auto (default: coarser mesh for small images, same look), "
                        "full, or 1, 2")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset made with other settings")
    p.add_argument("--no-fsync", action="store_true", help="skip fsync (faster; a power cut may lose chunks)")


def _render_pairs(args) -> int:
    from tqdm import tqdm

    from ._core import pairs
    from .rig_render import Cancelled, RenderConfig, render_pairs

    flags = [f for f in args.randomize.split(",") if f]
    unknown = [f for f in flags if f not in RANDOMIZE]
    if unknown:
        print(f"error: unknown --randomize option(s) {unknown}; valid: {','.join(RANDOMIZE)}", file=sys.stderr)
        return 2
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    config = RenderConfig(
        output=args.output, count=args.count, size=args.size, engine=args.engine, seed=args.seed,
        pose_limits=tuple(args.pose_limits), sparse_k=args.sparse_k, gaze_limits=tuple(args.gaze_limits),
        masks=args.masks,
        randomization=pairs.Randomization(**{f: True for f in flags}), chunk_size=args.chunk_size,
        workers=args.workers or cores, val_fraction=args.val_fraction, aa=args.aa, samples=args.samples,
        rig=args.rig, lod=args.lod, overwrite=args.overwrite, durable=not args.no_fsync)
    bar = tqdm(total=args.count, desc="rendering pairs", unit="pair", file=sys.stderr, dynamic_ncols=True)

    def progress(done, total):
        bar.total = total
        bar.update(done - bar.n)

    try:
        summary = render_pairs(config, progress)
    except (ValueError, pairs.PairsError) as e:
        bar.close()
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Cancelled):
        bar.close()
        print(f"stopped; run the same command again to resume into {args.output}", file=sys.stderr)
        return 130
    bar.close()
    print(f"{summary['folder']}: {summary['count']} pairs ({summary['rendered']} rendered now, "
          f"{summary['resumed_from']} already there) in {summary['seconds']:.1f} s "
          f"({summary['pairs_per_second']:.1f} pairs/s); split {summary['split']}", file=sys.stderr)
    return 0


def _verify_pairs_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("output", help="dataset folder")
    p.add_argument("--no-images", action="store_true", help="skip decoding images and masks (faster)")
    p.add_argument("--rig", default=None, help="rig spec TOML to check landmarks against (default: built-in)")


def _verify_pairs(args) -> int:
    from ._core import load_rig, pairs

    try:
        rig = load_rig(args.rig)
    except Exception as e:  # verify without landmark recomputation rather than not at all
        print(f"warning: rig not loaded ({e}); landmarks are not recomputed", file=sys.stderr)
        rig = None
    report = pairs.verify(args.output, rig=rig, images=not args.no_images)
    print(report.summary())
    return 0 if report.ok else 1


def _recovery_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default="out/recovery", help="folder for the clips and recovery.txt")
    p.add_argument("--actors", type=int, default=4, help="Workbench actors (default 4)")
    p.add_argument("--cycles-actors", type=int, default=1, help="Cycles actors (default 1; slow)")
    p.add_argument("--seconds", type=float, default=4.0, help="length of each actor's clip (default 4)")


def _recovery(args) -> int:
    from .tools.recovery import main as recovery

    return recovery(Path(args.output), args.actors, args.cycles_actors, args.seconds)


def _preview_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="the video (anything OpenCV decodes)")
    p.add_argument("-o", "--output", required=True, help="video file to write (.mp4)")
    p.add_argument("--tracking", help="a tracking file of this video (CSV/JSON/NPZ); default: track it now")
    p.add_argument("--size", type=int, default=360, help="height of the video and the rig's render (default 360)")
    p.add_argument("--max-frames", type=int, help="track at most this many frames")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _preview(args) -> int:
    from .preview import main as preview

    return preview(args)


def _bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="small", choices=("small", "full", "tiny"),
                   help="small (default, a few minutes), full (longer, steadier figures); tiny is for tests")
    p.add_argument("-o", "--output", default="out/bench", help="folder for BENCH.md, bench.json and charts")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _bench(args) -> int:
    from .tools.bench import main as bench

    return bench(Path(args.output), args.preset, progress=not args.quiet)


ADDON_COMMANDS: dict[str, Command] = {
    "demo": Command("animate the built-in rig with the embedded performance", _demo_arguments, _demo),
    "contact-sheet": Command("render a labelled contact sheet of the rig (Workbench)", _contact_sheet_arguments,
                             _contact_sheet),
    "render-pairs": Command("render a (parameters, image) pairs dataset of the rig", _render_pairs_arguments,
                            _render_pairs),
    "verify-pairs": Command("check a pairs dataset folder; report problems by pair index", _verify_pairs_arguments,
                            _verify_pairs),
    "recovery": Command("synthetic recovery: render held-out actors, track them, score", _recovery_arguments,
                        _recovery),
    "bench": Command("every figure of the project beside its comparison, one table (BENCH.md and PNG charts)",
                     _bench_arguments, _bench),
    "preview": Command("the video beside the rig animated from its tracking (Workbench), as a video file",
                       _preview_arguments, _preview),
}
# every command of au2rig: the add-on's, then the core's
COMMANDS: dict[str, Command] = {**ADDON_COMMANDS, **core_cli.COMMANDS}


def main(argv=None) -> int:
    """Run one command of :data:`COMMANDS`; errors propagate."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["_pairs-worker"]:  # internal: one render worker of render-pairs
        from .rig_render import run_worker

        return run_worker(*argv[1:4])
    return core_cli.main(argv, COMMANDS, "au2rig")


def run(argv=None) -> int:
    """The console script: errors as one line on stderr and exit status 1."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["_pairs-worker"]:
        return main(argv)
    return core_cli.run(argv, COMMANDS, "au2rig")
