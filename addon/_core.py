"""The one place the add-on imports ``core``.

Installed (and in a development checkout, installed editable) the project is the package
``au2rig`` with ``au2rig.core``, ``au2rig.addon`` and ``au2rig.rigs``; build_addon.py vendors core
into the extension and rewrites the imports below to relative ones.
"""
from au2rig.core.animation import retarget
from au2rig.core.animation.filters import combine_gains
from au2rig.core.animation.keyframes import (
    CHANNEL_SETS,
    parse_expression,
    parse_gains,
    plan_keys,
    redundant_keys,
    scene_fps,
    select_channels,
)
from au2rig.core.animation.performance import random_performance, scripted_performance
from au2rig.core.animation.tracking_io import Tracking, read_tracking
from au2rig.core.datasets import pairs
from au2rig.core.rig import LOD_FACTORS, Rig, RigSpecError, auto_lod, load_rig, lod_of
from au2rig.core.rig.evaluate import ROT_X, euler_quaternions
from au2rig.core.rig.layout import LAYOUT, ParameterLayout
from au2rig.core.rig.skinning import Skinning
from au2rig.core.util.atomic import atomic_path
from au2rig.core.util.media import VIDEO_SUFFIXES
from au2rig.core.util.quiet import quiet_fd


def tracker():
    """The tracker's modules ``(track, metrics, overlay)``, imported on first use: they need
    onnxruntime and OpenCV, which the add-on loads only when a video is tracked."""
    from au2rig.core.evaluation import metrics
    from au2rig.core.tracking import overlay, track

    return track, metrics, overlay

def actor_profiles():
    """``(profile_from_tracking, write_profile)`` of ``core.tracking.actor``, imported on first use."""
    from au2rig.core.tracking.actor import profile_from_tracking, write_profile

    return profile_from_tracking, write_profile


__all__ = ["actor_profiles", "atomic_path", "quiet_fd", "LAYOUT", "ParameterLayout", "random_performance",
           "scripted_performance",
           "tracker", "Rig", "RigSpecError", "load_rig", "pairs", "VIDEO_SUFFIXES", "Skinning", "LOD_FACTORS",
           "auto_lod", "lod_of", "ROT_X", "CHANNEL_SETS", "combine_gains", "euler_quaternions", "parse_expression",
           "parse_gains", "plan_keys", "redundant_keys", "scene_fps", "select_channels", "retarget", "Tracking",
           "read_tracking"]
