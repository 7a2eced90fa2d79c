"""Aligned face crops for the image path: real frames and rig renders cut the same way.

How a crop is cut (size, eye distance, roll, pixel convention) is :mod:`core.alignment.crops`.

:class:`FaceCrops` holds a set of crops (with their landmarks, roll, source file and frame,
optional known parameters for rig renders and optional 19-class face-parsing labels) and is
stored as one ``.npz``; :func:`collect_faces` cuts them from images and videos,
:func:`crops_from_pairs` from a finished pairs dataset (core/datasets/pairs.py).

    au2rig faces SOURCES... -o OUT.npz [--every N] [--max-per-source N] [--no-labels]
    au2rig faces --pairs DIR [--split val] [--detect] [--max-count N] -o OUT.npz
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..alignment import align
from ..alignment.crops import CROP_SIZE, EYE_DISTANCE, crop_image, crop_labels, transform_points
from ..util.atomic import atomic_path
from ..util.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES

FORMAT = "au2rig-face-crops"
FORMAT_VERSION = 1


# --- a set of crops ------------------------------------------------------------------------------
@dataclass
class FaceCrops:
    """Aligned face crops and what is known of them.

    ``crops`` (N, S, S, 3) uint8 RGB; ``landmarks`` (N, 68, 2) float32 in crop pixels; ``roll``
    (N,) float32 degrees, the in-plane rotation the alignment removed (:func:`core.alignment.align.roll_degrees`);
    ``source`` one str per distinct source (file, or pairs folder) and ``source_index`` (N,)
    int32 into it; ``frame`` (N,) int32 (video frame, pair index, 0 for a still image);
    ``transform`` (N, 4) float32, the image -> crop similarity (a, b, tx, ty); ``params``
    (N, P) float32 known parameters (rig renders only) or None; ``labels`` (N, S, S) uint8
    19-class face-parsing labels or None; ``missed`` (len(source),) int32 frames without a face
    per source; ``eye_distance`` of the alignment.
    """

    crops: np.ndarray
    landmarks: np.ndarray
    roll: np.ndarray
    source: list
    source_index: np.ndarray
    frame: np.ndarray
    transform: np.ndarray | None = None
    params: np.ndarray | None = None
    labels: np.ndarray | None = None
    missed: np.ndarray | None = None
    eye_distance: float = EYE_DISTANCE

    def __post_init__(self):
        self.crops = np.asarray(self.crops, np.uint8)
        if self.crops.ndim != 4 or self.crops.shape[3] != 3 or self.crops.shape[1] != self.crops.shape[2]:
            raise ValueError(f"crops must be (N, S, S, 3), got shape {self.crops.shape}")
        n, s = self.crops.shape[0], self.crops.shape[1]
        self.landmarks = np.asarray(self.landmarks, np.float32)
        if n == 0 and self.landmarks.size == 0:
            self.landmarks = self.landmarks.reshape(0, 68, 2)
        self.roll = np.asarray(self.roll, np.float32).reshape(-1)
        self.source = [str(x) for x in self.source]
        self.source_index = np.asarray(self.source_index, np.int32).reshape(-1)
        self.frame = np.asarray(self.frame, np.int32).reshape(-1)
        self.transform = (np.zeros((n, 4), np.float32) if self.transform is None
                          else np.asarray(self.transform, np.float32).reshape(-1, 4))
        self.missed = (np.zeros(len(self.source), np.int32) if self.missed is None
                       else np.asarray(self.missed, np.int32).reshape(-1))
        self.eye_distance = float(self.eye_distance)
        checks = {"landmarks": (self.landmarks, (n, 68, 2)), "roll": (self.roll, (n,)),
                  "source_index": (self.source_index, (n,)), "frame": (self.frame, (n,)),
                  "transform": (self.transform, (n, 4)), "missed": (self.missed, (len(self.source),))}
        if self.labels is not None:
            self.labels = np.asarray(self.labels, np.uint8)
            checks["labels"] = (self.labels, (n, s, s))
        if self.params is not None:
            self.params = np.asarray(self.params, np.float32)
            if self.params.ndim != 2 or self.params.shape[0] != n:
                raise ValueError(f"params must be (N={n}, P), got shape {self.params.shape}")
        for name, (value, shape) in checks.items():
            if value.shape != shape:
                raise ValueError(f"{name} must have shape {shape} for {n} crops, got {value.shape}")
        if n and (self.source_index.min() < 0 or self.source_index.max() >= len(self.source)):
            raise ValueError(f"source_index must lie in 0..{len(self.source) - 1}")

    def __len__(self) -> int:
        return int(self.crops.shape[0])

    @property
    def size(self) -> int:
        return int(self.crops.shape[1])

    @property
    def rendered(self) -> bool:
        """True for rig renders (known parameters), False for real frames."""
        return self.params is not None

    def subset(self, indices) -> "FaceCrops":
        """The crops at ``indices`` (an index array or a boolean mask); sources are kept as they are."""
        idx = np.arange(len(self))[np.asarray(indices)] if len(self) else np.asarray(indices, int)
        pick = (lambda x: None if x is None else x[idx])
        return FaceCrops(crops=self.crops[idx], landmarks=self.landmarks[idx], roll=self.roll[idx],
                         source=list(self.source), source_index=self.source_index[idx], frame=self.frame[idx],
                         transform=self.transform[idx], params=pick(self.params), labels=pick(self.labels),
                         missed=self.missed.copy(), eye_distance=self.eye_distance)

    @classmethod
    def concat(cls, parts) -> "FaceCrops":
        """One set from several of the same crop size and eye distance. ``params`` and ``labels``
        are kept when every part has them (of one width), else left out."""
        parts = list(parts)
        if not parts:
            raise ValueError("nothing to concatenate")
        first = parts[0]
        for p in parts[1:]:
            if p.size != first.size or p.eye_distance != first.eye_distance:
                raise ValueError(f"crops of {p.size} px, eye distance {p.eye_distance} vs {first.size} px, "
                                 f"{first.eye_distance}")

        def opt(name):
            values = [getattr(p, name) for p in parts]
            if any(v is None for v in values) or len({v.shape[1:] for v in values}) > 1:
                return None
            return np.concatenate(values)

        offsets = np.cumsum([0] + [len(p.source) for p in parts[:-1]])
        return cls(crops=np.concatenate([p.crops for p in parts]),
                   landmarks=np.concatenate([p.landmarks for p in parts]),
                   roll=np.concatenate([p.roll for p in parts]),
                   source=[s for p in parts for s in p.source],
                   source_index=np.concatenate([p.source_index + o for p, o in zip(parts, offsets)]),
                   frame=np.concatenate([p.frame for p in parts]),
                   transform=np.concatenate([p.transform for p in parts]), params=opt("params"),
                   labels=opt("labels"), missed=np.concatenate([p.missed for p in parts]),
                   eye_distance=first.eye_distance)

    def save(self, path) -> Path:
        """Write one compressed ``.npz`` atomically (strings as arrays of str, no pickles)."""
        path = Path(path)
        arrays = {"format": np.array(FORMAT), "version": np.array(FORMAT_VERSION),
                  "eye_distance": np.array(self.eye_distance), "size": np.array(self.size),
                  "crops": self.crops, "landmarks": self.landmarks, "roll": self.roll,
                  "source": np.array(self.source, dtype=str), "source_index": self.source_index,
                  "frame": self.frame, "transform": self.transform, "missed": self.missed}
        if self.params is not None:
            arrays["params"] = self.params
        if self.labels is not None:
            arrays["labels"] = self.labels
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)
        return path

    @classmethod
    def load(cls, path) -> "FaceCrops":
        """Read a file of :meth:`save`; errors name the file and the field."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no face-crops file at {path}")
        try:
            data = np.load(path, allow_pickle=False)
            keys = set(data.files)
        except Exception as exc:  # noqa: BLE001 - any failure to open means the same thing
            raise ValueError(f"{path}: not a readable .npz file ({exc})") from exc
        with data:
            fmt = str(data["format"]) if "format" in keys else None
            if fmt != FORMAT:
                raise ValueError(f"{path}: not an au2rig face-crops file (format field {fmt!r}, "
                                 f"expected {FORMAT!r})")
            version = int(data["version"]) if "version" in keys else None
            if version != FORMAT_VERSION:
                raise ValueError(f"{path}: face-crops version {version!r}, this code reads {FORMAT_VERSION}")
            fields_ = {}
            for name in ("crops", "landmarks", "roll", "source", "source_index", "frame", "transform",
                         "missed", "eye_distance", "params", "labels"):
                if name not in keys:
                    if name in ("params", "labels"):
                        continue
                    raise ValueError(f"{path}: field {name!r} is missing")
                try:
                    fields_[name] = data[name]
                except Exception as exc:  # noqa: BLE001 - a damaged member
                    raise ValueError(f"{path}: field {name!r} cannot be read ({exc})") from exc
        if fields_["crops"].dtype != np.uint8:
            raise ValueError(f"{path}: field 'crops' is {fields_['crops'].dtype}, expected uint8")
        if "labels" in fields_ and fields_["labels"].dtype != np.uint8:
            raise ValueError(f"{path}: field 'labels' is {fields_['labels'].dtype}, expected uint8")
        if fields_["source"].dtype.kind != "U":
            raise ValueError(f"{path}: field 'source' is {fields_['source'].dtype}, expected strings")
        fields_["source"] = [str(s) for s in fields_["source"].reshape(-1)]
        fields_["eye_distance"] = float(fields_["eye_distance"])
        try:
            return cls(**fields_)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None


