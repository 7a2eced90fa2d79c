"""Retarget maps: format, evaluation, auto-match (pure) and keying ARKit / Rigify rigs (real bpy)."""
import json

import numpy as np
import pytest

from au2rig.core.animation.retarget import (
    BUILTIN,
    MapError,
    auto_match,
    evaluate_map,
    load_builtin,
    load_map,
    normalize_name,
    parse_map,
    save_map,
)
from au2rig.core.animation.tracking_io import Tracking
from au2rig.core.rig.layout import LAYOUT

bpy = pytest.importorskip("bpy")

from au2rig.addon.animate import apply_map, detect_map  # noqa: E402 (after pytest.importorskip)
from au2rig.addon.bake import action_fcurves, action_groups  # noqa: E402 (after pytest.importorskip)

ARKIT = ("eyeBlinkLeft eyeBlinkRight eyeLookDownLeft eyeLookDownRight eyeLookInLeft eyeLookInRight "
         "eyeLookOutLeft eyeLookOutRight eyeLookUpLeft eyeLookUpRight eyeSquintLeft eyeSquintRight "
         "eyeWideLeft eyeWideRight jawForward jawLeft jawRight jawOpen mouthClose mouthFunnel "
         "mouthPucker mouthLeft mouthRight mouthSmileLeft mouthSmileRight mouthFrownLeft "
         "mouthFrownRight mouthDimpleLeft mouthDimpleRight mouthStretchLeft mouthStretchRight "
         "mouthRollLower mouthRollUpper mouthShrugLower mouthShrugUpper mouthPressLeft "
         "mouthPressRight mouthLowerDownLeft mouthLowerDownRight mouthUpperUpLeft mouthUpperUpRight "
         "browDownLeft browDownRight browInnerUp browOuterUpLeft browOuterUpRight cheekPuff "
         "cheekSquintLeft cheekSquintRight noseSneerLeft noseSneerRight tongueOut").split()


def tracking(rows: list[dict], seed=0) -> Tracking:
    n = len(rows)
    p = np.tile(LAYOUT.neutral(), (n, 1))
    for i, chans in enumerate(rows):
        for ch, v in chans.items():
            p[i, LAYOUT.index[ch]] = v
    return Tracking(np.arange(n), np.arange(n) / 30.0, np.ones(n, bool), np.ones(n), p,
                    np.zeros((n, 68, 2)), 30.0, {})


def minimal(**kw):
    d = {"format": "au2rig-retarget", "version": 1, "name": "t", "kind": "shape_keys",
         "entries": [{"shape_key": "smile", "terms": {"AU12_L": 1.0}}]}
    d.update(kw)
    return d


# --- pure ------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, match", [
    ({"kind": "meshes"}, "m.json: field 'kind'"),
    ({"entries": []}, "m.json: field 'entries'"),
    ({"entries": [{"shape_key": "smile", "terms": {"AU12": 1.0}}]},
     r"m.json: entries\[0\] \(smile\): terms: unknown channel 'AU12'"),
    ({"entries": [{"shape_key": "a", "terms": {}}, {"shape_key": "b", "terms": {"AU04": "x"}}]},
     r"m.json: entries\[1\] \(b\): terms: AU04: expected a finite number"),
    ({"entries": [{"bone": "jaw", "terms": {}}]}, r"entries\[0\]: field 'shape_key'"),
    ({"kind": "bones", "entries": [{"bone": "jaw", "property": "rotation", "terms": {}}]},
     r"entries\[0\] \(jaw\): field 'property'"),
    ({"kind": "bones", "entries": [{"bone": "jaw", "property": "location", "index": 3, "terms": {}}]},
     r"entries\[0\] \(jaw\): field 'index'"),
    ({"entries": [{"shape_key": "a", "terms": {}, "clamp": [1, 0]}]}, r"entries\[0\] \(a\): clamp"),
    ({"entries": [{"shape_key": "a", "terms": {}}, {"shape_key": "a", "terms": {}}]},
     r"entries\[1\] \(a\): a is already driven by entries\[0\]"),
    ({"entries": [{"shape_key": "a", "terms": {}, "gain": 2}]}, r"entries\[0\] \(a\): unknown field 'gain'"),
])
def test_validation_errors_name_the_file_and_the_entry(tmp_path, change, match):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(minimal(**change)))
    with pytest.raises(MapError, match=match):
        load_map(path)


