"""Perception backends of the tracker: faces and their 68 iBUG landmarks in video frames.

One small interface over interchangeable detectors (``open_backend(name)``):

* ``"mediapipe"`` (the offline default): MediaPipe 0.10.21's bundled face mesh (468 points, with
  its short-range face detector; both models ship inside the PyPI wheel). The 468 mesh points are
  mapped to the 68 iBUG points by a fixed sparse linear map, ``core/data/mediapipe68.json``: each
  iBUG point is a convex combination of at most three mesh points. The map is fitted on headless
  Blender renders of the built-in rig against the rig's analytic landmarks
  (``tests/benchmarks/fit_mediapipe_map.py`` regenerates it, :func:`fit_mediapipe_map` is the fit).
* ``"fan"``: face-alignment 1.5.0's 2D FAN with its own face detector (S3FD by default). Its
  weights are not on PyPI; face-alignment downloads them into torch's hub cache on first use,
  which fails offline. This backend only loads them from that cache and raises
  :class:`BackendUnavailable` naming the missing files and the folder to put them in.

Pixel convention everywhere: x right, y down, (0, 0) the top-left *corner* of the image (the
center of pixel (i, j) is (i + 0.5, j + 0.5)), the convention of ``Rig.landmarks_2d``.
This module never imports ``bpy``.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from ..alignment.align import LEFT_EYE, RIGHT_EYE
from ..util.quiet import quiet_fd
from ..util.tensors import loaded_torch
from .gaze import eye_offsets

BACKENDS: tuple[str, ...] = ("mediapipe", "fan")
DATA_DIR = Path(__file__).resolve().parents[1] / "data"
MEDIAPIPE_MAP = DATA_DIR / "mediapipe68.json"
MEDIAPIPE_PIP = ("pip install --no-deps mediapipe==0.10.21 && pip install absl-py attrs flatbuffers "
                 "protobuf==4.25.5 matplotlib")  # --no-deps: its jax / opencv-contrib deps are not needed
FAN_PIP = ("pip install --no-deps face-alignment==1.5.0 && pip install scipy==1.14.1 "
           "scikit-image==0.25.2 numba==0.61.2 llvmlite==0.44.0")
N_MESH = 468
# iBUG 68 points used for the inter-ocular distance (outer eye corners, 0-based)
OUTER_EYE_CORNERS = (36, 45)
# iBUG 68 points of the eyes (corners and lids, 0-based): read from the attention mesh when it runs
EYE_POINTS = RIGHT_EYE + LEFT_EYE
# iBUG 68 points of the lips (outer contour 48-59 from corner 48 to corner 54 and back, inner 60-67)
LIP_POINTS = tuple(range(48, 68))


def lips_at_width(lips: np.ndarray, width: float) -> np.ndarray:
    """(20, 2) iBUG lip points (:data:`LIP_POINTS`) stretched along their corner line (48 to 54)
    about its midpoint so that the corners lie ``width`` apart; across that line nothing moves."""
    lips = np.asarray(lips, float)
    a, b = lips[0], lips[6]
    length = float(np.linalg.norm(b - a))
    if not (np.isfinite(width) and width > 0 and length > 0):
        return lips.copy()
    unit = (b - a) / length
    along = (lips - (a + b) / 2) @ unit
    return lips + np.outer(along * (width / length - 1.0), unit)


class BackendUnavailable(RuntimeError):
    """A backend cannot run here; the message says what is missing and how to fix it."""


@dataclass(frozen=True)
class Face:
    """One face in one frame."""

    box: np.ndarray  # (4,) float: x0, y0, x1, y1 in pixels
    landmarks: np.ndarray  # (68, 2) float pixels, iBUG order, x right, y down, (0,0) top-left corner
    confidence: float  # 0..1
    irises: np.ndarray | None = None  # (2,) where the irises sit in their eyes (core.tracking.gaze.eye_offsets)


class LandmarkBackend(ABC):
    """A face + 68-landmark detector. Use as a context manager or call :meth:`close`."""

    name: str = ""

    @abstractmethod
    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        """All faces found in one frame (uint8 H x W x 3, BGR as OpenCV reads it)."""

    def reset(self) -> None:
        """Forget the video tracking state (call before a new video)."""

    def close(self) -> None:
        """Release the models."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_backend(name: str = "mediapipe", *, video: bool = True, max_faces: int = 4, lids: bool = True,
                 **options) -> LandmarkBackend:
    """Open a backend by name (one of :data:`BACKENDS`).

    ``video=True`` lets the backend use the previous frame (MediaPipe then tracks the mesh and
    runs its face detector only while it holds fewer than ``max_faces`` faces: with
    ``max_faces=1`` the detector runs only when the face is lost, which is the fastest setting);
    ``video=False`` treats every image on its own. ``lids``: MediaPipe reads the eyes from its
    attention mesh (see :class:`MediaPipeBackend`; FAN has one set of points).
    ``options`` go to the backend's constructor
    (``MediaPipeBackend``: ``min_detection_confidence``, ``min_tracking_confidence``,
    ``mapping``; ``FanBackend``: ``device``, ``face_detector``, ``flip_input``).
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown landmark backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if max_faces < 1:
        raise ValueError(f"max_faces must be at least 1, got {max_faces}")
    if name == "mediapipe":
        return MediaPipeBackend(video=video, max_faces=max_faces, lids=lids, **options)
    return FanBackend(video=video, max_faces=max_faces, **options)


def _check_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 H x W x 3 BGR image, got {image.dtype} {image.shape}")
    return image


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _bounds(points: np.ndarray) -> np.ndarray:
    return np.concatenate([points.min(0), points.max(0)]).astype(float)


# --- choosing the performer -------------------------------------------------------------
def pick_face(faces: list[Face], previous: Face | None, frame_shape) -> Face | None:
    """The one face a video follows.

    Policy:

    * no ``previous`` face (first frame, or the caller gave up following): the face with the
      largest ``area * (1 - 0.5 * d)``, where ``d`` is the distance from its box center to the
      image center divided by half the image diagonal, so the largest face wins unless a
      slightly smaller one sits much nearer the middle;
    * with a ``previous`` face: the same face again, i.e. among the faces whose box center lies
      within one previous box size (max side) of the previous center and whose size is within
      a factor 2 of it, the one with the highest IoU with the previous box (ties: nearest
      center). If none qualifies the face is lost: ``None`` is returned and no other person is
      picked up; the caller decides when to start over with ``previous=None``.
    """
    if not faces:
        return None
    h, w = frame_shape[:2]
    centers = np.array([[(f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2] for f in faces])
    sizes = np.array([max(f.box[2] - f.box[0], f.box[3] - f.box[1]) for f in faces], float)
    if previous is None:
        area = np.array([(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in faces], float)
        d = np.linalg.norm(centers - [w / 2, h / 2], axis=1) / (0.5 * np.hypot(w, h))
        return faces[int(np.argmax(area * (1 - 0.5 * np.clip(d, 0, 1))))]
    pbox = np.asarray(previous.box, float)
    pcenter = np.array([(pbox[0] + pbox[2]) / 2, (pbox[1] + pbox[3]) / 2])
    psize = max(pbox[2] - pbox[0], pbox[3] - pbox[1], 1e-6)
    dist = np.linalg.norm(centers - pcenter, axis=1)
    ok = (dist <= psize) & (sizes <= 2 * psize) & (sizes >= psize / 2)
    if not ok.any():
        return None
    iou = np.array([box_iou(f.box, pbox) for f in faces])
    order = np.lexsort((dist, -iou))  # highest IoU first, then nearest
    return next(faces[i] for i in order if ok[i])


# --- the mesh -> iBUG 68 map --------------------------------------------------------------
@dataclass(frozen=True)
class LandmarkMap:
    """68 iBUG points as convex combinations of source points: ``out = sum_k w[:, k] * src[idx[:, k]]``."""

    indices: np.ndarray  # (68, K) int
    weights: np.ndarray  # (68, K) float, >= 0, rows sum to 1 (unused slots weight 0)
    meta: dict

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """(..., S, 2) source points -> (..., 68, 2)."""
        points = np.asarray(points, float)
        return np.einsum("...ijc,ij->...ic", points[..., self.indices, :], self.weights)

    def to_json(self) -> dict:
        return {"indices": self.indices.tolist(), "weights": np.round(self.weights, 6).tolist(),
                **self.meta}


def load_landmark_map(path: str | Path | None = None) -> LandmarkMap:
    """Load the mesh -> iBUG 68 map (default: the bundled ``core/data/mediapipe68.json``)."""
    path = Path(path or MEDIAPIPE_MAP)
    if not path.is_file():
        raise BackendUnavailable(
            f"the MediaPipe -> iBUG 68 landmark map {path} is missing; regenerate it with "
            f"`python tests/benchmarks/fit_mediapipe_map.py --out {path}` (renders the rig with Blender)")
    data = json.loads(path.read_text())
    idx, w = np.asarray(data.pop("indices"), int), np.asarray(data.pop("weights"), float)
    if idx.shape != w.shape or idx.ndim != 2 or idx.shape[0] != 68 or idx.min() < 0 or idx.max() >= N_MESH:
        raise ValueError(f"{path}: indices/weights must be (68, K) with indices in 0..{N_MESH - 1}")
    if (w < 0).any() or not np.allclose(w.sum(1), 1.0, atol=1e-4):
        raise ValueError(f"{path}: weights must be non-negative and sum to 1 per landmark")
    return LandmarkMap(idx, w / w.sum(1, keepdims=True), data)


def _simplex_lstsq(a: np.ndarray, y: np.ndarray):
    """Minimize |a @ w - y|^2 over w with sum(w) = 1, w >= 0 for a few columns (exhaustive faces).

    a: (M, k), y: (M,). Returns (w, sse) or (None, inf) if the equality-constrained optimum
    leaves the simplex (the optimum then lies on a face covered by a smaller subset).
    """
    k = a.shape[1]
    if k == 1:
        r = a[:, 0] - y
        return np.ones(1), float(r @ r)
    # w = e_last + B v with sum constraint eliminated: columns a_i - a_last
    b = a[:, :-1] - a[:, -1:]
    v, *_ = np.linalg.lstsq(b, y - a[:, -1], rcond=None)
    w = np.append(v, 1 - v.sum())
    if (w < -1e-9).any():
        return None, np.inf
    r = a @ w - y
    return np.clip(w, 0, None), float(r @ r)


def fit_mediapipe_map(mesh: np.ndarray, target: np.ndarray, *, candidates: int = 10,
                      max_points: int = 3, scale: np.ndarray | None = None) -> LandmarkMap:
    """Fit the sparse convex map from mesh points to target landmarks.

    mesh: (N, S, 2) detected source points (N images); target: (N, 68, 2) true landmarks.
    For every landmark, the ``candidates`` source points with the smallest mean distance to it
    are tried in every subset of at most ``max_points``; the weights of a subset solve the least
    squares problem over all images (x and y together) with weights >= 0 summing to 1; the best
    subset wins. ``scale`` (N,) divides each image's residuals (e.g. its inter-ocular distance)
    so that every image counts the same whatever the face size.
    """
    mesh, target = np.asarray(mesh, float), np.asarray(target, float)
    if mesh.ndim != 3 or target.ndim != 3 or mesh.shape[0] != target.shape[0]:
        raise ValueError(f"mesh (N, S, 2) and target (N, 68, 2) expected, got {mesh.shape} {target.shape}")
    n, s = mesh.shape[:2]
    scale = np.ones(n) if scale is None else np.asarray(scale, float)
    indices = np.zeros((target.shape[1], max_points), int)
    weights = np.zeros((target.shape[1], max_points))
    for j in range(target.shape[1]):
        dist = np.linalg.norm(mesh - target[:, j:j + 1], axis=-1) / scale[:, None]  # (N, S)
        near = np.argsort(dist.mean(0))[:candidates]
        y = (target[:, j] / scale[:, None]).reshape(-1)  # (2N,)
        src = mesh[:, near] / scale[:, None, None]  # (N, C, 2)
        best = (np.inf, None, None)
        for k in range(1, max_points + 1):
            for sub in combinations(range(len(near)), k):
                a = src[:, list(sub)].transpose(0, 2, 1).reshape(-1, k)  # (2N, k)
                w, sse = _simplex_lstsq(a, y)
                if sse < best[0] - 1e-12:
                    best = (sse, near[list(sub)], w)
        _, idx, w = best
        order = np.argsort(-w)
        indices[j, :len(idx)] = idx[order]
        indices[j, len(idx):] = idx[order][0]
        weights[j, :len(idx)] = w[order] / w.sum()
    return LandmarkMap(indices, weights, {})


def inter_ocular(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the outer eye corners (iBUG 36 and 45) of (..., 68, 2) landmarks."""
    a, b = OUTER_EYE_CORNERS
    return np.linalg.norm(np.asarray(landmarks)[..., a, :] - np.asarray(landmarks)[..., b, :], axis=-1)


