"""Properties the operators share: the keying options and the video file filter."""
import bpy

from ._core import VIDEO_SUFFIXES

# the options of the keying operators (tracking file, video): one definition, one code path
# (animate.KeyOptions reads them off the operator, animate.key_tracking keys)
KEY_PROPS = {
    "target": bpy.props.StringProperty(name="Target", default="",
                                       description="Object to key (empty: the active object)"),
    "channels": bpy.props.EnumProperty(name="Channels", default="motion",
                                       items=(("motion", "Pose, AUs and Gaze", "Everything that moves: head pose, "
                                               "Action Units and eye gaze"),
                                              ("pose+au", "Pose + AUs", "Head pose and Action Units"),
                                              ("au+gaze", "AUs + Gaze", "Action Units and eye gaze, the head "
                                               "still"),
                                              ("pose", "Pose", "Head pose only"),
                                              ("au", "AUs", "Action Units only"),
                                              ("gaze", "Gaze", "Eye gaze only"),
                                              ("all", "All", "Every channel, identity and brow style too"))),
    "start_frame": bpy.props.IntProperty(name="Start Frame", default=1,
                                         description="Scene frame of the file's first row"),
    "frame_step": bpy.props.IntProperty(name="Frame Step", default=1, min=1,
                                        description="Video frames per scene frame (rows in between are skipped)"),
    "smoothing": bpy.props.FloatProperty(name="Smoothing", default=0.0, min=0.0, max=1.0,
                                         description="One Euro smoothing strength (0 off, 1 strong)"),
    "gains": bpy.props.StringProperty(name="Gains", default="",
                                      description="Per-channel gain, e.g. AU12=1.5, AU4=0.8 "
                                                  "(a channel such as AU12_L or a FACS code)"),
    "scene_fps": bpy.props.BoolProperty(name="Scene FPS From File", default=False,
                                        description="Set the scene's frame rate to the file's (divided by the step)"),
    "frame_range": bpy.props.BoolProperty(name="Set Frame Range", default=True,
                                          description="Set the scene's start and end frames to the keys"),
    "cleanup": bpy.props.BoolProperty(name="Clean Up Keys", default=False,
                                      description="Drop keys that their neighbours reproduce (linear)"),
    "neutral_frame": bpy.props.IntProperty(name="Neutral Frame", default=-1, min=-1,
                                           description="Scene frame whose face becomes the neutral: every AU is 0 "
                                                       "there (-1: as tracked)"),
    "action_name": bpy.props.StringProperty(name="Action", default="",
                                            description="Name of the new Action (empty: <object>_tracking)"),
    "retarget_map": bpy.props.EnumProperty(
        name="Retarget Map", default="auto",
        items=(("auto", "Auto-Detect", "From the target: au2rig channel properties, ARKit shape keys "
                                       "on a mesh, or Rigify face bones"),
               ("bdfm", "au2rig Face Rig", "The built-in rig's channel properties"),
               ("arkit52", "ARKit 52 Shape Keys", "A mesh with Apple ARKit's 52 blendshape names"),
               ("rigify_face", "Rigify Face", "The face bones of a rig Rigify generated from the human meta-rig"),
               ("custom", "Custom Map File", "A retarget map JSON file (Map File)"))),
    "map_path": bpy.props.StringProperty(name="Map File", subtype='FILE_PATH', default="",
                                         description="Retarget map JSON (with Retarget Map: Custom)"),
    "bones": bpy.props.BoolProperty(name="Bake to Bones", default=False,
                                    description="Also key the face bones themselves, as the drivers pose them: "
                                                "FBX and glTF carry keyed bones but not drivers (the au2rig face rig)"),
    "partial": bpy.props.BoolProperty(name="Allow Partial", default=False,
                                      description="Skip map targets the rig lacks instead of refusing"),
}

VIDEO_GLOB = ";".join(f"*{s}" for s in VIDEO_SUFFIXES)

# no PropertyGroup of its own: the operators carry these
CLASSES = ()
