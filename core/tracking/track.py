"""The tracker: a video in, per-frame head pose, AU intensities and the full parameter vector out.

    decode (OpenCV, in a reader thread) -> detect face + 68 landmarks (a perception backend)
    -> estimator (ONNX Runtime; alignment is inside the model), twice: once on its own, then
       with the actor's neutral reference frame (the most relaxed frame, or the one the user
       names) -> neutral calibration -> smoothing (One Euro, one strength control)
    -> per-channel gain -> Tracking

With an image-path model (kind "image" in its metadata: F_seg + R, ``core.training.image_estimator``)
the estimator step reads five-point aligned crops of the frames instead of the landmarks,
in batches as the frames come, with no reference frame; the rest is the same.

One face per video: the largest / most central face is picked and then followed (see
``core.tracking.landmarks.pick_face``); when it is lost for longer than ``TrackConfig.lost_after``
seconds the tracker starts over with the largest / most central face in view. Frames
without the face are flagged (``success`` False, NaN values) and never invented.
"""
from __future__ import annotations

import concurrent.futures
import itertools
import queue
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..alignment.align import roll_degrees, template_landmarks
from ..alignment.crops import crop_image
from ..animation.filters import apply_gain, calibrate, neutral_baseline, smooth
from ..animation.tracking_io import Tracking
from ..rig.layout import LAYOUT, ParameterLayout
from ..rig.load import load_rig
from .actor import brow_channels, neutral_shape, on_rig_face, read_profile, with_brows
from .brows import brow_image, refine_brows
from .estimator import DEFAULT_ONNX, OnnxEstimator, OnnxImageEstimator, onnx_metadata, open_session
from .gaze import gaze_angles, head_parallax
from .landmarks import open_backend, pick_face


@dataclass(frozen=True)
class TrackConfig:
    backend: str = "mediapipe"
    lids: bool = True                 # MediaPipe: the eyes from its attention mesh (a second mesh per frame)
    brows: bool = True                # the brows placed by their look in the image (core.tracking.brows)
    model: str | None = None          # ONNX estimator; None = the shipped default
    smoothing: float = 0.3            # 0 = off .. 1 = strong (One Euro)
    neutral: str | int | None = "auto"  # "auto" (most relaxed frames), a frame number, or None (off)
    fit: bool = False                 # fit the clip through the rig after the estimator (core.clip_fit)
    adapt: bool = True                # fit the actor's range of motion through the rig (clip_fit.fit_range)
    actor: str | None = None          # an actor profile (core.actor): its neutral instead of this take's
    gains: dict = field(default_factory=dict)  # channel name or FACS code ("AU12") -> gain
    start: int = 0                    # first frame to read
    step: int = 1                     # read every step-th frame
    max_frames: int | None = None     # stop after this many processed frames
    lost_after: float = 0.5           # seconds without the followed face before starting over
    threads: int = 1                  # ONNX Runtime threads


class VideoError(ValueError):
    """A video that cannot be read; the message names the file."""


class ShortVideoWarning(UserWarning):
    """A video decoded to fewer frames than its container promised (truncated or damaged)."""


def open_video(path) -> tuple:
    import cv2

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no video at {path}")
    if path.is_dir():
        raise VideoError(f"{path} is a folder, not a video file")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VideoError(f"{path}: OpenCV cannot open it as a video (unknown format or corrupt file)")
    info = {"path": str(path), "fps": float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
            "frames": int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
            "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
            "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)}
    if not 0 < info["fps"] < 1000:
        info["fps_note"] = f"the container gives no usable frame rate ({info['fps']}); 30 fps assumed"
        info["fps"] = 30.0
    return cap, info


def read_frames(path, start: int = 0, step: int = 1, max_frames: int | None = None, prefetch: int = 8, opened=None):
    """Yield ``(frame_index, image_bgr)`` decoded in a background thread (OpenCV releases the GIL,
    so decoding overlaps detection). Raises :class:`VideoError` naming the file when no frame at
    all can be decoded. ``opened``: the ``(capture, info)`` of :func:`open_video`, to not open twice."""
    import cv2

    cap, info = opened or open_video(path)
    if start:
        cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    q: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()

    def reader():
        index, emitted = start, 0
        try:
            while not stop.is_set():
                ok = cap.grab()
                if not ok:
                    break
                if (index - start) % step == 0:
                    ok, image = cap.retrieve()
                    if not ok or image is None:
                        break
                    q.put((index, image))
                    emitted += 1
                    if max_frames is not None and emitted >= max_frames:
                        break
                index += 1
        except Exception as exc:  # noqa: BLE001 - handed to the consumer
            q.put(exc)
        finally:
            q.put(None)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    count = 0
    try:
        while True:
            item = q.get()
            if item is None:
                break
            if isinstance(item, Exception):
                raise VideoError(f"{path}: decoding failed after {count} frames ({item})") from item
            count += 1
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.01)
        cap.release()
    if count == 0:
        raise VideoError(f"{path}: no frame could be decoded (empty, corrupt or unsupported video)")