# --- MediaPipe ------------------------------------------------------------------------------
def _landmark_xy(lms) -> np.ndarray:
    """(n, 2) normalized x, y of a NormalizedLandmarkList, read from its wire format when every
    landmark carries exactly x, y, z (5x faster than attribute access), else attribute by attribute."""
    buf, n = lms.SerializeToString(), len(lms.landmark)
    if len(buf) == 17 * n:  # per landmark: 0a 0f | 0d x(f32) | 15 y(f32) | 1d z(f32)
        rec = np.frombuffer(buf, np.uint8).reshape(n, 17)
        if (rec[:, :3] == (0x0A, 0x0F, 0x0D)).all() and (rec[:, 7] == 0x15).all() and (rec[:, 12] == 0x1D).all():
            return np.ascontiguousarray(rec[:, [3, 4, 5, 6, 8, 9, 10, 11]]).view("<f4").astype(float)
    return np.array([(p.x, p.y) for p in lms.landmark], float).reshape(-1, 2)


def _rgb(image_bgr: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)  # 10x faster than a reversed-axis copy


class MediaPipeBackend(LandmarkBackend):
    """MediaPipe's face mesh + face detector (legacy ``solutions.face_mesh`` graph, CPU).

    ``lids=True`` (the default) also runs the mesh with its attention heads, which refine the
    lids, lips and irises, and takes the eyes (:data:`EYE_POINTS`), the irises (``Face.irises``,
    for the gaze) and the mouth's width from it. On real faces the
    plain mesh never closes an eye (its eye opening falls to about 60% of open in a blink), the
    refined one does (about 15%). The plain mesh's lips keep their width near its prior: in a
    pucker whose lips form an O a quarter narrower than at rest (``mead_M030``, frames 42 and 62,
    looked at) its corners come 3% closer, the refined mesh's 30%, on the sides of the lips' red.
    The refined lips as a whole follow smiles less well (their corners rise less), so the plain
    mesh's lips are kept and stretched along their corner line to the refined corners' distance
    (:func:`lips_at_width`). Its brows are not used: they follow outer brow raises less well. The
    second mesh runs beside the first on another thread: on 2 cores the tracker keeps about 0.8 of
    its plain-mesh rate (tests/benchmarks/bench_tracker.py prints both).

    * ``landmarks``: the 468 mesh points mapped to iBUG 68 by :data:`MEDIAPIPE_MAP`;
    * ``box``: the bounds of the 468 mesh points (brow/forehead to chin, cheek to cheek), the same
      measure whether the frame ran the detector or only tracked;
    * ``confidence``: the score of MediaPipe's face detector for that face. In video mode the
      detector does not run while the mesh tracks (the graph drops a face once the mesh's own
      presence score falls under ``min_tracking_confidence``), so a tracked face keeps the score
      of the detection it was matched to last (by box overlap with the previous frame);
      ``min_tracking_confidence`` if it never was.
    """

    name = "mediapipe"

    def __init__(self, video: bool = True, max_faces: int = 4, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, mapping: str | Path | LandmarkMap | None = None,
                 lids: bool = True):
        try:
            from mediapipe.python.solution_base import SolutionBase
            from mediapipe.python.solutions import face_mesh
        except ImportError as e:
            raise BackendUnavailable(f"the 'mediapipe' landmark backend needs mediapipe: {MEDIAPIPE_PIP} "
                                     f"({e})") from e
        self.map = mapping if isinstance(mapping, LandmarkMap) else load_landmark_map(mapping)
        self.video, self.max_faces = bool(video), int(max_faces)
        self.min_tracking_confidence = float(min_tracking_confidence)
        self.lids = bool(lids)
        self._build = lambda attention=False: SolutionBase(
            binary_graph_path=face_mesh._BINARYPB_FILE_PATH,
            side_inputs={"num_faces": self.max_faces, "with_attention": attention,
                         "use_prev_landmarks": self.video},
            calculator_params={
                "facedetectionshortrangecpu__facedetectionshortrange__facedetection__"
                "TensorsToDetectionsCalculator.min_score_thresh": float(min_detection_confidence),
                "facelandmarkcpu__ThresholdingCalculator.threshold": self.min_tracking_confidence},
            outputs=["multi_face_landmarks", "face_detections"])
        self._graph = self._make()
        self._lid_graph = self._make(attention=True) if self.lids else None
        self._pool = concurrent.futures.ThreadPoolExecutor(1, "au2rig-lids") if self.lids else None
        self._previous: list[tuple[np.ndarray, float]] = []  # (box, confidence) of the last frame

    def _make(self, attention: bool = False):
        with quiet_fd(2):  # the models talk on stderr while they start
            graph = self._build(attention)
        self._started = False
        return graph


    def meshes(self, image_bgr: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float, np.ndarray | None]]:
        """Raw output: per face (468 mesh points (468, 2) in pixels, box, confidence, the attention
        mesh's 478 points (468 refined + 10 iris) of the same face, or None without ``lids`` or
        when the attention mesh did not find it)."""
        image = _check_image(image_bgr)
        if self._graph is None:
            raise RuntimeError("the MediaPipe backend is closed")
        h, w = image.shape[:2]
        feed = {"image": _rgb(image)}
        if not self._started:  # the first frame initialises the models, which talk on stderr
            with quiet_fd(2):
                result = self._graph.process(feed)
                refined = self._lid_graph.process(feed).multi_face_landmarks if self.lids else None
            self._started = True
        else:  # the two meshes run side by side (MediaPipe releases the GIL while a graph runs)
            pending = self._pool.submit(self._lid_graph.process, feed) if self.lids else None
            result = self._graph.process(feed)
            refined = pending.result().multi_face_landmarks if pending is not None else None
        if not result.multi_face_landmarks:
            self._previous = []
            return []
        size = np.array([w, h], float)
        meshes = [_landmark_xy(lms)[:N_MESH] * size for lms in result.multi_face_landmarks]
        fine = [_landmark_xy(lms) * size for lms in refined or ()]
        detections = []
        for det in result.face_detections or ():
            r = det.location_data.relative_bounding_box
            detections.append((np.array([r.xmin, r.ymin, r.xmin + r.width, r.ymin + r.height]) * [w, h, w, h],
                               float(det.score[0]) if det.score else self.min_tracking_confidence))
        out = []
        for mesh in meshes:
            box = _bounds(mesh)
            conf = None
            for source in (detections, self._previous):
                ious = [box_iou(box, b) for b, _ in source]
                if ious and max(ious) > 0.2:
                    conf = source[int(np.argmax(ious))][1]
                    break
            ious = [box_iou(box, _bounds(f[:N_MESH])) for f in fine]
            same = fine[int(np.argmax(ious))] if ious and max(ious) > 0.5 else None
            out.append((mesh, box, float(np.clip(self.min_tracking_confidence if conf is None else conf, 0, 1)),
                        same))
        self._previous = [(box, conf) for _, box, conf, _ in out]
        return out

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        faces = []
        for mesh, box, conf, fine in self.meshes(image_bgr):
            landmarks = self.map(mesh)
            if fine is not None:
                refined = self.map(fine[:N_MESH])
                landmarks[list(EYE_POINTS)] = refined[list(EYE_POINTS)]
                corners = refined[[LIP_POINTS[0], LIP_POINTS[6]]]
                landmarks[list(LIP_POINTS)] = lips_at_width(landmarks[list(LIP_POINTS)],
                                                            float(np.linalg.norm(corners[1] - corners[0])))
            faces.append(Face(box, landmarks, conf, None if fine is None else eye_offsets(fine)))
        return faces

    def reset(self) -> None:
        if self._graph is not None and self.video:
            self._graph.close()
            self._graph = self._make()
            if self._lid_graph is not None:
                self._lid_graph.close()
                self._lid_graph = self._make(attention=True)
        self._previous = []

    def close(self) -> None:
        for graph in (self._graph, self._lid_graph):
            if graph is not None:
                graph.close()
        self._graph = self._lid_graph = None
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


