"""torch for runtime code that is handed torch tensors.

The runtime (what the Blender extension ships) never imports torch: it runs on numpy. Some of
its functions also accept torch tensors (training differentiates through them); whoever made
such a tensor has loaded torch, so these functions take it from there.
"""
from __future__ import annotations

import sys


def loaded_torch():
    """The torch module, which the caller's tensors prove is loaded."""
    return sys.modules["torch"]
