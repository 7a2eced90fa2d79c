"""The rig built in Blender (real bpy) deforms exactly like ``core.rig.evaluate``."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
torch = pytest.importorskip("torch")

from conftest import make_synthetic_rig, random_params  # noqa: E402 (after pytest.importorskip)

from au2rig.addon import rig_builder  # noqa: E402 (after pytest.importorskip)
from au2rig.core.rig import load_rig  # noqa: E402 (after pytest.importorskip)

N_SAMPLES = 5


def _load(kind):
    if kind == "synthetic":
        return make_synthetic_rig()
    return load_rig()  # the built-in rig must load: a failure here fails the parity check, never skips it


@pytest.fixture(scope="module", params=["synthetic", "bdfm"])
def built(request):
    """(rig, armature object, mesh object), built once per rig in a fresh factory scene."""
    rig = _load(request.param)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    arm_obj, mesh_obj = rig_builder.build_rig(rig)
    return rig, arm_obj, mesh_obj


def _samples(rig):
    return random_params(rig.layout, np.random.default_rng(0), N_SAMPLES)


def _assert_close(got, rig, params, what):
    tol = 1e-4 * rig.height
    want = rig.skin(params)[0]
    want_torch = rig.skin(torch.tensor(params))[0].numpy()
    err, err_torch = np.abs(got - want).max(), np.abs(got - want_torch).max()
    assert err < tol, f"{what}: max error {err:.3g} vs numpy core (tolerance {tol:.3g})"
    assert err_torch < tol, f"{what}: max error {err_torch:.3g} vs torch core (tolerance {tol:.3g})"


def test_drivers_pose_like_core(built):
    rig, arm_obj, mesh_obj = built
    for i, params in enumerate(_samples(rig)):
        rig_builder.set_params(arm_obj, params)
        _assert_close(rig_builder.evaluated_vertices(mesh_obj), rig, params, f"sample {i} via drivers")


def test_direct_pose_like_core(built):
    rig, arm_obj, mesh_obj = built
    try:
        for i, params in enumerate(_samples(rig)):
            rig_builder.apply_pose_direct(arm_obj, rig, params)
            _assert_close(rig_builder.evaluated_vertices(mesh_obj), rig, params, f"sample {i} direct")
    finally:
        rig_builder.set_params(arm_obj, rig.layout.neutral())


def test_lids_that_meet_pose_like_core(built):
    """An eye closed and tightened while looking down: the lids stop where they touch, in
    Blender's drivers as in core."""
    rig, arm_obj, mesh_obj = built
    if not rig.meets:
        pytest.skip("this rig has no lids that meet")
    params = rig.layout.neutral()
    for name, value in dict(AU43_L=1, AU43_R=0.7, AU07=1, AU06=0.8, gaze_pitch=-20).items():
        params[rig.layout.names.index(name)] = value
    try:
        rig_builder.set_params(arm_obj, params)
        _assert_close(rig_builder.evaluated_vertices(mesh_obj), rig, params, "lids that meet")
    finally:
        rig_builder.set_params(arm_obj, rig.layout.neutral())


def test_neutral_is_rest_of_core(built):
    rig, arm_obj, mesh_obj = built
    rig_builder.set_params(arm_obj, rig.layout.neutral())
    _assert_close(rig_builder.evaluated_vertices(mesh_obj), rig, rig.layout.neutral(), "neutral")


def test_drivers_are_simple_expressions(built):
    rig, arm_obj, _ = built
    drivers = rig_builder.all_drivers(arm_obj)
    assert drivers
    for fc in drivers:
        d = fc.driver
        where = f"{fc.id_data.name}.{fc.data_path}[{fc.array_index}] = {d.expression!r}"
        assert d.is_valid, where
        assert d.is_simple_expression, where
        assert len(d.expression) <= rig_builder.MAX_EXPRESSION, where
        # keys or modifiers on a driver F-curve remap its value (driver_add adds Bezier keys
        # (0,0),(1,1) that snap values within 1e-4 of 0 and 1)
        assert len(fc.keyframe_points) == 0 and len(fc.modifiers) == 0, where