def _empty(size: int, eye_distance: float, sources, missed, params_dim=None, labels=True) -> FaceCrops:
    return FaceCrops(crops=np.zeros((0, size, size, 3), np.uint8), landmarks=np.zeros((0, 68, 2), np.float32),
                     roll=np.zeros(0), source=list(sources), source_index=np.zeros(0), frame=np.zeros(0),
                     params=None if params_dim is None else np.zeros((0, params_dim), np.float32),
                     labels=np.zeros((0, size, size), np.uint8) if labels else None, missed=missed,
                     eye_distance=eye_distance)


class _Collector:
    """Accumulates crops of full frames."""

    def __init__(self, size: int, eye_distance: float, labels: bool):
        self.size, self.eye_distance, self.labels = size, eye_distance, labels
        self.rows: dict[str, list] = {k: [] for k in ("crops", "landmarks", "roll", "source_index", "frame",
                                                      "transform", "params", "labels")}

    def add(self, image_rgb, landmarks68, source_index: int, frame: int, params=None, label_map=None) -> None:
        lm = np.asarray(landmarks68, np.float64)
        crop, t = crop_image(image_rgb, lm, self.size, self.eye_distance)
        r = self.rows
        r["crops"].append(crop)
        r["landmarks"].append(transform_points(t, lm))
        r["roll"].append(float(align.roll_degrees(np.asarray(t))))
        r["source_index"].append(source_index)
        r["frame"].append(frame)
        r["transform"].append(t)
        if params is not None:
            r["params"].append(params)
        if self.labels:
            if label_map is None:
                from .labels import landmark_mask

                label_map = landmark_mask(lm, image_rgb.shape)
            r["labels"].append(crop_labels(label_map, size=self.size, transform=t)[0])

    def result(self, sources, missed, params_dim=None) -> FaceCrops:
        r = self.rows
        if not r["crops"]:
            return _empty(self.size, self.eye_distance, sources, missed, params_dim, self.labels)
        return FaceCrops(crops=np.stack(r["crops"]), landmarks=np.stack(r["landmarks"]), roll=np.array(r["roll"]),
                         source=list(sources), source_index=np.array(r["source_index"]), frame=np.array(r["frame"]),
                         transform=np.array(r["transform"]),
                         params=np.stack(r["params"]) if r["params"] else (
                             None if params_dim is None else np.zeros((0, params_dim))),
                         labels=np.stack(r["labels"]) if self.labels else None, missed=missed,
                         eye_distance=self.eye_distance)


