"""The main job on the embedded default: track a video, animate the built-in rig with it.

The project ships no footage of real people, so its default video is made here: the rig, with an
identity other than the base face, performs the scripted sequence (``core.animation.performance``) and is
rendered into a 640x360 clip (cached in the output folder). The tracker then runs on that clip
like on any video; since the script is known, the demo prints how close the recovered values
are. The tracked pose and AU channels are keyed onto the rig, the scene is saved as a .blend
(written to a temporary name, then moved into place, so a killed run leaves no half-written
file) and one frame per beat is rendered into a labelled strip.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import bpy
import cv2
import numpy as np

from . import contact_sheet
from ._core import LAYOUT, atomic_path, scripted_performance, select_channels

CLIP_SIZE = (640, 360)


def key_performance(arm_obj, perf, layout=LAYOUT, channels=None, action_name: str = "performance") -> int:
    """Key the performance onto the rig's channel properties in bulk (one new Action, frame 1 =
    the first row): every channel it changes, or ``channels``; NaN values get no key. Channels
    left out are set to the first row's value. Returns the key count."""
    from .bake import Curve, bake_action

    params = perf.params
    if channels is None:
        changing = np.flatnonzero(np.ptp(params, axis=0) > 0)
        for i in np.setdiff1d(np.arange(len(layout)), changing):
            arm_obj[layout.names[i]] = float(params[0, i])
    else:
        changing = np.asarray(channels)
    curves = [Curve(f'["{layout.names[i]}"]', params[:, i], group=layout.channels[i].group) for i in changing]
    bake_action(arm_obj, action_name, np.arange(1, len(params) + 1, dtype=float), curves)
    return int(sum(np.isfinite(params[:, i]).sum() for i in changing))


def _clip_key(rig, perf, look: dict) -> str:
    h = hashlib.sha256(rig.identity.encode())
    h.update(np.ascontiguousarray(perf.params, np.float64).tobytes())
    h.update(repr((CLIP_SIZE, sorted(look.items()))).encode())
    return h.hexdigest()[:16]


def _set_look(scene, engine: str, light_rotation: float, cycles_samples: int, light_energy: float) -> None:
    """Engine and lighting of a clip: Workbench's studio light turned by ``light_rotation`` degrees,
    or Cycles on the CPU with the rig's own lights scaled by ``light_energy``."""
    import math

    if engine == "workbench":
        scene.display.render_aa = 'FXAA'
        shading = scene.display.shading
        shading.use_world_space_lighting = bool(light_rotation)
        shading.studiolight_rotate_z = math.radians(light_rotation)
    elif engine == "cycles":
        scene.render.engine = 'CYCLES'
        scene.cycles.device = 'CPU'
        scene.cycles.samples = cycles_samples
        scene.cycles.use_denoising = False
        scene.cycles.seed = 0
        for obj in scene.objects:
            if obj.type == 'LIGHT':
                obj.data.energy *= light_energy
    else:
        raise ValueError(f"unknown engine {engine!r}; choose workbench or cycles")


def render_clip(rig, perf, path: Path, progress: bool = True, engine: str = "workbench",
                light_rotation: float = 0.0, cycles_samples: int = 16, light_energy: float = 1.0) -> Path:
    """Render the performance into a 640x360 video (the rig at 360 px, centred); cached by content."""
    from tqdm import tqdm

    look = {"engine": engine, "light_rotation": light_rotation, "cycles_samples": cycles_samples,
            "light_energy": light_energy}
    meta_path = path.with_suffix(".json")
    key = _clip_key(rig, perf, look)
    if path.is_file() and meta_path.is_file() and json.loads(meta_path.read_text()).get("key") == key:
        return path
    width, height = CLIP_SIZE
    scene, arm_obj = contact_sheet.setup_scene(rig, height)
    _set_look(scene, engine, light_rotation, cycles_samples, light_energy)
    frame_png = path.with_name(f".{path.stem}.frame.png")
    canvas = np.empty((height, width, 3), np.uint8)
    left = (width - height) // 2
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), perf.fps, (width, height))
        try:
            if not writer.isOpened():
                raise OSError(f"OpenCV cannot write the clip {path}")
            for p in tqdm(perf.params, desc=f"rendering {path.name} ({engine})", unit="frame", disable=not progress):
                img = contact_sheet.render_tile(scene, arm_obj, p, frame_png)
                canvas[:] = img[0, 0]
                canvas[:, left:left + height] = img
                writer.write(canvas)
        finally:
            writer.release()
            frame_png.unlink(missing_ok=True)
    meta_path.write_text(json.dumps({"key": key, "fps": perf.fps, "frames": len(perf.params),
                                     "offset_px": [left, 0], "rig_identity": rig.identity, **look}, indent=1))
    return path


def beat_frames(perf) -> list[tuple[str, int]]:
    """(label, frame) at the end of each beat's ease, where it holds its pose."""
    out, start = [], 0
    for i in range(1, len(perf.labels) + 1):
        if i == len(perf.labels) or perf.labels[i] != perf.labels[start]:
            out.append((perf.labels[start], start + int(0.75 * (i - start)) + 1))
            start = i
    return out


def save_blend_atomically(path: Path) -> None:
    # not core.util.atomic.atomic_path: it creates the temporary file first, and Blender saving over an
    # existing file leaves a ".blend1" backup of it behind
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial.blend")
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp), copy=True)
    os.replace(tmp, path)


def track_clip(clip: Path, perf, out_dir: Path, progress: bool = True) -> dict:
    """Track the clip with the shipped model, write the tracking files and pictures, and compare
    the recovered values with the script."""
    from ._core import tracker

    track, metrics, overlay = tracker()
    tracking = track.track_video(clip, track.TrackConfig(), progress=progress)
    files = track.write_outputs(tracking, out_dir / "demo_tracking.csv")
    files.append(overlay.write_overlay(clip, tracking, out_dir / "demo_overlay.png"))
    files.append(overlay.plot_curves(tracking, out_dir / "demo_curves.png", truth=perf.params[tracking.frames]))
    report = metrics.au_report(tracking.params, perf.params[tracking.frames])
    return {"tracking": tracking, "report": report, "table": metrics.format_report(report), "files": files}


def run_demo(out_dir: Path, size: int = 256, fps: float = 30.0, progress: bool = True) -> dict:
    from ._core import load_rig

    rig = load_rig()
    perf = scripted_performance(fps)
    out_dir.mkdir(parents=True, exist_ok=True)
    clip = render_clip(rig, perf, out_dir / "demo_clip.mp4", progress)
    tracked = track_clip(clip, perf, out_dir, progress)
    print("tracked vs the script of the clip (FACS 0-5; pose in degrees):\n" + tracked["table"], file=sys.stderr)

    scene, arm_obj = contact_sheet.setup_scene(rig, size)
    scene.render.fps = int(round(fps))
    scene.frame_start, scene.frame_end = 1, len(perf.params)
    for i in range(len(LAYOUT)):  # the character: the performer's identity and brows, neutral face
        arm_obj[LAYOUT.names[i]] = float(perf.params[0, i])
    moving = select_channels("motion")
    tracking = tracked["tracking"]
    animation = np.full_like(perf.params, np.nan)
    animation[tracking.frames[tracking.frames < len(animation)]] = tracking.params[tracking.frames < len(animation)]
    keys = key_performance(arm_obj, type(perf)(perf.times, animation, perf.labels, fps), channels=moving,
                           action_name="demo_tracked")
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
    return {"blend": blend, "strip": strip, "frames": len(perf.params), "keys": keys, "fps": fps, "clip": clip,
            "report": tracked["report"], "files": tracked["files"]}
