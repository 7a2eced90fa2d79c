"""The actor beside the character: a video of a tracked clip with the rig animated from it.

    au2rig preview VIDEO -o preview.mp4 [--tracking T.csv|.json|.npz] [--size 360]

Tracks the video (or reads a tracking file of it), keys the head pose, gaze and AU channels onto the
built-in rig in bulk (the keys File > Import gives a user), and for every tracked frame renders the
keyed rig at that frame in Blender (Workbench) beside the video frame. Under the character, bars
show the channels a viewer checks first (blink, smile, jaw, brows); a frame without a face says so.
The file is written to a temporary name and moved into place.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from . import contact_sheet
from ._core import LAYOUT, atomic_path, select_channels

# (label, channels averaged) shown as bars under the character, FACS 0..5 scale
BARS = (("blink", ("AU43_L", "AU43_R")), ("smile", ("AU12_L", "AU12_R")), ("jaw", ("AU26",)),
        ("brow up", ("AU01_L", "AU01_R", "AU02_L", "AU02_R")), ("frown", ("AU04",)))


def preview_channels(layout=LAYOUT) -> np.ndarray:
    """Indices of the channels keyed for the preview: head pose, AUs and gaze (the identity stays the rig's)."""
    return np.asarray(select_channels("motion", layout))


def _bars(width: int, params: np.ndarray | None, layout=LAYOUT) -> np.ndarray:
    """A strip of labelled bars for ``params`` (None: no face in this frame)."""
    row = 22
    strip = np.full((row * len(BARS), width, 3), 32, np.uint8)
    for k, (label, names) in enumerate(BARS):
        y = k * row
        cv2.putText(strip, label, (6, y + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (220, 220, 220), 1, cv2.LINE_AA)
        x0, x1 = 90, width - 50
        cv2.rectangle(strip, (x0, y + 5), (x1, y + row - 5), (80, 80, 80), 1)
        if params is None:
            continue
        value = 5.0 * float(np.mean([params[layout.index[n]] for n in names]))
        fill = x0 + int(round((x1 - x0) * min(max(value / 5.0, 0.0), 1.0)))
        cv2.rectangle(strip, (x0, y + 5), (fill, y + row - 5), (90, 200, 255), -1)
        cv2.putText(strip, f"{value:.1f}", (x1 + 6, y + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (220, 220, 220), 1,
                    cv2.LINE_AA)
    return strip


def render_preview(video, tracking, output, size: int = 360, progress: bool = True) -> Path:
    """Write the side-by-side video: the clip's frame (scaled to ``size`` px high) | the keyed rig
    rendered at ``size`` px, with channel bars below. Returns the output path."""
    from tqdm import tqdm

    from ._core import load_rig
    from .demo import key_performance

    output = Path(output)
    size = 2 * max(8, int(size) // 2)
    rig = load_rig()
    scene, arm_obj = contact_sheet.setup_scene(rig, size)
    params = np.array(tracking.params, float)
    neutral = LAYOUT.neutral()
    for i in np.setdiff1d(np.arange(len(LAYOUT)), preview_channels()):
        arm_obj[LAYOUT.names[i]] = float(neutral[i])
    # rows without a face are NaN: no key there, the curve holds
    key_performance(arm_obj, SimpleNamespace(params=params), channels=preview_channels(), action_name="preview")
    scene.frame_start, scene.frame_end = 1, len(params)

    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise FileNotFoundError(f"{video}: cannot open the video")
    frame_png = output.with_name(f".{output.stem}.frame.png")
    writer = None
    try:
        with atomic_path(output) as tmp:
            position = 0
            for row, frame_index in enumerate(tqdm(tracking.frames, desc=f"preview {output.name}", unit="frame",
                                                   disable=not progress)):
                frame_index = int(frame_index)
                if frame_index != position:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, frame_index)
                ok, frame = cap.read()
                position = frame_index + 1
                if not ok:
                    raise ValueError(f"{video}: frame {frame_index} of the tracking cannot be read from the video")
                h, w = frame.shape[:2]
                width = max(2, 2 * round(w * size / h / 2))  # even: video codecs need even sizes
                left = cv2.resize(frame, (width, size), interpolation=cv2.INTER_AREA)
                scene.frame_set(row + 1)
                right = contact_sheet.render_image(scene, frame_png)
                found = bool(tracking.success[row])
                bars = _bars(left.shape[1] + size, params[row] if found else None)
                canvas = np.vstack([np.hstack([left, right]), bars])
                label = f"frame {frame_index}" + ("" if found else "  no face: held")
                cv2.putText(canvas, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 0), 1, cv2.LINE_AA)
                if writer is None:
                    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(tracking.fps),
                                             (canvas.shape[1], canvas.shape[0]))
                    if not writer.isOpened():
                        raise OSError(f"OpenCV cannot write the preview {output}")
                writer.write(canvas)
            if writer is not None:
                writer.release()
                writer = None
    finally:
        if writer is not None:
            writer.release()
        cap.release()
        frame_png.unlink(missing_ok=True)
    return output


def main(args) -> int:
    """``au2rig preview`` (arguments parsed in addon/__main__.py)."""
    import sys

    from ._core import read_tracking, tracker

    if args.tracking:
        tracking = read_tracking(args.tracking)
    else:
        track, _, _ = tracker()
        config = track.TrackConfig(max_frames=args.max_frames)
        tracking = track.track_video(args.video, config, progress=not args.quiet)
    path = render_preview(args.video, tracking, args.output, args.size, progress=not args.quiet)
    print(f"wrote {path} ({len(tracking)} frames: the video | the rig keyed from its tracking)", file=sys.stderr)
    return 0
