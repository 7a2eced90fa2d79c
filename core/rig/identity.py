"""What makes two rigs "the same rig", in a form every machine agrees on.

**Identity** (``Rig.identity``): a SHA-256 over the *inputs* that shape a rig's arrays, never
over the arrays: the parsed spec (canonical JSON; TOML numbers parse exactly), the source text of
the mesh generator module and of the rig assembly (``core/rig/spec.py``), the LOD factors, the
parameter layout (version and channel names), the level of detail and this scheme's version.
Computed floats differ in their last bits between CPUs (numpy's SIMD paths), numpy builds and
thread counts, so a hash over them, even rounded, splits one rig into several; a hash over the
inputs does not. It changes when any input changes, a comment in the generator included (then
``au2rig restamp`` carries models over after checking the fingerprint, below).

**Fingerprint** (:func:`fingerprint`): a few hundred computed numbers (3-D landmarks under fixed
probe parameters, the deformed centroid of every region, vertex and face counts). Models and
datasets store it beside the identity; loading compares it with the loaded rig's under
:data:`FINGERPRINT_TOL` (a fraction of the head's height), never bit for bit. It catches a rig
that computes something else under the same inputs (another numpy that really differs).

:func:`legacy_hash` is the raw-bytes hash earlier versions stamped (``rig_hash``): kept to
recognise and re-stamp their files, and to show in the tests that it does depend on the CPU.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

IDENTITY_VERSION = 1
# Largest difference between a stored and a computed fingerprint value, as a fraction of the
# rig's height (0.3 nm on a 30 cm head). Machine differences are ~1e-15 relative; any real
# change of the mesh, bones or tables moves landmarks by far more.
FINGERPRINT_TOL = 1e-6
# Raw-bytes hashes (``legacy_hash``) that earlier versions stamped on models of the built-in rig,
# by the CPU that computed them, keyed by the identity of that unchanged rig: ``restamp``
# recognises them on any machine while the rig's inputs stay as they were.
KNOWN_LEGACY_HASHES = {"c54c4f5225701989": ("09c3f0db990987c8", "ff52c9e22f001f0f")}


class RigMismatchError(ValueError):
    """A model or dataset was made for another rig; the message names file, rig and identities."""


def source_text(path) -> bytes:
    """The bytes of a source file as the identity sees them (line endings normalised)."""
    return Path(path).read_bytes().replace(b"\r\n", b"\n")


def rig_identity(spec: dict, sources: dict[str, bytes], layout, lod: int, lod_factors) -> str:
    """16 hex digits over the inputs of a rig (see the module docstring)."""
    h = hashlib.sha256()
    head = {"scheme": IDENTITY_VERSION, "layout": layout.version, "channels": list(layout.names),
            "lod": int(lod), "lod_factors": list(lod_factors)}
    for part in (head, spec):
        h.update(json.dumps(part, sort_keys=True, default=str, separators=(",", ":")).encode())
        h.update(b"\0")
    for name in sorted(sources):
        h.update(name.encode() + b"\0" + hashlib.sha256(sources[name]).digest())
    return h.hexdigest()[:16]


# --- fingerprint -----------------------------------------------------------------------------
def probe_params(layout) -> np.ndarray:
    """(3, P) fixed parameter vectors: neutral; every AU half on with a turned head; identity
    sliders alternating low/high with the second brow style and gaze where the layout has it."""
    neutral = layout.neutral()
    p = np.repeat(neutral[None], 3, 0)
    au, pose, ident, brow = (layout.group_slice(g) for g in ("au", "pose", "identity", "brow_style"))
    p[1, au] = 0.5 * layout.hi[au]
    p[1, pose] = 0.3 * layout.hi[pose]
    n = ident.stop - ident.start
    p[2, ident] = np.where(np.arange(n) % 2 == 0, 0.25, 0.75)
    if brow.stop - brow.start > 1:
        p[2, brow] = np.eye(brow.stop - brow.start)[1]
    if "gaze" in {c.group for c in layout.channels}:
        gaze = layout.group_slice("gaze")
        p[2, gaze] = 0.3 * layout.hi[gaze]
    return np.clip(p, layout.lo, layout.hi)


def fingerprint(rig, neutral_channels=()) -> list[float]:
    """Computed numbers that summarise what ``rig`` evaluates to (see the module docstring).
    ``neutral_channels``: channels held at neutral in the probes (the fingerprint a model of an
    earlier layout, without those channels, stored for the same rig)."""
    probes = probe_params(rig.layout)
    for name in neutral_channels:
        i = rig.layout.names.index(name)
        probes[:, i] = rig.layout.channels[i].neutral
    parts = [np.array([len(rig.vertices), len(rig.faces)], float)]
    verts = rig.skin(probes)  # (3, V, 3)
    parts.append(rig.landmarks_3d(probes).ravel())
    for r in range(len(rig.regions)):
        idx = np.unique(rig.faces[rig.face_regions == r])
        parts.append(verts[:, idx].mean(1).ravel() if len(idx) else np.zeros(3 * len(probes)))
    return [float(x) for x in np.concatenate(parts)]


def fingerprint_difference(stored, rig, neutral_channels=(), landmarks_only: bool = False) -> float:
    """Largest difference between ``stored`` and ``rig``'s fingerprint (with ``neutral_channels``
    held neutral, see :func:`fingerprint`), in units of its height (inf when their lengths or
    counts differ). ``landmarks_only``: over its landmarks alone (the 68 points under every
    probe), what a landmark estimator depends on; the counts and regions may differ."""
    now = np.asarray(fingerprint(rig, neutral_channels) if neutral_channels else rig.fingerprint, float)
    try:
        old = np.asarray(stored, float)
    except (TypeError, ValueError):
        return float("inf")
    if landmarks_only:
        n = 2 + 68 * 3 * len(probe_params(rig.layout))  # the counts, then the landmarks
        old, now = old[2:n], now[2:n]
    elif old.shape != now.shape or not np.array_equal(old[:2], now[:2]):
        return float("inf")
    if old.shape != now.shape or not np.isfinite(old).all():
        return float("inf")
    return float(np.abs(old - now).max() / rig.height)


# --- checks -----------------------------------------------------------------------------------
def stamp(rig) -> dict:
    """What a model or dataset records of the rig it was made for."""
    return {"rig": rig.name, "rig_identity": rig.identity, "rig_fingerprint": rig.fingerprint}


def check_rig(meta: dict, rig, where: str, what: str = "model") -> None:
    """Refuse ``meta`` (a model's or dataset's stamp) made for another rig than ``rig``, naming
    ``where``, the rig and both identities; a fingerprint beside the identity must agree with
    ``rig``'s within :data:`FINGERPRINT_TOL`."""
    name = meta.get("rig", meta.get("rig_name"))
    if "rig_identity" not in meta:
        if "rig_hash" in meta:
            raise RigMismatchError(
                f"{where}: this {what} carries the rig stamp of an earlier au2rig (rig hash "
                f"{meta['rig_hash']!r}), which depended on the CPU that computed it; if it was made "
                f"for rig {rig.name!r}, re-stamp it: au2rig restamp {where}")
        raise RigMismatchError(f"{where}: this {what} names no rig identity")
    if meta["rig_identity"] != rig.identity:
        raise RigMismatchError(f"{where}: {what} made for rig {name!r} with identity {meta['rig_identity']!r}; "
                               f"the loaded rig {rig.name!r} ({rig.source}) has identity {rig.identity!r} (if only the "
                               f"rig's code changed, not what it computes, au2rig restamp {where} "
                               f"checks that and renews the stamp)")
    if "rig_fingerprint" in meta:
        diff = fingerprint_difference(meta["rig_fingerprint"], rig)
        if not diff <= FINGERPRINT_TOL:
            raise RigMismatchError(
                f"{where}: {what} made for rig {name!r} with identity {meta['rig_identity']!r}, and the loaded "
                f"rig has that identity, but it evaluates differently here (fingerprint off by {diff:.3g} "
                f"of the head's height, tolerance {FINGERPRINT_TOL:g}): this numpy or platform computes "
                f"another rig")


