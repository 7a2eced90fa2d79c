"""The one place the add-on imports ``core``.

During development ``core`` is the top-level package at the repository root; build_addon.py
vendors it into the extension and rewrites the imports below to relative ones.
"""
from core.layout import LAYOUT, ParameterLayout  # noqa: F401
from core.performance import scripted_performance  # noqa: F401
from core.rig import Rig, RigSpecError, load_rig  # noqa: F401