def test_only_changing_components_are_driven(built):
    rig, arm_obj, _ = built
    driven = {(fc.data_path, fc.array_index) for fc in arm_obj.animation_data.drivers}
    changing = (rig.basis != 0).any(axis=0)  # (B, 9)
    for b, name in enumerate(rig.bone_names):
        for k in range(9):
            path = f'pose.bones["{name}"].{rig_builder.FIELDS[k // 3]}'
            assert ((path, k % 3) in driven) == changing[b, k], f"{path}[{k % 3}]"


def test_long_sums_are_split_into_partial_sums(built):
    """The synthetic rig's head loc x has a term per AU: too long for one expression."""
    rig, arm_obj, _ = built
    if rig.name != "synthetic":
        pytest.skip("only the synthetic rig is made to need partial sums")
    partial = [fc for fc in rig_builder.all_drivers(arm_obj) if fc.id_data == arm_obj.data]
    assert len(partial) > 1
    head_x = arm_obj.animation_data.drivers.find('pose.bones["head"].location', index=0)
    assert len(head_x.driver.variables) > 1 and all(
        v.targets[0].id == arm_obj.data for v in head_x.driver.variables)


def test_custom_properties_follow_layout(built):
    rig, arm_obj, _ = built
    for ch in rig.layout.channels:
        ui = arm_obj.id_properties_ui(ch.name).as_dict()
        assert (ui["min"], ui["max"], ui["default"]) == pytest.approx((ch.lo, ch.hi, ch.neutral)), ch.name
        assert ui["description"] == ch.description


def test_vertex_groups_hold_rig_weights(built):
    rig, _, mesh_obj = built
    dense = rig.dense_weights
    deforming = [rig.bone_names[b] for b in np.flatnonzero(dense.any(axis=0))]
    assert [vg.name for vg in mesh_obj.vertex_groups] == deforming
    column = {vg.index: rig.bone_index[vg.name] for vg in mesh_obj.vertex_groups}
    got = np.zeros_like(dense)
    for v in mesh_obj.data.vertices:
        for g in v.groups:
            got[v.index, column[g.group]] = g.weight
    assert np.abs(got - dense).max() < 1e-6
    arm = mesh_obj.parent.data
    assert sorted(b.name for b in arm.bones if b.use_deform) == sorted(deforming)


def test_mesh_and_materials(built):
    rig, _, mesh_obj = built
    me = mesh_obj.data
    assert len(me.vertices) == len(rig.vertices) and len(me.polygons) == len(rig.faces)
    assert [m.name for m in me.materials] == [f"BDFM_{r}" for r in rig.regions]
    for m, color in zip(me.materials, rig.region_colors):
        assert tuple(m.diffuse_color)[:3] == pytest.approx(tuple(color), abs=1e-6)
    index = np.zeros(len(me.polygons), np.int32)
    me.polygons.foreach_get("material_index", index)
    np.testing.assert_array_equal(index, rig.face_regions)
    tris = np.zeros(len(me.polygons) * 3, np.int32)
    me.polygons.foreach_get("vertices", tris)
    np.testing.assert_array_equal(tris.reshape(-1, 3), rig.faces)


def test_camera_projects_like_core(built):
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    rig, _, _ = built
    scene = bpy.context.scene
    res = 200
    cam_obj, _ = rig_builder.setup_camera_and_lights(rig, scene, resolution=res)
    try:
        points = rig.vertices[rig.landmark_vertices]
        want = rig.project(points, res)
        got = []
        for p in points:
            ndc = world_to_camera_view(scene, cam_obj, Vector(p.tolist()))  # x right, y up, 0..1
            got.append((ndc.x * res, (1.0 - ndc.y) * res))
        assert np.abs(np.array(got) - want).max() < 1e-3  # pixels
    finally:
        for obj in [cam_obj, *[o for o in scene.objects if o.type == 'LIGHT']]:
            bpy.data.objects.remove(obj)
