"""au2rig Blender extension: face rigs driven by facial Action Units.

Registers the operator that adds the built-in face rig (BDFM) and a sidebar panel with its
channels (head pose, AUs, identity sliders, brow style) as animatable properties.
"""
import bpy

from ._core import LAYOUT


class AU2RIG_OT_add_face_rig(bpy.types.Operator):
    """Add the built-in bone-driven face rig, its channels driving the bones"""

    bl_idname = "au2rig.add_face_rig"
    bl_label = "Add au2rig Face Rig"
    bl_options = {'REGISTER', 'UNDO'}

    name: bpy.props.StringProperty(name="Name", default="BDFM")

    def execute(self, context):
        from . import rig_builder
        from ._core import RigSpecError, load_rig

        try:
            rig = load_rig()
        except RigSpecError as e:
            self.report({'ERROR'}, str(e))
            return {'CANCELLED'}
        arm_obj, _ = rig_builder.build_rig(rig, self.name, context.collection)
        for obj in context.selected_objects:
            obj.select_set(False)
        arm_obj.select_set(True)
        context.view_layer.objects.active = arm_obj
        return {'FINISHED'}


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
        for group, title in (("pose", "Head pose"), ("au", "Action Units"), ("brow_style", "Brow style"),
                             ("identity", "Identity")):
            box = self.layout.box()
            box.label(text=title)
            col = box.column(align=True)
            for name in LAYOUT.group_names(group):
                col.prop(obj, f'["{name}"]', text=name)


def menu_add(self, context):
    self.layout.operator(AU2RIG_OT_add_face_rig.bl_idname, icon='ARMATURE_DATA')


CLASSES = (AU2RIG_OT_add_face_rig, AU2RIG_PT_channels)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.VIEW3D_MT_armature_add.append(menu_add)


def unregister():
    bpy.types.VIEW3D_MT_armature_add.remove(menu_add)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
