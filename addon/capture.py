"""The Face Capture panel: the workflow from a video to a baked Action, in the sidebar's au2rig tab.

1. **Target**: the object to animate (the au2rig face rig, an ARKit mesh, a Rigify face) and its
   retarget map, with the map's report of matched and missing targets; the map matched again,
   saved to a file, and a channel's weight in one of its entries edited;
2. **Source**: the video, shown beside the target as an image plane that plays with the
   timeline (:func:`show_reference`);
3. **Track**: ``au2rig.animate_from_video`` with the panel's settings (modal, progress, ESC),
   with an actor profile from another take and/or saving this take's; the target defaults to the
   active object, and the video reference appears if it is not there;
4. **Calibrate**: the neutral (automatic, or the frame the timeline is on), a gain per group
   and per FACS code, smoothing, head pose and gaze on or off. Every change re-bakes the
   tracking kept in the target (``addon/stored.py``) at once, into the same Action, and is
   one undo step with it;
5. **Bake**: the Action's name, and the face bones keyed too for FBX / glTF.

The settings live on the scene (``scene.au2rig_capture``); every operator here also runs
headless with arguments.
"""
from __future__ import annotations

from contextlib import contextmanager

import bpy

from ._core import LAYOUT, combine_gains
from .properties import KEY_PROPS

REFERENCE = "au2rig reference"  # the image plane's name
AU_CODES = tuple(dict.fromkeys(f"AU{c.facs:02d}" for c in LAYOUT.channels if c.group == "au"))
GROUP_GAINS = (("pose", "Head Pose"), ("gaze", "Gaze"), ("au", "Action Units"))


def _settings(context):
    return context.scene.au2rig_capture


def key_changes(settings) -> dict:
    """The keying options (``animate.KeyOptions`` fields) the panel's settings give."""
    pose, gaze = settings.head_pose, settings.gaze
    channels = {(True, True): "motion", (True, False): "pose+au", (False, True): "au+gaze",
                (False, False): "au"}[(pose, gaze)]
    gains = combine_gains({g: getattr(settings, f"gain_{g}") for g, _ in GROUP_GAINS},
                          {code: getattr(settings, f"gain_{code}") for code in AU_CODES}, LAYOUT)
    return dict(channels=channels, smoothing=float(settings.smoothing),
                gains=", ".join(f"{name}={value:.6g}" for name, value in gains.items()),
                neutral_frame=int(settings.neutral_frame) if settings.neutral == "frame" else -1,
                action_name=settings.action_name, bones=bool(settings.bones),
                retarget_map=settings.retarget_map, map_path=settings.map_path)


def rebake_now(settings, context) -> str | None:
    """Re-bake the target's stored tracking with the panel's settings; the error text, if any
    (an update callback cannot raise into the UI)."""
    from . import animate, stored

    obj = settings.target
    if obj is None or stored.PROPERTY not in obj:
        return None  # nothing tracked yet: the settings wait for the first keying
    try:
        animate.rebake(context, obj, **key_changes(settings))
    except ValueError as e:
        settings.status = str(e)
        return str(e)
    settings.status = ""
    return None


def _rebake_reported(op, settings, context) -> set:
    """An operator's end after :func:`rebake_now`: the error reported, or finished."""
    error = rebake_now(settings, context)
    if error:
        op.report({'ERROR'}, error)
        return {'CANCELLED'}
    return {'FINISHED'}


@contextmanager
def _held(settings):
    """Settings changed inside do not re-bake one by one (the caller re-bakes once, or not at all)."""
    live, settings.live = settings.live, False
    try:
        yield settings
    finally:
        settings.live = live


def _on_change(settings, context):
    if settings.live:
        rebake_now(settings, context)


def _target_poll(settings, obj):
    return obj.type in {'ARMATURE', 'MESH'}


