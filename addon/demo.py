"""The main job on the embedded default: animate the built-in rig with the scripted performance.

Keys the performance onto the rig's channel properties (the drivers move the bones), saves the
scene as a .blend (written to a temporary name, then moved into place, so a killed run leaves no
half-written file) and renders one frame per beat into a labelled strip.
"""
from __future__ import annotations

import os
from pathlib import Path

import bpy
import cv2
import numpy as np

from . import contact_sheet
from ._core import LAYOUT, scripted_performance


def key_performance(arm_obj, perf, layout=LAYOUT) -> int:
    """Insert a key per frame on every channel property the performance changes; return the key count."""
    changing = np.flatnonzero(np.ptp(perf.params, axis=0) > 0)
    constant = np.setdiff1d(np.arange(len(layout)), changing)
    for i in constant:
        arm_obj[layout.names[i]] = float(perf.params[0, i])
    keys = 0
    for frame, p in enumerate(perf.params, start=1):
        for i in changing:
            arm_obj[layout.names[i]] = float(p[i])
            arm_obj.keyframe_insert(data_path=f'["{layout.names[i]}"]', frame=frame)
            keys += 1
    return keys


def beat_frames(perf) -> list[tuple[str, int]]:
    """(label, frame) at the end of each beat's ease, where it holds its pose."""
    out, start = [], 0
    for i in range(1, len(perf.labels) + 1):
        if i == len(perf.labels) or perf.labels[i] != perf.labels[start]:
            out.append((perf.labels[start], start + int(0.75 * (i - start)) + 1))
            start = i
    return out


def save_blend_atomically(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial.blend")
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp), copy=True)
    os.replace(tmp, path)


def run_demo(out_dir: Path, size: int = 256, fps: float = 30.0) -> dict:
    from ._core import load_rig

    rig = load_rig()
    perf = scripted_performance(fps)
    scene, arm_obj = contact_sheet.setup_scene(rig, size)
    scene.render.fps = int(round(fps))
    scene.frame_start, scene.frame_end = 1, len(perf.params)
    keys = key_performance(arm_obj, perf)
    out_dir.mkdir(parents=True, exist_ok=True)
    blend = out_dir / "demo.blend"
    save_blend_atomically(blend)

    tiles = []
    for label, frame in beat_frames(perf):
        scene.frame_set(frame)
        path = out_dir / ".demo_frame.png"
        img = contact_sheet.render_image(scene, path)
        tiles.append(contact_sheet.labelled(img, label, f"frame {frame} / {len(perf.params)}"))
        path.unlink()
    strip = out_dir / "demo_strip.png"
    cv2.imwrite(str(strip), contact_sheet.compose(tiles, columns=min(7, len(tiles))))
    return {"blend": blend, "strip": strip, "frames": len(perf.params), "keys": keys, "fps": fps}
