"""The image path as one ONNX model: F_seg + R, consumed by the tracker like the landmark model.

Input ``crops`` (N, 3, S, S) float32 RGB in [0, 1], five-point aligned (``core.faces``, S and
the eye distance are in the metadata); output ``params`` (N, P) in the shared layout with the
roll as a residual of the alignment (the tracker adds the alignment's roll back, see
``core.estimator.full_pose``). Metadata: kind "image", layout, channels, rig and its
hash, crop size and eye distance, and what the caller adds (training record).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_path
from .estimator import model_fields
from .layout import LAYOUT, ParameterLayout


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
    """Write F_seg + R of a trained objective (``core.chain.Objective``) as one ONNX model,
    atomically, after checking ONNX Runtime against torch on random crops; returns
    (path, max abs difference) and raises when it exceeds ``tol``."""
    import onnx
    import onnxruntime as ort

    chain = objective.chain
    model = ImageModel(chain.parser, objective.regressor).cpu().eval()
    s = chain.size
    x = torch.from_numpy(np.random.default_rng(0).uniform(0, 1, (check_n, 3, s, s)).astype(np.float32))
    meta = {"kind": "image", **model_fields(layout, chain.rig), "crop_size": s, "eye_distance": chain.eye_distance,
            **(extra or {})}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.onnx.export(model, (x[:2],), str(tmp), dynamo=False, opset_version=17, input_names=["crops"],
                          output_names=["params"], dynamic_axes={"crops": {0: "batch"}, "params": {0: "batch"}})
        proto = onnx.load(str(tmp))
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, json.dumps(value)
        onnx.save(proto, str(tmp))
        sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        (out,) = sess.run(None, {"crops": x.numpy()})
        with torch.no_grad():
            ref = model(x).numpy()
        diff = float(np.abs(out - ref).max())
        if not diff <= tol:
            raise RuntimeError(f"{path}: ONNX Runtime differs from torch by {diff:.3g} (> {tol:g}); not written")
    return path, diff