def _settings_annotations() -> dict:
    ann = {
        "target": bpy.props.PointerProperty(name="Target", type=bpy.types.Object, poll=_target_poll,
                                            description="The rig or mesh to animate"),
        "retarget_map": KEY_PROPS["retarget_map"],
        "map_path": KEY_PROPS["map_path"],
        "video": bpy.props.StringProperty(name="Video", subtype='FILE_PATH', default="",
                                          description="The face video to track"),
        "start_frame": bpy.props.IntProperty(name="Start Frame", default=1,
                                             description="Scene frame of the video's first frame"),
        "actor": bpy.props.StringProperty(name="Actor Profile", subtype='FILE_PATH', default="",
                                          description="An actor profile from another take (neutral face, range of "
                                                      "motion): for a take that never rests"),
        "save_actor": bpy.props.StringProperty(name="Save Actor", subtype='FILE_PATH', default="",
                                               description="Write this take's actor profile for the next takes"),
        "neutral": bpy.props.EnumProperty(name="Neutral", default="auto", update=_on_change,
                                          items=(("auto", "Automatic", "The actor's most relaxed frames"),
                                                 ("frame", "At a Frame", "The face at Neutral Frame: every AU 0 "
                                                                         "there"))),
        "neutral_frame": bpy.props.IntProperty(name="Neutral Frame", default=1, update=_on_change,
                                               description="Scene frame whose face is the neutral"),
        "smoothing": bpy.props.FloatProperty(name="Smoothing", default=0.0, min=0.0, max=1.0, update=_on_change,
                                             description="One Euro smoothing on top of the tracker's "
                                                         "(0 off, 1 strong)"),
        "head_pose": bpy.props.BoolProperty(name="Head Pose", default=True, update=_on_change,
                                            description="Key the head's turn, nod and tilt"),
        "gaze": bpy.props.BoolProperty(name="Gaze", default=True, update=_on_change,
                                       description="Key the eyes' direction"),
        "action_name": bpy.props.StringProperty(name="Action", default="", update=_on_change,
                                                description="Name of the baked Action (empty: <object>_tracking)"),
        "bones": bpy.props.BoolProperty(name="Bake to Bones", default=False, update=_on_change,
                                        description="Also key the face bones, as the drivers pose them (FBX / glTF "
                                                    "carry keyed bones, not drivers)"),
        "live": bpy.props.BoolProperty(name="Re-bake on Change", default=True,
                                       description="Re-bake the stored tracking whenever a setting changes"),
        "status": bpy.props.StringProperty(name="Status", default="", options={'SKIP_SAVE'}),
        "map_report": bpy.props.StringProperty(name="Map Report", default="", options={'SKIP_SAVE'}),
        "map_entry": bpy.props.StringProperty(name="Entry", default="",
                                              description="The map entry to edit: a target's name (a bone, "
                                                          "shape key or property), or bone:property[index]"),
        "map_channel": bpy.props.EnumProperty(name="Channel", default=LAYOUT.names[0],
                                              items=[(n, n, "") for n in LAYOUT.names],
                                              description="The layout channel whose weight to set"),
        "map_weight": bpy.props.FloatProperty(name="Weight", default=1.0,
                                              description="The channel's weight in the entry (0 removes it)"),
    }
    for group, label in GROUP_GAINS:
        ann[f"gain_{group}"] = bpy.props.FloatProperty(name=label, default=1.0, min=0.0, soft_max=3.0,
                                                       update=_on_change, description=f"Gain of every {label} "
                                                                                      f"channel")
    for code in AU_CODES:
        ann[f"gain_{code}"] = bpy.props.FloatProperty(name=code, default=1.0, min=0.0, soft_max=3.0,
                                                      update=_on_change, description=f"Gain of {code}")
    return ann


AU2RIG_capture_settings = type("AU2RIG_capture_settings", (bpy.types.PropertyGroup,),
                               {"__annotations__": _settings_annotations(),
                                "__doc__": "The Face Capture panel's settings (scene.au2rig_capture)"})


