"""The Face Capture panel's workflow, headless with real bpy: a change of gain, smoothing or
neutral re-bakes the stored tracking at once into the same Action, and undo restores the keys."""
import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from au2rig import addon  # noqa: E402 (after pytest.importorskip)
from au2rig.addon.bake import action_fcurves  # noqa: E402 (after pytest.importorskip)
from au2rig.core.animation.tracking_io import Tracking, write_csv  # noqa: E402 (after pytest.importorskip)
from au2rig.core.rig.layout import LAYOUT  # noqa: E402 (after pytest.importorskip)


@pytest.fixture
def capture(bdfm_arm, tmp_path):
    """The face rig with a tracking keyed onto it (and kept in it), the panel pointing at it."""
    addon.register()
    rng = np.random.default_rng(0)
    n = 30
    p = np.tile(LAYOUT.neutral(), (n, 1))
    p[:, LAYOUT.group_slice("pose")] = rng.uniform(-15, 15, (n, 3))
    p[:, LAYOUT.group_slice("au")] = rng.uniform(0.05, 0.45, (n, 26))
    ok = np.ones(n, bool)
    path = write_csv(Tracking(np.arange(n), np.arange(n) / 25.0, ok, ok * 1.0, p, np.zeros((n, 68, 2)), 25.0, {}),
                     tmp_path / "t.csv")
    assert bpy.ops.au2rig.import_tracking(filepath=str(path), target=bdfm_arm.name) == {'FINISHED'}
    settings = bpy.context.scene.au2rig_capture
    settings.target = bdfm_arm
    yield bdfm_arm.name, settings, p
    addon.unregister()


def _keys(name, channel):
    action = bpy.data.objects[name].animation_data.action
    fc = next(f for f in action_fcurves(action) if f.data_path == f'["{channel}"]')
    co = np.empty(2 * len(fc.keyframe_points), np.float32)
    fc.keyframe_points.foreach_get("co", co)
    return co[0::2], co[1::2]


def test_a_gain_re_bakes_at_once_into_the_same_action_and_undo_restores_it(capture):
    """Each change is pushed as one undo step, as Blender does after a slider moves."""
    name, settings, params = capture
    action = bpy.data.objects[name].animation_data.action.name
    actions = len(bpy.data.actions)
    _, before = _keys(name, "AU12_L")
    bpy.ops.ed.undo_push(message="tracked")
    settings.gain_AU12 = 2.0  # as a slider would: the update re-bakes
    bpy.ops.ed.undo_push(message="AU12 gain")
    np.testing.assert_allclose(_keys(name, "AU12_L")[1], 2 * before, atol=1e-6)
    assert bpy.data.objects[name].animation_data.action.name == action and len(bpy.data.actions) == actions
    settings.gain_au = 0.5  # a group gain multiplies the code's
    bpy.ops.ed.undo_push(message="AU gain")
    np.testing.assert_allclose(_keys(name, "AU12_L")[1], before, atol=1e-6)
    np.testing.assert_allclose(_keys(name, "AU04")[1], 0.5 * params[:, LAYOUT.index["AU04"]], atol=1e-6)
    bpy.ops.ed.undo()
    np.testing.assert_allclose(_keys(name, "AU12_L")[1], 2 * before, atol=1e-6)
    np.testing.assert_allclose(_keys(name, "AU04")[1], params[:, LAYOUT.index["AU04"]], atol=1e-6)
    bpy.ops.ed.undo()
    np.testing.assert_allclose(_keys(name, "AU12_L")[1], before, atol=1e-6)
    assert bpy.context.scene.au2rig_capture.gain_AU12 == 1.0
    assert len(bpy.data.actions) == actions


def test_neutral_at_the_current_frame_zeroes_the_aus_there(capture):
    name, settings, _ = capture
    bpy.context.scene.frame_set(7)
    assert bpy.ops.au2rig.capture_neutral_here() == {'FINISHED'}
    assert settings.neutral == "frame" and settings.neutral_frame == 7
    for channel in LAYOUT.group_names("au"):
        frames, values = _keys(name, channel)
        assert values[list(frames).index(7)] == pytest.approx(0.0, abs=1e-6), channel
    settings.neutral = "auto"  # back to the tracking's own calibration
    assert _keys(name, "AU04")[1].min() > 0.04


def test_head_pose_and_gaze_switch_their_channels(capture):
    name, settings, _ = capture
    settings.head_pose = False
    paths = {fc.data_path for fc in action_fcurves(bpy.data.objects[name].animation_data.action)}
    assert '["pose_yaw"]' not in paths and '["AU12_L"]' in paths and '["gaze_yaw"]' in paths
    settings.head_pose, settings.gaze = True, False
    paths = {fc.data_path for fc in action_fcurves(bpy.data.objects[name].animation_data.action)}
    assert '["pose_yaw"]' in paths and '["gaze_yaw"]' not in paths


