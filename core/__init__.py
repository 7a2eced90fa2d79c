"""au2rig core: parameter layout, rig evaluation and everything else that is not Blender.

``core`` never imports ``bpy``; tracking and keyframing need numpy/onnxruntime/opencv only,
training and export need torch. Its subpackages, bottom to top (a module imports its own layer
and the layers below): ``util``, ``rig``, ``alignment``, ``animation``, ``tracking``,
``datasets``, ``evaluation``, ``nets``, ``training``; ``cli`` holds the commands.
"""
from .rig.layout import LAYOUT, LAYOUT_VERSION, ParameterLayout

__all__ = ["LAYOUT", "LAYOUT_VERSION", "ParameterLayout"]
