"""Writing a torch module as ONNX the one way the project does: traced export (opset 17, dynamic
batch), metadata as JSON values, written atomically, and kept only when ONNX Runtime agrees
with torch on the check inputs."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from ..util.atomic import atomic_path


def export_checked(module, inputs: tuple, path, input_names, output_names, meta: dict,
                   tol: float = 1e-4) -> tuple[Path, float]:
    """Export ``module`` called on ``inputs`` (torch tensors with a batch axis); returns
    (path, max abs difference between ONNX Runtime and torch on ``inputs``), and raises, leaving
    nothing at ``path``, when that difference exceeds ``tol``. The trace sees the first item
    alone and the check the whole batch, so a batch size frozen into the graph is caught."""
    import onnx
    import onnxruntime as ort
    import torch

    module = module.cpu().eval()
    path = Path(path)
    axes = {name: {0: "batch"} for name in (*input_names, *output_names)}
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # shapes are static per model (crop size, layout): the tracer's notes on them are expected
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(module, tuple(x[:1] for x in inputs), str(tmp), dynamo=False, opset_version=17,
                          input_names=list(input_names), output_names=list(output_names), dynamic_axes=axes)
        model = onnx.load(str(tmp))
        for key, value in meta.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, json.dumps(value)
        onnx.save(model, str(tmp))
        sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        outs = sess.run(None, {n: x.numpy() for n, x in zip(input_names, inputs)})
        with torch.no_grad():
            refs = module(*inputs)
        refs = refs if isinstance(refs, (tuple, list)) else (refs,)
        diff = max(float(np.abs(o - r.numpy()).max()) for o, r in zip(outs, refs))
        if not diff <= tol:
            raise RuntimeError(f"{path}: ONNX Runtime differs from torch by {diff:.3g} (> {tol:g}); not written")
    return path, diff
