"""Run the exported estimators (landmark path and image path) with ONNX Runtime, without torch.

A model carries the parameter layout and rig it was made for in its metadata
(:func:`model_fields`); :func:`check_compatible` refuses any other. The networks and their
training live in ``core/nets/landmark_net.py`` and ``core/training/train_landmarks.py``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..rig.evaluate import Rig
from ..rig.identity import check_rig, stamp
from ..rig.layout import LAYOUT, ParameterLayout
from ..rig.load import load_rig
from ..util.untrusted import reading

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
DEFAULT_ONNX = MODELS_DIR / "landmarks.onnx"
DEFAULT_CHECKPOINT = MODELS_DIR / "landmarks.pt"


# --- compatibility -------------------------------------------------------------------------
def model_fields(layout: ParameterLayout, rig: Rig) -> dict:
    return {"layout_version": layout.version, "channels": list(layout.names), **stamp(rig)}


def check_compatible(meta: dict, source: str, layout: ParameterLayout = LAYOUT, rig: Rig | None = None) -> None:
    """Refuse a model made for another parameter layout or rig, saying which."""
    rig = rig or load_rig()
    if meta.get("layout_version") != layout.version or list(meta.get("channels", [])) != list(layout.names):
        raise ValueError(f"{source}: made for parameter layout {meta.get('layout_version')!r} "
                         f"({len(meta.get('channels', []))} channels); this is layout {layout.version!r} "
                         f"({len(layout)} channels)")
    check_rig(meta, rig, source)


# --- ONNX Runtime -------------------------------------------------------------------------
def onnx_metadata(path) -> dict:
    """The metadata (key -> JSON value) of an ONNX file, as ONNX Runtime reads it; a file that is
    not a readable ONNX model, or metadata that is not JSON, raises ``ValueError`` naming the file."""
    return open_session(path, 1)[1]


class ModelFileError(ValueError):
    """An ONNX model cannot be read; the message names the file."""


def open_session(path: Path, threads: int = 1):
    """(ONNX Runtime CPU session, metadata dict with JSON values) of an exported model."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no estimator model at {path}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path}: not a readable ONNX model ({first})") from None
    meta = {}
    with reading(path, ModelFileError, "ONNX model"):
        for key, value in session.get_modelmeta().custom_metadata_map.items():
            try:
                meta[key] = json.loads(value)
            except ValueError:
                raise ModelFileError(f"{path}: metadata {key!r} is not JSON; not a model exported by au2rig") \
                    from None
    return session, meta


class OnnxEstimator:
    """Runs an exported estimator through ONNX Runtime (what the tracker and the add-on use)."""

    def __init__(self, path=DEFAULT_ONNX, threads: int = 1, layout: ParameterLayout = LAYOUT, rig: Rig | None = None,
                 opened=None):
        """``opened``: the (session, metadata) of ``path`` when :func:`open_session` has run already."""
        self.path = Path(path)
        self.session, self.meta = opened or open_session(self.path, threads)
        check_compatible(self.meta, str(self.path), layout, rig)
        self.kind = self.meta.get("kind", "landmarks")
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, landmarks: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
        """Parameters (N, P) for landmarks (N, 68, 2), with the actor's neutral reference frame
        (68, 2) or (N, 68, 2) when known."""
        lm = np.ascontiguousarray(landmarks, dtype=np.float32)
        if reference is None:
            ref, flag = lm, np.zeros((len(lm), 1), np.float32)  # ignored by the model when the flag is 0
        else:
            ref = np.ascontiguousarray(np.broadcast_to(reference, lm.shape), dtype=np.float32)
            flag = np.ones((len(lm), 1), np.float32)
        feeds = dict(zip(self.input_names, (lm, ref, flag)))
        return self.session.run(None, feeds)[0].astype(np.float64)


def full_pose(pred: np.ndarray, roll, layout: ParameterLayout = LAYOUT) -> np.ndarray:
    """Estimates in the image's frame: the alignment's roll (degrees, (N,)) plus the residual."""
    out = np.array(pred, dtype=np.float64, copy=True)
    r = layout.names.index("pose_roll")
    out[:, r] = out[:, r] + np.asarray(roll, np.float64)
    return out


class OnnxImageEstimator:
    """Runs an exported image-path model through ONNX Runtime."""

    kind = "image"

    def __init__(self, path, threads: int = 1, layout: ParameterLayout = LAYOUT, rig=None, opened=None):
        self.path = Path(path)
        self.session, self.meta = opened or open_session(self.path, threads)
        check_compatible(self.meta, str(self.path), layout, rig)
        if self.meta.get("kind") != "image":
            raise ValueError(f"{self.path}: a {self.meta.get('kind', 'landmarks')!r} model, not an image-path model")
        self.crop_size = int(self.meta["crop_size"])
        self.eye_distance = float(self.meta["eye_distance"])
        self.layout = layout

    def __call__(self, crops: np.ndarray, roll: np.ndarray | None = None, batch: int = 32) -> np.ndarray:
        """Parameters (N, P) for aligned crops (N, S, S, 3) uint8 RGB; ``roll`` (N,) the alignment's
        roll in degrees, added back to the residual the model predicts."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (self.crop_size, self.crop_size, 3):
            raise ValueError(f"{self.path}: crops must be (N, {self.crop_size}, {self.crop_size}, 3), "
                             f"got {crops.shape}")
        outs = []
        for i in range(0, len(crops), batch):
            x = np.ascontiguousarray(crops[i:i + batch].transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
            outs.append(self.session.run(None, {"crops": x})[0])
        out = np.concatenate(outs) if outs else np.zeros((0, len(self.layout)))
        return full_pose(out, np.zeros(len(out)) if roll is None else roll, self.layout)