def show_reference(context, video: str, target=None, start_frame: int = 1):
    """The video as an image plane beside ``target`` (or at the origin), playing with the
    timeline from ``start_frame``: an Image empty named :data:`REFERENCE` (replaced if there)."""
    import os

    path = bpy.path.abspath(video)
    if not os.path.isfile(path):
        raise ValueError(f"no video at {path}")
    try:
        image = bpy.data.images.load(path, check_existing=True)
    except RuntimeError as e:
        raise ValueError(f"{path}: Blender cannot read it ({e})") from None
    frames = int(image.frame_duration)
    if image.source != 'MOVIE' or frames < 1:
        raise ValueError(f"{path}: Blender reads it as a still image, not a video")
    old = bpy.data.objects.get(REFERENCE)
    if old is not None:
        bpy.data.objects.remove(old)
    plane = bpy.data.objects.new(REFERENCE, None)
    plane.empty_display_type = 'IMAGE'
    plane.data = image
    context.scene.collection.objects.link(plane)
    size, place = 1.0, (0.0, 0.0, 0.0)
    if target is not None:
        from mathutils import Vector

        corners = [target.matrix_world @ Vector(c) for c in target.bound_box]
        lo = Vector(tuple(min(c[i] for c in corners) for i in range(3)))
        hi = Vector(tuple(max(c[i] for c in corners) for i in range(3)))
        size = max(hi.z - lo.z, 1e-3)
        place = (hi.x + 0.6 * size, (lo.y + hi.y) / 2, (lo.z + hi.z) / 2)
    plane.empty_display_size = size
    plane.location = place
    plane.rotation_euler = (1.5707963267948966, 0.0, 0.0)  # upright, facing the front view
    user = plane.image_user
    user.frame_start, user.frame_duration, user.frame_offset = int(start_frame), frames, 0
    user.use_auto_refresh, user.use_cyclic = True, False
    return plane


class AU2RIG_OT_capture_reference(bpy.types.Operator):
    """Show the panel's video beside the target as an image plane that plays with the timeline"""

    bl_idname = "au2rig.capture_reference"
    bl_label = "Show Video Reference"
    bl_options = {'REGISTER', 'UNDO'}

    def execute(self, context):
        s = _settings(context)
        try:
            if not s.video:
                raise ValueError("choose the video first")
            plane = show_reference(context, s.video, s.target, s.start_frame)
        except ValueError as e:
            self.report({'ERROR'}, str(e))
            return {'CANCELLED'}
        self.report({'INFO'}, f"{plane.name}: {plane.image_user.frame_duration} frames from frame "
                              f"{plane.image_user.frame_start}")
        return {'FINISHED'}


class AU2RIG_OT_capture_check_map(bpy.types.Operator):
    """Match the retarget map to the target again and report the channels it found and missed"""

    bl_idname = "au2rig.capture_check_map"
    bl_label = "Match Map"

    def execute(self, context):
        s = _settings(context)
        try:
            _, report = current_map(s)
        except (ValueError, OSError) as e:
            self.report({'ERROR'}, str(e))
            return {'CANCELLED'}
        s.map_report = report.text().splitlines()[0] + (f"; missing {len(report.missing)}" if report.missing else "")
        self.report({'INFO'}, report.text())
        return {'FINISHED'}


def _parse_entry(text: str):
    """``(target, prop, index)`` of "name" or "bone:property[index]"."""
    import re

    m = re.fullmatch(r"(.+):(\w+)\[(\d+)\]", text.strip())
    return (m.group(1), m.group(2), int(m.group(3))) if m else (text.strip(), None, None)


def current_map(settings):
    """The panel's map, matched to its target (renamed onto the target's names)."""
    from . import animate
    from ._core import retarget

    if settings.target is None:
        raise ValueError("choose the target first")
    rmap = animate.key_map(settings.target, settings.retarget_map, settings.map_path) \
        or retarget.load_builtin("bdfm")
    return retarget.auto_match(rmap, animate.target_names(settings.target, rmap.kind))


