"""Pairs datasets: (parameter vector, rendered image) pairs of a rig, for generator training.

Pure numpy (no ``bpy``): sampling, the on-disk format, atomic writes, resume bookkeeping,
``verify`` and a loader. ``addon/rig_render.py`` renders the images with Blender.

On disk (one folder)::

    manifest.json        format version, rig name, identity and fingerprint (core.rig.identity),
                         the mesh level of detail the images were rendered at (render_lod,
                         render_identity: LOD k of that rig; 0 = the rig itself), layout
                         version + channel names, resolution,
                         engine, camera, seed, count, chunk size, sampling and randomisation
                         options, masks, split; "complete" once finished
    images/000123.png    RGB, 8 bit, resolution x resolution
    masks/000123.png     optional: one uint8 label per pixel, the index of the region in
                         manifest["masks"]["regions"] (= rig.regions); BACKGROUND (255) elsewhere
    chunks/000007.npz    per chunk of ``chunk_size`` consecutive pairs: indices, params (float64),
                         landmarks (float32, pixels), randomisation draws, image/mask sizes + CRC32
    params.npy           (N, P) float64, assembled from the chunks when the run completes
    landmarks.npy        (N, 68, 2) float32 pixels: x right, y down, (0, 0) the top-left corner;
                         always the full rig's landmarks, whatever the render LOD
    split.npy            (N,) uint8: 0 train, 1 val (a hash of (seed, index), so it never
                         depends on the count or on the order pairs were rendered in)

Atomicity: every file is written to a temporary name in its folder (``.<name>.tmp-<pid>``)
and moved into place with ``os.replace``, so a final name never holds a partial file. A chunk
counts as done only when its record ``chunks/<c>.npz`` exists; the record is written after
all of the chunk's images and masks (fsync'ed first), and carries their sizes and CRC32s.
A killed run therefore resumes by re-rendering every chunk without a valid record;
no pair is duplicated (index = file name) or half-written.

Sampling is deterministic per pair: pair i's parameters come from the random stream
``(seed, i)`` alone, so resuming, changing the chunk size or the number of workers gives the
same dataset.
"""
from __future__ import annotations

import errno
import json
import os
import zlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from ..rig.identity import RigMismatchError, check_rig
from ..rig.layout import LAYOUT, ParameterLayout
from ..util.atomic import atomic_write
from ..util.untrusted import reading

