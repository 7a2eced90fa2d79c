"""Build a ``core`` rig in Blender: armature, skinned mesh, and drivers from custom properties.

The armature object carries one custom property per parameter channel (pose in degrees,
AUs, identity sliders, brow styles). Every pose-bone location / rotation / scale component
that the rig's tables can change is driven by a *simple expression* (no Python auto-run
needed) computing ``base + sum(coefficient * offset)``, exactly as ``core.rig.evaluate`` does; all
other components are set to their constant value. Animating the custom properties animates
the face.

Blender stores a driver expression in 255 characters. A component with more terms than fit
is split into partial sums held in custom properties of the armature data (``_sum...``),
each driven by its own expression, and the component's driver adds them up.
"""
from __future__ import annotations

import math
import string

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ._core import LAYOUT, ROT_X

FIELDS = ("location", "rotation_euler", "scale")  # the 9 local values: loc, rot (deg), scale
MAX_EXPRESSION = 255  # Blender keeps driver expressions in char[256]
LINEAR, AT0, AT1 = "{v}", "max(0,1-2*{v})", "max(0,2*{v}-1)"  # coefficient of a channel value v


# --- building ---------------------------------------------------------------------------
def build_rig(rig, name: str = "BDFM", collection=None, drivers: bool = True):
    """Create the rig's armature and mesh objects in ``collection`` (default: the scene's).

    Returns ``(armature_obj, mesh_obj)``. With ``drivers=False`` the pose is only set by
    :func:`apply_pose_direct`.
    """
    collection = collection or bpy.context.scene.collection
    arm_obj = _build_armature(rig, name, collection)
    mesh_obj = build_mesh(rig, name, collection)
    mesh_obj.parent = arm_obj
    mod = mesh_obj.modifiers.new("Armature", 'ARMATURE')
    mod.object = arm_obj
    mod.use_vertex_groups = True
    mod.use_bone_envelopes = False
    mod.use_deform_preserve_volume = False
    _add_parameter_properties(arm_obj, rig.layout)
    _set_constants_and_drivers(arm_obj, rig, drivers)
    bpy.context.view_layer.update()
    return arm_obj, mesh_obj


def _build_armature(rig, name, collection):
    arm = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, arm)
    collection.objects.link(obj)
    view_layer = bpy.context.view_layer
    previous = view_layer.objects.active
    view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode='EDIT')
    edit_bones = []
    for i, bone_name in enumerate(rig.bone_names):
        eb = arm.edit_bones.new(bone_name)
        head = Vector(rig.bone_heads[i].tolist())
        eb.head = head
        eb.tail = head + Vector((0.0, float(rig.bone_lengths[i]), 0.0))
        eb.roll = 0.0
        if rig.bone_parents[i] >= 0:
            eb.parent = edit_bones[rig.bone_parents[i]]
        eb.use_connect = False
        edit_bones.append(eb)
    bpy.ops.object.mode_set(mode='OBJECT')
    view_layer.objects.active = previous
    deforming = rig.dense_weights.any(axis=0)
    for i, bone_name in enumerate(rig.bone_names):
        arm.bones[bone_name].use_deform = bool(deforming[i])
        obj.pose.bones[bone_name].rotation_mode = rig.bone_rotation_modes[i]
    return obj


def build_mesh(rig, name, collection, vertex_groups: bool = True):
    """The rig's mesh object at rest (region materials, smooth shading), no armature.

    ``vertex_groups=False`` skips the skin weights: for callers that write deformed
    positions themselves (the pairs renderer).
    """
    me = bpy.data.meshes.new(name)
    faces = np.asarray(rig.faces, np.int32)
    me.vertices.add(len(rig.vertices))
    me.loops.add(faces.size)
    me.polygons.add(len(faces))
    me.vertices.foreach_set("co", np.asarray(rig.vertices, np.float32).ravel())
    me.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    me.polygons.foreach_set("vertices", faces.ravel())
    me.update(calc_edges=True)
    for region, color in zip(rig.regions, rig.region_colors):
        me.materials.append(_region_material(f"{name}_{region}", color))
    me.polygons.foreach_set("material_index", np.asarray(rig.face_regions, np.int32))
    me.shade_smooth()
    obj = bpy.data.objects.new(f"{name}_mesh", me)
    collection.objects.link(obj)
    if vertex_groups:
        _add_vertex_groups(obj, rig)
    return obj