def test_smoothing_and_bake_to_bones_re_bake_too(capture):
    name, settings, _ = capture
    raw = _keys(name, "AU12_L")[1]
    settings.smoothing = 1.0
    smooth = _keys(name, "AU12_L")[1]
    assert np.abs(np.diff(smooth)).mean() < 0.8 * np.abs(np.diff(raw)).mean()
    settings.bones = True
    paths = {fc.data_path for fc in action_fcurves(bpy.data.objects[name].animation_data.action)}
    assert 'pose.bones["jaw"].rotation_euler' in paths


def test_a_bad_setting_is_shown_not_raised(capture):
    name, settings, _ = capture
    settings.neutral_frame = 500  # no key there
    settings.neutral = "frame"
    assert "neutral frame 500" in settings.status
    settings.neutral = "auto"
    assert settings.status == ""


def test_the_map_report_and_the_video_reference(capture, short_clip):
    name, settings, _ = capture
    assert bpy.ops.au2rig.capture_check_map() == {'FINISHED'}
    assert "targets found" in settings.map_report
    settings.video, settings.start_frame = str(short_clip), 5
    assert bpy.ops.au2rig.capture_reference() == {'FINISHED'}
    plane = bpy.data.objects["au2rig reference"]
    assert plane.empty_display_type == 'IMAGE' and plane.data.source == 'MOVIE'
    assert plane.image_user.frame_start == 5 and plane.image_user.frame_duration == 8
    assert plane.image_user.use_auto_refresh
    assert plane.location.x > bpy.data.objects[name].location.x  # beside the face, not inside it
    assert bpy.ops.au2rig.capture_reference() == {'FINISHED'}  # again: replaced, not doubled
    assert sum(o.name.startswith("au2rig reference") for o in bpy.data.objects) == 1


def test_track_and_bake_from_the_panel(capture, short_clip):
    pytest.importorskip("mediapipe")
    name, settings, _ = capture
    settings.video, settings.action_name, settings.bones = str(short_clip), "take1", True
    settings.target = None  # the active object (the face) is taken
    assert bpy.ops.au2rig.capture_track() == {'FINISHED'}
    assert settings.target.name == name and "au2rig reference" in bpy.data.objects  # and the video beside it
    face = bpy.data.objects[name]
    assert face.animation_data.action.name == "take1"
    paths = {fc.data_path for fc in action_fcurves(face.animation_data.action)}
    assert '["AU12_L"]' in paths and 'pose.bones["jaw"].rotation_euler' in paths
    settings.gain_AU12 = 0.0  # the new tracking is the one re-baked
    assert np.abs(_keys(name, "AU12_L")[1]).max() == 0.0


def test_a_map_is_saved_edited_and_re_baked(capture, tmp_path):
    import json

    name, settings, params = capture
    path = tmp_path / "face_map.json"
    assert bpy.ops.au2rig.capture_save_map(filepath=str(path)) == {'FINISHED'}
    assert settings.retarget_map == "custom" and settings.map_path == str(path)
    saved = json.loads(path.read_text())
    assert sum("AU12_L" in e.values() for e in saved["entries"]) == 1  # the entry that keys AU12_L
    settings.map_entry, settings.map_channel, settings.map_weight = "AU12_L", "AU12_L", 0.5
    assert bpy.ops.au2rig.capture_set_weight() == {'FINISHED'}
    np.testing.assert_allclose(_keys(name, "AU12_L")[1], 0.5 * params[:, LAYOUT.index["AU12_L"]], atol=1e-6)
    entry = next(e for e in json.loads(path.read_text())["entries"] if "AU12_L" in e.values())
    assert entry["terms"] == {"AU12_L": 0.5}
    settings.map_entry = "no_such_target"
    with pytest.raises(RuntimeError, match="no entry drives 'no_such_target'"):
        bpy.ops.au2rig.capture_set_weight()


class LayoutCheck:
    """What a panel draws into, checked against Blender's own definitions (headless Blender has no
    window to draw in): every property drawn exists on its data, every operator is registered,
    every icon is one of Blender's. Records what was drawn."""

    ICONS = set(bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items.keys())

    def __init__(self, drawn=None):
        self.drawn = [] if drawn is None else drawn

    def _nested(self, *args, **kwargs):
        return LayoutCheck(self.drawn)

    box = row = column = grid_flow = split = _nested

    def _icon(self, icon):
        assert icon in self.ICONS, icon

    def label(self, text="", icon='NONE'):
        self._icon(icon)
        self.drawn.append(("label", text))

    def prop(self, data, name, icon='NONE', **kwargs):
        if name.startswith('["'):
            assert name[2:-2] in data.keys(), name
        else:
            assert name in data.bl_rna.properties, name
        self._icon(icon)
        self.drawn.append(("prop", name))

    def operator(self, idname, text=None, icon='NONE', **kwargs):
        module, name = idname.split(".")
        getattr(getattr(bpy.ops, module), name).get_rna_type()  # raises for an unregistered operator
        self._icon(icon)
        self.drawn.append(("operator", idname))


