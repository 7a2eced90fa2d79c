"""Read and validate a rig spec (TOML in ``rigs/``) and assemble a :class:`core.rig.Rig`.

Spec tables (see rigs/bdfm.toml for the built-in face):

- ``name``, ``format``, ``generator`` (module in ``rigs/`` with ``generate(spec) -> dict``)
- ``regions`` and ``[region_colors]``
- ``[camera]`` and ``[[light]]``
- ``[[bone]]``: name, parent, head, length, rotation_mode, base_scale
- ``[pose.<channel>]``, ``[au.<channel>]``: ``"<bone>" = {loc, rot, scale}`` offsets per unit /
  at full intensity; ``mirror = true`` adds the mirrored ``.R`` entry of every ``.L`` bone;
  ``mirror_of = "<channel>"`` copies another channel mirrored left/right.
- ``[identity.<slider>]``: ``at1`` (and optionally ``at0``, default ``-at1``) tables at slider
  values 1 and 0; 0.5 is the base face. ``mirror`` as above.
- ``[[meet]]``: lids that meet (``upper``, ``lower`` bone names, ``closed`` degrees; ``mirror``
  as above): where the tables would turn them past each other they stop where they touch
  (:class:`core.rig.evaluate.Meet`).
- ``[mesh]``: parameters of the generator. A generator that also defines
  ``coarsen(mesh_table, factor) -> mesh_table`` supports render levels of detail (``lod``).

Every error names the file and the field at fault.
"""
from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import numpy as np

from .evaluate import LOCAL_FIELDS, LOD_FACTORS, ROTATION_MODES, Camera, Meet, Rig, RigSpecError, coefficient_names
from .identity import rig_identity, source_text
from .layout import GROUPS, ParameterLayout

N_LANDMARKS = 68
# ``rigs`` sits beside ``core``: top-level in the repository, inside the package when vendored
_RIGS_PACKAGE = ".".join(__package__.split(".")[:-2] + ["rigs"])


def read_spec(path: Path) -> dict:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise RigSpecError(f"{path}: rig spec not found") from None
    except tomllib.TOMLDecodeError as e:
        raise RigSpecError(f"{path}: not valid TOML: {e}") from None


def mirror_name(bone: str) -> str:
    if bone.endswith(".L"):
        return bone[:-2] + ".R"
    if bone.endswith(".R"):
        return bone[:-2] + ".L"
    return bone


def mirror_offsets(entry: dict) -> dict:
    """Mirror offsets across the x = 0 plane: loc.x, rot.y and rot.z change sign."""
    out = {}
    for key, vals in entry.items():
        v = list(vals)
        if key == "loc":
            v[0] = -v[0]
        elif key == "rot":
            v[1], v[2] = -v[1], -v[2]
        out[key] = v
    return out


