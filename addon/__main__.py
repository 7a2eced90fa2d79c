"""Command line of the add-on's Blender-side tools: ``python -m addon <command>``.

    python -m addon demo [-o out] [--size 256] [--fps 30]
    python -m addon contact-sheet -o sheet.png [--size 256] [--columns 8] [--seed 0] [--rig spec.toml]
                                  [--generator G.pt]
    python -m addon render-pairs OUT --count N [--size 128] [--engine workbench|cycles] [--seed 0]
                                 [--sparse-k K] [--masks] [--randomize light,background,colors] [--workers W]
                                 [--lod auto|full|N]
    python -m addon verify-pairs OUT [--no-images]
    python -m addon recovery [-o out/recovery] [--actors 4] [--cycles-actors 1] [--seconds 4]
    python -m addon bench [--preset small|full] [-o out/bench]
    python -m addon preview VIDEO -o preview.mp4 [--tracking T.csv] [--size 360] [--max-frames N]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m addon", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="animate the built-in rig with the embedded performance")
    demo.add_argument("-o", "--output", default="out", help="folder for demo.blend and demo_strip.png (default out)")
    demo.add_argument("--size", type=int, default=256, help="size of the strip's frames in pixels (default 256)")
    demo.add_argument("--fps", type=float, default=30.0, help="frame rate of the animation (default 30)")
    sheet = commands.add_parser("contact-sheet", help="render a labelled contact sheet of the rig (Workbench)")
    sheet.add_argument("-o", "--output", required=True, help="PNG file to write")
    sheet.add_argument("--size", type=int, default=256, help="tile size in pixels (default 256)")
    sheet.add_argument("--columns", type=int, default=8, help="tiles per row (default 8)")
    sheet.add_argument("--seed", type=int, default=0, help="seed of the random identities (default 0)")
    sheet.add_argument("--rig", default=None, help="rig spec TOML (default: the built-in rig)")
    sheet.add_argument("--generator", help="a trained G (train-generator checkpoint or weights): each tile "
                                           "shows the render beside G's image, at G's resolution")
    _pairs_arguments(commands)
    rec = commands.add_parser("recovery", help="synthetic recovery: render held-out actors, track them, score")
    rec.add_argument("-o", "--output", default="out/recovery", help="folder for the clips and recovery.txt")
    rec.add_argument("--actors", type=int, default=4, help="Workbench actors (default 4)")
    rec.add_argument("--cycles-actors", type=int, default=1, help="Cycles actors (default 1; slow)")
    rec.add_argument("--seconds", type=float, default=4.0, help="length of each actor's clip (default 4)")
    bench = commands.add_parser("bench", help="every figure of the project beside its comparison, one table "
                                              "(BENCH.md and PNG charts)")
    bench.add_argument("--preset", default="small", choices=("small", "full", "tiny"),
                       help="small (default, a few minutes), full (longer, steadier figures); tiny is for tests")
    bench.add_argument("-o", "--output", default="out/bench", help="folder for BENCH.md, bench.json and charts")
    bench.add_argument("--quiet", action="store_true", help="no progress bars")
    pv = commands.add_parser("preview", help="the video beside the rig animated from its tracking (Workbench), "
                                             "as a video file")
    pv.add_argument("video", help="the video (anything OpenCV decodes)")
    pv.add_argument("-o", "--output", required=True, help="video file to write (.mp4)")
    pv.add_argument("--tracking", help="a tracking file of this video (CSV/JSON/NPZ); default: track it now")
    pv.add_argument("--size", type=int, default=360, help="height of the video and the rig's render (default 360)")
    pv.add_argument("--max-frames", type=int, help="track at most this many frames")
    pv.add_argument("--quiet", action="store_true", help="no progress bars")
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "_pairs-worker":  # internal: one render worker of render-pairs
        from .rig_render import run_worker

        return run_worker(*argv[1:4])
    args = parser.parse_args(argv)

    start = time.perf_counter()
    if args.command == "render-pairs":
        return _render_pairs(args)
    if args.command == "verify-pairs":
        return _verify_pairs(args)
    if args.command == "bench":
        from .bench import main as bench

        return bench(Path(args.output), args.preset, progress=not args.quiet)
    if args.command == "preview":
        from .preview import main as preview

        return preview(args)
    if args.command == "recovery":
        from .recovery import main as recovery

        return recovery(Path(args.output), args.actors, args.cycles_actors, args.seconds)
    if args.command == "demo":
        from .demo import run_demo

        result = run_demo(Path(args.output), args.size, args.fps)
        print(f"animated {result['frames']} frames at {result['fps']:g} fps ({result['keys']} keys) in "
              f"{time.perf_counter() - start:.1f} s\n  scene: {result['blend']}\n  strip: {result['strip']}",
              file=sys.stderr)
        return 0

    from ._core import load_rig
    from .contact_sheet import render_contact_sheet, sheet_entries

    rig = load_rig(args.rig)
    generator = None
    if args.generator:
        from core.train_generator import load_generator

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


def _pairs_arguments(commands) -> None:
    rp = commands.add_parser("render-pairs", help="render a (parameters, image) pairs dataset of the rig")
    rp.add_argument("output", help="dataset folder (created; a killed run resumes into it)")
    rp.add_argument("--count", type=int, default=1000, help="number of pairs (default 1000)")
    rp.add_argument("--size", type=int, default=128, help="image size in pixels (default 128)")
    rp.add_argument("--engine", default="workbench", help="workbench (fast, default) or cycles (quality)")
    rp.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    rp.add_argument("--pose-limits", type=float, nargs=3, default=(45.0, 30.0, 30.0),
                    metavar=("YAW", "PITCH", "ROLL"), help="pose drawn within +-these degrees (default 45 30 30)")
    rp.add_argument("--sparse-k", type=int, default=None,
                    help="only K random AU channels active per pair (default: all AUs uniform)")
    rp.add_argument("--masks", action="store_true", help="also write region masks (one label per pixel)")
    rp.add_argument("--randomize", default="",
                    help=f"domain randomisation, comma-separated from {','.join(RANDOMIZE)} (default none)")
    rp.add_argument("--workers", type=int, default=None,
                    help="render processes (default: one per CPU core available)")
    rp.add_argument("--chunk-size", type=int, default=16, help="pairs per chunk record (default 16)")
    rp.add_argument("--aa", default="FXAA", help="Workbench anti-aliasing: OFF, FXAA (default), 5, 8, 11, 16, 32")
    rp.add_argument("--samples", type=int, default=16, help="Cycles samples per pixel (default 16)")
    rp.add_argument("--val-fraction", type=float, default=0.1, help="share of validation pairs (default 0.1)")
    rp.add_argument("--rig", default=None, help="rig spec TOML (default: the built-in rig)")
    rp.add_argument("--lod", default="auto",
                    help="mesh level of detail: auto (default: coarser mesh for small images, same look), "
                         "full, or 1, 2")
    rp.add_argument("--overwrite", action="store_true", help="replace a dataset made with other settings")
    rp.add_argument("--no-fsync", action="store_true", help="skip fsync (faster; a power cut may lose chunks)")
    vp = commands.add_parser("verify-pairs", help="check a pairs dataset folder; report problems by pair index")
    vp.add_argument("output", help="dataset folder")
    vp.add_argument("--no-images", action="store_true", help="skip decoding images and masks (faster)")
    vp.add_argument("--rig", default=None, help="rig spec TOML to check landmarks against (default: built-in)")


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
        pose_limits=tuple(args.pose_limits), sparse_k=args.sparse_k, masks=args.masks,
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


if __name__ == "__main__":
    sys.exit(main())