def legacy_hash(rig) -> str:
    """The raw-bytes content hash earlier versions stamped as ``rig_hash`` (CPU-dependent)."""
    h = hashlib.sha256()
    for a in (rig.vertices, rig.faces, rig.face_regions, rig.region_colors, rig.bone_parents,
              rig.bone_heads, rig.base_locals, rig.basis, rig.weight_index, rig.weight_value,
              rig.landmark_vertices):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(repr((rig.bone_names, rig.regions, rig.coefficient_names, rig.bone_rotation_modes,
                   rig.camera, rig.layout.version)).encode())
    return h.hexdigest()[:16]


def restamp_reason(meta: dict, rig) -> str | None:
    """Why ``meta``'s rig is ``rig`` (so its stamp may be renewed), or None when that is not shown:
    a stored fingerprint within tolerance, or a legacy hash of ``rig`` (computed here or known)."""
    if "rig_fingerprint" in meta:
        diff = fingerprint_difference(meta["rig_fingerprint"], rig)
        return f"fingerprint within {diff:.2g} of the head's height" if diff <= FINGERPRINT_TOL else None
    old = meta.get("rig_hash")
    if old is not None and old == legacy_hash(rig):
        return f"earlier rig hash {old} is this rig's on this machine"
    if old is not None and old in KNOWN_LEGACY_HASHES.get(rig.identity, ()):
        return f"earlier rig hash {old} is a known stamp of rig {rig.name!r} (unchanged since)"
    return None