def count_faces(image: np.ndarray, backend: str = "mediapipe") -> int:
    """How many faces one frame shows (an image-mode detection, up to 4)."""
    with open_backend(backend, video=False, max_faces=4, lids=False) as b:
        return len(b.detect(image))


def video_info(path) -> dict:
    cap, info = open_video(path)
    cap.release()
    return info


def estimate(estimator: OnnxEstimator, landmarks: np.ndarray, valid: np.ndarray, reference: np.ndarray | None = None,
             batch: int = 1024, layout: ParameterLayout = LAYOUT) -> np.ndarray:
    """Raw parameter vectors (N, P) for the valid rows of (N, 68, 2) landmarks; NaN elsewhere. With
    the actor's neutral ``reference`` (68, 2), the AU channels come from each frame's displacement
    from it carried onto the rig's neutral face (:func:`core.tracking.actor.on_rig_face`); the head
    pose and the identity from the frame as seen, with the reference."""
    out = np.full((len(landmarks), len(layout)), np.nan)
    rows = np.flatnonzero(valid)
    au = layout.group_slice("au")
    for s in range(0, len(rows), batch):
        r = rows[s:s + batch]
        est = estimator(landmarks[r], reference)
        if reference is not None:  # the AUs from the displacement; pose and identity as seen
            est[:, au] = estimator(on_rig_face(landmarks[r], reference), template_landmarks())[:, au]
        out[r] = layout.clamp(est)
    return out


RELAXED_SHARE = 0.1  # the neutral is made from the most relaxed 10% of the frames


