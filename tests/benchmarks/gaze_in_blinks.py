"""Up-down gaze against the reference tracker, over all frames and over the frames whose eyes are open.

    python tests/benchmarks/gaze_in_blinks.py AGREEMENT_DIR [--open-below 0.35]

``AGREEMENT_DIR`` is the output folder of ``../shared/reference/agreement.py`` (its ``ours_*.csv``
and ``ref_*.csv``). The reference reads gaze from its face mesh, whose irises sink with a closing
lid, so its up-down gaze falls in every blink; the tracker holds the gaze of the open frames around
a blink (``core/tracking/gaze.py``). Per clip this prints |r| between the two up-down gazes over
all frames and over the frames where the reference's eyes are open (its mean eye blink under
``--open-below``), and the correlation of the reference's up-down gaze with its own blink; then
the medians over clips. The reference's channel definitions are read from its ``agreement.py``
(``../shared/reference``), which must be beside the project.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="agreement.py's output folder")
    ap.add_argument("--open-below", type=float, default=0.35,
                    help="the reference's mean eye blink under which a frame counts as open (default 0.35)")
    args = ap.parse_args(argv)
    if not (REFERENCE / "agreement.py").is_file():
        print(f"skipped: the reference's agreement.py is not at {REFERENCE}")
        return 0
    sys.path.insert(0, str(REFERENCE))
    from agreement import CHANNELS, read_csv

    ours_files = sorted(args.folder.glob("ours_*.csv"))
    if not ours_files:
        print(f"{args.folder}: no ours_*.csv (run ../shared/reference/agreement.py into it first)")
        return 1
    every, open_only = [], []
    print(f"{'clip':40s} {'all frames':>14s} {'open eyes':>14s} {'ref gaze vs ref blink':>22s}")
    for path in ours_files:
        clip = path.stem[len("ours_"):]
        ref_path = args.folder / f"ref_{clip}.csv"
        if not ref_path.is_file():
            print(f"{clip}: no {ref_path.name}")
            continue
        ours, ref = read_csv(path), read_csv(ref_path)
        n = min(len(ours["frame"]), len(ref["frame"]))
        theirs = CHANNELS["gaze y"][0](ref)[:n]
        mine = ours["gaze_angle_y"][:n]
        blink = ((ref["eyeBlinkLeft"] + ref["eyeBlinkRight"]) / 2)[:n]
        seen = np.isfinite(theirs) & np.isfinite(mine) & np.isfinite(blink)
        opened = seen & (blink < args.open_below)
        if seen.sum() < 3 or np.std(theirs[seen]) == 0 or np.std(mine[seen]) == 0:
            print(f"{clip:40s} too few frames or no motion")
            continue
        r_all = abs(np.corrcoef(mine[seen], theirs[seen])[0, 1])
        r_open = abs(np.corrcoef(mine[opened], theirs[opened])[0, 1]) if opened.sum() >= 3 else np.nan
        r_blink = np.corrcoef(blink[seen], theirs[seen])[0, 1]
        every.append(r_all)
        open_only.append(r_open)
        print(f"{clip:40s} {r_all:6.2f} ({seen.sum():4d}) {r_open:6.2f} ({opened.sum():4d}) {r_blink:+22.2f}")
    print(f"{'median over clips':40s} {np.median(every):14.2f} {np.nanmedian(open_only):14.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
