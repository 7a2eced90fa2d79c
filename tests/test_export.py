"""Keys a game engine can read: the face bones baked for FBX / glTF, which carry keyed bones but
no drivers (real bpy, headless; the glTF file is read back as a game engine would)."""
import json

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from au2rig.addon.animate import apply_tracking  # noqa: E402 (after pytest.importorskip)
from au2rig.addon.bake import action_fcurves  # noqa: E402 (after pytest.importorskip)
from au2rig.addon.rig_builder import mute_drivers  # noqa: E402 (after pytest.importorskip)
from au2rig.core.animation.tracking_io import Tracking  # noqa: E402 (after pytest.importorskip)
from au2rig.core.rig.layout import LAYOUT  # noqa: E402 (after pytest.importorskip)


def _talking(n=24, fps=24.0) -> Tracking:
    """A jaw that opens and closes twice, a head that turns, a smile that comes and goes."""
    t = np.arange(n) / fps
    p = np.tile(LAYOUT.neutral(), (n, 1))
    p[:, LAYOUT.index["AU26"]] = 0.5 - 0.5 * np.cos(2 * np.pi * 2 * t / t[-1])
    p[:, LAYOUT.index["AU12_L"]] = p[:, LAYOUT.index["AU12_R"]] = np.sin(np.pi * t / t[-1])
    p[:, LAYOUT.index["pose_yaw"]] = 20 * np.sin(2 * np.pi * t / t[-1])
    ok = np.ones(n, bool)
    return Tracking(np.arange(n), t, ok, ok * 1.0, p, np.zeros((n, 68, 2)), fps, {})


def _pose(arm, frame):
    bpy.context.scene.frame_set(frame)
    bpy.context.view_layer.update()
    return np.array([np.array(b.matrix_basis) for b in arm.pose.bones])


def test_baked_bones_pose_the_face_as_the_drivers_do(bdfm_arm):
    arm = bdfm_arm
    tracking = _talking()
    action = apply_tracking(arm, tracking, start_frame=1, bones=True)
    paths = {fc.data_path for fc in action_fcurves(action)}
    assert 'pose.bones["jaw"].rotation_euler' in paths and '["AU26"]' in paths
    driven = [_pose(arm, f) for f in (1, 7, 13)]
    mute_drivers(arm, True)  # what an exporter sees: the keyed bones alone
    try:
        keyed = [_pose(arm, f) for f in (1, 7, 13)]
    finally:
        mute_drivers(arm, False)
    for a, b in zip(driven, keyed):
        assert np.abs(a - b).max() < 1e-4
    assert np.abs(driven[0] - driven[1]).max() > 1e-2  # and the face does move


def _gltf_channels(path):
    """{(node name, path): (times, values)} of a .gltf's first animation, read from its buffers."""
    doc = json.loads(path.read_text())
    blobs = [(path.parent / b["uri"]).read_bytes() for b in doc["buffers"]]

    def accessor(i):
        a = doc["accessors"][i]
        view = doc["bufferViews"][a["bufferView"]]
        width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[a["type"]]
        assert a["componentType"] == 5126  # float32
        start = view.get("byteOffset", 0) + a.get("byteOffset", 0)
        data = np.frombuffer(blobs[view["buffer"]], np.float32, a["count"] * width, start)
        return data.reshape(a["count"], width)

    anim = doc["animations"][0]
    out = {}
    for ch in anim["channels"]:
        sampler = anim["samplers"][ch["sampler"]]
        node = doc["nodes"][ch["target"]["node"]]["name"]
        out[(node, ch["target"]["path"])] = (accessor(sampler["input"])[:, 0], accessor(sampler["output"]))
    return out


EXPORT = r"""
import sys
import bpy
sys.path.insert(0, sys.argv[3])
from test_export import _talking
from au2rig.addon.animate import apply_tracking
from au2rig.addon.rig_builder import build_rig
from au2rig.core.rig import load_rig

bpy.ops.wm.read_factory_settings(use_empty=True)
arm, _ = build_rig(load_rig())
apply_tracking(arm, _talking(), start_frame=1, bones=sys.argv[2] == "bones")
bpy.ops.export_scene.gltf(filepath=sys.argv[1], export_format='GLTF_SEPARATE', export_animations=True,
                          export_force_sampling=False)
print("EXPORTED", flush=True)
import os
os._exit(0)  # bpy 4.2.0 can crash while the interpreter shuts down
"""


def _export(path, bones: bool):
    """The keyed rig exported to glTF in a fresh Blender (bpy 4.2.0's exporter can crash on state
    earlier tests left), the Action's keys as they are: no sampling, since the exporter's sampling
    evaluates drivers in Blender, which a file's reader and an engine cannot."""
    import subprocess
    import sys
    from pathlib import Path

    run = subprocess.run([sys.executable, "-c", EXPORT, str(path), "bones" if bones else "plain",
                          str(Path(__file__).parent)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "EXPORTED" in run.stdout, run.stdout[-2000:] + run.stderr[-2000:]
    return _gltf_channels(path)


def test_a_gltf_export_carries_the_face_bones_animation(tmp_path):
    tracking = _talking()
    channels = _export(tmp_path / "face.gltf", bones=True)
    times, rot = channels[("jaw", "rotation")]
    assert len(times) == len(tracking)
    # the jaw's turn away from its first (closed) pose follows the tracked jaw drop
    angle = 2 * np.degrees(np.arccos(np.clip(np.abs(rot @ rot[0]), 0, 1)))
    assert angle.max() > 5.0
    assert np.corrcoef(angle, tracking.params[:, LAYOUT.index["AU26"]])[0, 1] > 0.99
    assert ("lip_corner.L", "translation") in channels  # the smile travels too


def test_without_baked_bones_the_keys_carry_no_face(tmp_path):
    """The channel properties alone reach no bone in the file: the drivers stay behind."""
    try:
        channels = _export(tmp_path / "face.gltf", bones=False)
    except (IndexError, KeyError):  # no animation at all
        channels = {}
    assert ("jaw", "rotation") not in channels
