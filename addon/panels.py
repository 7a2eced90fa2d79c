"""The extension's panel (the face channels in the sidebar's au2rig tab) and its menu entries."""
import bpy

from ._core import LAYOUT
from .operators import (
    AU2RIG_OT_add_face_rig,
    AU2RIG_OT_animate_from_video,
    AU2RIG_OT_import_tracking,
    AU2RIG_OT_rebake,
    AU2RIG_OT_render_pairs,
)
from .stored import PROPERTY


class AU2RIG_PT_channels(bpy.types.Panel):
    bl_label = "Face Channels"
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "au2rig"

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and obj.type == 'ARMATURE' and LAYOUT.names[0] in obj

    def draw(self, context):
        obj = context.active_object
        if PROPERTY in obj:  # a tracking kept in the .blend: key it again with other options
            self.layout.operator(AU2RIG_OT_rebake.bl_idname, icon='FILE_REFRESH')
        for group, title in (("pose", "Head pose"), ("gaze", "Gaze"), ("au", "Action Units"),
                             ("brow_style", "Brow style"), ("identity", "Identity")):
            box = self.layout.box()
            box.label(text=title)
            col = box.column(align=True)
            for name in LAYOUT.group_names(group):
                col.prop(obj, f'["{name}"]', text=name)


def menu_add(self, context):
    self.layout.operator(AU2RIG_OT_add_face_rig.bl_idname, icon='ARMATURE_DATA')


def menu_render(self, context):
    self.layout.operator(AU2RIG_OT_render_pairs.bl_idname, icon='RENDER_STILL')


def menu_import(self, context):
    self.layout.operator(AU2RIG_OT_import_tracking.bl_idname, text="au2rig tracking (.csv/.json/.npz)")
    self.layout.operator(AU2RIG_OT_animate_from_video.bl_idname, text="au2rig video (animate face)")


CLASSES = (AU2RIG_PT_channels,)
# (Blender menu, entry) pairs register() appends
MENUS = (("VIEW3D_MT_armature_add", menu_add), ("TOPBAR_MT_render", menu_render),
         ("TOPBAR_MT_file_import", menu_import))
