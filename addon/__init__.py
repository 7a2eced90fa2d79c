"""au2rig Blender extension: face rigs driven by facial Action Units.

Registers the operator that adds the built-in face rig (BDFM), the Face Capture panel (the
workflow from a video to a baked Action, ``addon/capture.py``), a sidebar panel with its
channels (head pose, AUs, identity sliders, brow style) as animatable properties, the
tracking importer (File > Import > au2rig tracking: keys a tracking file onto the rig as a
new Action), animate-from-video (File > Import > au2rig video: tracks a face video and keys
it the same way; ESC cancels) and the offline rig-render operator that writes (parameters, image) pairs
datasets.

Importing this package loads nothing of Blender: :func:`register` imports the modules whose
``CLASSES`` it registers (properties, operators, panels), so the command line (``addon/cli.py``)
runs without ``bpy`` until a command needs it.
"""


def _modules():
    from . import capture, operators, panels, properties

    return properties, operators, panels, capture


def register():
    import bpy

    for module in _modules():
        for cls in module.CLASSES:
            bpy.utils.register_class(cls)
    from .capture import register_settings
    from .panels import MENUS

    register_settings()
    for menu, entry in MENUS:
        getattr(bpy.types, menu).append(entry)


def unregister():
    import bpy

    from .capture import unregister_settings
    from .panels import MENUS

    for menu, entry in reversed(MENUS):
        getattr(bpy.types, menu).remove(entry)
    unregister_settings()
    for module in reversed(_modules()):
        for cls in reversed(module.CLASSES):
            bpy.utils.unregister_class(cls)
