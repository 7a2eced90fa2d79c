"""The rig: data loaded from ``rigs/``, evaluated without Blender.

A rig is a skinned mesh and an armature. Every parameter channel of the layout
adds a table of bone *local* offsets (location, Euler rotation in degrees, scale)
on top of the bone's base values; identity sliders carry one table at 0 and one at 1
(0.5 is the base face). Bones deform vertices by linear blend skinning with the
exact matrix algebra Blender's armature modifier uses, so ``core`` and Blender agree
to floating-point tolerance.

The evaluator is written once over a tiny array namespace and runs on numpy
(fast, no gradients) or torch (batched, differentiable).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..util.tensors import loaded_torch
from .layout import ParameterLayout

RIGS_DIR = Path(__file__).resolve().parents[2] / "rigs"
DEFAULT_RIG = RIGS_DIR / "bdfm.toml"
ROTATION_MODES = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")
LOCAL_FIELDS = ("loc", "rot", "scale")  # 3 values each -> 9 per bone
# Render levels of detail: LOD k regenerates the mesh LOD_FACTORS[k] times coarser (0 = full).
LOD_FACTORS = (1, 2, 3)
# "auto" LOD: the coarsest level whose smallest image size (px) is at most the image size
# (measured on the built-in rig: LOD k renders look like the full mesh from these sizes down).
LOD_AUTO_SIZES = (256, 128, 0)


class RigSpecError(ValueError):
    """A rig specification is malformed; the message names file and field."""


@dataclass(frozen=True)
class Camera:
    location: tuple[float, float, float]
    look_at: tuple[float, float, float]
    lens_mm: float
    sensor_mm: float
    resolution: int

    @cached_property
    def rotation(self) -> np.ndarray:
        """3x3 camera-to-world rotation (Blender camera: looks down local -Z, up is +Y)."""
        fwd = np.subtract(self.look_at, self.location).astype(float)
        fwd /= np.linalg.norm(fwd)
        right = np.cross(fwd, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, fwd)
        return np.stack([right, up, -fwd], axis=1)

    def focal_px(self, resolution: int | None = None) -> float:
        return self.lens_mm / self.sensor_mm * (resolution or self.resolution)


@dataclass(frozen=True, eq=False)
class Rig:
    """Everything needed to evaluate and build the rig. Arrays are read-only."""

    name: str
    source: str  # file the spec came from
    layout: ParameterLayout
    vertices: np.ndarray  # (V, 3) rest positions
    faces: np.ndarray  # (F, 3) triangle vertex indices
    face_regions: np.ndarray  # (F,) index into regions
    regions: tuple[str, ...]
    region_colors: np.ndarray  # (R, 3) linear RGB
    bone_names: tuple[str, ...]
    bone_parents: np.ndarray  # (B,) parent index, -1 for the root
    bone_heads: np.ndarray  # (B, 3) rest head; every bone points +Y with roll 0
    bone_lengths: np.ndarray  # (B,)
    bone_rotation_modes: tuple[str, ...]
    base_locals: np.ndarray  # (B, 9) loc, rot (deg), scale at the neutral face
    basis: np.ndarray  # (C, B, 9) offsets per coefficient (see coefficient_names)
    coefficient_names: tuple[str, ...]  # (C,) channel name, identity as name@0 / name@1
    weight_index: np.ndarray  # (V, K) bone indices
    weight_value: np.ndarray  # (V, K) weights, rows sum to 1
    landmark_vertices: np.ndarray  # (68,) vertex index of each iBUG landmark
    camera: Camera
    lights: tuple[dict, ...] = ()
    extras: dict = field(default_factory=dict)
    lod: int = 0  # render level of detail of the mesh (0: the rig itself; see load_rig)
    # lids that meet (:class:`Meet`): applied after the tables' linear sum
    meets: tuple = ()
    # what makes it "the same rig" on every machine: a hash of its inputs (core.rig.identity)
    identity: str = ""

    def __post_init__(self):
        if not self.identity:
            raise ValueError(f"rig {self.name!r} ({self.source}) needs an identity (build_rig derives it "
                             f"from the spec; a rig made from arrays must name one)")

    def __repr__(self) -> str:
        lod = f", LOD {self.lod}" if self.lod else ""
        return (f"Rig({self.name!r}{lod}, {len(self.vertices)} vertices, {len(self.bone_names)} bones, "
                f"identity {self.identity}, from {self.source})")

    # --- derived ---------------------------------------------------------------
    @cached_property
    def dense_weights(self) -> np.ndarray:
        w = np.zeros((len(self.vertices), len(self.bone_names)))
        np.add.at(w, (np.arange(len(self.vertices))[:, None], self.weight_index), self.weight_value)
        return w

    @cached_property
    def bone_index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.bone_names)}

    @cached_property
    def height(self) -> float:
        """Height of the head (crown to chin), the rig's unit of tolerance."""
        skin = self.face_vertices("skin") if "skin" in self.regions else ()
        return float(np.ptp(self.vertices[skin, 2])) if len(skin) else float(np.ptp(self.vertices[:, 2]))

    @cached_property
    def fingerprint(self) -> list[float]:
        """Computed numbers compared under a tolerance where a stored rig must be this one
        (:func:`core.rig.identity.fingerprint`)."""
        from .identity import fingerprint

        return fingerprint(self)

    @cached_property
    def vertex_mirror(self) -> np.ndarray:
        """(V,) index of each vertex's mirror image across x = 0 (-1 where there is none).

        Vertices sharing a position (the lip rims) pair up in index order.
        """
        key = lambda a: [tuple(k) for k in np.round(a, 7)]
        groups: dict[tuple, list[int]] = {}
        for i, k in enumerate(key(self.vertices)):
            groups.setdefault(k, []).append(i)
        out = np.full(len(self.vertices), -1)
        for i, k in enumerate(key(self.vertices * [-1.0, 1.0, 1.0])):
            src, dst = groups[key(self.vertices[i:i + 1])[0]], groups.get(k, [])
            if len(dst) == len(src):
                out[i] = dst[src.index(i)]
        return out

    @cached_property
    def bone_mirror(self) -> np.ndarray:
        """(B,) index of each bone's left/right twin (itself for midline bones)."""
        def twin(n):
            return n[:-2] + {".L": ".R", ".R": ".L"}[n[-2:]] if n[-2:] in (".L", ".R") else n
        return np.array([self.bone_index[twin(n)] for n in self.bone_names])

    def face_vertices(self, region: str) -> np.ndarray:
        r = self.regions.index(region)
        return np.unique(self.faces[self.face_regions == r])

    def iris_vertices(self) -> tuple[np.ndarray, np.ndarray]:
        """The vertices of the subject's right iris (the rig's -x) and left iris (+x)."""
        if "iris" not in self.regions:
            raise ValueError(f"rig {self.name!r} has no 'iris' region (its regions: {', '.join(self.regions)})")
        v = self.face_vertices("iris")
        left = self.vertices[v, 0] > 0
        return v[~left], v[left]

    def coefficients(self, params, xp=None):
        """Map parameter vector(s) (..., P) to table coefficients (..., C)."""
        return _coefficients(self.layout, params, _ns(params) if xp is None else xp)

    # --- evaluation (numpy or torch, chosen by the type of ``params``) ------------
    def bone_locals(self, params, bones=None):
        """(N, B, 9) bone local loc / rot (deg) / scale for parameters (N, P) (all bones, or
        ``bones``): the tables' linear sum, then the lids that meet stopped where they meet."""
        xp = _ns(params)
        coef = self.coefficients(params, xp)
        bones = np.arange(len(self.bone_names)) if bones is None else np.asarray(bones)
        meets = [m for m in self.meets if m.upper in bones or m.lower in bones]
        partners = [b for m in meets for b in (m.upper, m.lower) if b not in bones]
        cols = np.concatenate([bones, np.array(partners, int)]).astype(int)
        basis = xp.asarray(self.basis[:, cols].reshape(len(self.coefficient_names), -1), coef)
        base = xp.asarray(self.base_locals[cols].reshape(-1), coef)
        flat = base + coef @ basis
        if meets:
            flat = _meet(flat, {int(b): i for i, b in enumerate(cols)}, meets, xp)
        return flat[:, :9 * len(bones)].reshape(coef.shape[0], len(bones), 9)

    def pose_matrices(self, params, bones=None):
        """(N, B, 4, 4) armature-space pose matrices of every bone (or of ``bones``, which must
        hold every ancestor of its members)."""
        return _pose_matrices(self, self.bone_locals(params, bones), _ns(params), bones)

    def skin_matrices(self, params, bones=None):
        """(N, B, 4, 4) pose @ inverse(rest): what moves a rest vertex with the bone."""
        xp = _ns(params)
        pose = self.pose_matrices(params, bones)
        heads = self.bone_heads if bones is None else self.bone_heads[np.asarray(bones)]
        rest_inv = np.tile(np.eye(4), (len(heads), 1, 1))
        rest_inv[:, :3, 3] = -heads
        return pose @ xp.asarray(rest_inv, pose)

    def bones_moving(self, vertices) -> np.ndarray:
        """Sorted indices of the bones that move ``vertices``, with all their ancestors."""
        used = set(np.flatnonzero(self.dense_weights[np.asarray(vertices)].any(0)).tolist())
        for b in list(used):
            p = self.bone_parents[b]
            while p >= 0:
                used.add(int(p))
                p = self.bone_parents[p]
        return np.array(sorted(used), int)

    def skin(self, params, vertices: np.ndarray | None = None):
        """Deformed positions (N, V, 3) of rig vertices (all, or the given indices).

        With ``vertices`` given, only the bones that move them are evaluated."""
        xp = _ns(params)
        params = _batch(self.layout, params, xp)
        if vertices is None:
            idx, bones = np.arange(len(self.vertices)), None
            w = self.dense_weights
        else:
            idx = np.asarray(vertices)
            bones = self.bones_moving(idx)
            w = self.dense_weights[idx][:, bones]
        mats = self.skin_matrices(params, bones)[..., :3, :]  # (N, B, 3, 4)
        w = xp.asarray(w, mats)  # (V, B)
        n, b = mats.shape[0], mats.shape[1]
        # (V, B) @ (N, B, 12): one batched matrix product (numpy's einsum would loop, 10x slower)
        blended = (w @ mats.reshape(n, b, 12)).reshape(n, len(idx), 3, 4)  # (N, V, 3, 4)
        rest = xp.asarray(self.vertices[idx], mats)
        return (blended[..., :3] @ rest[..., None])[..., 0] + blended[..., 3]

    def landmarks_3d(self, params):
        """(N, 68, 3) deformed iBUG landmark points."""
        return self.skin(params, self.landmark_vertices)

    def project(self, points, resolution: int | None = None):
        """Pinhole projection of world points (..., 3) to pixels (..., 2).

        Pixel coordinates: x right, y down, (0, 0) the top-left corner of the image,
        matching a Blender render of the rig's camera at ``resolution`` pixels square.
        """
        xp = _ns(points)
        cam = self.camera
        rot = xp.asarray(cam.rotation, points)
        p = (points - xp.asarray(np.asarray(cam.location, float), points)) @ rot  # camera coords
        f = cam.focal_px(resolution)
        res = resolution or cam.resolution
        depth = -p[..., 2]
        return xp.stack([res / 2 + f * p[..., 0] / depth, res / 2 - f * p[..., 1] / depth], -1)

    def landmarks_2d(self, params, resolution: int | None = None):
        """(N, 68, 2) projected landmarks in pixels."""
        return self.project(self.landmarks_3d(params), resolution)