def test_builtin_maps_load_and_round_trip(tmp_path):
    for name in BUILTIN:
        m = load_builtin(name)
        again = load_map(save_map(m, tmp_path / f"{name}.json"))
        assert again.entries == m.entries and again.unmapped == m.unmapped and again.kind == m.kind
    arkit = load_builtin("arkit52")
    assert sorted(arkit.targets + list(arkit.unmapped)) == sorted(ARKIT)  # all 52, each once


def test_evaluate_map_linear_clamped_nan_rows():
    m = parse_map(minimal(entries=[
        {"shape_key": "browInnerUp", "terms": {"AU01_L": 0.5, "AU01_R": 0.5}, "clamp": [0, 1]},
        {"shape_key": "mouthClose", "terms": {"AU26": 1.0, "AU25": -1.0}, "clamp": [0, 1]},
        {"shape_key": "off", "terms": {"pose_yaw": 0.1}, "offset": 2.0}]))
    p = np.tile(LAYOUT.neutral(), (3, 1))
    p[0, [LAYOUT.index["AU01_L"], LAYOUT.index["AU26"]]] = 1.0
    p[1, LAYOUT.index["AU25"]] = 1.0
    p[1, LAYOUT.index["pose_yaw"]] = -10
    p[2] = np.nan
    v = evaluate_map(m, p)
    assert np.allclose(v["browInnerUp"][:2], [0.5, 0.0]) and np.allclose(v["mouthClose"][:2], [1.0, 0.0])
    assert np.allclose(v["off"][:2], [2.0, 1.0]) and all(np.isnan(x[2]) for x in v.values())


def test_normalize_and_auto_match_renamed_bones():
    assert normalize_name("DEF-lid.T.L.002") == normalize_name("Lid_T_002_left") == ("lid t 2", "L")
    assert normalize_name("eyeBlinkLeft") == normalize_name("EyeBlink_L") == ("eye blink", "L")
    m = load_builtin("rigify_face")
    renamed = {t: "CTRL_" + t.replace(".", "_").upper() for t in m.targets}
    rig = list(renamed.values()) + ["DEF-" + t for t in m.targets] + ["spine_fk"]
    matched, report = auto_match(m, rig)
    assert report.mapped == renamed and not report.missing
    assert {e.target for e in matched.entries} == set(renamed.values())
    assert "spine_fk" in report.unmapped_targets and "matched by name" in report.text()
    _, report = auto_match(m, [t for t in m.targets if t != "lips.L"])
    assert report.missing == ["lips.L"] and "missing on the rig: lips.L" in report.text()


# --- Blender -----------------------------------------------------------------------------------