class AU2RIG_OT_capture_save_map(bpy.types.Operator):
    """Save the map as it matched the target (renamed onto its names) to a JSON file, and use that file"""

    bl_idname = "au2rig.capture_save_map"
    bl_label = "Save Map"
    bl_options = {'REGISTER', 'UNDO'}

    __annotations__ = {"filepath": bpy.props.StringProperty(name="File", subtype='FILE_PATH'),
                       "filter_glob": bpy.props.StringProperty(default="*.json", options={'HIDDEN'})}

    def execute(self, context):
        from ._core import retarget

        s = _settings(context)
        try:
            if not self.filepath:
                raise ValueError("choose where to save the map")
            rmap, report = current_map(s)
            path = retarget.save_map(rmap, bpy.path.abspath(self.filepath))
        except (ValueError, OSError) as e:
            self.report({'ERROR'}, str(e))
            return {'CANCELLED'}
        with _held(s):  # the same map, now from its file: nothing to re-bake
            s.retarget_map, s.map_path = "custom", str(path)
        self.report({'INFO'}, f"{rmap.name}: {len(rmap.entries)} entries saved to {path}")
        return {'FINISHED'}

    def invoke(self, context, event):
        if self.filepath:
            return self.execute(context)
        self.filepath = "face_map.json"
        context.window_manager.fileselect_add(self)
        return {'RUNNING_MODAL'}


class AU2RIG_OT_capture_set_weight(bpy.types.Operator):
    """Set a channel's weight in an entry of the custom map file, save it and re-bake"""

    bl_idname = "au2rig.capture_set_weight"
    bl_label = "Set Weight"
    bl_options = {'REGISTER', 'UNDO'}

    def execute(self, context):
        from ._core import retarget

        s = _settings(context)
        try:
            if s.retarget_map != "custom" or not s.map_path:
                raise ValueError("edit a map file: save the current map first (Save Map)")
            path = bpy.path.abspath(s.map_path)
            target, prop, index = _parse_entry(s.map_entry)
            rmap = retarget.set_weight(retarget.load_map(path), target, s.map_channel, s.map_weight, prop, index)
            retarget.save_map(rmap, path)
        except (ValueError, OSError) as e:
            self.report({'ERROR'}, str(e))
            return {'CANCELLED'}
        done = _rebake_reported(self, s, context)
        if done == {'FINISHED'}:
            self.report({'INFO'}, f"{target}: {s.map_channel} x {s.map_weight:g} in {path}")
        return done


class AU2RIG_OT_capture_track(bpy.types.Operator):
    """Track the panel's video and key it onto the target (ESC cancels)"""

    bl_idname = "au2rig.capture_track"
    bl_label = "Track and Bake"
    bl_options = {'REGISTER'}

    def execute(self, context):
        s = _settings(context)
        active = context.active_object
        if s.target is None and active is not None and active.type in {'ARMATURE', 'MESH'}:
            s.target = active  # the object in hand
        if s.target is None or not s.video:
            self.report({'ERROR'}, "choose the target and the video first")
            return {'CANCELLED'}
        if bpy.data.objects.get(REFERENCE) is None:  # the video beside the face, to compare as it keys
            try:
                show_reference(context, s.video, s.target, s.start_frame)
            except ValueError as e:
                self.report({'WARNING'}, f"no video reference in the viewport: {e}")
        changes = key_changes(s)
        args = dict(filepath=s.video, target=s.target.name, start_frame=s.start_frame, actor=s.actor,
                    save_actor=s.save_actor,
                    channels=changes["channels"], gains=changes["gains"], action_name=changes["action_name"],
                    bones=changes["bones"], retarget_map=changes["retarget_map"], map_path=changes["map_path"],
                    neutral_frame=changes["neutral_frame"])
        if changes["smoothing"]:
            args["smoothing"] = changes["smoothing"]
        return bpy.ops.au2rig.animate_from_video('INVOKE_DEFAULT' if context.window else 'EXEC_DEFAULT', **args)


class AU2RIG_OT_capture_neutral_here(bpy.types.Operator):
    """Make the face at the current frame the neutral (every AU 0 there) and re-bake"""

    bl_idname = "au2rig.capture_neutral_here"
    bl_label = "Neutral at Current Frame"
    bl_options = {'REGISTER', 'UNDO'}

    __annotations__ = {"frame": bpy.props.IntProperty(name="Frame", default=-1,
                                                      description="Scene frame (-1: the current one)")}

    def execute(self, context):
        s = _settings(context)
        with _held(s):  # one re-bake for both settings
            s.neutral_frame = context.scene.frame_current if self.frame < 0 else self.frame
            s.neutral = "frame"
        done = _rebake_reported(self, s, context)
        if done == {'FINISHED'}:
            self.report({'INFO'}, f"neutral at frame {s.neutral_frame}")
        return done


