"""Animate from video: track a video (``core.tracking.track``) and key the result onto a rig.

A :class:`TrackJob` runs the tracker, in a background thread for the modal operator (its
``run`` is the thread's body) or inline for batch scripts; the main thread then calls
:func:`finish` to key the tracking through ``animate.key_tracking`` (the tracking importer's
code path). A cancelled run, a failed one, or a video where no frame shows a face keys nothing.

The tracker needs onnxruntime, OpenCV and MediaPipe; they are imported on first use
(:func:`load_tracker`), so the add-on registers in a Blender without them.
"""
from __future__ import annotations

import importlib
import threading
from dataclasses import replace
from pathlib import Path

from . import animate
from ._core import tracker

MISSING_DEPS = ("tracking needs onnxruntime, opencv and mediapipe, which this Blender lacks: install the au2rig "
                "build that bundles them for this platform (build_addon.py --wheels linux-x64, windows-x64, "
                "macos-arm64 or macos-x64)")


class TrackCancelled(Exception):
    """The run was stopped before the end of the video; nothing is keyed."""


def load_tracker():
    """``core.tracking.track``, or ``ValueError`` saying which dependencies this Blender lacks."""
    try:
        track, _, _ = tracker()
        for name in ("cv2", "onnxruntime", "mediapipe"):  # the tracker imports some only when it runs
            importlib.import_module(name)
    except ImportError as e:
        raise ValueError(f"{MISSING_DEPS} ({e})") from None
    return track


def parse_neutral(text):
    """The neutral option: "auto" (or empty), "none" / "off" (no calibration), or a frame number."""
    t = str(text).strip().lower()
    if t in ("", "auto"):
        return "auto"
    if t in ("none", "off"):
        return None
    try:
        frame = int(t)
    except ValueError:
        raise ValueError(f"neutral {text!r}: expected auto, none or a frame number") from None
    if frame < 0:
        raise ValueError(f"neutral {text!r}: a frame number is 0 or more")
    return frame


class TrackJob:
    """One tracking run of ``video`` with ``config`` (a ``core.tracking.track.TrackConfig``).

    ``run()`` tracks (call it in a thread, or inline); ``stop`` (an Event) ends it early;
    ``done`` / ``total`` are the progress; afterwards :meth:`result` gives the tracking or
    raises. ``save_to``: also write the tracking there (CSV with JSON / NPZ twins); ``save_actor``:
    the take's actor profile (its neutral and fitted range of motion, ``core.tracking.actor``).
    """

    def __init__(self, track, video, config, save_to=None, save_actor=None):
        self.track, self.video, self.config = track, Path(video), config
        self.save_to = Path(save_to) if save_to else None
        self.save_actor = Path(save_actor) if save_actor else None
        self.stop = threading.Event()
        self.done, self.total = 0, None
        self.tracking, self.error, self.written = None, None, []
        self.thread = None

    def _progress(self, done, total):
        self.done, self.total = done, total

    def run(self):
        try:
            tracking = self.track.track_video(self.video, self.config, progress=False,
                                              on_progress=self._progress, should_stop=self.stop.is_set)
            complete = not tracking.meta.get("stopped_early") and tracking.success.any()
            if self.save_to is not None and complete:
                self.written = self.track.write_outputs(tracking, self.save_to)
            if self.save_actor is not None and complete:  # the actor's neutral and range, for the next take
                from ._core import actor_profiles

                profile_from_tracking, write_profile = actor_profiles()
                self.written.append(write_profile(profile_from_tracking(tracking), self.save_actor))
            self.tracking = tracking
        except Exception as e:  # noqa: BLE001 - handed to the main thread, which reports it
            self.error = e

    def start(self):
        self.thread = threading.Thread(target=self.run, name="au2rig-track", daemon=True)
        self.thread.start()

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    def result(self):
        """The tracking; ``TrackCancelled`` if stopped, ``ValueError`` naming the file otherwise."""
        if self.stop.is_set() or (self.tracking is not None and self.tracking.meta.get("stopped_early")):
            raise TrackCancelled(f"tracking {self.video.name} cancelled after {self.done} frames; "
                                 f"no Action created")
        if self.error is not None:
            e = self.error
            if isinstance(e, ImportError):
                raise ValueError(f"{MISSING_DEPS} ({e})")
            message = str(e) or type(e).__name__
            if self.video.name not in message and not isinstance(e, FileNotFoundError):
                message = f"{self.video}: {message}"
            raise ValueError(message)
        if self.tracking is None:
            raise ValueError(f"{self.video}: tracking has not run")
        if not self.tracking.success.any():
            raise ValueError(f"no face found in {self.video} ({len(self.tracking)} frames read)")
        return self.tracking


def finish(context, job: TrackJob, opts: animate.KeyOptions, obj=None, rmap=False):
    """Key a finished job's tracking (main thread): ``(object, Action, MapReport or None, tracking)``.

    Smoothing and gains were applied by the tracker (its ``TrackConfig``), not again here.
    """
    tracking = job.result()
    obj, action, report = animate.key_tracking(context, replace(opts, smoothing=0.0, gains=""), tracking,
                                               obj, rmap)
    return obj, action, report, tracking