def _say(log, message: str) -> None:
    if log is not None:
        log(message)


def _stderr(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


# --- real images and videos ----------------------------------------------------------------------------
def expand_sources(sources) -> list[tuple[Path, str]]:
    """``(path, kind)`` per file, kind "image" or "video": folders give their images and videos
    (sorted, not recursive). Raises naming a missing path or a file of unknown type."""
    out = []
    for src in sources:
        p = Path(src)
        if not p.exists():
            raise FileNotFoundError(f"no image, video or folder at {p}")
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
                           + VIDEO_SUFFIXES)
            if not files:
                raise ValueError(f"{p}: a folder without images ({', '.join(IMAGE_SUFFIXES)}) or videos")
            out += [(f, "image" if f.suffix.lower() in IMAGE_SUFFIXES else "video") for f in files]
        elif p.suffix.lower() in IMAGE_SUFFIXES:
            out.append((p, "image"))
        elif p.suffix.lower() in VIDEO_SUFFIXES:
            out.append((p, "video"))
        else:
            raise ValueError(f"{p}: not an image ({', '.join(IMAGE_SUFFIXES)}) nor a video "
                             f"({', '.join(VIDEO_SUFFIXES)})")
    return out


def collect_faces(sources, backend: str = "mediapipe", size: int = CROP_SIZE, eye_distance: float = EYE_DISTANCE,
                  every: int = 1, max_per_source: int | None = None, labels: bool = True, progress: bool = True,
                  log=_stderr) -> FaceCrops:
    """Aligned crops of the face in images, folders of images and videos.

    Every ``every``-th frame of a video is read (with core.tracking.track's reader); in each frame the
    largest / most central face is cut (videos follow it, :func:`core.tracking.landmarks.pick_face`),
    at most ``max_per_source`` per file. Frames without a face are skipped and counted
    (``missed``; reported through ``log``). ``labels``: 19-class labels drawn from the landmarks
    on the full frame (:func:`core.nets.face_parser.landmark_mask`) and cropped the same way.
    """
    import cv2
    from tqdm import tqdm

    from ..tracking.landmarks import open_backend, pick_face
    from ..tracking.track import open_video, read_frames

    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    files = expand_sources(sources)
    collector = _Collector(size, eye_distance, labels)
    missed = np.zeros(len(files), np.int32)
    estimates = []
    for path, kind in files:
        if kind == "video":
            cap, info = open_video(path)
            cap.release()
            n = -(-info["frames"] // every) if info["frames"] else 0
            estimates.append(min(n, max_per_source) if max_per_source is not None else n)
        else:
            estimates.append(1)
    bar = tqdm(total=sum(estimates), desc="collecting faces", unit="frame", disable=not progress)
    still = None
    try:
        for k, (path, kind) in enumerate(files):
            taken = 0
            if kind == "image":
                bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if bgr is None:
                    raise ValueError(f"{path}: OpenCV cannot read it as an image (unknown format or corrupt file)")
                if still is None:
                    still = open_backend(backend, video=False, max_faces=4, lids=False)
                face = pick_face(still.detect(bgr), None, bgr.shape)
                if face is None:
                    missed[k] += 1
                elif max_per_source is None or max_per_source > 0:
                    collector.add(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), face.landmarks, k, 0)
                    taken += 1
                bar.update(1)
            else:
                done = 0
                with open_backend(backend, video=True, max_faces=4, lids=False) as b:
                    previous = None
                    for index, bgr in read_frames(path, step=every):
                        if max_per_source is not None and taken >= max_per_source:
                            break
                        faces = b.detect(bgr)
                        face = pick_face(faces, previous, bgr.shape)
                        if face is None and previous is not None:
                            face = pick_face(faces, None, bgr.shape)
                        previous = face
                        done += 1
                        if face is None:
                            missed[k] += 1
                        else:
                            collector.add(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), face.landmarks, k, index)
                            taken += 1
                        if done <= estimates[k]:
                            bar.update(1)
            if missed[k]:
                _say(log, f"{missed[k]} frame{'s' if missed[k] != 1 else ''} without a face in {path}")
    finally:
        bar.close()
        if still is not None:
            still.close()
    return collector.result([str(p) for p, _ in files], missed)