# --- face-alignment's FAN -------------------------------------------------------------------
def fan_weights_dir() -> Path:
    """Where face-alignment looks for its weights: ``torch.hub.get_dir()/checkpoints``
    (``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``). Needs
    face-alignment, which runs on torch."""
    import importlib

    importlib.import_module("face_alignment")  # loads torch, whose hub folder this is
    return Path(loaded_torch().hub.get_dir()) / "checkpoints"


def _url_file_name(url: str) -> str:
    from urllib.parse import urlparse

    return os.path.basename(urlparse(url).path)  # what torch.hub / face_alignment name the cache file


def fan_weight_files(face_detector: str = "sfd") -> dict[str, str]:
    """{file name: download URL} of the files face-alignment needs for the 2D FAN + detector.

    For face-alignment 1.5.0: ``2DFAN4-11f355bf06.pth.tar`` (state dict of ``FAN(4)``) and, for
    the default S3FD detector, ``s3fd-619a316812.pth`` (state dict of ``s3fd``); BlazeFace needs
    ``blazeface.pth`` and ``anchors.npy``. Read from the installed face_alignment itself.
    """
    try:
        import face_alignment.api as fa_api
    except ImportError as e:
        raise BackendUnavailable(f"the 'fan' landmark backend needs face-alignment: {FAN_PIP} ({e})") from e
    urls = [fa_api.models_urls["2DFAN-4"]]
    if face_detector == "sfd":
        from face_alignment.detection.sfd import sfd_detector

        urls.append(sfd_detector.models_urls["s3fd"])
    elif face_detector == "blazeface":
        from face_alignment.detection.blazeface import blazeface_detector

        urls += [blazeface_detector.models_urls["blazeface_weights"],
                 blazeface_detector.models_urls["blazeface_anchors"]]
    else:
        raise ValueError(f"FAN face_detector must be 'sfd' or 'blazeface', got {face_detector!r}")
    return {_url_file_name(u): u for u in urls}