def _region_material(name, color):
    mat = bpy.data.materials.new(name)
    rgba = (*map(float, color), 1.0)
    mat.diffuse_color = rgba  # viewport / Workbench color
    bsdf = mat.node_tree.nodes.get("Principled BSDF") if mat.node_tree else None
    if bsdf is not None:
        bsdf.inputs["Base Color"].default_value = rgba
    return mat


def _add_vertex_groups(obj, rig):
    """One vertex group per deforming bone, weights as in ``rig.dense_weights``."""
    weights = rig.dense_weights
    for b in np.flatnonzero(weights.any(axis=0)):
        vg = obj.vertex_groups.new(name=rig.bone_names[b])
        verts = np.flatnonzero(weights[:, b])
        values, inverse = np.unique(weights[verts, b], return_inverse=True)
        for k, w in enumerate(values):
            vg.add(verts[inverse == k].tolist(), float(w), 'REPLACE')


def _add_parameter_properties(arm_obj, layout):
    for ch in layout.channels:
        arm_obj[ch.name] = float(ch.neutral)
        arm_obj.id_properties_ui(ch.name).update(
            min=float(ch.lo), max=float(ch.hi), soft_min=float(ch.lo), soft_max=float(ch.hi),
            default=float(ch.neutral), description=ch.description)
        arm_obj.property_overridable_library_set(f'["{ch.name}"]', True)


# --- drivers -------------------------------------------------------------------------------
def component_terms(rig, bone: int, k: int):
    """``(constant, [(channel, coefficient, form)])`` for local value ``k`` (0..8) of a bone.

    The value is ``constant + sum(coefficient * form(channel value))``; ``form`` is
    :data:`LINEAR`, :data:`AT0` or :data:`AT1`. An identity slider whose table at 0 is the
    negative of its table at 1 contributes ``t1 * (2v - 1)``: folded into a linear term.
    """
    col = dict(zip(rig.coefficient_names, rig.basis[:, bone, k].tolist()))
    constant = float(rig.base_locals[bone, k])
    terms = []
    for ch in rig.layout.channels:
        if ch.group != "identity":
            if col[ch.name]:
                terms.append((ch.name, col[ch.name], LINEAR))
            continue
        at0, at1 = col[f"{ch.name}@0"], col[f"{ch.name}@1"]
        if at0 == -at1:
            if at1:
                constant -= at1
                terms.append((ch.name, 2.0 * at1, LINEAR))
        else:
            terms += [(ch.name, c, form) for c, form in ((at0, AT0), (at1, AT1)) if c]
    return constant, terms


def _number(x: float) -> str:
    """Shortest text that reads back as the same float32."""
    x = np.float32(x)
    return min(np.format_float_positional(x, unique=True, trim="-"),
               np.format_float_scientific(x, unique=True, trim="-"), key=len)


def _var_name(i: int) -> str:
    return string.ascii_lowercase[i] if i < 26 else f"v{i}"


def _sum_expression(constant, terms):
    """``(expression, {channel: variable name})`` of ``constant + sum(terms)``."""
    names = {ch: _var_name(i) for i, ch in enumerate(dict.fromkeys(ch for ch, _, _ in terms))}
    parts = [_number(constant)] if constant or not terms else []
    parts += [f"{_number(c)}*{form.format(v=names[ch])}" for ch, c, form in terms]
    return "+".join(parts).replace("+-", "-"), names


def _add_driver(owner, data_path, index, expression, variables):
    """Scripted driver on ``owner.data_path[index]``; variables: [(name, id, prop path)]."""
    fc = owner.driver_add(data_path, index) if index >= 0 else owner.driver_add(data_path)
    # driver_add may give the F-curve keys (0,0),(1,1) or a Generator modifier: a 1:1 map only
    # approximately (Bezier keys snap values within 1e-4 of 0 and 1). Without them it is exact.
    while fc.keyframe_points:
        fc.keyframe_points.remove(fc.keyframe_points[0], fast=True)
    for mod in list(fc.modifiers):
        fc.modifiers.remove(mod)
    drv = fc.driver
    drv.type = 'SCRIPTED'
    for var_name, id_, path in variables:
        var = drv.variables.new()
        var.name = var_name
        var.type = 'SINGLE_PROP'
        var.targets[0].id_type = id_.id_type
        var.targets[0].id = id_
        var.targets[0].data_path = path
    drv.expression = expression
    if drv.expression != expression:
        raise ValueError(f"driver expression too long for Blender: {expression!r}")
    return drv


