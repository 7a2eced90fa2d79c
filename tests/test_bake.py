"""Baking tracked values into Blender (real bpy, headless): bulk keys, the tracking importer."""
import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from au2rig import addon  # noqa: E402 (after pytest.importorskip)
from au2rig.addon import bake  # noqa: E402 (after pytest.importorskip)
from au2rig.addon.animate import apply_tracking  # noqa: E402 (after pytest.importorskip)
from au2rig.addon.bake import Curve, action_fcurves, action_groups, bake_action, is_layered  # noqa: E402 (after pytest.importorskip)
from au2rig.core.animation.keyframes import CLEANUP_TOLERANCE  # noqa: E402 (after pytest.importorskip)
from au2rig.core.animation.tracking_io import Tracking, write_csv  # noqa: E402 (after pytest.importorskip)
from au2rig.core.rig.layout import LAYOUT  # noqa: E402 (after pytest.importorskip)

MOTION = [n for n in LAYOUT.names if LAYOUT.channels[LAYOUT.index[n]].group in ("pose", "au", "gaze")]


@pytest.fixture
def arm(bdfm_arm):
    return bdfm_arm


@pytest.fixture
def registered():
    addon.register()
    yield
    addon.unregister()


def make_tracking(n=40, first=5, no_face=(10, 11, 12), fps=25.0, seed=0) -> Tracking:
    rng = np.random.default_rng(seed)
    p = np.tile(LAYOUT.neutral(), (n, 1))
    p[:, LAYOUT.group_slice("pose")] = rng.uniform(-20, 20, (n, 3))
    p[:, LAYOUT.group_slice("au")] = rng.uniform(0, 1, (n, 26))
    ok = np.ones(n, bool)
    ok[list(no_face)] = False
    p[~ok] = np.nan
    return Tracking(np.arange(first, first + n), np.arange(n) / fps, ok, ok * 0.9, p,
                    np.zeros((n, 68, 2)), fps, {})


def keys(fc):
    """(frames, values) of an fcurve's keys."""
    co = np.empty(2 * len(fc.keyframe_points), np.float32)
    fc.keyframe_points.foreach_get("co", co)
    return co[0::2], co[1::2]


def curves_by_name(action) -> dict:
    return {fc.data_path[2:-2]: fc for fc in action_fcurves(action)}


def test_keys_equal_the_tracked_values_on_the_mapped_frames(arm):
    t = make_tracking()
    action = apply_tracking(arm, t, start_frame=1)
    assert arm.animation_data.action == action and action.name == "BDFM_tracking"
    if is_layered(action):  # Blender 4.4+: slots, layers, strips, channelbags
        assert action.slots[0].identifier == "OBBDFM" and arm.animation_data.action_slot == action.slots[0]
    else:  # 4.2 / 4.3: the action's own fcurves
        assert bpy.app.version < (4, 4, 0)
    fcs = curves_by_name(action)
    assert sorted(fcs) == sorted(MOTION)  # pose, AUs and gaze, one fcurve each; no identity keys
    assert action_groups(action) == ["Pose", "AUs", "Gaze"]
    assert {fcs["pose_yaw"].group.name, fcs["AU12_L"].group.name} == {"Pose", "AUs"}
    ok = t.success
    frames = 1 + (t.frames - t.frames[0])  # the documented map with step 1
    for name, fc in fcs.items():
        co = np.empty(2 * len(fc.keyframe_points), np.float32)
        fc.keyframe_points.foreach_get("co", co)
        x, y = co[0::2], co[1::2]
        assert x.tolist() == frames[ok].tolist(), name  # no key where there is no face
        assert np.allclose(y, t.params[ok, LAYOUT.index[name]], atol=1e-5), name
        assert {k.interpolation for k in fc.keyframe_points} == {'LINEAR'}
    scene = bpy.context.scene
    for row in (0, 7, 13, 39):
        scene.frame_set(int(frames[row]))
        got = np.array([arm[n] for n in MOTION])
        assert np.allclose(got, t.params[row, [LAYOUT.index[n] for n in MOTION]], atol=1e-5), row


def test_start_frame_step_and_scene_fps(arm):
    t = make_tracking(n=20, first=100, no_face=(), fps=50.0)
    scene = bpy.context.scene
    apply_tracking(arm, t, channels="au", start_frame=10, frame_step=2, set_scene_fps=True,
                   set_frame_range=True, action_name="Take 1")
    action = bpy.data.actions["Take 1"]
    fc = curves_by_name(action)["AU26"]
    assert [k.co[0] for k in fc.keyframe_points] == list(range(10, 20))
    assert np.allclose([k.co[1] for k in fc.keyframe_points], t.params[0::2, LAYOUT.index["AU26"]], atol=1e-6)
    assert (scene.render.fps, scene.render.fps_base) == (25, 1.0)
    assert (scene.frame_start, scene.frame_end) == (10, 19)
    assert action_groups(action) == ["AUs"]