class FanBackend(LandmarkBackend):
    """face-alignment's 2D FAN (68 iBUG points) behind its own face detector, weights from the cache.

    * ``landmarks``: FAN's heatmap maxima; face-alignment returns integer pixel indices, to which
      0.5 is added (pixel centers in the corner-origin convention);
    * ``box``: the detector's box; ``confidence``: the detector's score.

    No tracking state: ``video`` changes nothing. Network access is never attempted: every file
    is checked in :func:`fan_weights_dir` before face-alignment is built.
    """

    name = "fan"

    def __init__(self, video: bool = True, max_faces: int = 4, device: str = "cpu",
                 face_detector: str = "sfd", flip_input: bool = True):
        files = fan_weight_files(face_detector)
        try:
            import face_alignment
        except ImportError as e:  # a dependency of face_alignment (skimage, numba, ...)
            raise BackendUnavailable(f"the 'fan' landmark backend cannot import face_alignment: {e}; "
                                     f"{FAN_PIP}") from e
        folder = fan_weights_dir()
        missing = [f for f in files if not (folder / f).is_file()]
        if missing:
            raise BackendUnavailable(
                "face-alignment's weights are missing (this machine cannot download them): place "
                + ", ".join(f"{f} (from {files[f]})" for f in missing)
                + f" in {folder} (torch.hub.get_dir()/checkpoints; set TORCH_HOME to move it)")
        detector_kwargs = {}
        if face_detector == "sfd":
            detector_kwargs["path_to_detector"] = str(folder / _url_file_name(
                next(u for f, u in files.items() if f.startswith("s3fd"))))
        elif face_detector == "blazeface":
            detector_kwargs.update(path_to_detector=str(folder / "blazeface.pth"),
                                   path_to_anchor=str(folder / "anchors.npy"))
        try:  # FAN itself is found by face_alignment in the same folder (all files are there)
            self.fa = face_alignment.FaceAlignment(
                face_alignment.LandmarksType.TWO_D, device=device, flip_input=flip_input,
                face_detector=face_detector, face_detector_kwargs=detector_kwargs, compile=False)
        except Exception as e:
            raise BackendUnavailable(f"face-alignment could not load its weights from {folder}: {e}") from e
        self.max_faces = int(max_faces)

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        import warnings

        image = _check_image(image_bgr)
        rgb = _rgb(image)
        h, w = image.shape[:2]
        boxes = [np.asarray(b, float) for b in self.fa.face_detector.detect_from_image(rgb.copy())]
        # a box centered outside the frame is no usable face
        boxes = [b for b in boxes if 0 <= (b[0] + b[2]) / 2 < w and 0 <= (b[1] + b[3]) / 2 < h]
        boxes = sorted(boxes, key=lambda b: -b[4])[:self.max_faces]
        if not boxes:
            return []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            points = self.fa.get_landmarks_from_image(rgb, detected_faces=[b[:4] for b in boxes])
        return [Face(b[:4].copy(), np.asarray(p, float)[:, :2] + 0.5, float(np.clip(b[4], 0, 1)))
                for b, p in zip(boxes, points or [])]

    def close(self) -> None:
        self.fa = None