# --- rig renders -----------------------------------------------------------------------------------------
def crops_from_pairs(pairs_dir, split: str | None = None, detect: bool = False, backend: str = "mediapipe",
                     size: int = CROP_SIZE, eye_distance: float = EYE_DISTANCE, labels: bool = True,
                     max_count: int | None = None, progress: bool = True, log=_stderr) -> FaceCrops:
    """Aligned crops of a finished pairs dataset's renders (the first ``max_count`` of ``split``).

    Landmarks: the dataset's analytic ones, or with ``detect`` the backend's on the render as on
    any unlabeled image (pairs without a detection are skipped and counted). ``params`` come from
    the dataset; labels from its region masks (:func:`core.nets.face_parser.rig_mask_to_classes`, with
    the analytic landmarks) cropped the same way.
    """
    import cv2
    from tqdm import tqdm

    from .pairs import PairsDataset

    ds = PairsDataset(pairs_dir, split)
    manifest = ds.manifest
    if labels and not manifest.masks:
        raise ValueError(f"{pairs_dir}: the pairs dataset has no masks, so no labels (render it with masks, "
                         f"or pass labels=False / --no-labels)")
    n = len(ds) if max_count is None else min(len(ds), int(max_count))
    collector = _Collector(size, eye_distance, labels)
    missed = np.zeros(1, np.int32)
    detector = None
    if detect:
        from ..tracking.landmarks import open_backend, pick_face

        detector = open_backend(backend, video=False, max_faces=4, lids=False)
    bar = tqdm(total=n, desc=f"cropping {Path(pairs_dir).name}", unit="pair", disable=not progress)
    try:
        for k in range(n):
            item = ds[k]
            rgb = np.clip(np.rint(item["image"] * 255.0), 0, 255).astype(np.uint8)
            analytic = np.asarray(item["landmarks"], np.float64)
            lm = analytic
            if detector is not None:
                face = pick_face(detector.detect(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)), None, rgb.shape)
                bar.update(1)
                if face is None:
                    missed[0] += 1
                    continue
                lm = face.landmarks
            else:
                bar.update(1)
            label_map = None
            if labels:
                from .labels import rig_mask_to_classes

                label_map = rig_mask_to_classes(item["mask"], analytic, manifest.regions, manifest.background_label)
            collector.add(rgb, lm, 0, item["index"], params=item["params"], label_map=label_map)
    finally:
        bar.close()
        if detector is not None:
            detector.close()
    if missed[0]:
        _say(log, f"{missed[0]} of {n} renders without a detected face in {pairs_dir}")
    return collector.result([str(pairs_dir)], missed, params_dim=ds.params.shape[1])


