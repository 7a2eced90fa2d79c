"""au2rig core: parameter layout, rig evaluation and everything else that is not Blender.

``core`` never imports ``bpy``; tracking and keyframing need numpy/onnxruntime/opencv only,
training and export need torch.
"""
from .rig.layout import LAYOUT, LAYOUT_VERSION, ParameterLayout

__all__ = ["LAYOUT", "LAYOUT_VERSION", "ParameterLayout"]