# --- array namespace shim: the evaluator is written once --------------------------
class _NumpyNS:
    @staticmethod
    def asarray(a, like=None):
        return np.asarray(a, dtype=np.float64)

    einsum = staticmethod(np.einsum)
    stack = staticmethod(np.stack)
    cos = staticmethod(np.cos)
    sin = staticmethod(np.sin)

    @staticmethod
    def relu(a):
        return np.maximum(a, 0.0)

    @staticmethod
    def cat(arrays, axis):
        return np.concatenate(arrays, axis)

    @staticmethod
    def zeros_like(a):
        return np.zeros_like(a)

    @staticmethod
    def ones_like(a):
        return np.ones_like(a)


class _TorchNS:
    def __init__(self, torch):
        self.t = torch

    def asarray(self, a, like):
        a = np.asarray(a)
        return self.t.as_tensor(a if a.flags.writeable else a.copy(), dtype=like.dtype, device=like.device)

    def einsum(self, eq, *ops):
        return self.t.einsum(eq, *ops)

    def stack(self, arrays, axis):
        return self.t.stack(list(arrays), axis)

    def cos(self, a):
        return self.t.cos(a)

    def sin(self, a):
        return self.t.sin(a)

    def relu(self, a):
        return self.t.clamp(a, min=0.0)

    def cat(self, arrays, axis):
        return self.t.cat(list(arrays), axis)

    def zeros_like(self, a):
        return self.t.zeros_like(a)

    def ones_like(self, a):
        return self.t.ones_like(a)


