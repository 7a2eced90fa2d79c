"""The image path as one ONNX model: F_seg + R, consumed by the tracker like the landmark model.

Input ``crops`` (N, 3, S, S) float32 RGB in [0, 1], five-point aligned (``core.datasets.faces``, S and
the eye distance are in the metadata); output ``params`` (N, P) in the shared layout with the
roll as a residual of the alignment (the tracker adds the alignment's roll back, see
``core.tracking.estimator.full_pose``). Metadata: kind "image", layout, channels, rig and its
hash, crop size and eye distance, and what the caller adds (training record).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..rig.layout import LAYOUT, ParameterLayout
from ..tracking.estimator import model_fields
from .onnx_export import export_checked


class ImageModel(torch.nn.Module):
    """Crops -> parameters (the exported graph): frozen F_seg then R."""

    def __init__(self, parser, regressor):
        super().__init__()
        self.parser, self.regressor = parser.eval(), regressor.eval()

    def forward(self, crops):
        f = self.parser.features(crops)
        return self.regressor(f.f_gb, f.regions)


def export_image_estimator(objective, path, layout: ParameterLayout = LAYOUT, extra: dict | None = None,
                           check_n: int = 4, tol: float = 1e-4) -> tuple[Path, float]:
    """Write F_seg + R of a trained objective (``core.training.chain.Objective``) as one ONNX model,
    atomically, after checking ONNX Runtime against torch on random crops; returns
    (path, max abs difference) and raises when it exceeds ``tol``."""
    chain = objective.chain
    model = ImageModel(chain.parser, objective.regressor)
    s = chain.size
    x = torch.from_numpy(np.random.default_rng(0).uniform(0, 1, (check_n, 3, s, s)).astype(np.float32))
    meta = {"kind": "image", **model_fields(layout, chain.rig), "crop_size": s, "eye_distance": chain.eye_distance,
            **(extra or {})}
    return export_checked(model, (x,), path, ("crops",), ("params",), meta, tol)
