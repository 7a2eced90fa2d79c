"""Fast batched linear blend skinning of a whole rig mesh, float32, for rendering.

``Rig.skin`` is general (numpy or torch, any vertex subset) but builds dense (V, B) weights
per call. Rendering needs every vertex of many parameter vectors, so this precomputes one
matrix ``A`` (V, 4B) with ``A[v, 4b:4b+4] = sum_k w_vk [rest_v, 1]`` over the vertex's bones
b = index_vk. Deformed positions are then one matrix product per batch:
``pos[n, v] = A[v] @ M[n]`` where ``M[n]`` stacks the bones' (3, 4) skin matrices.
Same algebra as ``Rig.skin`` (and Blender's armature modifier). The product runs in float64
and is rounded to float32 at the end, so the result does not depend on how many threads the
BLAS library uses (a float32 product's last bits do, and would flip a pixel now and then).
"""
from __future__ import annotations

import numpy as np


class Skinning:
    """Deformed vertex positions of ``rig`` for batches of parameter vectors."""

    def __init__(self, rig):
        self.rig = rig
        v, b = len(rig.vertices), len(rig.bone_names)
        rest = np.concatenate([rig.vertices, np.ones((v, 1))], 1)  # (V, 4)
        a = np.zeros((v, b, 4))
        rows = np.arange(v)
        for k in range(rig.weight_index.shape[1]):
            a[rows, rig.weight_index[:, k]] += rig.weight_value[:, k:k + 1] * rest
        self.used = np.flatnonzero(np.abs(a).sum((0, 2)) > 0)  # bones that move vertices
        self.matrix = np.ascontiguousarray(a[:, self.used].reshape(v, -1))

    def positions(self, params) -> np.ndarray:
        """(N, V, 3) float32 deformed positions for parameters (N, P) or (P,)."""
        params = np.atleast_2d(self.rig.layout.check(params))
        mats = self.rig.skin_matrices(params)[:, self.used, :3, :]  # (N, B', 3, 4)
        n = len(params)
        m = np.ascontiguousarray(mats.transpose(1, 3, 2, 0).reshape(len(self.used) * 4, 3 * n))
        out = self.matrix @ m  # (V, 3N)
        return np.ascontiguousarray(out.reshape(-1, 3, n).transpose(2, 0, 1), np.float32)