@dataclass(frozen=True)
class Meet:
    """Two lids that meet: bone indices ``upper`` and ``lower``, turning about their x axes (+
    down), and the angle ``closed`` (degrees) between the upper lid's turn and the lower lid's at
    which they touch (the upper lid alone closes the eye at ``closed``). Tables add up linearly,
    so an eye closed and tightened would turn the lids past each other; where their turns overlap
    by ``e``, each gives back its share of ``e`` in proportion to its turn toward the other (the
    upper lid's turn down, the lower lid's up), and they stop touching."""

    upper: int
    lower: int
    closed: float


ROT_X = 3  # index of the x rotation in a bone's 9 local values


def _meet(flat, column, meets, xp):
    """``flat`` (N, 9 K) bone locals with the lids of ``meets`` stopped where they meet
    (``column``: bone index -> its place among the K); a sum of one-hot corrections, so torch
    differentiates it."""
    k = flat.shape[1]
    out = flat
    for m in meets:
        iu, il = 9 * column[m.upper] + ROT_X, 9 * column[m.lower] + ROT_X
        up, low = flat[:, iu], flat[:, il]
        excess = xp.relu(up - low - m.closed)
        toward_u, toward_l = xp.relu(up), xp.relu(-low)
        share = excess / (toward_u + toward_l + 1e-12)
        onehot = np.zeros((2, k))
        onehot[0, iu], onehot[1, il] = 1.0, 1.0
        correction = xp.stack([-share * toward_u, share * toward_l], 1)
        out = out + correction @ xp.asarray(onehot, flat)
    return out