def neutral_rows(raw: np.ndarray, valid: np.ndarray, layout: ParameterLayout = LAYOUT, weights=None) -> np.ndarray:
    """Rows of the actor's resting face: among the most relaxed frames (a low AU activation in a
    first pass without reference, each AU weighted by how well the model sees it from a single
    frame: ``weights``, from the model's metadata; equal weights without), the more frontal half,
    most frontal first."""
    rows = np.flatnonzero(valid)
    au = raw[rows][:, layout.group_slice("au")]
    activation = au @ (np.ones(au.shape[1]) if weights is None else np.asarray(weights, float))
    relaxed = rows[np.argsort(activation, kind="stable")[:max(1, int(round(RELAXED_SHARE * len(rows))))]]
    pose = raw[relaxed][:, layout.group_slice("pose")]
    frontal = np.argsort(np.abs(pose[:, 0]) + np.abs(pose[:, 1]), kind="stable")
    return relaxed[frontal[:max(1, (len(frontal) + 1) // 2)]]


def brow_rows(estimator: OnnxEstimator, landmarks: np.ndarray, valid: np.ndarray, shape: np.ndarray,
              raw: np.ndarray, layout: ParameterLayout = LAYOUT) -> np.ndarray:
    """Rows where the brows rest. Each frame's brows are read on their own, set on the neutral
    ``shape`` (:func:`core.tracking.actor.with_brows`; a smile or a jaw opening would otherwise
    leak into the brow channels of a single-frame reading), without a reference, and the frames
    are ranked by those brow AUs alone (:func:`neutral_rows`; raise and lower alike, the head pose
    ``raw``'s). The overall ranking hardly sees the brows: from one frame they are weak cues and
    weigh little there."""
    from ..alignment.align import align

    rows = np.flatnonzero(valid)
    reading = np.full_like(raw, np.nan)
    reading[rows] = estimator(with_brows(shape, align(landmarks[rows])[0]))
    reading[:, layout.group_slice("pose")] = raw[:, layout.group_slice("pose")]
    weights = brow_channels(layout).astype(float)
    return neutral_rows(reading, valid, layout, weights)


def brows_only(image_brows: np.ndarray, mesh_brows: np.ndarray, layout: ParameterLayout = LAYOUT) -> np.ndarray:
    """The brow channels (AU1, AU2, AU4) of the reading with the brows placed by their look, every
    other channel of the reading with the face mesh's brows. The estimator learnt the rig, whose
    lids and brows move apart; a real face squeezing its eyes shut pulls the brows down too, and
    read with those brows the closure came out weaker (``liveportrait_d3``: blink 3.3 -> 2.7)."""
    out = np.array(mesh_brows, float, copy=True)
    cols = layout.group_slice("au").start + np.flatnonzero(brow_channels(layout))
    out[:, cols] = image_brows[:, cols]
    return out


def reference_rows(raw: np.ndarray, valid: np.ndarray, neutral, frames: np.ndarray,
                   layout: ParameterLayout = LAYOUT, weights=None) -> np.ndarray | None:
    """Rows that make the actor's neutral: the frame the user names (``neutral`` a frame number),
    or automatically the resting frames (:func:`neutral_rows`). None when off or no face."""
    if neutral is None or not valid.any():
        return None
    if neutral != "auto":
        hits = np.flatnonzero(frames == int(neutral))
        if not len(hits):
            raise ValueError(f"neutral frame {neutral} was not processed (frames {int(frames[0])}.."
                             f"{int(frames[-1])})")
        if not valid[hits[0]]:
            raise ValueError(f"neutral frame {neutral} has no face; name a frame where the face is found")
        return hits[:1]
    return neutral_rows(raw, valid, layout, weights)


def take_neutral(estimator: OnnxEstimator, raw: np.ndarray, valid: np.ndarray, landmarks: np.ndarray, neutral,
                 frames: np.ndarray, layout: ParameterLayout = LAYOUT):
    """The actor's neutral from the take itself, after a first pass without reference (``raw``):
    ``(rows, brows, shape)``: the resting frames (:func:`reference_rows`), the brows' own resting
    frames (:func:`brow_rows`; None when the user names the neutral frame) and the neutral shape
    they make (:func:`core.tracking.actor.neutral_shape`). ``(None, None, None)`` when off."""
    rest = reference_rows(raw, valid, neutral, frames, layout, estimator.meta.get("relaxed_weights"))
    if rest is None:
        return None, None, None
    shape = neutral_shape(landmarks[rest])
    if neutral != "auto":
        return rest, None, shape
    brows = brow_rows(estimator, landmarks, valid, shape, raw, layout)
    return rest, brows, neutral_shape(landmarks[rest], landmarks[brows])


def read_gaze(raw: np.ndarray, irises: np.ndarray, landmarks: np.ndarray, valid: np.ndarray, rest,
              layout: ParameterLayout = LAYOUT, weights=None, times=None) -> tuple[np.ndarray, str | None]:
    """``raw`` with its gaze channels read from the irises (:mod:`core.tracking.gaze`): zero where
    the take's open eyes look most, the head's turn (``raw``'s pose) taken off, the eyes' opening
    judged against the resting frames ``rest`` (the take's own when None: an actor profile, or no
    calibration).
    Without irises (FAN, or ``lids=False``) the eyes look ahead: the 68 points do not show where the
    eyes turn, and the estimator, trained on faces that look ahead, gives only its noise there (up
    to 1 degree). Returns ``(raw, note)``."""
    gaze = layout.group_slice("gaze")
    out = raw.copy()
    angles = None
    if np.isfinite(irises[valid]).all(1).any():
        rows = neutral_rows(raw, valid, layout, weights) if rest is None else np.asarray(rest)
        pose = raw[:, [layout.names.index("pose_yaw"), layout.names.index("pose_pitch")]]
        angles = gaze_angles(irises, landmarks, rows, pose, head_parallax(load_rig(layout=layout)), times)
    if angles is None or not np.isfinite(angles).all():
        out[valid, gaze] = 0.0
        return out, None
    out[valid, gaze] = np.clip(angles[valid], layout.lo[gaze], layout.hi[gaze])
    return out, "irises"


def calibrate_take(raw: np.ndarray, valid: np.ndarray, config: TrackConfig, layout: ParameterLayout = LAYOUT,
                   neutral_row: int | None = None, baseline: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Neutral calibration of raw parameters; returns ``(params, notes)``. ``neutral_row``: the row of
    the frame the user named as neutral (see :func:`reference_rows`); ``baseline``: the AU channels'
    resting values to calibrate with (an actor profile's)."""
    params = raw.copy()
    notes: dict = {"neutral": config.neutral}
    if baseline is not None:
        params = calibrate(params, baseline, layout)
        notes["baseline"] = np.round(baseline, 4).tolist()
    elif config.neutral is not None and valid.any():
        frame = None if config.neutral == "auto" else neutral_row
        baseline = neutral_baseline(params, valid, layout, frame=frame)
        params = calibrate(params, baseline, layout)
        notes["baseline"] = baseline[layout.group_slice("au")].round(4).tolist()
    return params, notes


def postprocess(calibrated: np.ndarray, timestamps: np.ndarray, valid: np.ndarray, config: TrackConfig,
                layout: ParameterLayout = LAYOUT, motion_range: np.ndarray | None = None) -> np.ndarray:
    """After calibration (:func:`calibrate_take`): the actor's range of motion (a gain per AU
    channel, from :func:`core.tracking.clip_fit.fit_range`), smoothing and the user's gains."""
    params = calibrated.copy()
    if motion_range is not None:
        au = layout.group_slice("au")
        params[:, au] = np.clip(params[:, au] * motion_range, layout.lo[au], layout.hi[au])
    params = smooth(params, timestamps, config.smoothing, valid, layout)
    if config.gains:
        params = apply_gain(params, config.gains, layout)
    params[~valid] = np.nan
    return params


def track_video(video, config: TrackConfig = TrackConfig(), progress: bool = True, on_progress=None,
                should_stop=None, layout: ParameterLayout = LAYOUT) -> Tracking:
    """Track one video. ``on_progress(done, total)`` is called per frame; ``should_stop()``
    returning True ends the run early (the frames read so far are returned, meta says so)."""
    model = Path(config.model) if config.model else DEFAULT_ONNX
    if not model.is_file():
        raise FileNotFoundError(f"no estimator model at {model}")
    opened = open_video(video)
    # the model loads (and is checked against the rig) while the first frames are detected
    loading = concurrent.futures.ThreadPoolExecutor(1)
    pending = loading.submit(_open_estimator, model, config.threads, layout)
    try:
        return _track(video, config, progress, on_progress, should_stop, layout, opened, model, pending)
    finally:
        loading.shutdown(wait=False, cancel_futures=True)


def model_kind(path) -> str:
    """"landmarks" or "image": which path an exported model belongs to (its metadata's kind)."""
    return onnx_metadata(path).get("kind", "landmarks")


def _open_estimator(path, threads, layout):
    """The estimator at ``path``, of the class its metadata's kind names (one ONNX Runtime session)."""
    opened = open_session(Path(path), threads)
    kind = opened[1].get("kind", "landmarks")
    if kind not in ("landmarks", "image"):
        raise ValueError(f"{path}: a {kind!r} model; the tracker needs a landmark or image-path estimator")
    return (OnnxImageEstimator if kind == "image" else OnnxEstimator)(path, threads, layout, opened=opened)


class _CropStream:
    """The image path's side of the tracker: aligned crops of the followed face, estimated in
    batches (so memory does not grow with the video). The first crop waits for the model, whose
    metadata gives the crop geometry."""

    def __init__(self, pending, batch: int = 32):
        self.pending, self.batch = pending, batch
        self.rows, self.crops, self.rolls, self.done = [], [], [], {}

    def add(self, row: int, image_bgr: np.ndarray, landmarks: np.ndarray) -> None:
        est = self.pending.result()
        crop, t = crop_image(image_bgr, landmarks, est.crop_size, est.eye_distance)
        self.rows.append(row)
        self.crops.append(crop[:, :, ::-1])
        self.rolls.append(float(roll_degrees(t)))
        if len(self.crops) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if self.crops:
            out = self.pending.result()(np.stack(self.crops), np.asarray(self.rolls))
            self.done.update(zip(self.rows, out))
            self.rows, self.crops, self.rolls = [], [], []

    def result(self, n: int, layout: ParameterLayout) -> np.ndarray:
        self.flush()
        raw = np.full((n, len(layout)), np.nan)
        for row, params in self.done.items():
            raw[row] = layout.clamp(params)
        return raw


def _track(video, config, progress, on_progress, should_stop, layout, opened, model, pending) -> Tracking:
    from tqdm import tqdm

    info = opened[1]
    profile = None
    if config.actor:
        profile = read_profile(config.actor, layout)  # a bad profile fails before the video is read
    total = max(0, (info["frames"] - config.start + config.step - 1) // config.step) if info["frames"] else None
    if total is not None and config.max_frames is not None:
        total = min(total, config.max_frames)
    frames, conf, lms, irises, brow_images = [], [], [], [], []
    previous, last_seen = None, None
    fps = info["fps"]
    stopped = False
    bar = tqdm(total=total, desc=f"tracking {Path(video).name}", unit="frame", disable=not progress)
    frames_in = read_frames(video, config.start, config.step, config.max_frames, opened=opened)
    first = next(frames_in)
    crowd = count_faces(first[1], config.backend)
    if crowd > 1:
        message = (f"{Path(video).name}: {crowd} faces in the first frame; following the largest / most "
                   f"central one")
        (tqdm.write if progress else print)(message, file=sys.stderr)
    # one face in view: the backend may track it alone (fastest); several: it must report them all
    # the model has been loading while the first frame was read and its faces counted
    stream = _CropStream(pending) if pending.result().kind == "image" else None
    with open_backend(config.backend, video=True, max_faces=1 if crowd <= 1 else 4, lids=config.lids) as backend:
        started = time.perf_counter()  # the frames' time: decoding, detection (start-up excluded)
        for index, image in itertools.chain([first], frames_in):
            if pending.done() and pending.exception() is not None:
                raise pending.exception()  # a model that cannot be used: say so now, not at the end
            faces = backend.detect(image)
            face = pick_face(faces, previous, image.shape)
            if face is None and previous is not None and last_seen is not None \
                    and (index - last_seen) / fps > config.lost_after:
                previous = None
                face = pick_face(faces, None, image.shape)
            frames.append(index)
            if face is None:
                conf.append(0.0)
                lms.append(np.full((68, 2), np.nan))
                irises.append(np.full(2, np.nan))
                brow_images.append(None)
            else:
                previous, last_seen = face, index
                conf.append(float(face.confidence))
                lms.append(np.asarray(face.landmarks, float))
                irises.append(np.full(2, np.nan) if face.irises is None else np.asarray(face.irises, float))
                brow_images.append(brow_image(image, lms[-1]) if config.brows and stream is None else None)
                if stream is not None:
                    stream.add(len(frames) - 1, image, lms[-1])
            bar.update(1)
            if on_progress:
                on_progress(len(frames), total)
            if should_stop and should_stop():
                stopped = True
                break
    bar.close()
    seconds = time.perf_counter() - started
    short = None
    if total is not None and not stopped and len(frames) < total:  # the container promised more
        short = {"promised": int(total), "decoded": len(frames)}
        message = (f"{Path(video).name}: the file says {total} frames but only {len(frames)} could be decoded "
                   f"(truncated or damaged); the tracking keeps the frames that were read")
        (tqdm.write if progress else print)(f"warning: {message}", file=sys.stderr)
        warnings.warn(message, ShortVideoWarning, stacklevel=3)
    frames_a = np.asarray(frames, int)
    landmarks = np.asarray(lms, float).reshape(-1, 68, 2)
    valid = np.isfinite(landmarks).all(axis=(1, 2))
    mesh = landmarks  # the face mesh's own brows: every channel but the brows' is read with them
    image_brows = any(im is not None for im in brow_images)
    if image_brows:
        landmarks = refine_brows(landmarks, brow_images)[0]
    del brow_images
    timestamps = frames_a / fps
    estimator = pending.result()
    fit_report, rest, brows, neutral = None, None, None, None
    if stream is not None:  # the image path: F_seg + R on aligned crops, no reference frame
        raw, ref = stream.result(len(frames_a), layout), None
    elif profile is not None:  # the actor's neutral from another take
        raw, ref = estimate(estimator, landmarks, valid, profile.reference, layout=layout), None
        if image_brows:
            raw = brows_only(raw, estimate(estimator, mesh, valid, profile.reference, layout=layout), layout)
    else:
        raw = estimate(estimator, landmarks, valid, layout=layout)
        rest, brows, neutral = take_neutral(estimator, raw, valid, landmarks, config.neutral, frames_a, layout)
        ref = None if rest is None else int(rest[0])
        if rest is not None:
            raw = estimate(estimator, landmarks, valid, neutral, layout=layout)
        if image_brows:
            mesh_neutral = None if rest is None else \
                neutral_shape(mesh[rest], None if brows is None else mesh[brows])
            raw = brows_only(raw, estimate(estimator, mesh, valid, mesh_neutral, layout=layout), layout)
        if config.fit and valid.any():
            from .clip_fit import fit_clip

            raw, fit_report = fit_clip(load_rig(layout=layout), landmarks, raw, valid, ref, layout=layout)
    gaze_note = None
    if stream is None and valid.any() and "gaze" in {c.group for c in layout.channels}:
        raw, gaze_note = read_gaze(raw, np.asarray(irises, float), landmarks, valid, rest, layout,
                                   estimator.meta.get("relaxed_weights"), timestamps)
    named = ref if config.neutral not in ("auto", None) else None
    baseline = None if profile is None else profile.baseline
    calibrated, notes = calibrate_take(raw, valid, config, layout, named, baseline)
    motion_range, range_report = None, None
    if config.adapt and valid.any():  # the actor's range of motion, fitted through the rig on this take
        from .clip_fit import detector_response, fit_range

        prior = None if profile is None else profile.motion_range
        response = detector_response(config.backend, layout)
        if response is not None and image_brows:  # brows found by their look follow their motion
            response[brow_channels(layout)] = 1.0
        resting, resting_pose = (profile.reference[None], None) if profile is not None else \
            (None, None) if rest is None else \
            (neutral[None], np.median(raw[rest][:, layout.group_slice("pose")], 0)[None])
        motion_range, range_report = fit_range(load_rig(layout=layout), landmarks, calibrated, valid, resting,
                                               resting_pose, prior, fps=fps, response=response, layout=layout)
        range_report["range"] = dict(zip(layout.group_names("au"), np.round(motion_range, 4).tolist()))
        range_report["detector_shares"] = None if response is None else \
            dict(zip(layout.group_names("au"), np.round(response, 4).tolist()))
    params = postprocess(calibrated, timestamps, valid, config, layout, motion_range)
    if profile is not None:
        notes["actor"] = {"profile": str(config.actor), "source": profile.source}
    notes["reference_frame"] = None if ref is None else int(frames_a[ref])
    notes["neutral_frames"] = None if rest is None else [int(f) for f in frames_a[rest]]
    notes["brow_neutral_frames"] = None if brows is None else [int(f) for f in frames_a[brows]]
    notes["fit"] = fit_report
    notes["motion_range"] = range_report
    notes["gaze"] = gaze_note
    notes["brows"] = "image" if image_brows else "mesh"
    meta = {"video": info, "config": {**asdict(config), "model": str(model)}, "backend": config.backend,
            "model": {"path": str(model), **{k: v for k, v in estimator.meta.items() if k != "channels"}},
            "calibration": notes, "stopped_early": stopped, "seconds": round(seconds, 3),
            "frames_with_face": int(valid.sum()), "frames_without_face": int((~valid).sum()),
            "faces_in_first_frame": crowd, "short_video": short}
    return Tracking(frames=frames_a, timestamps=timestamps, success=valid, confidence=np.asarray(conf, float),
                    params=params, landmarks=landmarks, fps=fps, meta=meta)


def write_outputs(tracking: Tracking, output, twins: tuple[str, ...] = (".json", ".npz"),
                  layout: ParameterLayout = LAYOUT) -> list[Path]:
    """Write the CSV (or whichever format ``output``'s suffix names) and its twins beside it."""
    from ..animation.tracking_io import write_csv, write_json, write_npz

    writers = {".csv": write_csv, ".json": write_json, ".npz": write_npz}
    output = Path(output)
    if output.suffix.lower() not in writers:
        raise ValueError(f"{output}: the output must end in .csv, .json or .npz")
    if output.parent.exists() and not output.parent.is_dir():
        raise ValueError(f"{output}: {output.parent} is a file, not a folder")
    output.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in dict.fromkeys((output.suffix.lower(),) + tuple(twins)):
        written.append(writers[suffix](tracking, output.with_suffix(suffix), layout))
    return written