def test_every_bake_makes_a_new_action_and_keeps_the_previous_one(arm):
    first = apply_tracking(arm, make_tracking(seed=1), action_name="Take")
    keys = [k.co[1] for k in curves_by_name(first)["AU12_L"].keyframe_points]
    second = apply_tracking(arm, make_tracking(seed=2), action_name="Take")
    assert second.name == "Take.001" and arm.animation_data.action == second
    assert bpy.data.actions["Take"] == first and first.use_fake_user  # kept when the file is saved
    assert [k.co[1] for k in curves_by_name(first)["AU12_L"].keyframe_points] == keys


def test_a_target_missing_channels_is_refused_before_anything_is_written(arm):
    for name in ("AU12_L", "pose_roll"):
        del arm[name]
    with pytest.raises(ValueError, match="no channel properties pose_roll, AU12_L"):
        apply_tracking(arm, make_tracking())
    assert len(bpy.data.actions) == 0
    plain = bpy.data.objects.new("Plain", None)
    with pytest.raises(ValueError, match="pose_yaw, pose_pitch, pose_roll, AU01_L.* and 23 more"):
        apply_tracking(plain, make_tracking())
    assert len(bpy.data.actions) == 0


def test_a_tracking_of_another_layout_is_refused(arm):
    t = make_tracking()
    t.params = t.params[:, :50]
    with pytest.raises(ValueError, match="50 parameters per frame; layout 1.1 has 101"):
        apply_tracking(arm, t)
    assert len(bpy.data.actions) == 0