def _drive_component(arm_obj, pbone, field, axis, constant, terms, sum_name):
    """Drive ``pbone.field[axis]`` (or, with ``pbone`` None, the armature data's property
    ``field``) with ``constant + sum(terms)``."""
    if pbone is None:
        pbone, axis = arm_obj.data, -1
        arm_obj.data[field] = 0.0
        field = f'["{field}"]'
    wrap = (lambda e: f"radians({e})") if field == "rotation_euler" else (lambda e: e)
    expr, names = _sum_expression(constant, terms)
    if len(wrap(expr)) <= MAX_EXPRESSION:
        _add_driver(pbone, field, axis, wrap(expr), [(v, arm_obj, f'["{ch}"]') for ch, v in names.items()])
        return
    # too long: partial sums on the armature data, added up by the component's driver
    chunks = [[]]
    for term in terms:
        if chunks[-1] and len(_sum_expression(0.0, chunks[-1] + [term])[0]) > MAX_EXPRESSION:
            chunks.append([])
        chunks[-1].append(term)
    arm, sums = arm_obj.data, []
    for j, chunk in enumerate(chunks):
        prop = f"{sum_name}_{j}"
        arm[prop] = 0.0
        chunk_expr, chunk_names = _sum_expression(0.0, chunk)
        _add_driver(arm, f'["{prop}"]', -1, chunk_expr,
                    [(v, arm_obj, f'["{ch}"]') for ch, v in chunk_names.items()])
        sums.append((_var_name(j), arm, f'["{prop}"]'))
    total = "+".join([_number(constant)] + [name for name, _, _ in sums])
    _add_driver(pbone, field, axis, wrap(total), sums)


def meet_expressions(closed: float) -> tuple[str, str]:
    """Simple expressions (degrees) of the upper and the lower lid's turn from their tables' sums
    ``u`` and ``l``, stopped where they meet, as :class:`core.rig.evaluate.Meet` does."""
    c = _number(closed)
    share = f"max(0,u-l-{c})/(max(0,u)+max(0,-l)+1e-12)"
    return f"u-{share}*max(0,u)", f"l+{share}*max(0,-l)"


