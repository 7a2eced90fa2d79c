"""The image path's validation picture on real faces: each crop beside G's re-rendering of R's estimate.

    python tests/benchmarks/image_path_picture.py CHECKPOINT CROPS.npz... --out PICTURE.png [--per-file 6]

``CHECKPOINT`` is a ``train-regressor`` run's ``checkpoint.pt`` (its G and F_seg are reloaded from
the paths it records); ``CROPS`` are face-crops files (``au2rig faces``), best ones R never saw.
From each file, ``--per-file`` crops evenly spread over it are shown as rows: the real crop | G's
image of the parameters R reads from it. Where the re-rendering shows the real face's expression,
pose and gaze, R read them; where it shows a neutral face under the real one's expression, R
missed it. Prints, per file, the mean of R's AU intensities (FACS 0-5) over all its crops.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("crops", type=Path, nargs="+")
    ap.add_argument("--out", type=Path, required=True, help="PNG to write")
    ap.add_argument("--per-file", type=int, default=6, help="rows per crops file (default 6)")
    args = ap.parse_args(argv)

    import torch

    from au2rig.core.datasets.faces import FaceCrops
    from au2rig.core.rig.layout import LAYOUT
    from au2rig.core.training.common import to_tensor, write_grid
    from au2rig.core.training.train_regressor import load_trained

    objective, _ = load_trained(args.checkpoint)
    au = LAYOUT.group_slice("au")
    shown, fits = [], []
    with torch.no_grad():
        for path in args.crops:
            crops = FaceCrops.load(path).crops
            params = np.concatenate([objective.predict(to_tensor(crops[i:i + 64])).numpy()
                                     for i in range(0, len(crops), 64)])
            mean = params[:, au].mean(0) * 5
            top = sorted(zip(LAYOUT.group_names("au"), mean), key=lambda kv: -kv[1])[:5]
            print(f"{path.name}: {len(crops)} crops; mean AU (FACS) highest: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in top))
            pick = np.linspace(0, len(crops) - 1, min(args.per_file, len(crops))).round().astype(int)
            x = to_tensor(crops[pick])
            shown.append(x)
            fits.append(objective.chain.generate(torch.as_tensor(params[pick], dtype=torch.float32)).clamp(0, 1))
    write_grid(args.out, torch.cat(shown), torch.cat(fits))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