class _Checker:
    def __init__(self, path: Path):
        self.path = path

    def fail(self, field: str, msg: str):
        raise RigSpecError(f"{self.path}: {field}: {msg}")

    def get(self, table: dict, key: str, field: str, kind=None):
        if key not in table:
            self.fail(field, f"missing field '{key}'")
        value = table[key]
        if kind is not None and not isinstance(value, kind):
            self.fail(f"{field}.{key}", f"expected {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
        return value

    def vec(self, value, field: str, n: int = 3) -> np.ndarray:
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            self.fail(field, f"expected {n} numbers, got {value!r}")
        if arr.shape != (n,) or not np.isfinite(arr).all():
            self.fail(field, f"expected {n} finite numbers, got {value!r}")
        return arr


def _offset_table(chk: _Checker, table: dict, field: str, bone_index: dict) -> dict[int, np.ndarray]:
    """Parse {"bone": {loc, rot, scale}} (+ mirror) into {bone index: (9,) offsets}."""
    if not isinstance(table, dict):
        chk.fail(field, "expected a table of bone offsets")
    entries = {k: v for k, v in table.items() if k not in ("mirror", "mirror_of")}
    if table.get("mirror"):
        for bone, entry in list(entries.items()):
            if bone.endswith(".L") and isinstance(entry, dict):
                entries.setdefault(mirror_name(bone), mirror_offsets(entry))
    out: dict[int, np.ndarray] = {}
    for bone, entry in entries.items():
        f = f"{field}.{bone}"
        if bone not in bone_index:
            chk.fail(f, f"unknown bone '{bone}'")
        if not isinstance(entry, dict):
            chk.fail(f, "expected {loc = [..], rot = [..], scale = [..]}")
        row = np.zeros(9)
        for key, vals in entry.items():
            if key not in LOCAL_FIELDS:
                chk.fail(f"{f}.{key}", f"unknown offset kind; use one of {LOCAL_FIELDS}")
            k = LOCAL_FIELDS.index(key)
            row[3 * k:3 * k + 3] = chk.vec(vals, f"{f}.{key}")
        out[bone_index[bone]] = row
    return out


def _mirror_table(rows: dict[int, np.ndarray], bone_names, bone_index) -> dict[int, np.ndarray]:
    out = {}
    for b, row in rows.items():
        m = row.copy()
        m[0], m[4], m[5] = -m[0], -m[4], -m[5]
        out[bone_index[mirror_name(bone_names[b])]] = m
    return out


def _meets(chk: _Checker, entries, bone_index) -> tuple[Meet, ...]:
    """Parse ``[[meet]]`` (upper, lower, closed, mirror) into :class:`Meet` (bone indices)."""
    if not isinstance(entries, list):
        chk.fail("meet", "expected [[meet]] tables")
    out = []
    for i, entry in enumerate(entries):
        f = f"meet[{i}]"
        if not isinstance(entry, dict):
            chk.fail(f, "expected a table")
        pair = []
        for key in ("upper", "lower"):
            bone = chk.get(entry, key, f, str)
            if bone not in bone_index:
                chk.fail(f"{f}.{key}", f"unknown bone '{bone}'")
            pair.append(bone)
        closed = chk.get(entry, "closed", f, (int, float))
        if not 0 < closed < 180:
            chk.fail(f"{f}.closed", f"expected degrees between 0 and 180, got {closed!r}")
        pairs = [pair] + ([[mirror_name(b) for b in pair]] if entry.get("mirror") else [])
        for upper, lower in pairs:
            if upper not in bone_index or lower not in bone_index:
                chk.fail(f"{f}.mirror", f"no mirrored bone of '{pair[0]}' / '{pair[1]}'")
            out.append(Meet(bone_index[upper], bone_index[lower], float(closed)))
    return tuple(out)


MAX_INFLUENCES = 4


def sparse_weights(weights: dict, index: dict, n_verts: int, k: int = MAX_INFLUENCES):
    """Keep the k largest bone weights per vertex, renormalised: (V, k) indices and values."""
    dense = np.zeros((n_verts, len(index)))
    for bone, w in weights.items():
        dense[:, index[bone]] += np.clip(np.broadcast_to(w, (n_verts,)), 0, None)
    order = np.argsort(-dense, axis=1, kind="stable")
    idx = order[:, :k]
    val = np.take_along_axis(dense, idx, 1)
    if dense.shape[1] > k:  # a tie across the cut (e.g. left/right twins on the midline): drop it whole
        nxt = np.take_along_axis(dense, order[:, k:k + 1], 1)
        tie = np.abs(val - nxt) <= 1e-12 * np.maximum(nxt, 1e-30)
        val[tie] = 0.0
    val[val < 1e-4] = 0.0
    total = val.sum(1, keepdims=True)
    if (total <= 0).any():
        raise ValueError(f"vertex {int(np.flatnonzero(total[:, 0] <= 0)[0])} has no bone weight")
    return idx, val / total


def _expand_mirrored_bones(chk: "_Checker", bones: list) -> list:
    """Bones named *.L with ``mirror = true`` get a *.R twin (x mirrored) right after them."""
    out = []
    for i, b in enumerate(bones):
        if not isinstance(b, dict):
            chk.fail(f"bone[{i}]", "expected a table")
        b = {k: v for k, v in b.items() if k != "mirror"} | {"_mirror": b.get("mirror", False)}
        out.append({k: v for k, v in b.items() if k != "_mirror"})
        if b["_mirror"]:
            name = chk.get(b, "name", f"bone[{i}]", str)
            if not name.endswith(".L"):
                chk.fail(f"bone '{name}'.mirror", "only bones named *.L can be mirrored")
            twin = dict(out[-1], name=mirror_name(name))
            twin["head"] = list(chk.vec(chk.get(b, "head", f"bone '{name}'"), f"bone '{name}'.head") * [-1, 1, 1])
            if b.get("parent"):
                twin["parent"] = mirror_name(b["parent"])
            out.append(twin)
    return out


def build_rig(path: Path, layout: ParameterLayout, lod: int = 0) -> Rig:
    """The rig of spec ``path``; ``lod`` k > 0: its mesh regenerated LOD_FACTORS[k] times coarser
    (same bones, tables, camera and regions, so the same parameters drive it)."""
    path = Path(path)
    spec = read_spec(path)
    chk = _Checker(path)
    parsed = spec

    name = chk.get(spec, "name", "spec", str)
    regions = tuple(chk.get(spec, "regions", "spec", list))
    colors_t = chk.get(spec, "region_colors", "spec", dict)
    for r in regions:
        if r not in colors_t:
            chk.fail("region_colors", f"no color for region '{r}'")
    colors = np.array([chk.vec(colors_t[r], f"region_colors.{r}") for r in regions])

    # --- bones from the spec -----------------------------------------------------
    bones = chk.get(spec, "bone", "spec", list)
    if not bones:
        chk.fail("bone", "a rig needs at least one bone")
    bones = _expand_mirrored_bones(chk, bones)
    gen_name = chk.get(spec, "generator", "spec", str)
    try:
        gen = importlib.import_module(f"{_RIGS_PACKAGE}.{gen_name}")
    except ImportError as e:
        chk.fail("generator", f"cannot import rigs.{gen_name}: {e}")
    heads_by_name = {}
    for i, b in enumerate(bones):
        f = f"bone[{i}]" if not isinstance(b, dict) or "name" not in b else f"bone '{b['name']}'"
        if not isinstance(b, dict):
            chk.fail(f, "expected a table")
        heads_by_name[chk.get(b, "name", f, str)] = chk.vec(chk.get(b, "head", f), f"{f}.head")
    if lod:
        if not isinstance(lod, (int, np.integer)) or not 0 < lod < len(LOD_FACTORS):
            raise ValueError(f"lod must be one of 0..{len(LOD_FACTORS) - 1}, got {lod!r}")
        if not hasattr(gen, "coarsen"):
            chk.fail("generator", f"rigs.{gen_name} has no coarsen(); this rig has no levels of detail")
        spec = dict(spec, mesh=gen.coarsen(chk.get(spec, "mesh", "spec", dict), LOD_FACTORS[lod]))
    try:
        generated = gen.generate(spec, heads_by_name)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        chk.fail(f"generator rigs.{gen_name}", f"{type(e).__name__}: {e} (check the [mesh] table and bones)")
    bones = bones + generated.get("bones", [])

    names, parents, heads, lengths, modes, base_scale = [], [], [], [], [], []
    index: dict[str, int] = {}
    for i, b in enumerate(bones):
        f = f"bone[{i}]"
        if not isinstance(b, dict):
            chk.fail(f, "expected a table")
        n = chk.get(b, "name", f, str)
        f = f"bone '{n}'"
        if n in index:
            chk.fail(f, "duplicate bone name")
        parent = b.get("parent", "")
        if parent and parent not in index:
            chk.fail(f"{f}.parent", f"parent '{parent}' is not defined before this bone")
        mode = b.get("rotation_mode", "XYZ")
        if mode not in ROTATION_MODES:
            chk.fail(f"{f}.rotation_mode", f"'{mode}' is not one of {ROTATION_MODES}")
        length = float(b.get("length", 0.01))
        if not length > 0:
            chk.fail(f"{f}.length", "must be positive")
        index[n] = i
        names.append(n)
        parents.append(index[parent] if parent else -1)
        heads.append(chk.vec(chk.get(b, "head", f), f"{f}.head"))
        lengths.append(length)
        modes.append(mode)
        base_scale.append(chk.vec(b.get("base_scale", [1, 1, 1]), f"{f}.base_scale"))
    if sum(p < 0 for p in parents) != 1:
        chk.fail("bone", "exactly one bone (the root) must have no parent")
    nb = len(names)

    # --- offset tables -------------------------------------------------------------
    coef_names = coefficient_names(layout)
    basis = np.zeros((len(coef_names), nb, 9))
    col = {n: i for i, n in enumerate(coef_names)}
    tables: dict[str, dict[int, np.ndarray]] = {}
    extra_tables = generated.get("tables", {})
    present = {c.group for c in layout.channels}
    for group in GROUPS:
        if group not in present:  # a layout without it (an earlier version): its tables are not read
            continue
        section = dict(spec.get(group, {}))
        section.update(extra_tables.get(group, {}))
        channel_names = layout.group_names(group)
        short = {n: n[3:] if group == "identity" else n for n in channel_names}
        known = set(short.values())
        for key in section:
            if key not in known:
                chk.fail(f"{group}.{key}", f"not a channel of the parameter layout ({layout.version})")
        for ch in channel_names:
            key = short[ch]
            f = f"{group}.{key}"
            if key not in section:
                chk.fail(group, f"missing table for channel '{key}'")
            t = section[key]
            if group == "identity":
                at1 = _offset_table(chk, chk.get(t, "at1", f), f"{f}.at1", index)
                at0 = (_offset_table(chk, t["at0"], f"{f}.at0", index) if "at0" in t
                       else {b: -r for b, r in at1.items()})
                if t.get("mirror"):
                    at1.update({k: v for k, v in _mirror_table(at1, names, index).items() if k not in at1})
                    at0.update({k: v for k, v in _mirror_table(at0, names, index).items() if k not in at0})
                tables[f"{ch}@1"], tables[f"{ch}@0"] = at1, at0
            elif isinstance(t, dict) and "mirror_of" in t:
                src = t["mirror_of"]
                if src not in section or "mirror_of" in section[src]:
                    chk.fail(f"{f}.mirror_of", f"'{src}' is not a channel with its own table")
                tables[ch] = _mirror_table(_offset_table(chk, section[src], f"{group}.{src}", index), names, index)
            else:
                tables[ch] = _offset_table(chk, t, f, index)
    for cname, rows in tables.items():
        for b, row in rows.items():
            basis[col[cname], b] = row

    base = np.zeros((nb, 9))
    base[:, 6:9] = np.array(base_scale)
    meets = _meets(chk, spec.get("meet", []), index)

    # --- generated mesh --------------------------------------------------------------
    verts = np.asarray(generated["vertices"], np.float64)
    faces = np.asarray(generated["faces"], np.int64)
    face_regions = np.asarray(generated["face_regions"], np.int64)
    for bone in generated["weights"]:
        if bone not in index:
            chk.fail(f"generator rigs.{gen_name}", f"weights for unknown bone '{bone}'")
    w_idx, w_val = sparse_weights(generated["weights"], index, len(verts))
    lms = np.asarray(generated["landmarks"], np.int64)
    gf = f"generator rigs.{gen_name}"
    if verts.ndim != 2 or verts.shape[1] != 3 or not np.isfinite(verts).all():
        chk.fail(gf, "vertices must be finite (V, 3)")
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.min() < 0 or faces.max() >= len(verts):
        chk.fail(gf, "faces must be (F, 3) indices into the vertices")
    if face_regions.shape != (len(faces),) or face_regions.min() < 0 or face_regions.max() >= len(regions):
        chk.fail(gf, "face_regions must name one region per face")
    if w_idx.shape != w_val.shape or w_idx.shape[0] != len(verts) or w_idx.max() >= nb:
        chk.fail(gf, "weights must be (V, K) bone indices and values")
    sums = w_val.sum(1)
    if np.abs(sums - 1).max() > 1e-6:
        v = int(np.argmax(np.abs(sums - 1)))
        chk.fail(gf, f"weights of vertex {v} sum to {sums[v]:.6f}, not 1")
    if lms.shape != (N_LANDMARKS,) or lms.min() < 0 or lms.max() >= len(verts):
        chk.fail(gf, f"landmarks must be {N_LANDMARKS} vertex indices")

    cam_t = chk.get(spec, "camera", "spec", dict)
    camera = Camera(tuple(chk.vec(chk.get(cam_t, "location", "camera"), "camera.location")),
                    tuple(chk.vec(chk.get(cam_t, "look_at", "camera"), "camera.look_at")),
                    float(chk.get(cam_t, "lens_mm", "camera")), float(chk.get(cam_t, "sensor_mm", "camera")),
                    int(chk.get(cam_t, "resolution", "camera")))
    lights = tuple(spec.get("light", []))
    # the inputs that shape the arrays: spec, generator and assembly code, LOD factors, layout, LOD
    identity = rig_identity(parsed, {f"rigs/{gen_name}.py": source_text(gen.__file__),
                                     "core/rigspec.py": source_text(__file__)}, layout, lod, LOD_FACTORS)

    rig = Rig(name=name, source=str(path), layout=layout, vertices=verts, faces=faces,
              face_regions=face_regions, regions=regions, region_colors=colors,
              bone_names=tuple(names), bone_parents=np.array(parents), bone_heads=np.array(heads),
              bone_lengths=np.array(lengths), bone_rotation_modes=tuple(modes), base_locals=base,
              basis=basis, coefficient_names=coef_names, weight_index=w_idx, weight_value=w_val,
              landmark_vertices=lms, camera=camera, lights=lights, extras=generated.get("extras", {}),
              lod=int(lod), identity=identity, meets=meets)
    for a in (verts, faces, face_regions, w_idx, w_val, lms, basis, base, rig.bone_heads, rig.bone_parents):
        a.setflags(write=False)
    return rig
