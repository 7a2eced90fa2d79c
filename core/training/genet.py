"""GE-Net fitting: per-image iterative optimisation of the parameter vector through G and F_seg.

The method of Song et al. 2020 ("Unsupervised facial action unit intensity estimation via
differentiable optimization"): the parameters of each face are free variables, and gradient
descent lowers the facial content loss between the face and G's re-rendering of them (both
seen through the frozen F_seg, ``core.training.chain``), with the parameter (sparsity) loss as a
regulariser and optionally the identity loss. It is the regressor's machinery with R replaced by
free parameters: a baseline for R, and a refinement of R's estimate (``init`` = R's output).

The parameters are optimised in the unconstrained form of ``core.nets.regressor.squash`` (so they
stay within the layout's ranges), with Adam; every face of a batch is independent (the loss is a
sum over faces and Adam works per element), so batching only changes the speed.

    au2rig fit CROPS.npz -o OUT.npz --run RUN_DIR/checkpoint.pt [--iterations 100] [--init regressor|neutral]
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..nets.regressor import squash, unsquash
from ..rig.layout import LAYOUT, ParameterLayout
from .chain import LossWeights, Objective, RenderChain


@dataclass(frozen=True)
class FitConfig:
    """Iterations and step size of the optimisation, and the loss weights it uses (the
    loopback and adversarial terms need a regressor and are not part of GE-Net)."""

    iterations: int = 100
    lr: float = 0.05
    content: float = 1.0
    parameter: float = 0.1
    identity: float = 0.0

    def weights(self) -> LossWeights:
        return LossWeights(content=self.content, parameter=self.parameter, identity=self.identity,
                           loopback=0.0, adversarial=0.0)

    def to_dict(self) -> dict:
        return asdict(self)


class _Free(torch.nn.Module):
    """Stands in for R: returns the current free parameters whatever the features."""

    def __init__(self, raw: torch.Tensor, layout: ParameterLayout):
        super().__init__()
        self.raw = torch.nn.Parameter(raw)
        self.layout = layout

    def forward(self, f_gb, regions):
        return squash(self.raw, self.layout)


def fit(chain: RenderChain, crops: torch.Tensor, init: torch.Tensor | None = None, cfg: FitConfig = FitConfig(),
        embedder=None, layout: ParameterLayout = LAYOUT, on_iteration=None) -> tuple[torch.Tensor, list[float]]:
    """Fitted parameters (N, P) for aligned crops (N, 3, S, S) in [0, 1], starting from ``init``
    (N, P) or the neutral face; returns them with the mean loss of every iteration."""
    n = len(crops)
    start = torch.from_numpy(np.broadcast_to(layout.neutral(), (n, len(layout))).astype(np.float32)) \
        if init is None else init.detach().float()
    free = _Free(unsquash(start.clone(), layout), layout)
    objective = Objective(chain, free, embedder, cfg.weights(), layout)
    opt = torch.optim.Adam(free.parameters(), lr=cfg.lr)
    history = []
    for i in range(cfg.iterations):
        total, terms, _ = objective(crops)
        opt.zero_grad(set_to_none=True)
        (total * n).backward()  # per-face gradients do not shrink with the batch size
        opt.step()
        history.append(float(total.detach()))
        if on_iteration:
            on_iteration(i + 1, cfg.iterations)
    with torch.no_grad():
        return squash(free.raw, layout).detach(), history


def fit_crops(chain: RenderChain, crops: np.ndarray, cfg: FitConfig = FitConfig(), regressor: Objective | None = None,
              embedder=None, batch: int = 16, layout: ParameterLayout = LAYOUT, progress: bool = True):
    """Fit every crop of (N, S, S, 3) uint8; initialised by ``regressor`` (a trained Objective)
    when given. Returns (parameters (N, P) with the roll residual, seconds per face)."""
    from tqdm import tqdm

    from .common import to_tensor

    out = []
    bar = tqdm(total=len(crops), desc="GE-Net fitting", unit="face", disable=not progress)
    started = time.perf_counter()
    for i in range(0, len(crops), batch):
        x = to_tensor(crops[i:i + batch])
        init = None
        if regressor is not None:
            with torch.no_grad():
                init = regressor.eval().predict(x)
        params, _ = fit(chain, x, init, cfg, embedder, layout)
        out.append(params.numpy())
        bar.update(len(x))
    bar.close()
    seconds = (time.perf_counter() - started) / max(1, len(crops))
    return (np.concatenate(out) if out else np.zeros((0, len(layout)))), seconds


def main(args) -> int:
    """``au2rig fit`` (arguments parsed in core/__main__.py)."""
    from ..datasets.faces import FaceCrops
    from ..evaluation.metrics import au_report, format_report
    from ..tracking.estimator import full_pose
    from ..util.atomic import atomic_path
    from .train_regressor import load_trained

    torch.set_num_threads(args.threads)
    objective, _ = load_trained(args.run)
    crops = FaceCrops.load(args.crops)
    if args.max_faces:
        crops = crops.subset(np.arange(min(len(crops), args.max_faces)))
    cfg = FitConfig(iterations=args.iterations, lr=args.lr)
    init = objective if args.init == "regressor" else None
    params, seconds = fit_crops(objective.chain, crops.crops, cfg, init, progress=not args.quiet)
    params = full_pose(params, crops.roll)
    with atomic_path(args.output) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, params=params.astype(np.float32), frame=crops.frame, source_index=crops.source_index)
    print(f"{args.output}: {len(params)} faces, {seconds:.3f} s per face "
          f"({cfg.iterations} iterations, init {args.init})", file=sys.stderr)
    if crops.params is not None:
        print(format_report(au_report(params, crops.params)))
    return 0
