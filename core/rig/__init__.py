"""The rig without Blender: parameter layout, spec, evaluation, identity and skinning (numpy;
torch when handed tensors)."""
from .evaluate import DEFAULT_RIG, LOD_FACTORS, RIGS_DIR, Camera, Rig, RigSpecError, auto_lod, coefficient_names
from .layout import LAYOUT, ParameterLayout
from .load import load_rig, lod_of

__all__ = ["DEFAULT_RIG", "LAYOUT", "LOD_FACTORS", "RIGS_DIR", "Camera", "ParameterLayout", "Rig", "RigSpecError",
           "auto_lod", "coefficient_names", "load_rig", "lod_of"]