@pytest.fixture
def arkit_mesh():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    mesh = bpy.data.meshes.new("face")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    obj = bpy.data.objects.new("Face", mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj.shape_key_add(name="Basis")
    for name in ARKIT:
        obj.shape_key_add(name=name)
    return obj


def test_arkit_shape_keys_receive_the_map_values(arkit_mesh):
    t = tracking([{"AU12_L": 1.0, "AU43_R": 0.5, "AU26": 0.8, "gaze_yaw": 15.0},
                  {"AU01_L": 1.0, "AU25": 0.4, "AU26": 0.8, "gaze_pitch": -12.5}, {}])
    assert detect_map(arkit_mesh)[0] == "arkit52"
    action, report = apply_map(arkit_mesh, t, load_builtin("arkit52"), start_frame=1)
    keys = arkit_mesh.data.shape_keys
    assert keys.animation_data.action == action and action_groups(action) == ["Shape keys"]
    curves = {fc.data_path: fc for fc in action_fcurves(action)}
    assert len(curves) == 45 and 'key_blocks["eyeLookUpLeft"].value' in curves
    # gaze: 1.0 at 30 degrees across, 25 up or down; looking to the subject's left turns the left
    # eye out and the right eye in
    for frame, want in ((1, {"mouthSmileLeft": 1.0, "mouthSmileRight": 0.0, "eyeBlinkRight": 0.5,
                             "eyeBlinkLeft": 0.0, "jawOpen": 0.8, "mouthClose": 0.8, "eyeLookOutLeft": 0.5,
                             "eyeLookInRight": 0.5, "eyeLookInLeft": 0.0, "eyeLookOutRight": 0.0}),
                        (2, {"browInnerUp": 0.5, "mouthLowerDownLeft": 0.2, "mouthClose": 0.4,
                             "eyeLookDownLeft": 0.5, "eyeLookDownRight": 0.5, "eyeLookUpLeft": 0.0}),
                        (3, {"jawOpen": 0.0, "browInnerUp": 0.0, "eyeLookOutLeft": 0.0})):
        bpy.context.scene.frame_set(frame)
        for name, v in want.items():
            assert keys.key_blocks[name].value == pytest.approx(v, abs=1e-6), (frame, name)
    assert len(report.unmapped_targets) == 0 and report.complete


def test_a_live_link_face_capture_keys_an_arkit_mesh(arkit_mesh, tmp_path):
    """A capture in the app's layout, written by hand, read through the ARKit map in the other
    direction and keyed back through it: the mesh's shape keys take the file's scores."""
    from au2rig.core.animation import livelink
    from au2rig.core.animation.tracking_io import read_tracking

    rows = [{"JawOpen": 0.6, "MouthLowerDownLeft": 0.3, "MouthLowerDownRight": 0.3, "MouthSmileLeft": 0.8,
             "EyeBlinkRight": 1.0, "LeftEyeYaw": 0.2618, "RightEyeYaw": 0.2618},
            {"BrowInnerUp": 0.5, "EyeLookDownLeft": 0.0}]
    lines = [",".join(livelink.HEADER)] + [",".join([f"00:00:10:{i:02d}.000", "61"] + [str(r.get(n, 0.0)) for n in
                                                    livelink.HEADER[2:]]) for i, r in enumerate(rows)]
    (tmp_path / "phone.csv").write_text("\n".join(lines) + "\n")
    action, report = apply_map(arkit_mesh, read_tracking(tmp_path / "phone.csv"), load_builtin("arkit52"),
                               start_frame=1)
    keys = arkit_mesh.data.shape_keys
    bpy.context.scene.frame_set(1)
    for name, v in {"jawOpen": 0.6, "mouthLowerDownLeft": 0.3, "mouthSmileLeft": 0.8, "mouthSmileRight": 0.0,
                    "eyeBlinkRight": 1.0, "eyeBlinkLeft": 0.0, "mouthClose": 0.0,
                    "eyeLookOutLeft": 0.5, "eyeLookInRight": 0.5}.items():  # 15 degrees of gaze: half of 30
        assert keys.key_blocks[name].value == pytest.approx(v, abs=1e-4), name
    bpy.context.scene.frame_set(2)
    assert keys.key_blocks["browInnerUp"].value == pytest.approx(0.5, abs=1e-6)
    assert keys.key_blocks["jawOpen"].value == pytest.approx(0.0, abs=1e-6)


def test_missing_shape_keys_are_named_and_leave_no_action(arkit_mesh):
    for name in ("mouthSmileLeft", "jawOpen"):
        arkit_mesh.shape_key_remove(arkit_mesh.data.shape_keys.key_blocks[name])
    n = len(bpy.data.actions)
    with pytest.raises(ValueError, match="Face has no shape keys mouthSmileLeft, jawOpen"):
        apply_map(arkit_mesh, tracking([{"AU12_L": 1}]), load_builtin("arkit52"))
    assert len(bpy.data.actions) == n and arkit_mesh.data.shape_keys.animation_data is None
    action, report = apply_map(arkit_mesh, tracking([{"AU12_L": 1}]), load_builtin("arkit52"), partial=True)
    assert report.skipped == ["mouthSmileLeft", "jawOpen"] and "skipped: mouthSmileLeft, jawOpen" in report.text()
    assert len(action_fcurves(action)) == 43


@pytest.fixture(scope="module")
def rigify_blend(tmp_path_factory):
    """Blender's human meta-rig generated by Rigify (~10 s), saved once for the module."""
    from au2rig.addon.tools.retarget_maps import generate_rigify_rig

    bpy.ops.wm.read_factory_settings(use_empty=True)
    generate_rigify_rig()
    path = tmp_path_factory.mktemp("rigify") / "rig.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


@pytest.fixture
def rigify_rig(rigify_blend):
    bpy.ops.wm.open_mainfile(filepath=str(rigify_blend))
    return bpy.data.objects["rig"]


def test_rigify_face_rig_receives_keys_on_the_mapped_bones(rigify_rig):
    rig = rigify_rig
    rmap = load_builtin("rigify_face")
    assert detect_map(rig)[0] == "rigify_face"
    t = tracking([{}, {"AU26": 1.0, "AU12_L": 1.0, "pose_yaw": 20.0, "gaze_yaw": 10.0}, {"AU26": 0.5}])
    action, report = apply_map(rig, t, rmap, start_frame=1)
    assert report.complete and set(report.mapped) == set(rmap.targets)
    paths = {(fc.data_path, fc.array_index) for fc in action_fcurves(action)}
    # Rigify's face controls are quaternion bones: the map's Euler rotations arrive as quaternions
    assert rig.pose.bones["jaw_master"].rotation_mode == 'QUATERNION'
    assert {('pose.bones["jaw_master"].rotation_quaternion', i) for i in range(4)} <= paths
    assert not any("rotation_euler" in p for p, _ in paths)
    assert "jaw_master" in action_groups(action) and "lips.L" in action_groups(action)
    scene = bpy.context.scene
    jaw, lips, head = (rig.pose.bones[n] for n in ("jaw_master", "lips.L", "head"))
    scene.frame_set(1)
    assert jaw.rotation_quaternion.angle == pytest.approx(0, abs=1e-6)
    assert lips.location.length == pytest.approx(0, abs=1e-9)
    scene.frame_set(2)
    assert np.degrees(jaw.rotation_quaternion.angle) == pytest.approx(20.0, abs=0.1)
    assert lips.location.length > 0.01 and np.degrees(head.rotation_quaternion.angle) == pytest.approx(12, abs=0.1)
    scene.frame_set(3)
    assert np.degrees(jaw.rotation_quaternion.angle) == pytest.approx(10.0, abs=0.1)
    # the jaw opens: the chin's deform bone goes down in the world; the eye target moves toward the
    # subject's left (+X) by its distance x the angle
    scene.frame_set(1)
    chin0 = (rig.matrix_world @ rig.pose.bones["DEF-jaw"].tail).copy()
    eyes0 = rig.pose.bones["eyes"].location.copy()
    scene.frame_set(2)
    assert (rig.matrix_world @ rig.pose.bones["DEF-jaw"].tail).z < chin0.z - 0.01
    bones = rig.data.bones
    distance = abs(bones["eye.L"].head_local.y - bones["ORG-eye.L"].head_local.y)
    moved = bones["eyes"].matrix_local.to_3x3() @ (rig.pose.bones["eyes"].location - eyes0)  # in the rest's axes
    assert moved.x == pytest.approx(distance * np.radians(10.0), rel=0.02)
    assert abs(moved.y) < 1e-6 and abs(moved.z) < 1e-6


def test_rigify_missing_and_renamed_bones(rigify_rig):
    rig = rigify_rig
    for pb, new in ((rig.pose.bones["lips.L"], "Lips_L"), (rig.pose.bones["jaw_master"], "JawMaster")):
        pb.name = new
    action, report = apply_map(rig, tracking([{"AU26": 1.0}]), load_builtin("rigify_face"))
    assert report.renamed == {"lips.L": "Lips_L", "jaw_master": "JawMaster"}
    assert any('pose.bones["JawMaster"]' in fc.data_path for fc in action_fcurves(action))
    n = len(bpy.data.actions)
    with pytest.raises(ValueError, match="rig has no bones jaw_master, lips.L"):
        apply_map(rig, tracking([{"AU26": 1.0}]), load_builtin("rigify_face"), match=False)
    assert len(bpy.data.actions) == n and rig.animation_data.action == action


def test_operator_auto_detects_arkit_and_reads_a_custom_map(arkit_mesh, tmp_path):
    from au2rig import addon
    from au2rig.core.animation.tracking_io import write_csv

    csv = write_csv(tracking([{"AU12_L": 1.0}, {"AU12_L": 0.5}]), tmp_path / "t.csv")
    addon.register()
    try:
        assert bpy.ops.au2rig.import_tracking(filepath=str(csv), target="Face") == {'FINISHED'}
        bpy.context.scene.frame_set(2)
        assert arkit_mesh.data.shape_keys.key_blocks["mouthSmileLeft"].value == pytest.approx(0.5)
        custom = json.loads(json.dumps(minimal(entries=[{"shape_key": "jawOpen", "terms": {"AU12_L": 0.2}}])))
        (tmp_path / "m.json").write_text(json.dumps(custom))
        assert bpy.ops.au2rig.import_tracking(filepath=str(csv), target="Face", retarget_map="custom",
                                              map_path=str(tmp_path / "m.json")) == {'FINISHED'}
        bpy.context.scene.frame_set(1)
        assert arkit_mesh.data.shape_keys.key_blocks["jawOpen"].value == pytest.approx(0.2)
        (tmp_path / "bad.json").write_text(json.dumps(minimal(kind="x")))
        with pytest.raises(RuntimeError, match="bad.json: field 'kind'"):
            bpy.ops.au2rig.import_tracking(filepath=str(csv), target="Face", retarget_map="custom",
                                           map_path=str(tmp_path / "bad.json"))
    finally:
        addon.unregister()
