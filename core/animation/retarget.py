"""Retarget maps: the layout's channels onto other rigs (pure Python + numpy, no ``bpy``).

A map is a JSON file (built-in ones in ``rigs/maps/``)::

    {"format": "au2rig-retarget", "version": 1, "layout": "1.1",
     "name": "ARKit 52", "kind": "shape_keys", "description": "...",
     "entries": [
        {"shape_key": "mouthSmileLeft", "terms": {"AU12_L": 1.0}, "clamp": [0, 1]},
        ...],
     "unmapped": ["eyeLookInLeft", ...]}

``kind`` is what the entries drive:

- ``"bones"``: ``{"bone": "lips.L", "property": "location" | "rotation_euler" |
  "rotation_quaternion" | "scale", "index": 0..2 (0..3 for quaternions), "terms": {...},
  "offset": 0.0}`` -> ``pose.bones["lips.L"].location[index]``, in Blender's units (metres in
  the bone's rest axes, radians). Rotations are converted to the bone's rotation mode when
  keyed: ``rotation_euler`` entries (order XYZ) of a bone in quaternion mode become its
  quaternion, and the other way round (see ``addon/animate.py``).
- ``"shape_keys"``: ``{"shape_key": "mouthSmileLeft", ...}`` -> ``key_blocks[...].value``.
- ``"properties"``: ``{"property": "AU12_L", ...}`` -> the custom property ``["AU12_L"]``
  (the BDFM's channels: ``bdfm.json`` is the identity map).

Every entry's value is ``offset + sum(weight * channel)`` over its ``terms`` (layout channel
name -> weight; pose channels in degrees, AUs 0..1), then clipped to ``clamp`` ``[lo, hi]`` if
given; optional ``group`` (action group; default: the bone name, "Shape keys", or the layout
group of the property's channel) and ``tolerance`` (key clean-up, in the target's unit).
``unmapped`` lists target names the map knows but has no source for (documentation, and
auto-detection counts them as the rig's).

Sides: ``_L`` / ``.L`` / ``Left`` always mean the *subject's* left, in the layout (AU12_L),
in Blender's rigs (``lips.L`` on +X of a character facing -Y) and in ARKit (mouthSmileLeft is
the left corner of the face wearing it, i.e. image right on a front camera).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..rig.layout import EARLIER_LAYOUTS, LAYOUT, ParameterLayout
from ..util.atomic import atomic_path
from ..util.untrusted import reading
from .keyframes import CLEANUP_TOLERANCE, GROUP_LABELS

FORMAT = "au2rig-retarget"
VERSION = 1
KINDS = {"bones": "bone", "shape_keys": "shape_key", "properties": "property"}
"""Map kind -> the entry field naming the target."""
BONE_PROPERTIES = {"location": 3, "rotation_euler": 3, "rotation_quaternion": 4, "scale": 3}
MAPS_DIR = Path(__file__).resolve().parents[2] / "rigs" / "maps"
BUILTIN = ("bdfm", "arkit52", "rigify_face")
SHAPE_KEY_GROUP = "Shape keys"
_ENTRY_FIELDS = {"bone", "shape_key", "property", "index", "terms", "offset", "clamp", "group",
                 "tolerance"}


class MapError(ValueError):
    """A retarget map that cannot be used; the message names the file and the entry/field."""


@dataclass(frozen=True)
class Entry:
    """One driven channel of the target: ``offset + sum(w * params[channel])``, clipped."""

    target: str  # bone, shape key or property name
    terms: dict[str, float]
    prop: str | None = None  # bones: location, rotation_euler, rotation_quaternion, scale
    index: int = 0
    offset: float = 0.0
    clamp: tuple[float, float] | None = None
    group: str | None = None
    tolerance: float | None = None

    @property
    def key(self) -> str:
        """``"lips.L:location[0]"`` for bones, the target name otherwise."""
        return f"{self.target}:{self.prop}[{self.index}]" if self.prop else self.target


@dataclass(frozen=True)
class RetargetMap:
    name: str
    kind: str
    entries: tuple[Entry, ...]
    description: str = ""
    unmapped: tuple[str, ...] = ()
    layout: str = LAYOUT.version
    source: str = "<map>"

    @property
    def targets(self) -> list[str]:
        """Distinct target names (bones, shape keys, properties) in entry order."""
        return list(dict.fromkeys(e.target for e in self.entries))

    def summary(self) -> str:
        return (f"{self.name} ({self.kind}): {len(self.entries)} channels on "
                f"{len(self.targets)} targets, {len(self.unmapped)} known targets unmapped")


# --- reading, validating, writing ----------------------------------------------------------

def _num(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MapError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _entry(raw, kind: str, where: str, layout: ParameterLayout) -> Entry:
    if not isinstance(raw, dict):
        raise MapError(f"{where}: expected an object, got {type(raw).__name__}")
    name_field = KINDS[kind]
    target = raw.get(name_field)
    if not isinstance(target, str) or not target:
        raise MapError(f"{where}: field {name_field!r} (a non-empty name) is required for a "
                       f"{kind} map")
    where = f"{where} ({target})"
    unknown = sorted(set(raw) - _ENTRY_FIELDS)
    other = [f for f in KINDS.values() if f != name_field and f in raw and not
             (kind == "bones" and f == "property")]
    if unknown or other:
        raise MapError(f"{where}: unknown field {(unknown + other)[0]!r}")
    prop, index = None, 0
    if kind == "bones":
        prop = raw.get("property")
        if prop not in BONE_PROPERTIES:
            raise MapError(f"{where}: field 'property' must be one of {', '.join(BONE_PROPERTIES)}, "
                           f"got {prop!r}")
        index = raw.get("index", 0)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < BONE_PROPERTIES[prop]:
            raise MapError(f"{where}: field 'index' must be an integer 0..{BONE_PROPERTIES[prop] - 1} "
                           f"for {prop}, got {index!r}")
    elif "index" in raw:
        raise MapError(f"{where}: field 'index' is for bone maps only")
    terms = raw.get("terms")
    if not isinstance(terms, dict):
        raise MapError(f"{where}: field 'terms' must be an object channel -> weight")
    clean = {}
    for ch, w in terms.items():
        if ch not in layout.index:
            raise MapError(f"{where}: terms: unknown channel {ch!r} (not in layout {layout.version})")
        clean[ch] = _num(w, f"{where}: terms: {ch}")
    offset = _num(raw.get("offset", 0.0), f"{where}: offset")
    clamp = raw.get("clamp")
    if clamp is not None:
        if not (isinstance(clamp, (list, tuple)) and len(clamp) == 2):
            raise MapError(f"{where}: field 'clamp' must be [lo, hi]")
        clamp = (_num(clamp[0], f"{where}: clamp"), _num(clamp[1], f"{where}: clamp"))
        if clamp[0] > clamp[1]:
            raise MapError(f"{where}: clamp lo {clamp[0]} > hi {clamp[1]}")
    group = raw.get("group")
    if group is not None and not (isinstance(group, str) and group):
        raise MapError(f"{where}: field 'group' must be a non-empty string")
    tol = raw.get("tolerance")
    if tol is not None:
        tol = _num(tol, f"{where}: tolerance")
        if tol < 0:
            raise MapError(f"{where}: tolerance must be >= 0")
    return Entry(target, clean, prop, index, offset, clamp, group, tol)


def parse_map(data, source: str = "<map>", layout: ParameterLayout = LAYOUT) -> RetargetMap:
    """Validate a map's JSON object; :class:`MapError` names ``source`` and the entry/field."""
    if not isinstance(data, dict):
        raise MapError(f"{source}: a retarget map is a JSON object, got {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise MapError(f"{source}: field 'format' must be {FORMAT!r}, got {data.get('format')!r}")
    if data.get("version") != VERSION:
        raise MapError(f"{source}: unsupported version {data.get('version')!r} (this reader: {VERSION})")
    made_for = data.get("layout", layout.version)
    if made_for != layout.version and made_for not in EARLIER_LAYOUTS:  # an earlier one names channels that stay
        raise MapError(f"{source}: made for layout {made_for!r}; this layout is {layout.version}")
    name, kind = data.get("name"), data.get("kind")
    if not isinstance(name, str) or not name:
        raise MapError(f"{source}: field 'name' (a non-empty string) is required")
    if kind not in KINDS:
        raise MapError(f"{source}: field 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    raw = data.get("entries")
    if not isinstance(raw, list) or not raw:
        raise MapError(f"{source}: field 'entries' must be a non-empty list")
    entries, seen = [], {}
    for i, r in enumerate(raw):
        e = _entry(r, kind, f"{source}: entries[{i}]", layout)
        if e.key in seen:
            raise MapError(f"{source}: entries[{i}] ({e.target}): {e.key} is already driven by "
                           f"entries[{seen[e.key]}]")
        seen[e.key] = i
        entries.append(e)
    unmapped = data.get("unmapped", [])
    if not (isinstance(unmapped, list) and all(isinstance(u, str) for u in unmapped)):
        raise MapError(f"{source}: field 'unmapped' must be a list of names")
    both = sorted(set(unmapped) & {e.target for e in entries})
    if both:
        raise MapError(f"{source}: unmapped: {both[0]!r} is also mapped")
    desc = data.get("description", "")
    if not isinstance(desc, str):
        raise MapError(f"{source}: field 'description' must be a string")
    return RetargetMap(name, kind, tuple(entries), desc, tuple(unmapped), layout.version, source)


def load_map(path, layout: ParameterLayout = LAYOUT) -> RetargetMap:
    """Read and validate a map file (errors name the file)."""
    path = Path(path)
    if not path.is_file():
        raise MapError(f"retarget map not found: {path}")
    with reading(path, MapError, "retarget map"):
        text = path.read_bytes().decode("utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise MapError(f"{path.name}: not valid JSON: {e}") from None
        return parse_map(data, path.name, layout)


def map_to_dict(rmap: RetargetMap) -> dict:
    """The JSON object of ``rmap`` (defaults left out)."""
    field_name = KINDS[rmap.kind]
    entries = []
    for e in rmap.entries:
        d = {field_name: e.target}
        if rmap.kind == "bones":
            d["property"], d["index"] = e.prop, e.index
        d["terms"] = dict(e.terms)
        if e.offset:
            d["offset"] = e.offset
        if e.clamp is not None:
            d["clamp"] = list(e.clamp)
        if e.group is not None:
            d["group"] = e.group
        if e.tolerance is not None:
            d["tolerance"] = e.tolerance
        entries.append(d)
    out = {"format": FORMAT, "version": VERSION, "layout": rmap.layout, "name": rmap.name,
           "kind": rmap.kind, "description": rmap.description, "entries": entries}
    if rmap.unmapped:
        out["unmapped"] = list(rmap.unmapped)
    return out


def dumps_map(rmap: RetargetMap) -> str:
    """JSON text, one entry per line (diff-friendly)."""
    d = map_to_dict(rmap)
    entries = d.pop("entries")
    unmapped = d.pop("unmapped", None)
    head = json.dumps(d, indent=1)[:-2]
    lines = ",\n".join("  " + json.dumps(e) for e in entries)
    text = f"{head},\n \"entries\": [\n{lines}\n ]"
    if unmapped is not None:
        text += f",\n \"unmapped\": {json.dumps(unmapped)}"
    return text + "\n}\n"


def save_map(rmap: RetargetMap, path) -> Path:
    """Write ``rmap`` as JSON (atomically); validated first, so a saved map always loads."""
    parse_map(map_to_dict(rmap), str(path))
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(dumps_map(rmap), encoding="utf-8")
    return path


def builtin_path(name: str) -> Path:
    if name not in BUILTIN:
        raise MapError(f"unknown built-in retarget map {name!r}; expected one of {', '.join(BUILTIN)}")
    return MAPS_DIR / f"{name}.json"


def load_builtin(name: str) -> RetargetMap:
    return load_map(builtin_path(name))


# --- evaluation -------------------------------------------------------------------------------

def evaluate_map(rmap: RetargetMap, params, layout: ParameterLayout = LAYOUT) -> dict[str, np.ndarray]:
    """``{entry.key: (N,) values}`` for parameters ``(N, P)``; NaN rows stay NaN."""
    p = np.asarray(params, dtype=np.float64)
    if p.ndim == 1:
        p = p[None]
    if p.ndim != 2 or p.shape[1] != len(layout):
        raise ValueError(f"parameters must be (N, {len(layout)}), got shape {np.shape(params)}")
    valid = np.isfinite(p).all(1)
    out = {}
    for e in rmap.entries:
        v = np.full(len(p), e.offset)
        for ch, w in e.terms.items():
            v = v + w * p[:, layout.index[ch]]
        if e.clamp is not None:
            v = np.clip(v, *e.clamp)
        out[e.key] = np.where(valid, v, np.nan)
    return out


def select_entries(rmap: RetargetMap, channels, layout: ParameterLayout = LAYOUT) -> RetargetMap:
    """The entries whose terms all lie in ``channels`` (layout indices); entries without terms
    (constants) are kept only when the selection is every channel."""
    names = {layout.names[i] for i in channels}
    full = len(names) == len(layout)
    keep = tuple(e for e in rmap.entries if (set(e.terms) <= names if e.terms else full))
    return replace(rmap, entries=keep)


def default_group(rmap: RetargetMap, e: Entry, layout: ParameterLayout = LAYOUT) -> str:
    if e.group:
        return e.group
    if rmap.kind == "bones":
        return e.target
    if rmap.kind == "shape_keys":
        return SHAPE_KEY_GROUP
    groups = {layout.channels[layout.index[c]].group for c in e.terms} or {"au"}
    return GROUP_LABELS[sorted(groups, key=list(GROUP_LABELS).index)[0]]


def default_tolerance(rmap: RetargetMap, e: Entry, layout: ParameterLayout = LAYOUT) -> float:
    """Clean-up tolerance: the entry's, else per unit (1e-4 m, 1e-3 rad / quaternion / scale,
    the layout group's for properties, 1e-3 for shape keys)."""
    if e.tolerance is not None:
        return e.tolerance
    if rmap.kind == "bones":
        return 1e-4 if e.prop == "location" else 1e-3
    if rmap.kind == "properties" and e.terms:
        return min(CLEANUP_TOLERANCE[layout.channels[layout.index[c]].group] for c in e.terms)
    return 1e-3


# --- matching target names --------------------------------------------------------------------

PREFIXES = ("def", "org", "mch", "ctrl", "ctl", "mixamorig", "cc_base", "bip01", "bip")
_SIDES = {"l": "L", "left": "L", "r": "R", "right": "R"}


def normalize_name(name: str) -> tuple[str, str]:
    """``(base, side)`` of a bone / shape-key name, insensitive to case, separators, camelCase,
    side spelling (``.L``, ``_l``, ``Left``, ``L_``) and rig prefixes (``DEF-``, ``ORG-``,
    ``mixamorig:`` ...). ``"DEF-lid.T.L.002"`` and ``"Lid_T_002_left"`` -> ``("lid t 002", "L")``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name)
    tokens = [t for t in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if t]
    while len(tokens) > 1 and tokens[0] in PREFIXES:
        tokens = tokens[1:]
    side = ""
    for i in (len(tokens) - 1, 0) + tuple(range(len(tokens) - 2, 0, -1)):
        if 0 <= i < len(tokens) and len(tokens) > 1 and tokens[i] in _SIDES:
            side = _SIDES[tokens.pop(i)]
            break
    tokens = [t.lstrip("0") or "0" if t.isdigit() else t for t in tokens]
    return " ".join(tokens), side


def _prefixed(name: str) -> bool:
    """A deform / original / mechanism bone (Rigify's prefixes): not what a map should drive."""
    first = re.split(r"[^A-Za-z0-9]+", name.lower(), maxsplit=1)[0]
    return first in ("def", "org", "mch")


@dataclass
class MapReport:
    """How a map met a rig: ``mapped`` map target -> rig name (``renamed`` those that differ),
    ``unmapped_targets`` rig names the map does not drive, ``missing`` map targets the rig
    lacks, ``skipped`` entries left out of a partial bake."""

    map_name: str
    mapped: dict[str, str] = field(default_factory=dict)
    unmapped_targets: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def renamed(self) -> dict[str, str]:
        return {k: v for k, v in self.mapped.items() if k != v}

    @property
    def complete(self) -> bool:
        return not self.missing

    def text(self, limit: int = 8) -> str:
        def names(xs):
            xs = list(xs)
            return ", ".join(xs[:limit]) + (f" and {len(xs) - limit} more" if len(xs) > limit else "")

        total = len(self.mapped) + len(self.missing)
        lines = [f"{self.map_name}: {len(self.mapped)} of {total} targets found"]
        if self.renamed:
            lines.append(f"matched by name: {names(f'{k} -> {v}' for k, v in self.renamed.items())}")
        if self.missing:
            lines.append(f"missing on the rig: {names(self.missing)}")
        if self.skipped:
            lines.append(f"skipped: {names(self.skipped)}")
        if self.unmapped_targets:
            lines.append(f"not driven by the map: {names(self.unmapped_targets)}")
        return "\n".join(lines)


def auto_match(rmap: RetargetMap, target_names, *, fuzzy: bool = True) -> tuple[RetargetMap, MapReport]:
    """``(map renamed onto the rig, report)``: each map target is found in ``target_names`` by
    exact name, else (``fuzzy``) by :func:`normalize_name`; among several rig names with the
    same normal form, one without a rig prefix (a control, not ``DEF-``/``ORG-``/``MCH-``) wins;
    still ambiguous -> missing. Entries of missing targets stay in the returned map."""
    rig = list(dict.fromkeys(target_names))
    rig_set = set(rig)
    by_norm: dict[tuple[str, str], list[str]] = {}
    for n in rig:
        by_norm.setdefault(normalize_name(n), []).append(n)
    report = MapReport(rmap.name)
    taken = set()
    for t in rmap.targets:
        if t in rig_set:
            report.mapped[t] = t
            taken.add(t)
    for t in rmap.targets:
        if t in report.mapped:
            continue
        cands = [c for c in by_norm.get(normalize_name(t), []) if c not in taken] if fuzzy else []
        if len(cands) > 1:
            cands = [c for c in cands if not _prefixed(c)] or cands
        if len(cands) == 1:
            report.mapped[t] = cands[0]
            taken.add(cands[0])
        else:
            report.missing.append(t)
    known = set(rmap.unmapped) | {normalize_name(u) for u in rmap.unmapped}
    report.unmapped_targets = [n for n in rig if n not in taken and n not in known
                               and normalize_name(n) not in known]
    renamed = tuple(replace(e, target=report.mapped.get(e.target, e.target)) for e in rmap.entries)
    return replace(rmap, entries=renamed), report


def set_weight(rmap: RetargetMap, target: str, channel: str, weight: float, prop: str | None = None,
               index: int | None = None, layout: ParameterLayout = LAYOUT) -> RetargetMap:
    """``rmap`` with the weight of ``channel`` in ``target``'s entry set to ``weight`` (0 removes
    the term; a channel the entry lacks is added). A bone target needs ``prop`` and ``index``
    when it has several entries. ``MapError`` names the map, target or channel at fault."""
    if channel not in layout.index:
        raise MapError(f"{rmap.source}: {channel!r} is not a channel of layout {layout.version}")
    if not math.isfinite(float(weight)):
        raise MapError(f"{rmap.source}: {target}: the weight of {channel} must be a finite number")
    hits = [i for i, e in enumerate(rmap.entries) if e.target == target
            and (prop is None or e.prop == prop) and (index is None or e.index == index)]
    if not hits:
        raise MapError(f"{rmap.source}: no entry drives {target!r}"
                       f"{f' {prop}[{index}]' if prop is not None else ''}")
    if len(hits) > 1:
        raise MapError(f"{rmap.source}: {target!r} has {len(hits)} entries "
                       f"({', '.join(rmap.entries[i].key for i in hits)}); name the property and index")
    i = hits[0]
    terms = {k: v for k, v in rmap.entries[i].terms.items() if k != channel}
    if float(weight) != 0.0:
        terms[channel] = float(weight)
    entries = list(rmap.entries)
    entries[i] = replace(entries[i], terms=terms)
    return replace(rmap, entries=tuple(entries))


def drop_targets(rmap: RetargetMap, names) -> RetargetMap:
    names = set(names)
    return replace(rmap, entries=tuple(e for e in rmap.entries if e.target not in names))


def match_score(rmap: RetargetMap, target_names) -> float:
    """Share of the map's targets (mapped and listed unmapped) found in ``target_names``."""
    names = list(target_names)
    if not names:
        return 0.0
    _, report = auto_match(rmap, names)
    norms = {normalize_name(n) for n in names}
    extra = sum(1 for u in rmap.unmapped if u in names or normalize_name(u) in norms)
    return (len(report.mapped) + extra) / (len(report.mapped) + len(report.missing) + len(rmap.unmapped))


def detect_map(candidates: dict[str, tuple[RetargetMap, list[str]]], threshold: float = 0.5):
    """Best ``(name, score)`` over ``{name: (map, rig names of that map's kind)}``, or
    ``(None, best score)`` when none reaches ``threshold``."""
    best, score = None, 0.0
    for name, (rmap, names) in candidates.items():
        s = match_score(rmap, names)
        if s > score:
            best, score = name, s
    return (best, score) if score >= threshold else (None, score)