def test_a_failure_while_baking_leaves_no_action_and_restores_the_previous(arm, monkeypatch):
    before = apply_tracking(arm, make_tracking(seed=1), action_name="Before")
    slot = getattr(arm.animation_data, "action_slot_handle", None)  # None before Blender 4.4
    calls = []

    def broken(fcurve, x, y, interpolation):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("disk full")
        fill(fcurve, x, y, interpolation)

    fill = bake._fill
    monkeypatch.setattr(bake, "_fill", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        apply_tracking(arm, make_tracking(seed=2), action_name="Broken")
    assert [a.name for a in bpy.data.actions] == ["Before"]
    assert arm.animation_data.action == before and getattr(arm.animation_data, "action_slot_handle", None) == slot

    # a failure in the assignment itself (after the fcurves are done) also restores
    monkeypatch.setattr(bake, "_fill", fill)

    def broken_assign(self, anim_data, action):
        anim_data.action = action
        raise RuntimeError("assign failed")

    for api in (bake._Layered, bake._Legacy):  # whichever this Blender uses
        monkeypatch.setattr(api, "assign", broken_assign)
    with pytest.raises(RuntimeError, match="assign failed"):
        apply_tracking(arm, make_tracking(seed=2), action_name="Broken")
    assert [a.name for a in bpy.data.actions] == ["Before"]
    assert arm.animation_data.action == before


def test_bake_action_bulk_api(arm):
    frames = np.array([1.0, 2.0, 3.0, 5.0])
    vals = np.array([0.1, np.nan, 0.3, 0.5])
    action = bake_action(arm, "Direct", frames, [
        Curve('["AU26"]', vals, group="Jaw"),
        Curve('["AU04"]', np.full(4, np.nan)),  # nothing to key: no fcurve
        Curve("location", np.array([0.0, 1.0, 2.0, 3.0]), index=2, group="Object"),
    ], interpolation="CONSTANT")
    # the branch of this Blender ran: legacy Actions on 4.2 / 4.3, layered from 4.4
    assert is_layered(action) == (bpy.app.version >= (4, 4, 0)), bpy.app.version_string
    fcs = {(fc.data_path, fc.array_index): fc for fc in action_fcurves(action)}
    assert set(fcs) == {('["AU26"]', 0), ("location", 2)}
    assert [k.co[0] for k in fcs['["AU26"]', 0].keyframe_points] == [1.0, 3.0, 5.0]
    assert fcs["location", 2].keyframe_points[0].interpolation == 'CONSTANT'
    assert action_groups(action) == ["Jaw", "Object"]
    bpy.context.scene.frame_set(4)
    assert arm["AU26"] == pytest.approx(0.3) and arm.location.z == pytest.approx(2.0)
    for curves, match in (([Curve('["nope"]', vals)], "BDFM has no \\[\"nope\"\\]"),
                          ([Curve("location", vals, index=3)], "no index 3"),
                          ([Curve('["AU26"]', vals[:3])], "shape"),
                          ([Curve('["AU26"]', vals), Curve('["AU26"]', vals)], "two curves")):
        with pytest.raises(ValueError, match=match):
            bake_action(arm, "Bad", frames, curves)
    with pytest.raises(ValueError, match="increase"):
        bake_action(arm, "Bad", frames[::-1], [Curve('["AU26"]', vals)])
    assert [a.name for a in bpy.data.actions] == ["Direct"]


def test_groups_without_the_group_name_parameter(arm, monkeypatch):
    """Blender 4.4 / 4.5: channelbag.fcurves.new has no group_name; groups are made apart."""
    monkeypatch.setattr(bake, "_has_group_param", lambda bag: False)
    action = apply_tracking(arm, make_tracking())
    assert action_groups(action) == ["Pose", "AUs", "Gaze"]
    assert curves_by_name(action)["AU26"].group.name == "AUs"


def test_cleanup_removes_redundant_keys_only(arm):
    n = 300
    t = make_tracking(n=n, no_face=())
    x = np.arange(n)
    au = LAYOUT.group_slice("au")
    t.params[:, au] = 0.0
    t.params[:, LAYOUT.index["AU26"]] = np.clip(np.sin(x / 20.0), 0, None)  # holds 0 half the time
    t.params[:, LAYOUT.index["AU12_L"]] = np.where(x < 100, x / 100, 1.0)  # ramp, then hold
    action = apply_tracking(arm, t, cleanup=True)
    fcs = curves_by_name(action)
    assert len(fcs["AU04"].keyframe_points) == 2  # constant: first and last
    assert len(fcs["AU12_L"].keyframe_points) == 3  # start, corner, end
    assert len(fcs["AU26"].keyframe_points) < n / 2
    assert len(fcs["pose_yaw"].keyframe_points) > 0.9 * n  # noise stays
    for name in ("AU26", "AU12_L", "pose_yaw"):
        got = np.array([fcs[name].evaluate(f) for f in x + 1.0])
        tol = CLEANUP_TOLERANCE[LAYOUT.channels[LAYOUT.index[name]].group]
        assert np.abs(got - t.params[:, LAYOUT.index[name]]).max() <= tol + 1e-5, name


def test_operator_imports_a_csv_headless(arm, registered, tmp_path):
    t = make_tracking(n=30)
    path = write_csv(t, tmp_path / "take.csv")
    result = bpy.ops.au2rig.import_tracking(filepath=str(path), gains="AU12=1.5, AU4=0.8",
                                            start_frame=3, action_name="From CSV")
    assert result == {'FINISHED'}
    action = bpy.data.actions["From CSV"]
    assert arm.animation_data.action == action
    # by hand: the tracked values, AU12 (both sides) times 1.5 and AU04 times 0.8, within 0..1
    want = t.params.copy()
    for name, g in (("AU12_L", 1.5), ("AU12_R", 1.5), ("AU04", 0.8)):
        want[:, LAYOUT.index[name]] = np.clip(want[:, LAYOUT.index[name]] * g, 0.0, 1.0)
    fcs = curves_by_name(action)
    ok = t.success
    for name in ("AU12_L", "AU12_R", "AU04", "AU26", "pose_pitch"):
        y = [k.co[1] for k in fcs[name].keyframe_points]
        assert np.allclose(y, want[ok, LAYOUT.index[name]], atol=1e-5), name
        assert [k.co[0] for k in fcs[name].keyframe_points] == (3 + np.flatnonzero(ok)).tolist()


def test_operator_errors_are_reported_and_leave_no_action(arm, registered, tmp_path):
    missing = tmp_path / "nowhere" / "take.csv"
    with pytest.raises(RuntimeError, match=f"tracking file not found: {missing}"):
        bpy.ops.au2rig.import_tracking(filepath=str(missing))
    path = write_csv(make_tracking(), tmp_path / "take.csv")
    with pytest.raises(RuntimeError, match="unknown channel 'AU99'"):
        bpy.ops.au2rig.import_tracking(filepath=str(path), gains="AU99=2")
    bpy.context.view_layer.objects.active = next(o for o in bpy.data.objects if o.type == 'MESH')
    with pytest.raises(RuntimeError, match="is not an au2rig face rig"):
        bpy.ops.au2rig.import_tracking(filepath=str(path))
    assert len(bpy.data.actions) == 0
    # an explicit target works whatever is active
    assert bpy.ops.au2rig.import_tracking(filepath=str(path), target=arm.name) == {'FINISHED'}


REOPEN = r"""
import json, sys
import bpy
import numpy as np
from au2rig import addon
from au2rig.addon import stored
from au2rig.addon.bake import action_fcurves

bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
addon.register()
face = bpy.data.objects[sys.argv[2]]
kept = stored.stored_tracking(face)
out = {"params": np.nan_to_num(kept.params, nan=-99.0).tolist(), "frames": kept.frames.tolist(),
       "success": kept.success.tolist(), "fps": kept.fps}
out["result"] = sorted(bpy.ops.au2rig.rebake(target=face.name, gains="AU12_L=2"))
def au12():
    face = bpy.data.objects[sys.argv[2]]  # after an undo, the objects are new Python objects
    fc = next(f for f in action_fcurves(face.animation_data.action) if f.data_path == '["AU12_L"]')
    return [list(k.co) for k in fc.keyframe_points]
out["keys"] = au12()
# the Face Capture panel on the reopened file: a gain slider re-bakes at once, undo restores
settings = bpy.context.scene.au2rig_capture
settings.target = face
bpy.ops.ed.undo_push(message="re-baked")
settings.gain_AU12 = 2.5
bpy.ops.ed.undo_push(message="AU12 gain")
out["gained"] = au12()
bpy.ops.ed.undo()
out["undone"] = au12()
face = bpy.data.objects[sys.argv[2]]
plain = bpy.data.objects.new("Plain", None)
bpy.context.collection.objects.link(plain)
try:
    bpy.ops.au2rig.rebake(target="Plain")
except RuntimeError as e:
    out["plain"] = str(e)
print("RESULT " + json.dumps(out), flush=True)
import os
os._exit(0)  # bpy 4.2.0 can crash while the interpreter shuts down; the result is out
"""


def test_the_tracking_is_kept_in_the_blend_and_rebakes_after_reopening(arm, registered, tmp_path):
    """Key a tracking file, save, delete the file; a fresh Blender reopens the .blend: it still
    holds the tracking, and re-baking with a gain keys the gained values (the other options as
    they were); the Face Capture panel's gain slider re-bakes at once and undo restores the keys."""
    import json
    import subprocess
    import sys

    t = make_tracking()
    t.params[:, LAYOUT.index["AU12_L"]] *= 0.4  # room for a gain of 2 below 1
    path = write_csv(t, tmp_path / "t.csv")
    assert bpy.ops.au2rig.import_tracking(filepath=str(path), target=arm.name, start_frame=3) == {'FINISHED'}
    before = keys(curves_by_name(arm.animation_data.action)["AU12_L"])
    assert before[0][0] == 3
    blend = tmp_path / "face.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True)
    path.unlink()
    run = subprocess.run([sys.executable, "-c", REOPEN, str(blend), arm.name], capture_output=True, text=True,
                         timeout=120)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stdout[-2000:] + run.stderr[-2000:]
    out = json.loads(lines[-1][len("RESULT "):])
    np.testing.assert_allclose(out["params"], np.nan_to_num(t.params, nan=-99.0), atol=1e-12)
    assert out["frames"] == t.frames.tolist() and out["success"] == t.success.tolist()
    assert out["fps"] == pytest.approx(t.fps)  # the CSV's rate, estimated from its timestamps
    assert out["result"] == ["FINISHED"]
    after = np.array(out["keys"])
    np.testing.assert_array_equal(after[:, 0], before[0])  # the stored start frame kept
    np.testing.assert_allclose(after[:, 1], 2 * before[1], atol=1e-6)
    # then the panel's gain (2.5, its own gains replacing the operator's) and an undo
    np.testing.assert_allclose(np.array(out["gained"])[:, 1], 2.5 * before[1], atol=1e-6)
    np.testing.assert_allclose(np.array(out["undone"]), after, atol=1e-6)
    assert "Plain has no stored tracking" in out["plain"]


def test_rebake_with_the_neutral_at_a_frame_zeroes_the_aus_there(arm, registered, tmp_path):
    t = make_tracking()
    path = write_csv(t, tmp_path / "t.csv")
    assert bpy.ops.au2rig.import_tracking(filepath=str(path), target=arm.name, start_frame=1) == {'FINISHED'}
    assert bpy.ops.au2rig.rebake(target=arm.name, neutral_frame=4) == {'FINISHED'}  # row 3, with a face
    curves = curves_by_name(arm.animation_data.action)
    for name in LAYOUT.group_names("au"):
        frames, values = keys(curves[name])
        assert values[list(frames).index(4)] == pytest.approx(0.0, abs=1e-6), name
    assert max(keys(curves["AU12_L"])[1]) > 0.1  # elsewhere the face still moves
    with pytest.raises(RuntimeError, match="neutral frame 11: the tracking has no face there"):
        bpy.ops.au2rig.rebake(target=arm.name, neutral_frame=11)  # row 10: no face
