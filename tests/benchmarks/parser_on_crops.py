"""How well a face parser (F_seg) parses each of several labelled face-crops files: per file,
pixel accuracy, mean IoU over the facial classes present, and the IoU of each class.

    python tests/benchmarks/parser_on_crops.py PARSER.pt CROPS.npz [CROPS.npz ...] [--out DIR]

PARSER: ``train-parser --export`` weights (or the public face-parsing checkpoint). CROPS: files
of ``au2rig faces`` with labels; real frames' labels are drawn from their detected landmarks
(``core.datasets.labels``), rig renders' from their region masks. Score real clips the parser
never saw (pass its training crops only to compare). ``--out DIR`` writes one
crop | label | prediction grid per file (``DIR/NAME.png``, eight crops spread over the file).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

COLUMNS = ("skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "u_lip", "l_lip", "mouth", "hair")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("parser", type=Path)
    ap.add_argument("crops", type=Path, nargs="+")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from au2rig.core.datasets.faces import FaceCrops
    from au2rig.core.nets.face_parser import load_face_parser
    from au2rig.core.training.train_parser import predict, scores, write_label_grid

    parser = load_face_parser(args.parser)
    print(f"{'crops':34s} {'n':>5s} {'acc':>6s} {'mIoU':>6s}  " + " ".join(f"{c:>7s}" for c in COLUMNS))
    pooled = {"real": ([], []), "rendered": ([], [])}
    for path in args.crops:
        crops = FaceCrops.load(path)
        if crops.labels is None:
            print(f"{path}: no labels (made with --no-labels); skipped")
            continue
        pred = predict(parser, crops.crops)
        s = scores(crops.labels, pred)
        kind = "rendered" if crops.rendered else "real"
        pooled[kind][0].append(crops.labels)
        pooled[kind][1].append(pred)
        print(f"{path.stem[-34:]:34s} {s['count']:5d} {s['pixel_accuracy']:6.3f} {s['miou']:6.3f}  "
              + " ".join(f"{s['iou'].get(c, float('nan')):7.2f}" for c in COLUMNS))
        if args.out is not None:
            pick = np.linspace(0, len(crops) - 1, min(8, len(crops))).round().astype(int)
            args.out.mkdir(parents=True, exist_ok=True)
            write_label_grid(args.out / f"{path.stem}.png", crops.crops[pick], crops.labels[pick], pred[pick])
    for kind, (labels, preds) in pooled.items():
        if len(labels) > 1:
            s = scores(np.concatenate(labels), np.concatenate(preds))
            print(f"{'all ' + kind:34s} {s['count']:5d} {s['pixel_accuracy']:6.3f} {s['miou']:6.3f}  "
                  + " ".join(f"{s['iou'].get(c, float('nan')):7.2f}" for c in COLUMNS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