# --- pictures ---------------------------------------------------------------------------------------------
def contact_sheet(crops: FaceCrops, indices=None, columns: int = 8, alpha: float = 0.45, landmarks: bool = False,
                  gap: int = 2) -> np.ndarray:
    """RGB picture of crops in a grid; with labels each crop shows them blended (``alpha``) on its
    right half of a pair of tiles (crop | crop + labels)."""
    import cv2

    from .labels import colorize

    idx = np.arange(len(crops)) if indices is None else np.asarray(indices)
    s = crops.size
    tiles = []
    for i in idx:
        tile = crops.crops[i].copy()
        if landmarks:
            for x, y in crops.landmarks[i]:
                cv2.circle(tile, (int(x), int(y)), 1, (0, 255, 0), -1)
        if crops.labels is not None:
            blend = (tile * (1 - alpha) + colorize(crops.labels[i]) * alpha).astype(np.uint8)
            tile = np.concatenate([tile, np.full((s, gap, 3), 255, np.uint8), blend], axis=1)
        tiles.append(tile)
    if not tiles:
        return np.full((s, s, 3), 255, np.uint8)
    rows = -(-len(tiles) // columns)
    th, tw = tiles[0].shape[:2]
    sheet = np.full((rows * (th + gap) - gap, min(columns, len(tiles)) * (tw + gap) - gap, 3), 255, np.uint8)
    for j, tile in enumerate(tiles):
        r, c = divmod(j, columns)
        sheet[r * (th + gap):r * (th + gap) + th, c * (tw + gap):c * (tw + gap) + tw] = tile
    return sheet


# --- command line -------------------------------------------------------------------------------------------
def main(args) -> int:
    """``au2rig faces`` (arguments parsed in core/__main__.py)."""
    if not args.pairs and not args.sources:
        raise ValueError("give image / video / folder SOURCES, or --pairs DIR")
    if args.pairs and args.sources:
        raise ValueError("rig renders (--pairs) and real SOURCES go into separate files; run the command twice")
    parts = []
    if args.pairs:
        parts.append(crops_from_pairs(args.pairs, split=args.split, detect=args.detect, backend=args.backend,
                                      size=args.size, eye_distance=args.eye_distance, labels=not args.no_labels,
                                      max_count=args.max_count, progress=not args.quiet))
    if args.sources:
        parts.append(collect_faces(args.sources, backend=args.backend, size=args.size,
                                   eye_distance=args.eye_distance, every=args.every,
                                   max_per_source=args.max_per_source, labels=not args.no_labels,
                                   progress=not args.quiet))
    crops = parts[0]
    path = crops.save(args.output)
    kind = "rendered" if crops.rendered else "real"
    print(f"{len(crops)} {kind} face crops ({crops.size} px, eye distance {crops.eye_distance:g}) from "
          f"{len(crops.source)} source{'s' if len(crops.source) != 1 else ''}, {int(crops.missed.sum())} "
          f"frames without a face, labels {'yes' if crops.labels is not None else 'no'}: {path}", file=sys.stderr)
    return 0


__all__ = ["FaceCrops", "collect_faces", "contact_sheet", "crops_from_pairs", "expand_sources"]