class AU2RIG_OT_capture_rebake(bpy.types.Operator):
    """Re-bake the target's stored tracking with the panel's settings"""

    bl_idname = "au2rig.capture_rebake"
    bl_label = "Re-bake"
    bl_options = {'REGISTER', 'UNDO'}

    def execute(self, context):
        s = _settings(context)
        from . import stored

        if s.target is None or stored.PROPERTY not in s.target:
            self.report({'ERROR'}, "the target has no tracking yet: track a video or import a tracking onto it")
            return {'CANCELLED'}
        return _rebake_reported(self, s, context)


class AU2RIG_PT_capture(bpy.types.Panel):
    bl_label = "Face Capture"
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "au2rig"

    def draw(self, context):
        s = _settings(context)
        layout = self.layout
        box = layout.box()
        box.label(text="1. Target", icon='ARMATURE_DATA')
        box.prop(s, "target")
        box.prop(s, "retarget_map")
        if s.retarget_map == "custom":
            box.prop(s, "map_path")
        row = box.row(align=True)
        row.operator(AU2RIG_OT_capture_check_map.bl_idname, icon='LINKED')
        row.operator(AU2RIG_OT_capture_save_map.bl_idname, icon='FILE_TICK')
        if s.map_report:
            box.label(text=s.map_report)
        if s.retarget_map == "custom":
            col = box.column(align=True)
            col.prop(s, "map_entry")
            row = col.row(align=True)
            row.prop(s, "map_channel", text="")
            row.prop(s, "map_weight")
            col.operator(AU2RIG_OT_capture_set_weight.bl_idname, icon='MODIFIER_DATA')
        box = layout.box()
        box.label(text="2. Source", icon='FILE_MOVIE')
        box.prop(s, "video")
        box.prop(s, "start_frame")
        box.operator(AU2RIG_OT_capture_reference.bl_idname, icon='IMAGE_PLANE')
        box = layout.box()
        box.label(text="3. Track", icon='TRACKING')
        box.prop(s, "actor")
        box.prop(s, "save_actor")
        box.operator(AU2RIG_OT_capture_track.bl_idname, icon='PLAY')
        box = layout.box()
        box.label(text="4. Calibrate", icon='MODIFIER')
        box.prop(s, "neutral", expand=True)
        row = box.row(align=True)
        row.prop(s, "neutral_frame")
        row.operator(AU2RIG_OT_capture_neutral_here.bl_idname, text="", icon='TIME')
        row = box.row(align=True)
        row.prop(s, "head_pose", toggle=True)
        row.prop(s, "gaze", toggle=True)
        box.prop(s, "smoothing", slider=True)
        col = box.column(align=True)
        for group, _ in GROUP_GAINS:
            col.prop(s, f"gain_{group}", slider=True)
        grid = box.grid_flow(columns=2, align=True)
        for code in AU_CODES:
            grid.prop(s, f"gain_{code}", slider=True)
        box = layout.box()
        box.label(text="5. Bake", icon='ACTION')
        box.prop(s, "action_name")
        box.prop(s, "bones")
        row = box.row()
        row.prop(s, "live")
        row.operator(AU2RIG_OT_capture_rebake.bl_idname, icon='FILE_REFRESH')
        if s.status:
            box.label(text=s.status, icon='ERROR')


CLASSES = (AU2RIG_capture_settings, AU2RIG_OT_capture_reference, AU2RIG_OT_capture_check_map,
           AU2RIG_OT_capture_save_map, AU2RIG_OT_capture_set_weight, AU2RIG_OT_capture_track,
           AU2RIG_OT_capture_neutral_here, AU2RIG_OT_capture_rebake, AU2RIG_PT_capture)


def register_settings():
    bpy.types.Scene.au2rig_capture = bpy.props.PointerProperty(type=AU2RIG_capture_settings)


def unregister_settings():
    del bpy.types.Scene.au2rig_capture
