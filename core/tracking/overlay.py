"""Pictures of what was tracked: landmarks and AU bars over the frames, AU curves over time."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..animation.tracking_io import Tracking
from ..rig.layout import FACS_SCALE, LAYOUT, ParameterLayout
from ..util.atomic import atomic_path

PANEL = 190  # width of the AU bar panel in pixels


def facs_values(params: np.ndarray, layout: ParameterLayout = LAYOUT) -> tuple[tuple[int, ...], np.ndarray]:
    """(codes, (N, K) FACS 0-5 intensities) of parameter rows, L/R channels reported as their mean."""
    m = layout.eval_matrix()
    au = np.asarray(params)[..., layout.group_slice("au")]
    return layout.eval_codes(), (au @ m.T) * FACS_SCALE


def draw_frame(image: np.ndarray, landmarks, params, layout: ParameterLayout = LAYOUT,
               label: str = "") -> np.ndarray:
    """The frame with its landmarks, plus a panel of AU bars (FACS 0-5) and the head pose."""
    import cv2

    h = image.shape[0]
    panel = np.full((h, PANEL, 3), 32, np.uint8)
    out = np.concatenate([image, panel], 1)
    scale = max(1.0, h / 360.0)
    if landmarks is not None and np.isfinite(landmarks).all():
        for x, y in np.asarray(landmarks):
            cv2.circle(out, (int(round(x - 0.5)), int(round(y - 0.5))), max(1, int(2 * scale)), (0, 255, 0), -1,
                       cv2.LINE_AA)
    font, small = cv2.FONT_HERSHEY_SIMPLEX, 0.35 * scale
    x0 = image.shape[1] + 6
    if label:
        cv2.putText(out, label, (6, int(16 * scale)), font, 0.45 * scale, (255, 255, 255), 1, cv2.LINE_AA)
    if params is None or not np.isfinite(params).all():
        cv2.putText(out, "no face", (x0, int(20 * scale)), font, 0.5 * scale, (80, 80, 255), 1, cv2.LINE_AA)
        return out
    pose = np.asarray(params)[layout.group_slice("pose")]
    cv2.putText(out, f"yaw {pose[0]:+.0f} pitch {pose[1]:+.0f} roll {pose[2]:+.0f}", (x0, int(14 * scale)), font,
                small, (255, 255, 255), 1, cv2.LINE_AA)
    codes, values = facs_values(params, layout)
    row = (h - 24 * scale) / len(codes)
    for k, (code, v) in enumerate(zip(codes, values)):
        y = int(22 * scale + k * row)
        cv2.putText(out, f"AU{code:02d}", (x0, int(y + row * 0.8)), font, small * 0.9, (220, 220, 220), 1,
                    cv2.LINE_AA)
        bar = int((PANEL - 52 * scale) * float(np.clip(v, 0, FACS_SCALE)) / FACS_SCALE)
        color = (0, 200, 255) if v >= 1.0 else (0, 140, 190)
        cv2.rectangle(out, (int(x0 + 40 * scale), y + 1), (int(x0 + 40 * scale) + bar, int(y + row * 0.85)), color, -1)
    return out


def write_image(path, image_bgr: np.ndarray) -> Path:
    """Write an image file (format from the suffix) atomically."""
    import cv2

    path = Path(path)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), image_bgr):
            raise OSError(f"cannot write image {path}")
    return path


def to_bgr8(image_rgb) -> np.ndarray:
    """(3, H, W) RGB floats in [0, 1] (numpy, or a CPU torch tensor) -> (H, W, 3) BGR uint8."""
    a = np.clip(np.asarray(image_rgb, np.float32), 0.0, 1.0).transpose(1, 2, 0)[:, :, ::-1]
    return np.ascontiguousarray((a * 255 + 0.5).astype(np.uint8))


def tile_grid(rows, gap: int = 2) -> np.ndarray:
    """One uint8 image of ``rows`` (lists of equally sized (H, W, 3) uint8 tiles), white gaps."""
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    grid = np.full((len(rows) * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            grid[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = tile
    return grid


def write_overlay(video, tracking: Tracking, output, frames: int = 8, height: int = 240,
                  layout: ParameterLayout = LAYOUT) -> Path:
    """A strip of ``frames`` evenly spaced tracked frames (``.png``) or the whole video with the
    overlay (``.mp4``/``.avi``), so a person can see what was tracked."""
    import cv2

    from .track import read_frames

    output = Path(output)
    rows = {int(f): i for i, f in enumerate(tracking.frames)}
    span = int(tracking.frames[-1] - tracking.frames[0]) + 1  # video frames from the first tracked to the last
    if output.suffix.lower() == ".png":
        picks = np.linspace(0, len(tracking) - 1, min(frames, len(tracking))).round().astype(int)
        wanted = set(int(tracking.frames[i]) for i in picks)
        tiles = []
        for index, image in read_frames(video, start=int(tracking.frames[0]), max_frames=span):
            if index in wanted:
                r = rows[index]
                tile = draw_frame(image, tracking.landmarks[r], tracking.params[r], layout,
                                  f"frame {index}  {tracking.timestamps[r]:.2f}s")
                k = height / tile.shape[0]
                tiles.append(cv2.resize(tile, (int(tile.shape[1] * k), height), interpolation=cv2.INTER_AREA))
        cols = 2 if len(tiles) > 4 else 1
        while len(tiles) % cols:
            tiles.append(np.zeros_like(tiles[0]))
        grid = np.concatenate([np.concatenate(tiles[i::cols], 0) for i in range(cols)], 1) if cols > 1 \
            else np.concatenate(tiles, 0)
        return write_image(output, grid)
    if output.suffix.lower() not in (".mp4", ".avi"):
        raise ValueError(f"{output}: an overlay is a .png strip or an .mp4 / .avi video")
    writer = None
    with atomic_path(output) as tmp:
        fourcc = cv2.VideoWriter_fourcc(*("mp4v" if output.suffix.lower() == ".mp4" else "MJPG"))
        for index, image in read_frames(video, start=int(tracking.frames[0]), max_frames=span):
            r = rows.get(index)
            if r is None:
                continue
            tile = draw_frame(image, tracking.landmarks[r], tracking.params[r], layout,
                              f"frame {index}  {tracking.timestamps[r]:.2f}s")
            if writer is None:
                writer = cv2.VideoWriter(str(tmp), fourcc, float(tracking.fps), (tile.shape[1], tile.shape[0]))
                if not writer.isOpened():
                    raise OSError(f"OpenCV cannot write video {output}")
            writer.write(tile)
        if writer is None:
            raise ValueError(f"{video}: none of the tracked frames could be read back for the overlay")
        writer.release()
    return output


def plot_curves(tracking: Tracking, output, width: int = 1200, row_height: int = 34, truth=None,
                layout: ParameterLayout = LAYOUT) -> Path:
    """PNG of each AU's intensity (FACS 0-5) over time; frames without a face are shaded.
    ``truth`` (N, P) draws known values (e.g. the script of a rendered clip) in grey beneath."""
    import cv2

    codes, values = facs_values(tracking.params, layout)
    ref = facs_values(truth, layout)[1] if truth is not None else None
    left, top = 60, 24
    h = top + row_height * len(codes) + 30
    img = np.full((h, width, 3), 255, np.uint8)
    t = tracking.timestamps
    span = max(float(t[-1] - t[0]), 1e-6) if len(t) else 1.0
    xs = (left + (t - (t[0] if len(t) else 0)) / span * (width - left - 10)).astype(int)
    for i in np.flatnonzero(~tracking.success):
        cv2.line(img, (xs[i], top), (xs[i], h - 30), (225, 225, 245), 2)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, "AU intensity (FACS 0-5) over time" + ("; grey: truth" if ref is not None else ""),
                (left, 16), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for k, code in enumerate(codes):
        y0 = top + k * row_height
        base = y0 + row_height - 4
        cv2.line(img, (left, base), (width - 10, base), (200, 200, 200), 1)
        cv2.putText(img, f"AU{code:02d}", (6, base - 8), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        for series, color, thick in ((ref, (170, 170, 170), 3), (values, (200, 90, 0), 1)):
            if series is None:
                continue
            ys = base - np.clip(series[:, k], 0, FACS_SCALE) / FACS_SCALE * (row_height - 8)
            ok = np.isfinite(ys)
            for run in np.split(np.flatnonzero(ok), np.flatnonzero(np.diff(np.flatnonzero(ok)) > 1) + 1):
                if len(run) > 1:
                    pts = np.stack([xs[run], ys[run].astype(int)], 1).reshape(-1, 1, 2).astype(np.int32)
                    cv2.polylines(img, [pts], False, color, thick, cv2.LINE_AA)
    for s in np.arange(0, span + 1e-9, max(1.0, round(span / 10))):
        x = int(left + s / span * (width - left - 10))
        cv2.putText(img, f"{s:g}s", (x - 8, h - 10), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return write_image(Path(output), img)
