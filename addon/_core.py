"""The one place the add-on imports ``core``.

During development ``core`` is the top-level package at the repository root; build_addon.py
vendors it into the extension and rewrites the imports below to relative ones.
"""
from core.animation import retarget
from core.animation.keyframes import CHANNEL_SETS, parse_gains, plan_keys, redundant_keys, scene_fps, select_channels
from core.animation.performance import random_performance, scripted_performance
from core.animation.tracking_io import Tracking, read_tracking
from core.datasets import pairs
from core.rig import LOD_FACTORS, Rig, RigSpecError, auto_lod, load_rig, lod_of
from core.rig.layout import LAYOUT, ParameterLayout
from core.rig.skinning import Skinning
from core.util.atomic import atomic_path
from core.util.media import VIDEO_SUFFIXES
from core.util.quiet import quiet_fd


def tracker():
    """The tracker's modules ``(track, metrics, overlay)``, imported on first use: they need
    onnxruntime and OpenCV, which the add-on loads only when a video is tracked."""
    from core.evaluation import metrics
    from core.tracking import overlay, track

    return track, metrics, overlay

__all__ = ["atomic_path", "quiet_fd", "LAYOUT", "ParameterLayout", "random_performance", "scripted_performance",
           "tracker", "Rig", "RigSpecError", "load_rig", "pairs", "VIDEO_SUFFIXES", "Skinning", "LOD_FACTORS",
           "auto_lod", "lod_of", "CHANNEL_SETS", "parse_gains", "plan_keys",
           "redundant_keys", "scene_fps", "select_channels", "retarget", "Tracking", "read_tracking"]
