"""The paper's Table 3 on our data: R trained with all five losses, then with each of the
identity, loopback, parameter and adversarial losses removed, on rig renders treated as
unlabeled images; every run is scored on held-out renders (per-AU ICC(3,1) / MAE on FACS 0-5,
pose MAE). Same seed, data, steps and frozen networks for every run; runs resume.

    python tests/benchmarks/ablation_regressor.py TRAIN.npz VAL.npz --generator G.pt --parser P.pt
                                                   -o runs/ablation [--steps 600] [--only full,no-identity]

TRAIN / VAL: face crops of a pairs dataset (``au2rig faces --pairs DIR --split train``
and ``--split val``); their known parameters are used for scoring only.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from au2rig.core.evaluation.metrics import au_report, format_report
from au2rig.core.nets.regressor import RegressorConfig
from au2rig.core.training.chain import LossWeights
from au2rig.core.training.train_regressor import (
    RegressorTrainConfig,
    load_chain,
    load_crops,
    load_trained,
    predict_crops,
    train_regressor,
)

ROOT = Path(__file__).resolve().parents[2]

RUNS = {
    "full": {},
    "no-identity": {"identity": 0.0},
    "no-loopback": {"loopback": 0.0},
    "no-parameter": {"parameter": 0.0},
    "no-adversarial": {"adversarial": 0.0},
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("train")
    ap.add_argument("val")
    ap.add_argument("--generator", required=True)
    ap.add_argument("--parser", required=True)
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--only", help="comma-separated subset of " + ",".join(RUNS))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    chain = load_chain(args.generator, args.parser)
    val = load_crops([args.val])
    names = args.only.split(",") if args.only else list(RUNS)
    rows = {}
    for name in names:
        weights = LossWeights(**RUNS[name])
        cfg = RegressorTrainConfig(regressor=RegressorConfig(crop_size=chain.size), weights=weights,
                                   steps=args.steps, batch=args.batch, validate_every=max(1, args.steps // 3),
                                   checkpoint_every=50, embedder="auto" if weights.identity > 0 else "none")
        ckpt = train_regressor([args.train], Path(args.output) / name, args.generator, args.parser, cfg,
                               val_path=args.val, chain=chain, log=lambda s: print(s, file=sys.stderr))
        objective, _ = load_trained(ckpt, chain)
        rep = au_report(predict_crops(objective, val.crops, val.roll), val.params)
        rows[name] = rep
        print(f"\n== {name} ({args.steps} steps) ==\n{format_report(rep)}", flush=True)
    print("\nrun             ICC    MAE   yaw  pitch  roll (deg)")
    for name, rep in rows.items():
        p = rep["pose_mae_deg"]
        print(f"{name:<14} {rep['mean']['icc']:.3f} {rep['mean']['mae']:.3f} {p['yaw']:5.1f} {p['pitch']:5.1f} "
              f"{p['roll']:5.1f}")
    out = Path(args.output) / "ablation.json"
    out.write_text(json.dumps({k: {"mean": v["mean"], "pose_mae_deg": v["pose_mae_deg"], "per_au": v["per_au"]}
                               for k, v in rows.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