def _draw(panel):
    from types import SimpleNamespace

    check = LayoutCheck()
    if panel.poll(bpy.context) if hasattr(panel, "poll") else True:
        panel.draw(SimpleNamespace(layout=check), bpy.context)
    return check.drawn


def test_the_panels_draw_in_every_state(capture, tmp_path):
    from au2rig.addon.capture import AU2RIG_PT_capture
    from au2rig.addon.panels import AU2RIG_PT_channels

    name, settings, _ = capture
    tracked = _draw(AU2RIG_PT_capture)  # tracked and baked (the fixture keyed a tracking)
    assert ("operator", "au2rig.capture_track") in tracked and ("prop", "gain_AU12") in tracked
    assert ("operator", "au2rig.rebake") in _draw(AU2RIG_PT_channels)
    settings.neutral_frame, settings.neutral = 500, "frame"  # an error shown in the panel
    assert any(kind == "label" and "neutral frame 500" in text for kind, text in _draw(AU2RIG_PT_capture))
    bpy.ops.au2rig.capture_save_map(filepath=str(tmp_path / "m.json"))  # a custom map: its editor shows
    assert ("operator", "au2rig.capture_set_weight") in _draw(AU2RIG_PT_capture)
    settings.target = None  # no target, no video
    settings.video = ""
    assert ("prop", "target") in _draw(AU2RIG_PT_capture)
    bpy.context.view_layer.objects.active = None
    assert _draw(AU2RIG_PT_channels) == []  # its poll: only for the face rig


REOPEN_CAPTURE = r"""
import json, sys
import bpy
import numpy as np
from au2rig import addon
from au2rig.addon.bake import action_fcurves

bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
addon.register()

def au12():
    face = bpy.data.objects[sys.argv[2]]
    fc = next(f for f in action_fcurves(face.animation_data.action) if f.data_path == '["AU12_L"]')
    return [list(k.co) for k in fc.keyframe_points]

settings = bpy.context.scene.au2rig_capture
out = {"target": settings.target.name, "video": settings.video, "before": au12()}
bpy.ops.ed.undo_push(message="opened")
settings.gain_AU12 = 0.5
bpy.ops.ed.undo_push(message="AU12 gain")
out["gained"] = au12()
bpy.ops.ed.undo()
out["undone"] = au12()
print("RESULT " + json.dumps(out), flush=True)
import os
os._exit(0)
"""


def test_track_save_reopen_and_a_gain_re_bakes_with_undo(capture, short_clip, tmp_path):
    """The panel's workflow across sessions: track a video, save, open the .blend in a fresh
    Blender (the video gone from its mind: the tracking is in the file), turn a gain: the keys
    follow it, and undo brings them back."""
    import json
    import subprocess
    import sys

    pytest.importorskip("mediapipe")
    name, settings, _ = capture
    settings.video = str(short_clip)
    assert bpy.ops.au2rig.capture_track() == {'FINISHED'}
    blend = tmp_path / "capture.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True)
    run = subprocess.run([sys.executable, "-c", REOPEN_CAPTURE, str(blend), name], capture_output=True, text=True,
                         timeout=120)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stdout[-2000:] + run.stderr[-2000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["target"] == name and out["video"] == str(short_clip)
    before, gained, undone = (np.array(out[k]) for k in ("before", "gained", "undone"))
    assert before[:, 1].max() > 0.1  # the clip smiles
    np.testing.assert_allclose(gained[:, 1], 0.5 * before[:, 1], atol=1e-6)
    np.testing.assert_allclose(undone, before, atol=1e-6)


def test_the_panel_saves_an_actor_and_tracks_the_next_take_with_it(capture, short_clip, tmp_path):
    """The command line's --save-actor / --actor in Blender: the first take's profile (neutral and
    range of motion) is written, and the next take is tracked with it."""
    import json

    pytest.importorskip("mediapipe")
    name, settings, _ = capture
    profile = tmp_path / "actor.json"
    settings.video, settings.save_actor = str(short_clip), str(profile)
    assert bpy.ops.au2rig.capture_track() == {'FINISHED'}
    data = json.loads(profile.read_text())
    assert data["format"] == "au2rig actor profile" and len(data["motion_range"]) == len(data["au_channels"])
    settings.actor = str(profile)  # the next take: with the profile, and nothing of its own to save
    with pytest.raises(RuntimeError, match="Save Actor: a take tracked with an actor profile"):
        bpy.ops.au2rig.capture_track()
    settings.save_actor = ""
    assert bpy.ops.au2rig.capture_track() == {'FINISHED'}
    from au2rig.addon.stored import stored_tracking

    kept = stored_tracking(bpy.data.objects[name])
    assert kept.meta["video"]["path"] == str(short_clip)
    assert kept.meta["calibration"]["actor"]["profile"] == str(profile)  # the take was tracked with it
