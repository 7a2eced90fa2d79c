"""The one place the add-on imports ``core``.

During development ``core`` is the top-level package at the repository root; build_addon.py
vendors it into the extension and rewrites the imports below to relative ones.
"""
from core.util.atomic import atomic_path  # noqa: F401
from core.rig.layout import LAYOUT, ParameterLayout  # noqa: F401
from core.animation.keyframes import CHANNEL_SETS, parse_gains, plan_keys, redundant_keys, scene_fps, select_channels  # noqa: F401
from core.animation import retarget  # noqa: F401
from core.animation.performance import random_performance, scripted_performance  # noqa: F401
from core.util.quiet import quiet_fd  # noqa: F401
from core.util.media import VIDEO_SUFFIXES  # noqa: F401
from core.rig import LOD_FACTORS, Rig, RigSpecError, auto_lod, load_rig, lod_of  # noqa: F401
from core.datasets import pairs  # noqa: F401
from core.rig.skinning import Skinning  # noqa: F401
from core.animation.tracking_io import Tracking, read_tracking  # noqa: F401


def tracker():
    """The tracker's modules ``(track, metrics, overlay)``, imported on first use: they need
    onnxruntime and OpenCV, which the add-on loads only when a video is tracked."""
    from core.evaluation import metrics
    from core.tracking import overlay, track

    return track, metrics, overlay

__all__ = ["atomic_path", "quiet_fd", "LAYOUT", "ParameterLayout", "random_performance", "scripted_performance",
           "tracker", "Rig", "RigSpecError", "load_rig", "pairs", "VIDEO_SUFFIXES", "Skinning", "LOD_FACTORS", "auto_lod", "lod_of", "CHANNEL_SETS", "parse_gains", "plan_keys",
           "redundant_keys", "scene_fps", "select_channels", "retarget", "Tracking", "read_tracking"]