def _ns(a):
    if type(a).__module__.startswith("torch"):
        return _TorchNS(loaded_torch())
    return _NumpyNS()


def _batch(layout: ParameterLayout, params, xp):
    if isinstance(xp, _NumpyNS):
        params = layout.check(params)
    elif params.shape[-1] != len(layout):
        layout.check(np.zeros(params.shape[-1]))  # raises with the standard message
    return params[None] if params.ndim == 1 else params


def _coefficients(layout: ParameterLayout, params, xp):
    params = _batch(layout, params, xp)
    ident = layout.group_slice("identity")
    s = params[:, ident]
    # identity slider s: table "@0" weighs max(0, 1 - 2s), table "@1" weighs max(0, 2s - 1)
    return xp.cat([params[:, :ident.start], xp.relu(1.0 - 2.0 * s), xp.relu(2.0 * s - 1.0),
                   params[:, ident.stop:]], 1)


def coefficient_names(layout: ParameterLayout) -> tuple[str, ...]:
    ident = layout.group_slice("identity")
    names = layout.names
    return (names[:ident.start] + tuple(f"{n}@0" for n in names[ident]) +
            tuple(f"{n}@1" for n in names[ident]) + names[ident.stop:])


def _axis_rotation(axis: str, c, s, xp):
    one, zero = xp.ones_like(c), xp.zeros_like(c)
    rows = {"X": ((one, zero, zero), (zero, c, -s), (zero, s, c)),
            "Y": ((c, zero, s), (zero, one, zero), (-s, zero, c)),
            "Z": ((c, -s, zero), (s, c, zero), (zero, zero, one))}[axis]
    return xp.stack([xp.stack(r, -1) for r in rows], -2)


def euler_matrix(angles_rad, order: str, xp=None):
    """Rotation matrices (..., 3, 3) for Blender Euler angles (..., 3) in ``order``.

    Blender's order names the axes in the order they are applied: 'XYZ' is Rz @ Ry @ Rx.
    """
    xp = xp or _ns(angles_rad)
    c, s = xp.cos(angles_rad), xp.sin(angles_rad)
    mats = {ax: _axis_rotation(ax, c[..., i], s[..., i], xp) for i, ax in enumerate("XYZ")}
    return mats[order[2]] @ mats[order[1]] @ mats[order[0]]


