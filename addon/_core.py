"""The one place the add-on imports ``core``.

During development ``core`` is the top-level package at the repository root; packaging
vendors it into the add-on and rewrites only this file.
"""
from core.layout import LAYOUT, ParameterLayout  # noqa: F401
from core.rig import Rig, load_rig  # noqa: F401
from core.performance import scripted_performance  # noqa: F401