def _set_constants_and_drivers(arm_obj, rig, drivers: bool):
    met = {}  # (bone, component) -> (meet, 0 for its upper lid / 1 for its lower)
    for m in rig.meets:
        met[(m.upper, ROT_X)], met[(m.lower, ROT_X)] = (m, 0), (m, 1)
    for b, bone_name in enumerate(rig.bone_names):
        pbone = arm_obj.pose.bones[bone_name]
        for k in range(9):
            field, axis = FIELDS[k // 3], k % 3
            constant, terms = component_terms(rig, b, k)
            if (not terms and (b, k) not in met) or not drivers:
                value = float(rig.base_locals[b, k])
                getattr(pbone, field)[axis] = math.radians(value) if k // 3 == 1 else value
            elif (b, k) in met:  # the tables' sum on the armature data, then where the lids meet
                _drive_component(arm_obj, None, f"_lin{b}_{k}", -1, constant, terms, f"_sum{b}_{k}")
            else:
                _drive_component(arm_obj, pbone, field, axis, constant, terms, f"_sum{b}_{k}")
    arm = arm_obj.data
    for (b, k), (m, which) in (met.items() if drivers else ()):
        expression = meet_expressions(m.closed)[which]
        _add_driver(arm_obj.pose.bones[rig.bone_names[b]], FIELDS[k // 3], k % 3, f"radians({expression})",
                    [("u", arm, f'["_lin{m.upper}_{k}"]'), ("l", arm, f'["_lin{m.lower}_{k}"]')])


def all_drivers(arm_obj):
    """Every driver F-curve of the rig: pose bones (object) and partial sums (armature data)."""
    return [fc for id_ in (arm_obj, arm_obj.data) if id_.animation_data
            for fc in id_.animation_data.drivers]


def mute_drivers(arm_obj, mute: bool = True):
    for fc in all_drivers(arm_obj):
        fc.mute = mute


# --- posing -------------------------------------------------------------------------------
def set_params(arm_obj, params, layout=LAYOUT):
    """Write a parameter vector into the armature's custom properties; drivers pose the bones.

    Un-mutes the drivers (see :func:`apply_pose_direct`).
    """
    params = layout.check(params)
    for name, value in zip(layout.names, params.tolist()):
        arm_obj[name] = value
    mute_drivers(arm_obj, False)
    arm_obj.update_tag()


def apply_pose_direct(arm_obj, rig, params):
    """Write the bones' local loc / rot / scale for ``params`` computed by ``core``.

    Mutes the drivers, which would otherwise overwrite these values; :func:`set_params`
    turns them back on.
    """
    mute_drivers(arm_obj, True)
    local = rig.bone_locals(rig.layout.check(params)[None])[0]
    for b, bone_name in enumerate(rig.bone_names):
        pbone = arm_obj.pose.bones[bone_name]
        pbone.location = local[b, 0:3].tolist()
        pbone.rotation_euler = np.radians(local[b, 3:6]).tolist()
        pbone.scale = local[b, 6:9].tolist()
    arm_obj.update_tag()


def evaluated_vertices(mesh_obj) -> np.ndarray:
    """(V, 3) deformed vertex positions in the mesh's local space (= rig space)."""
    bpy.context.view_layer.update()
    depsgraph = bpy.context.evaluated_depsgraph_get()
    mesh = mesh_obj.evaluated_get(depsgraph).data
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    return co.reshape(-1, 3).astype(np.float64)


# --- scene --------------------------------------------------------------------------------
def setup_camera_and_lights(rig, scene, resolution: int | None = None):
    """Camera and lights of the rig spec; square render of ``resolution`` (default the rig's)."""
    cam = rig.camera
    data = bpy.data.cameras.new(f"{rig.name}_camera")
    data.lens = cam.lens_mm
    data.sensor_width = cam.sensor_mm
    data.sensor_fit = 'AUTO'
    distance = float(np.linalg.norm(np.subtract(cam.look_at, cam.location)))
    data.clip_start = distance / 100.0
    data.clip_end = distance * 100.0
    cam_obj = bpy.data.objects.new(f"{rig.name}_camera", data)
    scene.collection.objects.link(cam_obj)
    matrix = Matrix(np.asarray(cam.rotation).tolist()).to_4x4()
    matrix.translation = Vector(cam.location)
    cam_obj.matrix_world = matrix
    scene.camera = cam_obj
    scene.render.resolution_x = scene.render.resolution_y = resolution or cam.resolution
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0

    lights = []
    for i, spec in enumerate(rig.lights):
        kind = str(spec.get("type", "POINT")).upper()
        data = bpy.data.lights.new(f"{rig.name}_light{i}", kind)
        data.energy = float(spec.get("energy", 10.0))
        data.color = tuple(spec.get("color", (1.0, 1.0, 1.0)))
        if "size" in spec:
            if kind == 'AREA':
                data.size = float(spec["size"])
            elif kind in ('POINT', 'SPOT'):
                data.shadow_soft_size = float(spec["size"])
        obj = bpy.data.objects.new(data.name, data)
        scene.collection.objects.link(obj)
        obj.location = Vector(spec["location"])
        target = Vector(spec.get("look_at", cam.look_at))
        obj.rotation_euler = (target - obj.location).to_track_quat('-Z', 'Y').to_euler()
        lights.append(obj)
    return cam_obj, lights


def setup_workbench(scene, background=(0.214, 0.214, 0.214)):
    """Workbench render: studio light, material colors, opaque neutral grey background."""
    scene.render.engine = 'BLENDER_WORKBENCH'
    shading = scene.display.shading
    shading.light = 'STUDIO'
    shading.color_type = 'MATERIAL'
    shading.show_object_outline = False
    scene.render.film_transparent = False
    scene.world = scene.world or bpy.data.worlds.new("World")
    scene.world.color = background  # linear; 0.214 is sRGB 0.5
    scene.view_settings.view_transform = 'Standard'
    scene.view_settings.look = 'None'
    scene.render.image_settings.file_format = 'PNG'
    scene.render.image_settings.color_mode = 'RGB'
