"""Deterministic numpy generation of the built-in face mesh (BDFM).

Input: the spec's ``[mesh]`` table and the bone heads (the geometry is placed from them, so
each fact lives in one place). Output: vertices, triangles, a region per triangle, skin
weights per bone name, the 68 iBUG landmark vertices, and the generated brow-style bones and
their one-hot tables.

The skin is one surface over a cylindrical grid (rings of constant height, columns of
constant angle around the vertical axis; dense at the face). Eye openings are cut from it and
their rims snapped onto almond curves on spheres around the eyes, so rotating a lid bone about
the eye centre slides the rim over the eyeball. The mouth is a slit along one ring: the upper
and lower lip rims are separate vertices that touch at rest.
"""
from __future__ import annotations

import math

import numpy as np

SEGMENTS = ("inner", "mid", "outer")
BROW_STYLE_HIDE_DEPTH = 0.006  # style bones sit this far behind the brow, inside the head


# --- levels of detail -----------------------------------------------------------------------
def coarsen(mesh: dict, factor: float) -> dict:
    """The ``[mesh]`` table of a coarser render level of detail of the same face.

    Every resolution is divided by ``factor``: the skin grid's rings and columns, the crown cap
    and the eyeballs, ears, brows, mouth cavity and teeth (through ``detail``). Shapes, feature
    placement and weights follow from the same functions, so the coarse mesh is the same face
    sampled more sparsely. The skin keeps its dense share at the eyes and the mouth.
    """
    if not factor >= 1:
        raise ValueError(f"LOD factor must be >= 1, got {factor}")
    m = dict(mesh)
    m["rings"] = max(40, int(round(mesh["rings"] / factor)))
    m["columns"] = max(40, 2 * int(round(mesh["columns"] / factor / 2)))
    m["detail"] = float(mesh.get("detail", 1.0)) / factor
    return m


def _res(m, n: int, lo: int) -> int:
    """A part's resolution ``n`` at the table's level of detail (exactly ``n`` at full detail)."""
    d = float(m.get("detail", 1.0))
    return n if d == 1.0 else max(lo, int(round(n * d)))