def _quaternion_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], -1)


def euler_quaternions(angles_rad, order: str = "XYZ") -> np.ndarray:
    """Unit quaternions (N, 4; w, x, y, z) of Blender Euler angles (N, 3) in ``order`` (as
    :func:`euler_matrix`: 'XYZ' is Rz @ Ry @ Rx), signs chosen so that consecutive rows stay on
    the same side (as mathutils' ``make_compatible``: keyed and interpolated they take the short
    way). Rows with NaN stay NaN and do not break the chain."""
    a = np.asarray(angles_rad, np.float64)
    half = {ax: a[:, i] / 2 for i, ax in enumerate("XYZ")}
    unit = {"X": 1, "Y": 2, "Z": 3}

    def axis(ax):
        q = np.zeros((len(a), 4))
        q[:, 0], q[:, unit[ax]] = np.cos(half[ax]), np.sin(half[ax])
        return q

    q = _quaternion_product(axis(order[2]), _quaternion_product(axis(order[1]), axis(order[0])))
    ok = np.flatnonzero(np.isfinite(q).all(1))
    if len(ok) > 1:
        flips = np.cumprod(np.where((q[ok[1:]] * q[ok[:-1]]).sum(1) < 0, -1.0, 1.0))
        q[ok[1:]] *= flips[:, None]
    return q


def _pose_matrices(rig: Rig, local, xp, bones=None):
    """Blender's pose chain: pose = parent_pose @ (parent_rest^-1 @ rest) @ T(loc) R(rot) S(scale).

    ``local`` holds the bones ``bones`` (default all), a set closed under taking parents."""
    b = local.shape[1]
    bones = np.arange(len(rig.bone_names)) if bones is None else np.asarray(bones)
    modes = [rig.bone_rotation_modes[i] for i in bones]
    loc, rot, scale = local[..., 0:3], local[..., 3:6] * (math.pi / 180.0), local[..., 6:9]
    rmats = [(mode, euler_matrix(rot, mode, xp)) for mode in sorted(set(modes))]
    if len(rmats) == 1:
        rmat = rmats[0][1]
    else:
        sel = np.array([[m == mode for m in modes] for mode, _ in rmats], float)
        rmat = sum(r * xp.asarray(sel[k][None, :, None, None], r) for k, (_, r) in enumerate(rmats))
    rs = rmat * scale[..., None, :]  # R @ diag(S)
    # relative rest offset: translation head - parent_head (all rest rotations are identity)
    parents = rig.bone_parents[bones]
    heads = rig.bone_heads[bones]
    offset = heads - np.where(parents[:, None] >= 0, rig.bone_heads[parents], 0.0)
    t = loc + xp.asarray(offset, local)
    bottom = xp.cat([xp.zeros_like(t), xp.ones_like(t[..., :1])], -1)[..., None, :]  # (N, B, 1, 4) [0 0 0 1]
    local_m = xp.cat([xp.cat([rs, t[..., None]], -1), bottom], -2)  # (N, B, 4, 4)
    position = {int(bone): k for k, bone in enumerate(bones)}
    out = {}
    for level in _levels(rig):
        for i in level:
            k = position.get(int(i))
            if k is None:
                continue
            p = rig.bone_parents[i]
            if p >= 0 and int(p) not in position:
                raise ValueError(f"bone {rig.bone_names[i]!r} is evaluated without its parent "
                                 f"{rig.bone_names[p]!r}")
            out[k] = local_m[:, k] if p < 0 else out[position[int(p)]] @ local_m[:, k]
    return xp.stack([out[k] for k in range(b)], 1)


def _levels(rig: Rig) -> list[list[int]]:
    depth = np.zeros(len(rig.bone_names), int)
    for i, p in enumerate(rig.bone_parents):
        depth[i] = 0 if p < 0 else depth[p] + 1
    return [list(np.flatnonzero(depth == d)) for d in range(depth.max() + 1)]


def auto_lod(size: int) -> int:
    """The level of detail that renders ``size`` px images like the full mesh, cheapest first."""
    return next(k for k, least in enumerate(LOD_AUTO_SIZES) if size >= least)
