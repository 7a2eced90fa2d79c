"""Command line of the add-on's Blender-side tools: ``python -m addon <command>``.

    python -m addon demo [-o out] [--size 256] [--fps 30]
    python -m addon contact-sheet -o sheet.png [--size 256] [--columns 8] [--seed 0] [--rig spec.toml]
"""
from __future__ import annotations

import argparse
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
    args = parser.parse_args(argv)

    start = time.perf_counter()
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
    render_contact_sheet(rig, args.output, args.size, args.columns, args.seed)
    seconds = time.perf_counter() - start
    n = len(sheet_entries(rig, args.seed))
    print(f"wrote {args.output}: {n} renders in {seconds:.1f} s ({seconds / n:.2f} s per tile, "
          f"scene setup included)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