# --- small numeric helpers -------------------------------------------------------------
def smoothstep(e0, e1, x):
    t = np.clip((np.asarray(x, float) - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def gauss(p, center, radius, cut=3.0):
    """Gaussian falloff with compact support: exactly 0 beyond ``cut`` radii."""
    d = (np.asarray(p) - np.asarray(center)) / np.asarray(radius)
    floor = math.exp(-0.5 * cut * cut)
    return np.maximum(np.exp(-0.5 * (d * d).sum(-1)) - floor, 0.0) / (1 - floor)


def side_mask(p, sign):
    """1 on the given side of the midline (sign +1: subject's left, x > 0), 0 across it."""
    return smoothstep(0.0, 0.004, np.asarray(p)[..., 0] * sign)


def smooth_max(a, b, k):
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return a * (1 - h) + b * h + k * h * (1 - h)


def hats(x, knots):
    """Partition of unity of piecewise-linear hat functions over sorted knots, clamped at ends."""
    x = np.clip(np.asarray(x, float), knots[0], knots[-1])
    out = np.zeros(x.shape + (len(knots),))
    for k in range(len(knots)):
        e = np.zeros(len(knots))
        e[k] = 1.0
        out[..., k] = np.interp(x, knots, e)
    return out


def density_samples(lo, hi, n, density):
    """n sample positions in [lo, hi] spaced inversely to density(x)."""
    x = np.linspace(lo, hi, 4001)
    c = np.concatenate([[0.0], np.cumsum(0.5 * (density(x[1:]) + density(x[:-1])) * np.diff(x))])
    return np.interp(np.linspace(0, c[-1], n), c, x)


class _Parts:
    """Accumulates mesh parts: vertices, triangles, regions and per-bone weights."""

    def __init__(self, regions):
        self.regions = {r: i for i, r in enumerate(regions)}
        self.verts, self.faces, self.face_regions, self.weights = [], [], [], []
        self.count = 0

    def add(self, verts, faces, face_regions, weights: dict) -> int:
        start = self.count
        self.verts.append(np.asarray(verts, float))
        self.faces.append(np.asarray(faces, np.int64) + start)
        fr = np.atleast_1d(np.asarray(face_regions))
        if fr.dtype.kind in "US":
            fr = np.array([self.regions[r] for r in fr])
        self.face_regions.append(np.broadcast_to(fr, (len(faces),)).astype(np.int64))
        self.weights.append((start, len(verts), weights))
        self.count += len(verts)
        return start

    def weight_arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for start, n, w in self.weights:
            for bone, val in w.items():
                arr = out.setdefault(bone, np.zeros(self.count))
                arr[start:start + n] += np.broadcast_to(val, (n,))
        return out


# --- the skin surface ------------------------------------------------------------------
class Skin:
    """Radius of the skin by height z and angle phi (0 = front, + toward the subject's left)."""

    def __init__(self, m: dict, heads: dict):
        self.m, self.h = m, heads
        self.R = m["face_radius"]
        zs = np.linspace(m["profile_z"][0], m["profile_z"][-1], 2001)
        k = np.exp(-0.5 * (np.arange(-150, 151) * (zs[1] - zs[0]) / 0.006) ** 2)
        k /= k.sum()

        def smooth(vals):
            v = np.interp(zs, m["profile_z"], vals)
            pad = np.concatenate([np.full(150, v[0]), v, np.full(150, v[-1])])
            return np.convolve(pad, k, "valid")

        self.zs = zs
        self.prof = {key: smooth(m[f"profile_{key}"]) for key in ("a", "bf", "bb")}
        self.z_round = m["profile_z"][-1]
        self.z_m = heads["mouth"][2]
        self.eyes = [(np.asarray(heads["eye.L"]), 1.0), (np.asarray(heads["eye.R"]), -1.0)]

    def section(self, z):
        """Half-width and front/back depth at height(s) z (rounded cap above the profile)."""
        z = np.asarray(z, float)
        zc = np.minimum(z, self.z_round)
        a, bf, bb = (np.interp(zc, self.zs, self.prof[k]) for k in ("a", "bf", "bb"))
        cap = np.clip((z - self.z_round) / (self.m["crown_z"] - self.z_round), 0, 1)
        f = np.sqrt(np.maximum(1 - cap ** 2, 0))
        return a * f, bf * f, bb * f

    def base(self, z, phi):
        a, bf, bb = self.section(z)
        b = np.where(np.cos(phi) > 0, bf, bb)
        return 1.0 / np.sqrt((np.sin(phi) / np.maximum(a, 1e-9)) ** 2 + (np.cos(phi) / np.maximum(b, 1e-9)) ** 2)

    def nose_amp(self, u, z):
        tip = self.h["nose_tip"]
        zt = tip[2]
        zk = [zt + 0.053, zt + 0.041, zt + 0.021, zt + 0.006, zt, zt - 0.006, zt - 0.013]
        hk = [0.0, 0.006, 0.012, 0.0205, 0.0225, 0.016, 0.0]
        wk = [0.0060, 0.0058, 0.0062, 0.0078, 0.0088, 0.0098, 0.0100]
        hz = np.interp(z, zk[::-1], hk[::-1], left=0, right=0)
        wz = np.interp(z, zk[::-1], wk[::-1])
        nos = self.h["nostril.L"]
        wing = 0.0065 * sum(np.exp(-0.5 * (((u - s * nos[0]) / 0.0052) ** 2 + ((z - nos[2]) / 0.0048) ** 2))
                            for s in (1, -1))
        return hz * np.exp(-0.5 * (u / wz) ** 2) + wing

    def lip_heights(self, u):
        m, W = self.m, self.m["mouth_half_width"]
        t = np.clip(1 - (u / W) ** 2, 0, 1)
        bow = 1 - 0.16 * np.exp(-0.5 * (u / 0.0025) ** 2) + 0.08 * np.exp(-0.5 * ((np.abs(u) - 0.006) / 0.0025) ** 2)
        return m["lip_height_upper"] * t ** 0.55 * bow, m["lip_height_lower"] * t ** 0.5

    def features(self, u, z):
        """Radial displacement of the facial features (arc length u, height z)."""
        g = lambda cu, cz, su, sz: np.exp(-0.5 * (((u - cu) / su) ** 2 + ((z - cz) / sz) ** 2))
        zm = self.z_m
        e = self.h["eye.L"]
        eu = math.atan2(e[0], -e[1]) * self.R
        d = 0.0045 * g(0, self.h["brow_mid.L"][2] - 0.004, 0.036, 0.008)  # brow ridge
        d = d - 0.0075 * (g(eu, e[2], 0.015, 0.012) + g(-eu, e[2], 0.015, 0.012))  # eye sockets
        d = d + self.nose_amp(u, z)
        ch = self.h["cheek.L"]
        cu = math.atan2(ch[0], -ch[1]) * self.R
        d = d + 0.005 * (g(cu, ch[2] + 0.01, 0.017, 0.017) + g(-cu, ch[2] + 0.01, 0.017, 0.017))
        d = d + 0.0065 * g(0, zm, 0.028, 0.02)  # muzzle
        hu, hl = self.lip_heights(u)
        W = self.m["mouth_half_width"]
        lipw = np.clip(1 - (u / (W * 1.05)) ** 2, 0, 1) ** 0.7
        d = d + 0.0048 * lipw * np.exp(-0.5 * ((z - zm - 0.55 * hu) / (0.42 * hu + 1e-4)) ** 2)
        d = d + 0.0058 * lipw * np.exp(-0.5 * ((z - zm + 0.5 * hl) / (0.45 * hl + 1e-4)) ** 2)
        d = d - 0.0012 * lipw * np.exp(-0.5 * ((z - zm) / 0.0012) ** 2)  # lips meet
        d = d - 0.0025 * g(0, zm - 0.019, 0.02, 0.0045)  # mentolabial sulcus
        chin = self.h["chin"]
        d = d + 0.0065 * g(0, chin[2] + 0.002, 0.017, 0.012)
        return d

    def hairline(self, phi):
        return np.interp(np.degrees(np.abs(phi)), self.m["hairline_angle"], self.m["hairline_z"])

    def hairline_angle(self, z):
        """The inverse of :meth:`hairline`: the angle (radians, >= 0) where the line is at height
        ``z`` (it falls monotonically toward the back)."""
        return np.radians(np.interp(z, self.m["hairline_z"][::-1], self.m["hairline_angle"][::-1]))

    def rho(self, z, phi, with_eyes=True):
        z, phi = np.broadcast_arrays(np.asarray(z, float), np.asarray(phi, float))
        r = self.base(z, phi) + self.features(phi * self.R, z)
        r = r + self.m["hair_offset"] * smoothstep(0.0, 0.008, z - self.hairline(phi))
        if with_eyes:
            for e, _ in self.eyes:
                r = smooth_max(r, self.bulge_rho(z, phi, e), 0.0015)
        return r

    def bulge_rho(self, z, phi, e):
        R = self.m["eye_bulge_radius"]
        d = np.stack([np.sin(phi), -np.cos(phi), np.zeros_like(phi)], -1)
        q = np.stack([-e[0] + 0 * z, -e[1] + 0 * z, z - e[2]], -1)
        b = (d * q).sum(-1)
        disc = b * b - (q * q).sum(-1) + R * R
        return np.where(disc > 0, -b + np.sqrt(np.maximum(disc, 0)), -1.0)

    def point(self, z, phi, rho=None):
        rho = self.rho(z, phi) if rho is None else rho
        return np.stack([rho * np.sin(phi), -rho * np.cos(phi), z + 0 * rho], -1)

    def project_xz(self, x, z, offset=0.0):
        """Point on the skin (plus an outward offset) in front of the face at (x, z)."""
        phi = np.arcsin(np.clip(x / 0.09, -1, 1))
        for _ in range(8):
            phi = np.arcsin(np.clip(x / self.rho(z, phi), -1, 1))
        rho = self.rho(z, phi) + offset
        return self.point(z, phi, rho)


# --- eyes: chart around an eye centre ------------------------------------------------------
class EyeChart:
    """Chart on the sphere around an eye: s = lateral offset, t = angle in the eye's YZ plane."""

    def __init__(self, m, center, side):
        self.c, self.side = np.asarray(center), side
        self.R = m["eye_bulge_radius"]
        self.S = self.R * math.sin(math.radians(m["lid_width"]))
        self.Tu, self.Tl = math.radians(m["lid_top"]), math.radians(m["lid_bottom"])
        self.k = math.radians(m["canthal_tilt"])

    def chart(self, p):
        d = np.asarray(p) - self.c
        sigma = d[..., 0] * self.side / self.S
        t = np.arctan2(d[..., 2], -d[..., 1])
        return sigma, t, np.linalg.norm(d, axis=-1), d[..., 1]

    def t_up(self, sigma):
        return self.Tu * np.clip(1 - sigma ** 2, 0, 1) ** 0.7 + self.k * sigma

    def t_low(self, sigma):
        return -self.Tl * np.clip(1 - sigma ** 2, 0, 1) ** 0.85 + self.k * sigma

    def inside(self, p):
        sigma, t, r, dy = self.chart(p)
        return (np.abs(sigma) < 1) & (t > self.t_low(sigma)) & (t < self.t_up(sigma)) & (dy < 0) & (r < 1.4 * self.R)

    def rim_point(self, sigma, upper):
        sigma = np.clip(sigma, -1, 1)
        t = np.where(upper, self.t_up(sigma), self.t_low(sigma))
        s = sigma * self.S
        c = np.sqrt(np.maximum(self.R ** 2 - s ** 2, 0))
        return self.c + np.stack([s * self.side, -c * np.cos(t), c * np.sin(t)], -1)


def upper_lid_edge_weight(chart: EyeChart, sigma, close_angle):
    """Weight on the upper lid bone that brings the rim at sigma onto the lower rim when
    the bone turns by close_angle (linear blend skinning moves along the chord)."""
    t1, t3 = chart.t_up(sigma), chart.t_low(sigma)
    t2 = t1 - close_angle
    a, b = np.sin(t3 - t1), np.sin(t3 - t2)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(np.abs(a - b) > 1e-9, a / (a - b), 0.0)
    return np.clip(w, 0, 1)


# --- generation ------------------------------------------------------------------------------
def generate(spec: dict, heads: dict) -> dict:
    m = spec["mesh"]
    heads = {k: np.asarray(v, float) for k, v in heads.items()}
    skin = Skin(m, heads)
    parts = _Parts(spec["regions"])
    extra_bones, tables = _brow_style_bones(m, heads)

    grid = _skin_grid(m, skin, heads, spec)
    parts.add(grid["verts"], grid["faces"], grid["regions"], grid["weights"])
    for side, s in (("L", 1.0), ("R", -1.0)):
        _add_eyeball(parts, m, heads[f"eye.{side}"], f"eye.{side}")
        _add_ear(parts, m, heads[f"ear.{side}"], s, f"ear.{side}")
        _add_brows(parts, m, skin, heads, side, s)
    _add_mouth_inside(parts, m, heads)

    return {"vertices": np.concatenate(parts.verts), "faces": np.concatenate(parts.faces),
            "face_regions": np.concatenate(parts.face_regions), "weights": parts.weight_arrays(),
            "landmarks": grid["landmarks"], "bones": extra_bones, "tables": tables}


def _brow_style_bones(m, heads):
    bones, table = [], {}
    for style in m["brow_style"]:
        rows = {}
        for side in ("L", "R"):
            for seg in SEGMENTS:
                parent = f"brow_{seg}.{side}"
                name = f"brow_{style['name']}_{seg}.{side}"
                head = heads[parent] + np.array([0.0, BROW_STYLE_HIDE_DEPTH, 0.0])
                bones.append({"name": name, "parent": parent, "head": head.tolist(), "length": 0.004,
                              "base_scale": [0.0, 0.0, 0.0]})
                rows[name] = {"scale": [1.0, 1.0, 1.0]}
        table[f"brow_{style['name']}"] = rows
    return bones, {"brow_style": table}


def _skin_grid(m, skin: Skin, heads, spec):
    zm = skin.z_m
    e_z = heads["eye.L"][2]
    # rings: bottom (neck) to the rounded crown, denser at eyes, mouth and over the face
    n_cap = _res(m, 14, 5)
    dens = lambda z: (1 + 2.4 * np.exp(-0.5 * ((z - e_z) / 0.012) ** 2) + 2.2 * np.exp(-0.5 * ((z - zm) / 0.014) ** 2)
                      + 1.5 * smoothstep(-0.15, -0.12, z) * (1 - smoothstep(0.05, 0.08, z)))
    z_low = density_samples(m["neck_z"], skin.z_round, m["rings"] - n_cap, dens)
    z_low[np.argmin(np.abs(z_low - zm))] = zm
    th = np.linspace(0, math.pi / 2, n_cap + 2)[1:-1]
    z_cap = skin.z_round + (m["crown_z"] - skin.z_round) * np.sin(th)
    zs = np.concatenate([z_low, z_cap])
    r_m = int(np.argmin(np.abs(zs - zm)))
    # columns: symmetric ring, dense at the front
    half = density_samples(0, math.pi, m["columns"] // 2 + 1, lambda p: 1 + 3.2 * np.exp(-0.5 * (p / 0.55) ** 2))
    phis = np.concatenate([half, -half[-2:0:-1]])
    nr, nc = len(zs), len(phis)
    mirror_col = (-np.arange(nc)) % nc

    Z, PHI = np.meshgrid(zs, phis, indexing="ij")
    on_line = _follow_hairline(skin, zs, phis, Z, PHI, r_m)
    on_lip_line = _follow_lip_lines(skin, zs, phis, Z, PHI, r_m)
    verts = skin.point(Z, PHI).reshape(-1, 3)
    ring = np.repeat(np.arange(nr), nc)
    col = np.tile(np.arange(nc), nr)
    # crown pole
    pole = len(verts)
    verts = np.vstack([verts, [[0.0, 0.0, m["crown_z"] - 1e-6]]])

    # quads -> triangles
    r, c = np.meshgrid(np.arange(nr - 1), np.arange(nc), indexing="ij")
    a, b = r * nc + c, r * nc + (c + 1) % nc
    a2, b2 = a + nc, b + nc
    # split the quads along mirrored diagonals on the two halves so the mesh stays symmetric; a
    # quad the hairline or a lip's border crosses corner to corner is split along it
    right = (c >= nc // 2)
    flat_line = (on_line | on_lip_line).reshape(-1)
    right = np.where(flat_line[a2] & flat_line[b], True, np.where(flat_line[a] & flat_line[b2], False, right))
    t1 = np.where(right[..., None], np.stack([a, b, a2], -1), np.stack([a, b, b2], -1))
    t2 = np.where(right[..., None], np.stack([b, b2, a2], -1), np.stack([a, b2, a2], -1))
    faces = np.concatenate([t1.reshape(-1, 3), t2.reshape(-1, 3)])
    top = (nr - 1) * nc
    faces = np.vstack([faces, np.stack([top + np.arange(nc), top + (np.arange(nc) + 1) % nc,
                                        np.full(nc, pole)], -1)])

    # mouth slit: duplicate the mouth-line vertices between the corners for the lower lip
    W = m["mouth_half_width"]
    u_cols = phis * skin.R
    slit_cols = np.flatnonzero(np.abs(u_cols) < W)
    left_corner = int(slit_cols[phis[slit_cols] > 0].max()) + 1  # first column past the slit, subject's left
    corner_cols = [int(mirror_col[left_corner]), left_corner]
    lower_copy = {}
    for cc in slit_cols:
        lower_copy[r_m * nc + cc] = len(verts)
        verts = np.vstack([verts, verts[r_m * nc + cc]])
    is_lower_face = np.zeros(len(faces), bool)
    nq = (nr - 1) * nc
    is_lower_face[:nq] = (r.reshape(-1) == r_m - 1)
    is_lower_face[nq:2 * nq] = (r.reshape(-1) == r_m - 1)
    for f in np.flatnonzero(is_lower_face):
        faces[f] = [lower_copy.get(int(v), int(v)) for v in faces[f]]
    n_orig = nr * nc + 1
    lower_flag = np.zeros(len(verts), bool)
    lower_flag[n_orig:] = True
    grid_ring = np.concatenate([ring, [nr], np.full(len(lower_copy), r_m)])
    grid_col = np.concatenate([col, [0], [v % nc for v in lower_copy]])

    # eye openings: cut, then snap the rims onto the almond curves
    charts = {s: EyeChart(m, heads[f"eye.{s}"], sgn) for s, sgn in (("L", 1.0), ("R", -1.0))}
    keep = np.ones(len(faces), bool)
    for ch in charts.values():
        keep &= ~ch.inside(verts[faces].mean(1))
    removed = faces[~keep]
    faces = faces[keep]
    rim = np.zeros(len(verts), bool)
    rim[np.intersect1d(np.unique(removed), np.unique(faces))] = True
    rim_upper = np.zeros(len(verts), bool)
    rim_eye = np.full(len(verts), "", dtype=object)
    for s, ch in charts.items():
        sigma, t, rad, dy = ch.chart(verts)
        near = (rad < 1.6 * ch.R) & (dy < 0)
        snap = near & (rim | ch.inside(verts))
        upper = t > 0.5 * (ch.t_up(sigma) + ch.t_low(sigma))
        verts[snap] = ch.rim_point(sigma[snap], upper[snap])
        rim_upper[snap] = upper[snap]
        rim_eye[snap] = s
        rim[snap] = True
    n_cut = len(verts)
    verts, faces = _refine_near_eyes(m, charts, verts, faces)
    more = len(verts) - n_cut  # new vertices come last: the grid's, the rims' and the landmarks' keep their index
    lower_flag = np.concatenate([lower_flag, np.zeros(more, bool)])
    rim_eye = np.concatenate([rim_eye, np.full(more, "", dtype=object)])
    rim_upper = np.concatenate([rim_upper, np.zeros(more, bool)])
    used = np.zeros(len(verts), bool)
    used[faces] = True

    line = np.zeros(len(verts), bool)
    line[:nr * nc] = on_line.reshape(-1)
    lip_line = np.zeros(len(verts), bool)
    lip_line[:nr * nc] = on_lip_line.reshape(-1)
    regions = _skin_regions(m, skin, charts, verts, faces, zm, line, lip_line)
    weights = _skin_weights(m, skin, charts, heads, verts, lower_flag, zm, spec)
    lms = _landmarks(m, skin, charts, heads, verts, grid_ring, grid_col, nc, mirror_col, r_m, slit_cols,
                     corner_cols, lower_copy, rim_eye, rim_upper, used, zs, phis)
    return {"verts": verts, "faces": faces, "regions": regions, "weights": weights, "landmarks": lms}


def _refine_near_eyes(m, charts, verts, faces):
    """The skin round the eye openings split into finer triangles, ``eye_refine`` times (once less
    at a coarser level of detail): the lids' and the lash line's regions are decided per triangle
    of a grid that does not follow the eye's rim, so on the grid's own triangles their borders
    zigzag (and a closing lid shows its lash band as dark teeth). Each round splits every triangle
    round an eye in four at its edges' midpoints, and a neighbour that shares one split edge in
    two (one that shares more is split in four too): no crack, no T-junction. A midpoint on the
    opening's rim goes onto the rim's almond curve. New vertices are appended."""
    rounds = int(m.get("eye_refine", 2)) - (1 if float(m.get("detail", 1.0)) < 1.0 else 0)
    for _ in range(max(rounds, 0)):
        cen = verts[faces].mean(1)
        mark = np.zeros(len(faces), bool)
        for ch in charts.values():
            sigma, t, rad, dy = ch.chart(cen)
            mark |= ((rad < 1.5 * ch.R) & (dy < 0) & (np.abs(sigma) < 1.3)
                     & (t > ch.t_low(sigma) - math.radians(14)) & (t < ch.t_up(sigma) + math.radians(24)))
        verts, faces = _split_faces(verts, faces, mark, charts)
    return verts, faces


def _split_faces(verts, faces, mark, charts):
    """Split the ``mark``ed triangles in four and close the split (see :func:`_refine_near_eyes`)."""
    edges = np.sort(np.stack([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], 1), 2)
    uniq, inv, uses = np.unique(edges.reshape(-1, 2), axis=0, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1, 3)  # (F, 3): edge k of a face runs from its corner k to corner k + 1
    red = mark.copy()
    while True:
        split = np.zeros(len(uniq), bool)
        split[inv[red].ravel()] = True
        count = split[inv].sum(1)
        grow = ~red & (count >= 2)
        if not grow.any():
            break
        red |= grow
    ids = np.flatnonzero(split)
    if not len(ids):
        return verts, faces
    p = 0.5 * (verts[uniq[ids, 0]] + verts[uniq[ids, 1]])
    on_rim = uses[ids] == 1  # an edge of one triangle: an eye opening's rim, onto its curve
    for ch in charts.values():
        sigma, t, rad, dy = ch.chart(p)
        sel = on_rim & (rad < 1.6 * ch.R) & (dy < 0)
        upper = t > 0.5 * (ch.t_up(sigma) + ch.t_low(sigma))
        p[sel] = ch.rim_point(sigma[sel], upper[sel])
    mid = np.full(len(uniq), -1)
    mid[ids] = len(verts) + np.arange(len(ids))
    m = mid[inv]
    a, b, c = faces.T
    ab, bc, ca = m.T
    out = [faces[~red & (count == 0)]]
    out += [np.stack(t, 1)[red] for t in ((a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca))]
    green = ~red & (count == 1)
    for k in range(3):
        g = green & (m[:, k] >= 0)
        x, y, o = faces[:, k], faces[:, (k + 1) % 3], faces[:, (k + 2) % 3]
        out += [np.stack([x, m[:, k], o], 1)[g], np.stack([m[:, k], y, o], 1)[g]]
    return np.vstack([verts, p]), np.concatenate(out).astype(np.int64)


def _follow_lip_lines(skin: Skin, zs, phis, Z, PHI, r_m):
    """Bend the grid onto the lips' outer borders; return which grid vertices lie on them.

    In every column between the mouth corners, the ring above the mouth line nearest the upper
    lip's border moves onto it, and the ring below nearest the lower lip's. Toward a corner, where
    a border falls to the mouth line over less than a column, the vertices of the rings in between
    slide sideways onto it, each in the nearer of the two columns (as along the hairline): the
    lips' outline is a smooth curve, not steps, and their landmarks lie on it.
    """
    W = skin.m["mouth_half_width"]
    u = phis * skin.R
    cols = np.flatnonzero(np.abs(u) < W)
    on = np.zeros(Z.shape, bool)
    outer = np.linspace(0.3 * W, W, 200)  # where the borders fall monotonically to the corners
    for which, sgn in ((0, 1.0), (1, -1.0)):
        h = skin.lip_heights(u[cols])[which]
        cand = np.abs(zs[:, None] - (skin.z_m + sgn * h)[None, :])
        cand[(zs - skin.z_m) * sgn <= 0] = np.inf  # on its own side of the mouth line
        rows = np.argmin(cand, 0)
        Z[rows, cols] = skin.z_m + sgn * h
        on[rows, cols] = True
        row_of = dict(zip(cols.tolist(), rows.tolist()))
        h_out = skin.lip_heights(outer)[which]
        for c in range(len(phis)):
            c2 = (c + 1) % len(phis)
            if (c not in row_of and c2 not in row_of) or np.sign(phis[c]) * np.sign(phis[c2]) < 0:
                continue
            # past a corner the border is the mouth line
            _slide_onto_line(zs, phis, PHI, on, c, c2, row_of.get(c, r_m), row_of.get(c2, r_m),
                             lambda z: float(np.interp(abs(z - skin.z_m), h_out[::-1], outer[::-1])) / skin.R)
    return on


def _slide_onto_line(zs, phis, PHI, on, c, c2, r1, r2, angle_at) -> None:
    """Where a line crosses more than a ring between neighbouring columns ``c`` and ``c2`` (on
    rings ``r1`` and ``r2``), the vertices of the rings in between slide sideways onto it, each in
    the nearer of the two columns, at the line's angle ``angle_at(z)`` from the front (its side
    taken from the columns')."""
    lo, hi = sorted((int(r1), int(r2)))
    for j in range(lo + 1, hi):
        p = math.copysign(angle_at(zs[j]), phis[c] + phis[c2])
        k = c if abs(p - phis[c]) <= abs(p - phis[c2]) else c2
        PHI[j, k] = p
        on[j, k] = True


def _follow_hairline(skin: Skin, zs, phis, Z, PHI, r_m):
    """Bend the grid onto the hairline; return which grid vertices lie on it.

    In every column the ring nearest the hairline moves onto it. Where the line falls by more than
    a ring between two neighbouring columns (over the temples and behind the ears), the vertices of
    the rings in between slide sideways onto it, each in the nearer of the two columns, so the
    hair / skin border runs along mesh edges: a smooth line, not steps, at every level of detail.
    """
    nc = len(phis)
    hz = skin.hairline(phis)
    cand = np.abs(zs[:, None] - hz[None, :])
    cand[r_m] = np.inf  # (the mouth ring stays on the mouth line)
    rows = np.argmin(cand, 0)
    Z[rows, np.arange(nc)] = hz
    on_line = np.zeros(Z.shape, bool)
    on_line[rows, np.arange(nc)] = True
    for c in range(nc):
        c2 = (c + 1) % nc
        if np.sign(phis[c]) * np.sign(phis[c2]) >= 0:
            _slide_onto_line(zs, phis, PHI, on_line, c, c2, rows[c], rows[c2],
                             lambda z: float(skin.hairline_angle(z)))
    return on_line


def _skin_regions(m, skin: Skin, charts, verts, faces, zm, on_line, on_lip_line):
    cen = verts[faces].mean(1)
    phi = np.arctan2(cen[:, 0], -cen[:, 1])
    u, z = phi * skin.R, cen[:, 2]
    reg = np.full(len(faces), "skin", dtype=object)
    # hair: a triangle with a corner above the hairline and none below (corners on it count as
    # neither), so the border runs along the edges that follow the line
    v_phi = np.arctan2(verts[:, 0], -verts[:, 1])
    side = np.sign(verts[:, 2] - skin.hairline(v_phi))
    side[on_line] = 0
    reg[(side[faces].max(1) > 0) & (side[faces].min(1) >= 0)] = "hair"
    reg[skin.nose_amp(u, z) > 0.0035] = "nose"
    # lips: a triangle with a corner between the lip lines and none outside them (corners on them
    # count as neither), so the lips' borders run along the edges that follow the lines
    v_u = v_phi * skin.R
    hu, hl = skin.lip_heights(v_u)
    inside = (np.abs(v_u) < m["mouth_half_width"]) & (verts[:, 1] < 0)
    inside &= (verts[:, 2] <= zm + hu + 1e-9) & (verts[:, 2] >= zm - hl - 1e-9)
    side = np.where(on_lip_line, 0, np.where(inside, -1, 1))
    reg[(side[faces].max(1) <= 0) & (side[faces].min(1) < 0)] = "lips"
    for ch in charts.values():
        sigma, t, rad, dy = ch.chart(cen)
        near = (rad < 1.35 * ch.R) & (dy < 0) & (np.abs(sigma) < 1.15)
        tu, tl = ch.t_up(sigma), ch.t_low(sigma)
        reg[near & (t > tu) & (t < tu + math.radians(16))] = "lids"
        reg[near & (t < tl) & (t > tl - math.radians(9))] = "lids"
        # the lash line: along the upper rim, thickest over the iris, out to the outer corner
        lash = math.radians(3.0) + math.radians(4.0) * np.clip(1 - (sigma - 0.15) ** 2, 0, 1)
        reg[near & (t > tu - 0.02) & (t < tu + lash) & (sigma > -0.85) & (sigma < 1.0)] = "lashes"
    return reg.astype(str)


def _skin_weights(m, skin: Skin, charts, heads, verts, lower_flag, zm, spec):
    """Skin weights by priority: each family claims a share of what is still unclaimed."""
    z = verts[:, 2]
    phi = np.arctan2(verts[:, 0], -verts[:, 1])
    u = phi * skin.R
    avail = np.ones(len(verts))
    w: dict[str, np.ndarray] = {}

    def claim(total, shares: dict):
        nonlocal avail
        got = np.clip(total, 0, 1) * avail
        for bone, share in shares.items():
            w[bone] = w.get(bone, 0) + got * share
        avail = avail - got

    close = math.radians(_au_rot(spec, "AU43_L", "lid_upper.L")[0] * m["lid_close_fraction"])
    for s, ch in charts.items():
        sigma, t, rad, dy = ch.chart(verts)
        front = 1 - smoothstep(-0.006, 0.008, dy)  # fades out toward the side of the head
        tu, tl = ch.t_up(sigma), ch.t_low(sigma)
        upper = t >= 0.5 * (tu + tl)
        on_lid = (1 - smoothstep(1.06 * ch.R, 1.4 * ch.R, rad)) * front * (np.abs(sigma) < 1)
        w_up = upper_lid_edge_weight(ch, sigma, close) * (1 - smoothstep(math.radians(4), math.radians(26), t - tu))
        w_up *= on_lid * upper
        w_lo = (1 - smoothstep(0, math.radians(22), tl - t)) * np.clip(1 - sigma ** 2, 0, 1) ** 0.5
        w_lo *= on_lid * ~upper
        total = (1 - smoothstep(1.15 * ch.R, 2.5 * ch.R, rad)) * front * side_mask(verts, ch.side)
        with np.errstate(divide="ignore", invalid="ignore"):
            lid_u = np.where(total > 0, np.minimum(w_up, total) / np.maximum(total, 1e-9), 0)
            lid_l = np.where(total > 0, np.minimum(w_lo, total) / np.maximum(total, 1e-9), 0)
        claim(total, {f"lid_upper.{s}": lid_u, f"lid_lower.{s}": lid_l, f"eye_socket.{s}": 1 - lid_u - lid_l})

    # mouth: lateral hats over corner / side / centre bones, upper and lower lip apart
    W = m["mouth_half_width"]
    dz = z - zm
    upper_side = (dz > 0) | ((dz == 0) & ~lower_flag)
    reach = np.where(upper_side, 0.017, 0.02)
    mouth = (1 - smoothstep(1.0, 1.9, np.sqrt((u / (W + 0.006)) ** 2 + (dz / reach) ** 2))) * (np.abs(phi) < 1.2)
    h = hats(u, [-W, -0.012, 0.0, 0.012, W])
    up_sh = {"lip_corner.R": h[:, 0], "lip_upper.R": h[:, 1], "lip_upper": h[:, 2], "lip_upper.L": h[:, 3],
             "lip_corner.L": h[:, 4]}
    # both rims carry the same corner weights, so the slit stays closed at the corners
    lo_sh = {"lip_corner.R": h[:, 0], "lip_lower.R": h[:, 1], "lip_lower": h[:, 2], "lip_lower.L": h[:, 3],
             "lip_corner.L": h[:, 4]}
    claim(mouth * upper_side, up_sh)
    claim(mouth * ~upper_side, lo_sh)

    # nose
    namp = skin.nose_amp(u, z)
    nose_total = smoothstep(0.0006, 0.004, namp) * (z > zm + 0.004)
    tip = gauss(verts, heads["nose_tip"], [0.009, 0.02, 0.008])
    nl = gauss(verts, heads["nostril.L"], [0.006, 0.02, 0.006])
    nr = gauss(verts, heads["nostril.R"], [0.006, 0.02, 0.006])
    tot = np.maximum(tip + nl + nr, 1)
    claim(nose_total, {"nose_tip": tip / tot, "nostril.L": nl / tot, "nostril.R": nr / tot,
                       "nose": 1 - (tip + nl + nr) / tot})

    # brows: footprint around the brow line through the three brow bones
    for s, sgn in (("L", 1.0), ("R", -1.0)):
        hx = np.array([heads[f"brow_{g}.{s}"][0] * sgn for g in SEGMENTS])
        hz = np.array([heads[f"brow_{g}.{s}"][2] for g in SEGMENTS])
        xl = verts[:, 0] * sgn
        lam = (xl - hx[0]) / (hx[2] - hx[0])
        zline = np.polyval(np.polyfit([0, 0.5, 1], hz, 2), np.clip(lam, -0.2, 1.2))
        dzb = z - zline
        foot = ((1 - smoothstep(0.004, 0.022, dzb)) * (1 - smoothstep(0.003, 0.011, -dzb))
                * (1 - smoothstep(1.05, 1.35, lam)) * (1 - smoothstep(-0.05, -0.5, lam)) * (verts[:, 1] < -0.03)
                * side_mask(verts, sgn))
        hb = hats(lam, [0.0, 0.5, 1.0])
        claim(foot, {f"brow_{g}.{s}": hb[:, i] for i, g in enumerate(SEGMENTS)})

    # jaw and lower face (below the mouth line, fading toward the ears and the neck)
    chin = heads["chin"]
    jaw_total = ((1 - smoothstep(zm - 0.026, zm - 0.003, z)) * ~upper_side
                 * (1 - smoothstep(1.05, 1.75, np.abs(phi))) * smoothstep(chin[2] - 0.05, chin[2] - 0.022, z))
    jaw_total = np.maximum(jaw_total, (1 - smoothstep(zm - 0.03, zm - 0.012, z)) * (1 - smoothstep(1.05, 1.75, np.abs(phi)))
                           * smoothstep(chin[2] - 0.05, chin[2] - 0.022, z))
    cg = gauss(verts, chin, [0.016, 0.03, 0.014])
    jl = gauss(verts, heads["jaw_angle.L"], [0.014, 0.022, 0.02])
    jr = gauss(verts, heads["jaw_angle.R"], [0.014, 0.022, 0.02])
    tot = np.maximum(cg + jl + jr, 1)
    claim(jaw_total, {"chin": cg / tot, "jaw_angle.L": jl / tot, "jaw_angle.R": jr / tot,
                      "jaw": 1 - (cg + jl + jr) / tot})

    # soft regions of the upper face and skull
    for bone, radius, strength in (("cheek.{}", [0.016, 0.02, 0.016], 0.9), ("cheekbone.{}", [0.014, 0.02, 0.013], 0.8),
                                   ("temple.{}", [0.016, 0.025, 0.018], 0.8), ("ear.{}", [0.008, 0.012, 0.014], 0.6)):
        for s, sgn in (("L", 1.0), ("R", -1.0)):
            b = bone.format(s)
            claim(strength * gauss(verts, heads[b], radius) * side_mask(verts, sgn), {b: 1.0})
    claim(0.8 * gauss(verts, heads["forehead"], [0.04, 0.035, 0.02]), {"forehead": 1.0})
    claim(smoothstep(-0.115, -0.2, z), {"neck_skin": 1.0})
    w["head"] = w.get("head", 0) + avail
    return w


def _au_rot(spec, channel, bone):
    entry = spec["au"][channel][bone]
    return entry["rot"]


def _add_eyeball(parts: _Parts, m, center, bone):
    R = m["eyeball_radius"]
    pa, ia = math.radians(m["pupil_angle"]), math.radians(m["iris_angle"])
    alphas = np.unique(np.concatenate([np.linspace(0, pa, _res(m, 3, 2)), np.linspace(pa, ia, _res(m, 4, 2)),
                                       np.linspace(ia, math.pi, _res(m, 14, 5))]))[1:]  # pole separate
    nb = _res(m, 28, 12)
    beta = np.linspace(0, 2 * math.pi, nb, endpoint=False)
    A, B = np.meshgrid(alphas, beta, indexing="ij")
    pts = np.stack([np.sin(A) * np.cos(B), -np.cos(A), np.sin(A) * np.sin(B)], -1).reshape(-1, 3)
    verts = np.vstack([[0, -1, 0], pts]) * R + center
    faces, regs = [], []
    na = len(alphas)
    for j in range(nb):
        jn = (j + 1) % nb
        faces.append([0, 1 + j, 1 + jn])
        regs.append("pupil")
    for i in range(na - 1):
        mid = 0.5 * (alphas[i] + alphas[i + 1])
        reg = "pupil" if mid < pa else "iris" if mid < ia else "sclera"
        for j in range(nb):
            jn = (j + 1) % nb
            a, b = 1 + i * nb + j, 1 + i * nb + jn
            faces += [[a, b + nb, b], [a, a + nb, b + nb]]
            regs += [reg, reg]
    parts.add(verts, faces, np.array(regs), {bone: 1.0})


def _ellipsoid(center, radii, n_u=16, n_v=12, rot_z=0.0):
    v = np.linspace(0, math.pi, n_v + 1)[1:-1]
    uu = np.linspace(0, 2 * math.pi, n_u, endpoint=False)
    V, U = np.meshgrid(v, uu, indexing="ij")
    pts = np.stack([np.sin(V) * np.cos(U), np.sin(V) * np.sin(U), np.cos(V)], -1).reshape(-1, 3)
    pts = np.vstack([[0, 0, 1], pts, [0, 0, -1]]) * radii
    c, s = math.cos(rot_z), math.sin(rot_z)
    pts = pts @ np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]]) + center
    faces = [[0, 1 + j, 1 + (j + 1) % n_u] for j in range(n_u)]
    for i in range(n_v - 2):
        for j in range(n_u):
            a, b = 1 + i * n_u + j, 1 + i * n_u + (j + 1) % n_u
            faces += [[a, b + n_u, b], [a, a + n_u, b + n_u]]
    last = len(pts) - 1
    base = 1 + (n_v - 2) * n_u
    faces += [[base + j, last, base + (j + 1) % n_u] for j in range(n_u)]
    return pts, np.array(faces)


def _add_ear(parts: _Parts, m, head, side, bone):
    """An ear: a shell over a tall outline (26 x 15 mm half-axes, the lobe narrower), its outer
    face a rim (the helix) round a hollow bowl (the concha) in front of the middle, its inner face
    flatter, the top leaning back; turned out from the head by ``rot_z``."""
    n_u, n_v = _res(m, 32, 8), _res(m, 22, 6)
    unit, faces = _ellipsoid(np.zeros(3), np.ones(3), n_u, n_v)
    x, y, z = unit.T
    rho = np.sqrt(np.clip(y ** 2 + z ** 2, 0.0, 1.0))  # where the point sits in the outline, 0..1
    edge = np.sqrt(np.clip(1.0 - rho ** 2, 0.0, 1.0)) ** 0.35  # closes the shell at the outline
    rim = np.exp(-(((rho - 0.8) / 0.13) ** 2)) * (1 - 0.6 * smoothstep(-0.2, -0.7, z))  # no rim on the lobe
    bowl = np.exp(-((y + 0.15) ** 2 + (z + 0.05) ** 2) / 0.28)
    h_out = edge * (0.45 + 0.75 * rim - 0.4 * bowl)
    h_in = 0.6 * edge
    lateral = np.where(x >= 0, h_out, -h_in)
    y = y * (1.0 - 0.3 * smoothstep(-0.2, -0.95, z))  # the lobe narrower than the top
    pts = np.stack([lateral * 0.0055, y * 0.015, z * 0.026], -1)
    lean = math.radians(15.0)  # the ear's long axis leans back
    c, s_ = math.cos(lean), math.sin(lean)
    pts = pts @ np.array([[1, 0, 0], [0, c, -s_], [0, s_, c]])
    rz = -0.3 * side
    c, s_ = math.cos(rz), math.sin(rz)
    pts = pts * [side, 1, 1] @ np.array([[c, s_, 0], [-s_, c, 0], [0, 0, 1]])
    if side < 0:
        faces = faces[:, ::-1]  # mirrored: keep the faces' winding outward
    parts.add(pts + head + np.array([0.004 * side, 0.004, 0.0]), faces, "skin", {bone: 1.0})


def _add_brows(parts: _Parts, m, skin: Skin, heads, side, sgn):
    hx = np.array([heads[f"brow_{g}.{side}"][0] for g in SEGMENTS]) * sgn
    hz = np.array([heads[f"brow_{g}.{side}"][2] for g in SEGMENTS])
    coef = np.polyfit([0, 0.5, 1], hz, 2)
    n_along, n_across = _res(m, 26, 10), _res(m, 5, 3)
    for style in m["brow_style"]:
        reach = style.get("reach", 1.0)
        lam = np.linspace(-0.04, reach, n_along)
        x = hx[0] + (hx[2] - hx[0]) * lam
        peak = style.get("peak")
        arch = style["arch"] * (np.interp(lam, [0, peak, reach], [0, 1, 0]) if peak else 4 * lam * (1 - lam))
        zc = np.polyval(coef, lam) + arch
        th = np.interp(lam, [0, 0.5, 1.0], style["thickness"])
        th = th * (1 - smoothstep(reach - 0.25, reach + 0.02, lam)) ** 0.6 * smoothstep(-0.06, 0.06, lam) ** 0.35
        th = np.maximum(th, 0.0004)
        v = np.linspace(-0.5, 0.5, n_across)
        X = np.repeat(x[:, None], n_across, 1) * sgn
        Zs = zc[:, None] + th[:, None] * v[None, :]
        bulge = 0.0009 + 0.0006 * np.cos(math.pi * v)[None, :] * np.ones((n_along, 1))
        pts = skin.project_xz(X.reshape(-1), Zs.reshape(-1), bulge.reshape(-1))
        faces = []
        for i in range(n_along - 1):
            for j in range(n_across - 1):
                a, b = i * n_across + j, i * n_across + j + 1
                faces += [[a, b, b + n_across], [a, b + n_across, a + n_across]]
        hb = hats(np.repeat(lam, n_across), [0.0, 0.5, 1.0])
        weights = {f"brow_{style['name']}_{g}.{side}": hb[:, i] for i, g in enumerate(SEGMENTS)}
        parts.add(pts, faces, "brows", weights)


def _add_mouth_inside(parts: _Parts, m, heads):
    zm = heads["mouth"][2]
    # cavity: an ellipsoid cup open toward the lips; upper half with the head, lower with the jaw
    c = np.array([0.0, heads["mouth"][1] + 0.031, zm - 0.004])
    radii = np.array([0.029, 0.031, 0.019])
    n_u, n_v = _res(m, 24, 12), _res(m, 16, 6)
    av = np.linspace(math.radians(62), math.pi, n_v)[:-1]  # angle from -Y; the front cap is open
    bu = np.linspace(0, 2 * math.pi, n_u, endpoint=False)
    A, B = np.meshgrid(av, bu, indexing="ij")
    pts = np.stack([np.sin(A) * np.cos(B), -np.cos(A), np.sin(A) * np.sin(B)], -1).reshape(-1, 3) * radii + c
    pole = len(pts)  # the back closes on one vertex (a ring of coincident ones shaded as a bright speck)
    pts = np.vstack([pts, c + [0.0, radii[1], 0.0]])
    faces = []
    for i in range(n_v - 2):
        for j in range(n_u):
            a, b = i * n_u + j, i * n_u + (j + 1) % n_u
            faces += [[a, b, b + n_u], [a, b + n_u, a + n_u]]
    last = (n_v - 2) * n_u
    faces += [[last + j, last + (j + 1) % n_u, pole] for j in range(n_u)]
    lower = 1 - smoothstep(zm - 0.006, zm + 0.002, pts[:, 2])
    # its sides go with the lip corners, so a wide smile or a stretch opens onto the cavity, not
    # past its rim into the head (the corners move out some 2 cm, the cup is 3 cm either side)
    side = 0.9 * smoothstep(0.008, radii[0] - 0.003, np.abs(pts[:, 0]))
    parts.add(pts, faces, "mouth_interior", {"jaw": lower * (1 - side), "teeth_upper": (1 - lower) * (1 - side),
                                             "lip_corner.L": side * (pts[:, 0] > 0),
                                             "lip_corner.R": side * (pts[:, 0] < 0)})
    # teeth: two arched bars, upper on the head, lower on the jaw
    for bone, z0, z1, inset in (("teeth_upper", zm - 0.0025, zm + 0.0065, 0.0), ("teeth_lower", zm - 0.0095, zm - 0.0015, 0.0015)):
        hy = heads[bone][1] + inset
        ra = 0.024
        ang = np.linspace(-1.05, 1.05, _res(m, 22, 8))
        prof = [(0.0, z0), (0.0, z1), (0.005, z1), (0.005, z0)]
        pts = []
        for a in ang:
            for dr, zz in prof:
                r = ra - dr
                pts.append([r * math.sin(a), hy + ra - r * math.cos(a), zz])
        faces = []
        for i in range(len(ang) - 1):
            for k in range(4):
                a, b = i * 4 + k, i * 4 + (k + 1) % 4
                faces += [[a, b, b + 4], [a, b + 4, a + 4]]
        parts.add(np.array(pts), faces, "teeth", {bone: 1.0})


# --- landmarks --------------------------------------------------------------------------------
def _landmarks(m, skin: Skin, charts, heads, verts, grid_ring, grid_col, nc, mirror_col, r_m, slit_cols,
               corner_cols, lower_copy, rim_eye, rim_upper, used, zs, phis):
    """The 68 iBUG points as vertex indices; right-side points mirror the left by column."""
    n_grid = len(zs) * nc

    def grid_index(ring, col):
        return int(ring) * nc + int(col)

    def nearest_grid(phi, z, among=None):
        cand = np.flatnonzero(used[:n_grid]) if among is None else among
        pz = verts[cand, 2]
        pp = np.arctan2(verts[cand, 0], -verts[cand, 1])
        d = ((pp - phi) * skin.R) ** 2 + (pz - z) ** 2
        return int(cand[np.argmin(d)])

    def mirror(v):
        if v >= n_grid:  # a lower-lip copy: mirror its original, then take that one's copy
            orig = [k for k, c in lower_copy.items() if c == v][0]
            return lower_copy[grid_index(grid_ring[orig], mirror_col[grid_col[orig]])]
        return grid_index(grid_ring[v], mirror_col[grid_col[v]])

    L = {}
    # jaw contour: left side (subject's left, image right) points 16..9, chin 8
    # (angle around the head, fraction of the way from the ear's height down to 1 cm below the chin)
    contour = [(80, 0.0), (80, 0.164), (79, 0.327), (76, 0.491), (70, 0.645), (60, 0.782), (46, 0.9), (27, 1.0)]
    for k, (pd, f) in enumerate(contour):
        L[16 - k] = nearest_grid(math.radians(pd), f * (heads["chin"][2] - 0.010))
    L[8] = grid_index(int(np.argmin(np.abs(zs - (heads["chin"][2] - 0.017)))), 0)
    # brows on the skin under the brow line, left brow 22 (inner) .. 26 (outer)
    hx = np.array([heads[f"brow_{g}.L"][0] for g in SEGMENTS])
    hz = np.array([heads[f"brow_{g}.L"][2] for g in SEGMENTS])
    coef = np.polyfit([0, 0.5, 1], hz, 2)
    for i, lam in enumerate(np.linspace(0, 1, 5)):
        x = hx[0] + (hx[2] - hx[0]) * lam
        p = skin.project_xz(np.array([x]), np.array([np.polyval(coef, lam)]))[0]
        L[22 + i] = nearest_grid(math.atan2(p[0], -p[1]), p[2])
    # nose bridge 27..29, tip 30 (most forward vertex of the centre column), base 31..35
    for i, zz in enumerate((heads["eye.L"][2] + 0.010, heads["eye.L"][2] - 0.004, heads["nose_tip"][2] + 0.013)):
        L[27 + i] = grid_index(int(np.argmin(np.abs(zs - zz))), 0)
    centre = np.array([grid_index(r, 0) for r in range(len(zs))])
    L[30] = int(centre[np.argmin(verts[centre, 1])])
    nose_base_z = heads["nose_tip"][2] - 0.0125
    L[33] = grid_index(int(np.argmin(np.abs(zs - nose_base_z))), 0)
    L[34] = nearest_grid(0.0065 / skin.R, nose_base_z + 0.002)
    L[35] = nearest_grid(0.0125 / skin.R, nose_base_z + 0.005)
    # left eye: 42 inner corner, 43-44 upper lid, 45 outer corner, 46-47 lower lid
    ch = charts["L"]
    rim_l = np.flatnonzero((rim_eye == "L") & used)
    sig = ch.chart(verts[rim_l])[0]

    def rim_at(s, upper):
        sel = rim_l[rim_upper[rim_l] == upper]
        ss = ch.chart(verts[sel])[0]
        return int(sel[np.argmin(np.abs(ss - s))])

    L[42] = int(rim_l[np.argmin(sig)])
    L[45] = int(rim_l[np.argmax(sig)])
    L[43], L[44] = rim_at(-0.4, True), rim_at(0.35, True)
    L[46], L[47] = rim_at(0.35, False), rim_at(-0.4, False)
    # mouth, left half: 54 outer corner, 52-53 upper border, 51 top centre, 55-56 lower border, 57 bottom
    zm = skin.z_m
    W = m["mouth_half_width"]
    cc = corner_cols[1]
    L[54] = grid_index(r_m, (cc + 1) % nc)
    L[64] = grid_index(r_m, cc)
    hu, hl = skin.lip_heights(np.array([0.0, 0.22 * W, 0.6 * W]))
    L[51] = nearest_grid(0.0, zm + hu[0])
    L[52] = nearest_grid(0.22 * W / skin.R, zm + hu[1])
    L[53] = nearest_grid(0.6 * W / skin.R, zm + hu[2])
    L[57] = nearest_grid(0.0, zm - hl[0])
    L[56] = nearest_grid(0.25 * W / skin.R, zm - hl[1])
    L[55] = nearest_grid(0.6 * W / skin.R, zm - hl[2])
    col_in = int(slit_cols[np.argmin(np.abs(phis[slit_cols] * skin.R - 0.45 * W))])
    L[62] = grid_index(r_m, 0)
    L[63] = grid_index(r_m, col_in)
    L[66] = lower_copy[grid_index(r_m, 0)]
    L[65] = lower_copy[grid_index(r_m, col_in)]
    # right side by mirroring
    pairs = {0: 16, 1: 15, 2: 14, 3: 13, 4: 12, 5: 11, 6: 10, 7: 9, 17: 26, 18: 25, 19: 24, 20: 23, 21: 22,
             31: 35, 32: 34, 36: 45, 37: 44, 38: 43, 39: 42, 40: 47, 41: 46, 48: 54, 49: 53, 50: 52,
             59: 55, 58: 56, 60: 64, 61: 63, 67: 65}
    for r, l in pairs.items():
        L[r] = mirror(L[l])
    assert sorted(L) == list(range(68)), sorted(set(range(68)) - set(L))
    return np.array([L[i] for i in range(68)])