FORMAT = "au2rig-pairs"
FORMAT_VERSION = 2  # 2: rig identities (inputs) replace the CPU-dependent content hashes of 1
BACKGROUND = 255  # mask label of pixels that show no region of the rig
ENGINES = ("workbench", "cycles")
VAL = 1  # split.npy value of validation pairs (0 = train)
IMAGE_NAME = "images/{:06d}.png"
MASK_NAME = "masks/{:06d}.png"
CHUNK_NAME = "chunks/{:06d}.npz"
TMP_MARK = ".tmp-"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND\xaeB`\x82"


class PairsError(RuntimeError):
    """A pairs dataset cannot be written, resumed or read; the message names file, index or field."""


# --- options -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Sampling:
    """How parameter vectors are drawn: uniform over each group's range, as the paper does.

    ``pose_limits``: (yaw, pitch, roll) in degrees, each drawn uniformly in [-limit, limit]
    (within the layout's range). ``sparse_k``: if set, only k AU channels (chosen uniformly)
    are active, uniform in 0..1, the rest 0 (real expressions are sparse); None: all AUs uniform.
    Identity sliders are uniform in 0..1; the brow style is a uniformly chosen one-hot.
    ``gaze_limits``: the eyes' (yaw, pitch) in the head, degrees, uniform in [-limit, limit] from
    a stream of their own (so the other channels of a pair do not depend on them); a manifest
    that predates them means (0, 0): eyes that look ahead. A G trained on such pairs has never
    seen its gaze inputs move and draws nonsense when they do (core/training/README.md).
    """

    pose_limits: tuple[float, float, float] = (45.0, 30.0, 30.0)
    sparse_k: int | None = None
    gaze_limits: tuple[float, float] = (30.0, 20.0)

    def __post_init__(self):
        object.__setattr__(self, "pose_limits", tuple(float(x) for x in self.pose_limits))
        object.__setattr__(self, "gaze_limits", tuple(float(x) for x in self.gaze_limits))

    def check(self, layout: ParameterLayout = LAYOUT) -> None:
        if len(self.pose_limits) != 3:
            raise ValueError(f"pose_limits: expected (yaw, pitch, roll), got {self.pose_limits}")
        _check_limits("pose_limits", layout, layout.group_slice("pose"), self.pose_limits)
        if len(self.gaze_limits) != 2:
            raise ValueError(f"gaze_limits: expected (yaw, pitch), got {self.gaze_limits}")
        if "gaze" in {c.group for c in layout.channels}:
            _check_limits("gaze_limits", layout, layout.group_slice("gaze"), self.gaze_limits)
        elif any(self.gaze_limits):
            raise ValueError(f"gaze_limits: layout {layout.version} has no gaze channels; use (0, 0)")
        n_au = layout.group_slice("au").stop - layout.group_slice("au").start
        if self.sparse_k is not None and not 0 <= self.sparse_k <= n_au:
            raise ValueError(f"sparse_k: must lie in 0..{n_au} (AU channels), got {self.sparse_k}")


def _check_limits(field_name: str, layout: ParameterLayout, group: slice, limits) -> None:
    """Each of ``limits`` (degrees, drawn in +-limit) must lie within its channel's range."""
    for name, lim, lo, hi in zip(layout.names[group], limits, layout.lo[group], layout.hi[group]):
        if not np.isfinite(lim) or lim < 0 or -lim < lo - 1e-9 or lim > hi + 1e-9:
            raise ValueError(f"{field_name}: {name} limit {lim:g} must lie in [0, {min(-lo, hi):g}] degrees")


@dataclass(frozen=True)
class Randomization:
    """Domain randomisation (all off by default); draws come from the stream (seed, index, 1).

    light: studio-light / lamp rotation about the vertical axis within +-``light_rotation``
    degrees, exposure within +-``exposure`` stops, light colour: a per-channel gain within
    1 +- ``light_color``. background: a uniform random background colour. colors: every
    region's colour times a per-channel gain within 1 +- ``region_color``.
    """

    light: bool = False
    background: bool = False
    colors: bool = False
    light_rotation: float = 60.0
    exposure: float = 0.5
    light_color: float = 0.15
    region_color: float = 0.2

    @property
    def enabled(self) -> bool:
        return self.light or self.background or self.colors


def draw_columns(regions) -> tuple[str, ...]:
    """Names of the columns of a pair's randomisation draws."""
    cols = ["light_rotation_deg", "exposure_stops", "light_r", "light_g", "light_b",
            "background_r", "background_g", "background_b"]
    return tuple(cols + [f"color_{r}_{c}" for r in regions for c in "rgb"])


DEFAULT_BACKGROUND = (0.214, 0.214, 0.214)  # linear; sRGB 0.5


def draw_randomization(options: Randomization, seed: int, index: int, n_regions: int) -> np.ndarray:
    """One pair's randomisation draws (see :func:`draw_columns`); neutral values where off."""
    rng = np.random.default_rng([int(seed), int(index), 1])
    light = rng.uniform(-1.0, 1.0, 5)
    bg = rng.uniform(0.0, 1.0, 3)
    colors = rng.uniform(-1.0, 1.0, 3 * n_regions)
    out = np.concatenate([[0.0, 0.0, 1.0, 1.0, 1.0], DEFAULT_BACKGROUND, np.ones(3 * n_regions)])
    if options.light:
        out[0] = light[0] * options.light_rotation
        out[1] = light[1] * options.exposure
        out[2:5] = 1.0 + light[2:5] * options.light_color
    if options.background:
        out[5:8] = srgb_to_linear(bg)
    if options.colors:
        out[8:] = 1.0 + colors * options.region_color
    return out


def srgb_to_linear(c):
    c = np.asarray(c, float)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c):
    c = np.clip(np.asarray(c, float), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


# --- sampling ----------------------------------------------------------------------------------
def sample_params(layout: ParameterLayout, n: int, seed: int, pose_limits=(45.0, 30.0, 30.0),
                  sparse_k: int | None = None, start: int = 0, gaze_limits=(0.0, 0.0)) -> np.ndarray:
    """(n, P) parameters of pairs ``start .. start + n - 1``; pair i depends on (seed, i) only
    (its gaze on a stream of its own: ``gaze_limits`` (0, 0) gives the pairs drawn before gaze was)."""
    sampling = Sampling(tuple(pose_limits), sparse_k, tuple(gaze_limits))
    sampling.check(layout)
    gaze_lim = np.asarray(sampling.gaze_limits)
    pose, au = layout.group_slice("pose"), layout.group_slice("au")
    ident, brow = layout.group_slice("identity"), layout.group_slice("brow_style")
    n_au, n_brow = au.stop - au.start, brow.stop - brow.start
    lim = np.asarray(sampling.pose_limits)
    out = np.empty((n, len(layout)))
    for row, i in enumerate(range(start, start + n)):
        rng = np.random.default_rng([int(seed), int(i), 0])
        p = out[row]
        p[:] = layout.neutral()
        p[pose] = rng.uniform(-1.0, 1.0, 3) * lim
        values = rng.uniform(0.0, 1.0, n_au)
        if sparse_k is not None:
            active = rng.permutation(n_au)[:sparse_k]
            values = np.where(np.isin(np.arange(n_au), active), values, 0.0)
        p[au] = values
        p[ident] = rng.uniform(layout.lo[ident], layout.hi[ident])
        p[brow] = np.eye(n_brow)[rng.integers(n_brow)]
        if gaze_lim.any():
            eyes = np.random.default_rng([int(seed), int(i), 2])
            p[layout.group_slice("gaze")] = eyes.uniform(-1.0, 1.0, 2) * gaze_lim
    return out


def split_of(seed: int, indices, val_fraction: float) -> np.ndarray:
    """(n,) uint8, 1 for validation pairs: a hash of (seed, index) below ``val_fraction``."""
    with np.errstate(over="ignore"):  # splitmix64 finaliser, wrapping arithmetic
        x = np.asarray(indices, np.uint64) + np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    u = (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return (u < val_fraction).astype(np.uint8)


# --- manifest -----------------------------------------------------------------------------
# Fields that must agree for a run to resume into an existing folder.
IDENTITY_FIELDS = ("format_version", "rig_name", "rig_identity", "render_lod", "render_identity", "layout_version",
                   "channels", "resolution",
                   "engine", "engine_options", "camera", "seed", "count", "chunk_size", "sampling",
                   "randomization", "masks", "regions", "val_fraction")


@dataclass
class Manifest:
    rig_name: str
    rig_identity: str
    layout_version: str
    channels: list
    resolution: int
    engine: str
    camera: dict
    seed: int
    count: int
    chunk_size: int = 16
    engine_options: dict = field(default_factory=dict)
    sampling: dict = field(default_factory=lambda: asdict(Sampling()))
    randomization: dict = field(default_factory=lambda: asdict(Randomization()))
    masks: bool = False
    regions: list = field(default_factory=list)
    val_fraction: float = 0.1
    randomization_columns: list = field(default_factory=list)
    background_label: int = BACKGROUND
    split_counts: dict = field(default_factory=dict)
    complete: bool = False
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    rig_source: str = ""
    software: dict = field(default_factory=dict)
    render_lod: int = 0  # images show LOD k of the rig (0: the rig's own mesh); landmarks are the rig's
    render_identity: str = ""  # identity of the mesh rendered (= rig_identity at LOD 0)
    # computed numbers of the rig (core.rig.identity.fingerprint): compared under a tolerance,
    # so not an identity field
    rig_fingerprint: list = field(default_factory=list)

    @classmethod
    def for_rig(cls, rig, *, resolution: int, engine: str, seed: int, count: int, chunk_size: int = 16,
                sampling: Sampling = Sampling(), randomization: Randomization = Randomization(),
                masks: bool = False, val_fraction: float = 0.1, engine_options: dict | None = None,
                software: dict | None = None, render_rig=None) -> "Manifest":
        """``render_rig``: the level of detail of ``rig`` the images show (default ``rig``)."""
        render_rig = rig if render_rig is None else render_rig
        cam = rig.camera
        camera = {"location": list(map(float, cam.location)), "look_at": list(map(float, cam.look_at)),
                  "lens_mm": float(cam.lens_mm), "sensor_mm": float(cam.sensor_mm),
                  "focal_px": float(cam.focal_px(resolution))}
        return cls(rig_name=rig.name, rig_identity=rig.identity, rig_fingerprint=list(rig.fingerprint),
                   rig_source=str(rig.source),
                   layout_version=rig.layout.version, channels=list(rig.layout.names),
                   resolution=int(resolution), engine=engine, camera=camera, seed=int(seed), count=int(count),
                   chunk_size=int(chunk_size), engine_options=dict(engine_options or {}),
                   sampling=_jsonable(asdict(sampling)), randomization=asdict(randomization),
                   masks=bool(masks), regions=list(rig.regions), val_fraction=float(val_fraction),
                   randomization_columns=list(draw_columns(rig.regions)), software=dict(software or {}),
                   render_lod=int(render_rig.lod), render_identity=render_rig.identity)

    @property
    def n_chunks(self) -> int:
        return -(-self.count // self.chunk_size)

    def chunk_indices(self, chunk: int) -> np.ndarray:
        return np.arange(chunk * self.chunk_size, min((chunk + 1) * self.chunk_size, self.count))

    def to_dict(self) -> dict:
        return _jsonable(asdict(self))

    @classmethod
    def from_dict(cls, d: dict, where: str = "manifest") -> "Manifest":
        if d.get("format") != FORMAT:
            raise PairsError(f"{where}: not a pairs dataset (format {d.get('format')!r}, expected {FORMAT!r})")
        if d.get("format_version") == 1:
            raise PairsError(f"{where}: written by an earlier au2rig (format_version 1), whose rig hash "
                             f"{d.get('rig_hash')!r} depended on the CPU that computed it; render the "
                             f"dataset again into a new folder (au2rig render-pairs ...)")
        if d.get("format_version") != FORMAT_VERSION:
            raise PairsError(f"{where}: format_version {d.get('format_version')!r} is not supported "
                             f"(this code reads {FORMAT_VERSION})")
        names = {f.name for f in fields(cls)}
        if isinstance(d.get("sampling"), dict) and "gaze_limits" not in d["sampling"]:
            d = dict(d, sampling=dict(d["sampling"], gaze_limits=[0.0, 0.0]))  # drawn before gaze was
        unknown = sorted(set(d) - names)
        if unknown:
            raise PairsError(f"{where}: unknown field(s) {unknown}")
        try:
            return cls(**d)
        except TypeError as e:
            raise PairsError(f"{where}: {e}") from None

    def rig_stamp(self) -> dict:
        """The rig's stamp, as :func:`core.rig.identity.check_rig` reads it."""
        return {"rig": self.rig_name, "rig_identity": self.rig_identity, "rig_fingerprint": self.rig_fingerprint}

    def mismatch(self, other: "Manifest") -> str | None:
        """Name and values of the first identity field that differs, or None."""
        a, b = self.to_dict(), other.to_dict()
        for name in IDENTITY_FIELDS:
            if a[name] != b[name]:
                return f"{name} is {_short(a[name])} there but {_short(b[name])} for this run"
        return None


def _short(v) -> str:
    s = json.dumps(v)
    return s if len(s) <= 80 else s[:77] + "..."


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def read_manifest(folder) -> Manifest:
    path = Path(folder) / "manifest.json"
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise PairsError(f"{path}: no manifest (not a pairs dataset, or nothing written yet)") from None
    except (OSError, ValueError) as e:
        raise PairsError(f"{path}: unreadable manifest: {e}") from None
    if not isinstance(d, dict):
        raise PairsError(f"{path}: manifest is not a JSON object")
    with reading(path, PairsError, "pairs manifest"):
        return Manifest.from_dict(d, str(path))


def write_manifest(folder, manifest: Manifest, durable: bool = True) -> None:
    write_dataset_file(Path(folder) / "manifest.json",
                 (json.dumps(manifest.to_dict(), indent=1) + "\n").encode(), durable)


# --- atomic writes ----------------------------------------------------------------------------
def write_dataset_file(path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (:func:`core.util.atomic.atomic_write`, its temporary
    name marked with ``TMP_MARK``); a failure is a :class:`PairsError` naming the file."""
    try:
        atomic_write(path, data, durable, suffix=f"{TMP_MARK}{os.getpid()}")
    except OSError as e:
        what = "disk full" if e.errno in (errno.ENOSPC, errno.EDQUOT) else (e.strerror or str(e))
        raise PairsError(f"could not write {path}: {what}") from e


def _unlink(path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def npz_bytes(**arrays) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def npy_bytes(array) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def png_complete(data: bytes) -> bool:
    """Cheap structural check: PNG signature at the start and the IEND chunk at the end."""
    return data[:8] == PNG_SIGNATURE and data[-8:] == PNG_END


def fsync_dir(path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- output folder ------------------------------------------------------------------------------
def prepare_folder(folder, manifest: Manifest, overwrite: bool = False) -> list[int]:
    """Check ``folder`` before any render; write or check the manifest; return the chunks to do.

    Refuses (PairsError naming the path or field): a file where the folder should be, a folder
    that cannot be written, a non-empty folder that is not a pairs dataset, and a dataset made
    with different settings (rig, layout, resolution, engine, seed, count ...) unless ``overwrite``.
    Removes stray temporary files of a killed run.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise PairsError(f"output {folder} is a file, not a folder")
    parent = folder
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise PairsError(f"output {folder}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PairsError(f"output {folder}: {parent} is not writable")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for sub in ("images", "chunks") + (("masks",) if manifest.masks else ()):
            (folder / sub).mkdir(exist_ok=True)
    except OSError as e:
        raise PairsError(f"output {folder}: cannot create folders: {e.strerror or e}") from None
    probe = folder / f".probe{TMP_MARK}{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise PairsError(f"output {folder} is not writable: {e.strerror or e}") from None
    remove_temporaries(folder)

    path = folder / "manifest.json"
    if path.exists() and not overwrite:
        old = read_manifest(folder)
        why = old.mismatch(manifest)
        if why:
            raise PairsError(f"{path} was written by a different run: {why}; "
                             f"use another folder or overwrite")
    else:
        leftovers = [p.name for p in folder.iterdir() if p.name not in ("images", "chunks", "masks")]
        if leftovers and not path.exists():
            raise PairsError(f"output {folder} holds other files ({', '.join(sorted(leftovers)[:3])}) "
                             f"and no manifest.json: not a pairs dataset")
        if overwrite:
            clear_dataset(folder)
            for sub in ("images", "chunks") + (("masks",) if manifest.masks else ()):
                (folder / sub).mkdir(exist_ok=True)
    manifest.complete = False
    write_manifest(folder, manifest)
    return [c for c in range(manifest.n_chunks) if not chunk_done(folder, manifest, c)]


def clear_dataset(folder) -> None:
    """Remove what a pairs run writes (and nothing else) from ``folder``."""
    folder = Path(folder)
    for sub in ("images", "masks", "chunks"):
        d = folder / sub
        if d.is_dir():
            for p in d.iterdir():
                if p.is_file():
                    p.unlink()
    for name in ("manifest.json", "params.npy", "landmarks.npy", "split.npy"):
        _unlink(folder / name)


def remove_temporaries(folder) -> list[Path]:
    folder = Path(folder)
    found = []
    for d in (folder, folder / "images", folder / "masks", folder / "chunks"):
        if d.is_dir():
            found += [p for p in d.iterdir() if TMP_MARK in p.name]
    for p in found:
        _unlink(p)
    return found


def read_chunk(folder, chunk: int) -> dict:
    path = Path(folder) / CHUNK_NAME.format(chunk)
    with reading(path, PairsError, "chunk record"), np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def chunk_done(folder, manifest: Manifest, chunk: int) -> bool:
    """True when the chunk's record exists, reads, and its files exist with the recorded sizes."""
    folder = Path(folder)
    try:
        rec = read_chunk(folder, chunk)
    except (OSError, PairsError):
        return False
    if not np.array_equal(rec.get("indices", np.zeros(0)), manifest.chunk_indices(chunk)):
        return False
    kinds = [("image", IMAGE_NAME)] + ([("mask", MASK_NAME)] if manifest.masks else [])
    for kind, pattern in kinds:
        sizes = rec.get(f"{kind}_size")
        if sizes is None:
            return False
        for i, size in zip(rec["indices"], sizes):
            p = folder / pattern.format(int(i))
            try:
                if p.stat().st_size != int(size):
                    return False
                with open(p, "rb") as f:
                    f.seek(-8, os.SEEK_END)
                    if f.read(8) != PNG_END:
                        return False
            except OSError:
                return False
    return True


def write_chunk(folder, manifest: Manifest, chunk: int, params, landmarks, draws, files: dict,
                durable: bool = True) -> None:
    """Record a chunk as done; call after its images (and masks) are in place.

    ``files``: {"image": [bytes per pair], "mask": [...]} as written, for sizes and CRC32s.
    """
    rec = {"indices": manifest.chunk_indices(chunk), "params": np.asarray(params, np.float64),
           "landmarks": np.asarray(landmarks, np.float32), "randomization": np.asarray(draws, np.float64)}
    for kind, blobs in files.items():
        rec[f"{kind}_size"] = np.array([len(b) for b in blobs], np.int64)
        rec[f"{kind}_crc32"] = np.array([zlib.crc32(b) for b in blobs], np.uint32)
    write_dataset_file(Path(folder) / CHUNK_NAME.format(chunk), npz_bytes(**rec), durable)


def finalize(folder, manifest: Manifest, durable: bool = True) -> Manifest:
    """Assemble params.npy, landmarks.npy and split.npy from the chunks; mark the manifest complete."""
    folder = Path(folder)
    params, landmarks = [], []
    for c in range(manifest.n_chunks):
        if not chunk_done(folder, manifest, c):
            raise PairsError(f"{folder / CHUNK_NAME.format(c)}: chunk {c} (pairs "
                             f"{c * manifest.chunk_size}..) is not done; cannot finish the dataset")
        rec = read_chunk(folder, c)
        params.append(rec["params"])
        landmarks.append(rec["landmarks"])
    split = split_of(manifest.seed, np.arange(manifest.count), manifest.val_fraction)
    write_dataset_file(folder / "params.npy", npy_bytes(np.concatenate(params)), durable)
    write_dataset_file(folder / "landmarks.npy", npy_bytes(np.concatenate(landmarks)), durable)
    write_dataset_file(folder / "split.npy", npy_bytes(split), durable)
    manifest.split_counts = {"train": int((split == 0).sum()), "val": int((split == VAL).sum())}
    manifest.complete = True
    write_manifest(folder, manifest, durable)
    if durable:
        fsync_dir(folder)
    return manifest


# --- verify -------------------------------------------------------------------------------------
@dataclass
class Problem:
    index: int | None  # pair index (None: the dataset as a whole)
    what: str  # kind of problem: "missing image", "params out of range", ...
    detail: str

    def __str__(self) -> str:
        where = "dataset" if self.index is None else f"pair {self.index}"
        return f"{where}: {self.what}: {self.detail}"


@dataclass
class Report:
    folder: str
    count: int = 0
    checked: int = 0
    problems: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, index, what, detail) -> None:
        self.problems.append(Problem(None if index is None else int(index), what, detail))

    def indices(self, what: str | None = None) -> list[int]:
        return sorted({p.index for p in self.problems if p.index is not None and (what is None or p.what == what)})

    def summary(self, limit: int = 20) -> str:
        head = f"{self.folder}: {self.checked} of {self.count} pairs checked, "
        if self.ok:
            return head + "no problems"
        lines = [head + f"{len(self.problems)} problem(s)"]
        lines += [f"  {p}" for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"  ... and {len(self.problems) - limit} more")
        return "\n".join(lines)


def verify(folder, rig=None, layout: ParameterLayout = LAYOUT, images: bool = True) -> Report:
    """Check a pairs folder; every problem names the pair index (or the file) at fault.

    Checks the manifest, each chunk record (indices, params finite, in range, brow one-hot,
    equal to the seed's sampling, landmarks finite and, with ``rig``, equal to the rig's
    projection), each image and mask (present, complete, decodable, right size, CRC32, labels),
    duplicates, stray temporary files, and the assembled params / landmarks / split files.
    """
    import cv2

    folder = Path(folder)
    report = Report(str(folder))
    try:
        m = read_manifest(folder)
    except PairsError as e:
        report.add(None, "manifest", str(e))
        return report
    report.count = m.count
    if m.channels != list(layout.names) or m.layout_version != layout.version:
        report.add(None, "layout", f"manifest layout {m.layout_version} with {len(m.channels)} channels "
                                   f"differs from this code's layout {layout.version}")
        return report
    if rig is not None:
        try:
            check_rig(m.rig_stamp(), rig, "manifest", "pairs dataset")
        except RigMismatchError as e:
            report.add(None, "rig", str(e))
            rig = None
    if rig is not None:
        _check_render_lod(report, m, rig)
    for p in remove_temporaries_list(folder):
        report.add(None, "temporary file", f"{p} (left by a killed run)")

    sampling = m.sampling
    all_params = np.full((m.count, len(layout)), np.nan)
    all_landmarks = np.full((m.count, 68, 2), np.nan, np.float32)
    kinds = [("image", IMAGE_NAME, 3)] + ([("mask", MASK_NAME, 1)] if m.masks else [])
    brow = layout.group_slice("brow_style")
    for c in range(m.n_chunks):
        want = m.chunk_indices(c)
        path = folder / CHUNK_NAME.format(c)
        try:
            rec = read_chunk(folder, c)
        except FileNotFoundError:
            for i in want:
                report.add(i, "missing pair", f"no record {path.name} for chunk {c} (not rendered yet)")
            continue
        except (OSError, PairsError) as e:
            for i in want:
                report.add(i, "unreadable record", str(e))
            continue
        need = ("indices", "params", "landmarks", "randomization") + tuple(
            f"{k}_{x}" for k, _, _ in kinds for x in ("size", "crc32"))
        missing = [k for k in need if k not in rec]
        if missing or not np.array_equal(rec["indices"], want):
            for i in want:
                report.add(i, "bad record", f"{path}: " + (f"lacks {missing}" if missing else
                                                          f"indices {rec['indices'][:3]}.. expected {want[:3]}.."))
            continue
        params, lms = rec["params"], rec["landmarks"]
        if params.shape != (len(want), len(layout)) or lms.shape != (len(want), 68, 2):
            for i in want:
                report.add(i, "bad record", f"{path}: params {params.shape} / landmarks {lms.shape}")
            continue
        drawn = Sampling(**sampling)  # a manifest from before gaze was drawn reads (0, 0)
        expected = sample_params(layout, len(want), m.seed, drawn.pose_limits, drawn.sparse_k, start=int(want[0]),
                                 gaze_limits=drawn.gaze_limits)
        finite = np.isfinite(params).all(1)
        truth = (rig.landmarks_2d(np.where(finite[:, None], params, layout.neutral()), m.resolution)
                 if rig is not None else None)
        for row, i in enumerate(want):
            p = params[row]
            report.checked += 1
            if not np.isfinite(p).all():
                j = int(np.flatnonzero(~np.isfinite(p))[0])
                report.add(i, "non-finite params", f"{layout.names[j]} = {p[j]}")
                continue
            out = np.flatnonzero((p < layout.lo - 1e-9) | (p > layout.hi + 1e-9))
            if len(out):
                j = out[0]
                report.add(i, "params out of range", f"{layout.names[j]} = {p[j]:g} outside "
                                                      f"[{layout.lo[j]:g}, {layout.hi[j]:g}]")
            b = p[brow]
            if not (np.isin(b, (0.0, 1.0)).all() and b.sum() == 1.0):
                report.add(i, "brow style not one-hot", f"{np.round(b, 3).tolist()}")
            if not np.allclose(p, expected[row], rtol=0, atol=1e-9):
                j = int(np.argmax(np.abs(p - expected[row])))
                report.add(i, "params differ from the seed's sample", f"{layout.names[j]} = {p[j]:g}, "
                                                                     f"seed {m.seed} gives {expected[row][j]:g}")
            if not np.isfinite(lms[row]).all():
                report.add(i, "non-finite landmarks", "")
            elif truth is not None and np.abs(lms[row] - truth[row]).max() > 1e-2:
                report.add(i, "landmarks mismatch", f"up to {np.abs(lms[row] - truth[row]).max():.3g} px "
                                                    f"from the rig's projection")
            all_params[i], all_landmarks[i] = p, lms[row]
            for kind, pattern, channels in kinds:
                _check_file(report, folder, pattern.format(int(i)), int(i), kind, channels, m,
                            int(rec[f"{kind}_size"][row]), int(rec[f"{kind}_crc32"][row]), images, cv2)
    _check_duplicates(report, all_params)
    if m.complete:
        _check_assembled(report, folder, m, all_params, all_landmarks)
    elif report.ok:
        report.add(None, "incomplete", "manifest says the run has not finished")
    return report


def _check_render_lod(report, m: Manifest, rig) -> None:
    """The images' mesh: the rig itself (LOD 0) or its LOD ``render_lod``, by identity."""
    from ..rig.load import lod_of

    try:
        shown = lod_of(rig, int(m.render_lod))
    except (ValueError, TypeError) as e:
        report.add(None, "render LOD", f"manifest says images show LOD {m.render_lod!r} of {rig.name}, "
                                       f"which cannot be built here: {e}")
        return
    if shown.identity != m.render_identity:
        report.add(None, "render LOD", f"manifest render identity {m.render_identity} (LOD {m.render_lod}) "
                                       f"differs from {rig.name} LOD {m.render_lod} {shown.identity}")


def remove_temporaries_list(folder) -> list[Path]:
    """Stray temporary files (not removed; verify only reports)."""
    folder = Path(folder)
    return [p for d in (folder, folder / "images", folder / "masks", folder / "chunks") if d.is_dir()
            for p in sorted(d.iterdir()) if TMP_MARK in p.name]


def _check_file(report, folder, name, i, kind, channels, m, size, crc, decode, cv2):
    path = folder / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        report.add(i, f"missing {kind}", str(path))
        return
    except OSError as e:
        report.add(i, f"unreadable {kind}", f"{path}: {e}")
        return
    if not png_complete(data):
        report.add(i, f"truncated {kind}", f"{path} ({len(data)} bytes; no PNG end)")
        return
    if len(data) != size or zlib.crc32(data) != crc:
        report.add(i, f"{kind} changed", f"{path}: size/CRC32 differ from the chunk record")
    if not decode:
        return
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        report.add(i, f"unreadable {kind}", f"{path} does not decode")
        return
    shape = (m.resolution, m.resolution) + ((channels,) if channels > 1 else ())
    if img.shape != shape or img.dtype != np.uint8:
        report.add(i, f"wrong {kind} size", f"{path} is {img.shape} {img.dtype}, expected {shape} uint8")
        return
    if kind == "mask":
        bad = (img >= len(m.regions)) & (img != m.background_label)
        if bad.any():
            report.add(i, "bad mask labels", f"{path}: labels {sorted(set(np.unique(img[bad]).tolist()))[:5]} "
                                             f"are no region (0..{len(m.regions) - 1}) nor background "
                                             f"{m.background_label}")


def _check_duplicates(report, params):
    ok = np.isfinite(params).all(1)
    idx = np.flatnonzero(ok)
    if len(idx) < 2:
        return
    rows = np.ascontiguousarray(params[idx])
    _, first, inverse = np.unique(rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))),
                                  return_index=True, return_inverse=True)
    for k, j in enumerate(inverse.ravel()):
        if first[j] != k:
            report.add(idx[k], "duplicate", f"same parameters as pair {idx[first[j]]}")


def _check_assembled(report, folder, m, params, landmarks):
    for name, want in (("params.npy", params), ("landmarks.npy", landmarks)):
        try:
            got = np.load(folder / name, allow_pickle=False)
        except (OSError, ValueError) as e:
            report.add(None, f"unreadable {name}", str(e))
            continue
        if got.shape != want.shape:
            report.add(None, f"wrong {name}", f"shape {got.shape}, expected {want.shape}")
            continue
        diff = ~np.isclose(got, want, rtol=0, atol=1e-6, equal_nan=True)
        for i in np.flatnonzero(diff.reshape(len(got), -1).any(1))[:50]:
            report.add(i, f"{name} mismatch", f"row {i} differs from the chunk record")
    try:
        split = np.load(folder / "split.npy", allow_pickle=False)
    except (OSError, ValueError) as e:
        report.add(None, "unreadable split.npy", str(e))
        return
    want = split_of(m.seed, np.arange(m.count), m.val_fraction)
    if split.shape != want.shape or not np.array_equal(split, want):
        report.add(None, "wrong split.npy", f"does not match seed {m.seed}, val_fraction {m.val_fraction}")


# --- loader ---------------------------------------------------------------------------------------
class PairsDataset:
    """Pairs of a finished folder, for a trainer (PyTorch-style ``__len__`` / ``__getitem__``).

    Items: ``{"index", "params" (P,) float32, "image" (H, W, 3) float32 RGB in 0..1,
    "landmarks" (68, 2) float32 pixels, "mask" (H, W) uint8 or None}``.
    ``split``: "train", "val" or None (all pairs).
    """

    def __init__(self, folder, split: str | None = None):
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        if not self.manifest.complete:
            raise PairsError(f"{self.folder / 'manifest.json'}: the run has not finished "
                             f"(resume it, then load)")
        self.params = np.load(self.folder / "params.npy", allow_pickle=False).astype(np.float32)
        self.landmarks = np.load(self.folder / "landmarks.npy", allow_pickle=False).astype(np.float32)
        s = np.load(self.folder / "split.npy", allow_pickle=False)
        if split not in (None, "train", "val"):
            raise ValueError(f"split must be 'train', 'val' or None, got {split!r}")
        all_idx = np.arange(self.manifest.count)
        self.indices = all_idx if split is None else all_idx[s == (VAL if split == "val" else 0)]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> dict:
        import cv2

        i = int(self.indices[k])
        path = self.folder / IMAGE_NAME.format(i)
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise PairsError(f"{path}: unreadable image of pair {i}")
        mask = None
        if self.manifest.masks:
            mpath = self.folder / MASK_NAME.format(i)
            mask = cv2.imread(str(mpath), cv2.IMREAD_UNCHANGED)
            if mask is None:
                raise PairsError(f"{mpath}: unreadable mask of pair {i}")
        return {"index": i, "params": self.params[i], "image": img[:, :, ::-1].astype(np.float32) / 255.0,
                "landmarks": self.landmarks[i], "mask": mask}
