"""Offline rig render: (parameter vector, image) pairs datasets for generator training.

One implementation, :func:`render_pairs` (and the stepwise :class:`PairsJob` under it), serves
the command line (``au2rig render-pairs``) and the Blender operator
(``au2rig.render_pairs``, modal with progress and ESC). The dataset format, sampling, atomic
writes, resume and ``verify`` live in ``core/datasets/pairs.py``.

Speed (see docs in README): the render scene holds the rig's mesh only, no armature and no
drivers; ``core`` deforms the vertices of a whole chunk at once (one float32 matrix product,
:class:`core.rig.skinning.Skinning`) and each pair writes its positions into the mesh before the
render. Blender re-evaluates and re-uploads the mesh on every render whatever is in the scene
(a render builds its own depsgraph), and llvmpipe's cost is per vertex, so several heads per
render do not pay off here; what does is this lean scene plus one worker process per core
(``workers``), each rendering its own chunks.
"""
from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import bpy
import cv2
import numpy as np

from . import rig_builder
from ._core import LOD_FACTORS, Skinning, auto_lod, load_rig, lod_of, pairs
from .contact_sheet import _quiet_stdout

ENGINE_IDS = {"workbench": "BLENDER_WORKBENCH", "cycles": "CYCLES"}
AA_MODES = ("OFF", "FXAA", "5", "8", "11", "16", "32")
PROTOCOL = "@@au2rig "  # worker -> parent progress lines


@dataclass
class RenderConfig:
    """Everything a pairs run needs; ``check`` refuses bad values before anything is written."""

    output: str
    count: int = 1000
    size: int = 128
    engine: str = "workbench"
    seed: int = 0
    pose_limits: tuple = (45.0, 30.0, 30.0)
    sparse_k: int | None = None
    gaze_limits: tuple = (30.0, 20.0)  # the eyes' yaw and pitch in the head (degrees); 0: ahead
    masks: bool = False
    randomization: pairs.Randomization = field(default_factory=pairs.Randomization)
    chunk_size: int = 16
    workers: int = 1
    val_fraction: float = 0.1
    aa: str = "FXAA"  # Workbench anti-aliasing (render_aa); masks always render without
    samples: int = 16  # Cycles samples per pixel
    rig: str | None = None  # rig spec TOML; None: the built-in rig
    lod: str = "auto"  # mesh level of detail: "auto" (by size), "full" (= "0"), or "1", "2" (coarser)
    overwrite: bool = False
    durable: bool = True  # fsync each chunk's files before its record

    def check(self) -> None:
        if self.engine not in ENGINE_IDS:
            raise ValueError(f"unknown engine {self.engine!r}; valid engines: {', '.join(ENGINE_IDS)}")
        if self.aa not in AA_MODES:
            raise ValueError(f"unknown anti-aliasing {self.aa!r}; valid: {', '.join(AA_MODES)}")
        for name, lo in (("count", 1), ("size", 8), ("chunk_size", 1), ("workers", 1), ("samples", 1)):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        self.lod_level(None)  # raises on a bad value
        if not 0.0 <= self.val_fraction <= 1.0:
            raise ValueError(f"val_fraction must lie in [0, 1], got {self.val_fraction}")
        pairs.Sampling(tuple(self.pose_limits), self.sparse_k, tuple(self.gaze_limits)).check()
        if not str(self.output):
            raise ValueError("output folder is empty")

    def lod_level(self, rig) -> int:
        """The level of detail images are rendered at: 0 (the full mesh) or k > 0 (LOD k).

        "auto" takes the coarsest LOD that looks the same at this image size
        (:func:`core.rig.auto_lod`), and the full mesh for a rig without levels of detail
        (``rig=None``: the check only)."""
        lod = str(self.lod).strip().lower()
        if lod == "auto":
            if rig is None:
                return 0
            try:
                lod_of(rig, 1)
            except ValueError:  # (RigSpecError too) no spec, or a generator without LODs
                return 0
            return auto_lod(self.size)
        if lod == "full":
            return 0
        if lod.isdigit() and int(lod) < len(LOD_FACTORS):
            return int(lod)
        raise ValueError(f"lod must be auto, full or 0..{len(LOD_FACTORS) - 1}, got {self.lod!r}")

    def render_rig(self, rig):
        """The rig whose mesh is rendered: ``rig`` itself or its level of detail."""
        return lod_of(rig, self.lod_level(rig))

    def manifest(self, rig, render_rig=None) -> pairs.Manifest:
        options = {"aa": self.aa} if self.engine == "workbench" else {"samples": self.samples, "device": "CPU",
                                                                      "denoise": False}
        return pairs.Manifest.for_rig(
            rig, resolution=self.size, engine=self.engine, seed=self.seed, count=self.count,
            chunk_size=self.chunk_size,
            sampling=pairs.Sampling(tuple(self.pose_limits), self.sparse_k, tuple(self.gaze_limits)),
            randomization=self.randomization, masks=self.masks, val_fraction=self.val_fraction,
            engine_options=options, software={"blender": bpy.app.version_string},
            render_rig=render_rig if render_rig is not None else self.render_rig(rig))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RenderConfig":
        d = dict(d)
        d["randomization"] = pairs.Randomization(**d.get("randomization", {}))
        d["pose_limits"] = tuple(d.get("pose_limits", (45.0, 30.0, 30.0)))
        d["gaze_limits"] = tuple(d.get("gaze_limits", (0.0, 0.0)))  # a config from before gaze was drawn
        d["lod"] = str(d.get("lod", "auto"))
        return cls(**d)


class Cancelled(Exception):
    """The run was stopped (ESC, should_stop); what was done is kept and resumes."""


# --- the render scene --------------------------------------------------------------------------
MASK_LEVELS = (16, 80, 144, 208)  # sRGB 8-bit levels of mask colours (64 labels); background is black


def mask_palette(n_regions: int) -> np.ndarray:
    """(R, 3) sRGB bytes of each region's flat mask colour."""
    if n_regions > len(MASK_LEVELS) ** 3:
        raise ValueError(f"masks support at most {len(MASK_LEVELS) ** 3} regions, the rig has {n_regions}")
    grid = np.array([(r, g, b) for r in MASK_LEVELS for g in MASK_LEVELS for b in MASK_LEVELS])
    return grid[:n_regions]


def decode_mask(bgr: np.ndarray, n_regions: int, where: str = "mask") -> np.ndarray:
    """Flat-colour render (BGR) -> one uint8 label per pixel; refuses colours off the palette."""
    rgb = bgr[..., ::-1].astype(np.int32)
    levels = np.asarray(MASK_LEVELS)
    k = np.clip(np.rint((rgb - levels[0]) / (levels[1] - levels[0])), 0, len(levels) - 1).astype(np.int32)
    near = np.abs(rgb - levels[k]).max(-1) <= 6
    label = (k[..., 0] * len(levels) + k[..., 1]) * len(levels) + k[..., 2]
    background = rgb.max(-1) <= 6
    off = ~(near | background) | (near & (label >= n_regions))
    if off.any():
        y, x = np.argwhere(off)[0]
        raise pairs.PairsError(f"{where}: {int(off.sum())} pixel(s) match no region colour, first at "
                               f"x={x} y={y} rgb={rgb[y, x].tolist()} (colour management changed?)")
    return np.where(background, pairs.BACKGROUND, label).astype(np.uint8)


class RenderScene:
    """A scene of its own holding the rig's mesh, camera and lights; renders one pair at a time.

    Leaves the user's scenes alone (renders with ``scene=``); :meth:`remove` deletes it all.
    """

    def __init__(self, rig, config: RenderConfig):
        self.rig, self.config = rig, config
        self.skinning = Skinning(rig)
        name = "au2rig_pairs"
        self.scene = scene = bpy.data.scenes.new(name)
        self.camera, self.lights = rig_builder.setup_camera_and_lights(rig, scene, resolution=config.size)
        self.light_base = [(obj.location.copy(), obj.rotation_euler.copy()) for obj in self.lights]
        rig_builder.setup_workbench(scene)  # also gives the scene its own world
        scene.world = bpy.data.worlds.new(f"{name}_world")
        scene.world.color = pairs.DEFAULT_BACKGROUND
        self.mesh_obj = rig_builder.build_mesh(rig, f"{name}_{rig.name}", scene.collection, vertex_groups=False)
        self.mesh = self.mesh_obj.data
        self.materials = list(self.mesh.materials)
        self.base_colors = np.asarray(rig.region_colors, float)
        palette = pairs.srgb_to_linear(mask_palette(len(rig.regions)) / 255.0)
        self.mask_materials = []
        for r, region in enumerate(rig.regions):
            mat = bpy.data.materials.new(f"{name}_mask_{region}")
            mat.diffuse_color = (*palette[r], 1.0)
            self.mask_materials.append(mat)
        render = scene.render
        render.dither_intensity = 0.0  # dither noise would make images depend on more than the pair
        render.use_file_extension = True
        settings = render.image_settings
        settings.file_format, settings.color_mode, settings.color_depth = 'PNG', 'RGB', '8'
        settings.compression = 15
        scene.view_settings.view_transform = 'Standard'
        scene.view_settings.look = 'None'
        scene.display_settings.display_device = 'sRGB'
        self._draws = None
        self._image_mode()
        self.scratch = Path(tempfile.mkdtemp(prefix="au2rig-pairs-", dir=_scratch_root()))
        self._path = str(self.scratch / "render.png")

    # modes ---------------------------------------------------------------------------------
    def _image_mode(self):
        scene, cfg = self.scene, self.config
        scene.render.engine = ENGINE_IDS[cfg.engine]
        shading = scene.display.shading
        shading.light, shading.color_type = 'STUDIO', 'MATERIAL'
        shading.use_world_space_lighting = cfg.randomization.light
        scene.display.render_aa = cfg.aa
        if cfg.engine == "cycles":
            cyc = scene.cycles
            cyc.device = 'CPU'
            cyc.samples = cfg.samples
            cyc.use_denoising = False
            if hasattr(cyc, "use_adaptive_sampling"):
                cyc.use_adaptive_sampling = False
            cyc.seed = 0
        for i, mat in enumerate(self.materials):
            self.mesh.materials[i] = mat
        self._draws = None

    def _mask_mode(self):
        scene = self.scene
        scene.render.engine = 'BLENDER_WORKBENCH'
        shading = scene.display.shading
        shading.light, shading.color_type = 'FLAT', 'MATERIAL'
        scene.display.render_aa = 'OFF'
        scene.view_settings.exposure = 0.0
        scene.view_settings.use_curve_mapping = False
        self._set_background((0.0, 0.0, 0.0))
        for i, mat in enumerate(self.mask_materials):
            self.mesh.materials[i] = mat
        self._draws = None

    # per pair ----------------------------------------------------------------------------
    def _set_background(self, color):
        world = self.scene.world
        world.color = tuple(map(float, color))
        tree = getattr(world, "node_tree", None)
        node = tree.nodes.get("Background") if tree is not None else None
        if node is not None:
            node.inputs["Color"].default_value = (*map(float, color), 1.0)

    def _apply_draws(self, d: np.ndarray):
        """Randomisation draws of one pair (see core.datasets.pairs.draw_columns)."""
        if self._draws is not None and np.array_equal(d, self._draws):
            return  # unchanged (always so without randomisation): touching materials costs a re-sync
        self._draws = np.array(d)
        scene, cfg = self.scene, self.config
        rot, exposure, gain, background, colors = d[0], d[1], d[2:5], d[5:8], d[8:].reshape(-1, 3)
        scene.view_settings.exposure = float(exposure)
        tinted = bool(np.any(gain != 1.0))
        scene.view_settings.use_curve_mapping = tinted
        if tinted:
            curve = scene.view_settings.curve_mapping
            curve.white_level = tuple(float(1.0 / g) for g in gain)
            curve.update()
        if cfg.engine == "workbench":
            scene.display.shading.studiolight_rotate_z = float(np.radians(rot))
        else:
            center = np.asarray(self.rig.camera.look_at, float)
            c, s = np.cos(np.radians(rot)), np.sin(np.radians(rot))
            for obj, (loc, euler) in zip(self.lights, self.light_base):
                p = np.asarray(loc) - center
                obj.location = (center + [c * p[0] - s * p[1], s * p[0] + c * p[1], p[2]]).tolist()
                obj.rotation_euler = (euler.x, euler.y, euler.z + np.radians(rot))
        self._set_background(background)
        for mat, base, g in zip(self.materials, self.base_colors, colors):
            rgba = (*np.clip(base * g, 0.0, 1.0).tolist(), 1.0)
            mat.diffuse_color = rgba
            bsdf = mat.node_tree.nodes.get("Principled BSDF") if mat.node_tree else None
            if bsdf is not None:
                bsdf.inputs["Base Color"].default_value = rgba

    def _set_positions(self, positions: np.ndarray):
        self.mesh.vertices.foreach_set("co", positions.ravel())
        self.mesh.update()

    def _render(self) -> bytes:
        scene = self.scene
        scene.render.filepath = self._path
        try:
            os.unlink(self._path)
        except FileNotFoundError:
            pass
        with _quiet_stdout():
            bpy.ops.render.render(write_still=True, scene=scene.name)
        try:
            data = Path(self._path).read_bytes()
        except OSError as e:
            raise pairs.PairsError(f"Blender wrote no image to {self._path}: {e.strerror or e}") from None
        if not pairs.png_complete(data):
            raise pairs.PairsError(f"Blender wrote an incomplete image to {self._path}")
        return data

    def render_chunk(self, params: np.ndarray, draws: np.ndarray, should_stop=None):
        """PNG bytes of each pair's image (and mask if enabled)."""
        positions = self.skinning.positions(params)
        images = []
        for pos, d in zip(positions, draws):
            if should_stop is not None and should_stop():
                raise Cancelled()
            self._set_positions(pos)
            self._apply_draws(d)
            images.append(self._render())
        masks = []
        if self.config.masks:
            self._mask_mode()
            try:
                for k, pos in enumerate(positions):
                    self._set_positions(pos)
                    bgr = cv2.imdecode(np.frombuffer(self._render(), np.uint8), cv2.IMREAD_COLOR)
                    labels = decode_mask(bgr, len(self.rig.regions), f"mask render of chunk pair {k}")
                    ok, buf = cv2.imencode(".png", labels, [cv2.IMWRITE_PNG_COMPRESSION, 3])
                    masks.append(buf.tobytes())
            finally:
                self._image_mode()
        return images, masks

    def remove(self):
        shutil.rmtree(self.scratch, ignore_errors=True)
        scene = self.scene
        if scene is None:
            return
        self.scene = None
        objects = list(scene.collection.all_objects)
        datas = [(obj.data, obj.type) for obj in objects]
        world = scene.world
        for obj in objects:
            bpy.data.objects.remove(obj)
        for data, kind in datas:
            pool = {"MESH": bpy.data.meshes, "CAMERA": bpy.data.cameras, "LIGHT": bpy.data.lights}.get(kind)
            if pool is not None and data is not None and data.users == 0:
                pool.remove(data)
        for mat in self.materials + self.mask_materials:
            if mat.users == 0:
                bpy.data.materials.remove(mat)
        bpy.data.scenes.remove(scene)
        if world is not None and world.users == 0:
            bpy.data.worlds.remove(world)


def _scratch_root():
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


# --- the job ------------------------------------------------------------------------------------
class PairsJob:
    """A pairs run in steps: :meth:`step` renders one chunk (or, with workers, waits for news).

    Creating the job checks the configuration and the output folder and writes the manifest;
    nothing is rendered until the first step. :meth:`close` always cleans up (scene, workers,
    temporary files, the images of chunks that did not finish).
    """

    def __init__(self, config: RenderConfig, rig=None, worker_chunks: list[int] | None = None):
        config.check()
        self.config = config
        self.rig = rig or load_rig(config.rig)
        self.render_rig = config.render_rig(self.rig)  # the mesh drawn: the rig or its LOD
        self.folder = Path(config.output)
        self.manifest = config.manifest(self.rig, self.render_rig)
        if worker_chunks is None:  # the parent (or only) process owns the folder
            self.todo = pairs.prepare_folder(self.folder, self.manifest, config.overwrite)
            self._remove_unfinished(self.todo)
        else:
            old = pairs.read_manifest(self.folder)
            why = old.mismatch(self.manifest)
            if why:
                raise pairs.PairsError(f"{self.folder / 'manifest.json'}: {why}")
            self.todo = list(worker_chunks)
        self.total = self.manifest.count
        self.done = self.total - sum(len(self.manifest.chunk_indices(c)) for c in self.todo)
        self.started = time.perf_counter()
        self.finished = False
        self._scene = None
        self._workers: list = []
        self._current: list[int] = []  # indices of the chunk being written (in-process)
        self.worker_mode = worker_chunks is not None
        self.should_stop = None

    # in-process ---------------------------------------------------------------------------
    def _render_chunk(self, chunk: int) -> int:
        m, cfg = self.manifest, self.config
        idx = m.chunk_indices(chunk)
        params = pairs.sample_params(self.rig.layout, len(idx), m.seed, cfg.pose_limits, cfg.sparse_k,
                                     start=int(idx[0]), gaze_limits=cfg.gaze_limits)
        draws = np.stack([pairs.draw_randomization(cfg.randomization, m.seed, i, len(self.rig.regions))
                          for i in idx])
        if self._scene is None:
            self._scene = RenderScene(self.render_rig, cfg)
        images, masks = self._scene.render_chunk(params, draws, self.should_stop)
        landmarks = self.rig.landmarks_2d(params, m.resolution)  # the full rig's, whatever the LOD
        self._current = list(idx)
        files = {"image": images}
        for i, data in zip(idx, images):
            pairs.write_dataset_file(self.folder / pairs.IMAGE_NAME.format(int(i)), data, durable=False)
        if cfg.masks:
            files["mask"] = masks
            for i, data in zip(idx, masks):
                pairs.write_dataset_file(self.folder / pairs.MASK_NAME.format(int(i)), data, durable=False)
        if cfg.durable:
            os.sync()
        pairs.write_chunk(self.folder, m, chunk, params, landmarks, draws, files, cfg.durable)
        self._current = []
        return len(idx)

    def _remove_unfinished(self, chunks) -> None:
        """Images / masks of chunks without a record: left by a killed run, redone anyway."""
        for c in chunks:
            for i in self.manifest.chunk_indices(c):
                for pattern in (pairs.IMAGE_NAME, pairs.MASK_NAME):
                    try:
                        os.unlink(self.folder / pattern.format(int(i)))
                    except FileNotFoundError:
                        pass

    # workers ---------------------------------------------------------------------------------
    def _start_workers(self) -> None:
        n = min(self.config.workers, len(self.todo))
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self._selector = selectors.DefaultSelector()
        self._logdir = Path(tempfile.mkdtemp(prefix="au2rig-pairs-log-"))
        config = dict(self.config.to_dict(), overwrite=False, workers=1)
        import json

        for w in range(n):
            chunks = self.todo[w::n]
            read_fd, write_fd = os.pipe()
            log = open(self._logdir / f"worker{w}.log", "wb")
            cmd = [sys.executable, "-m", "au2rig.addon", "_pairs-worker", json.dumps(config),
                   ",".join(map(str, chunks)), str(write_fd)]
            proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, pass_fds=(write_fd,))
            os.close(write_fd)
            reader = os.fdopen(read_fd, "rb", buffering=0)
            self._selector.register(reader, selectors.EVENT_READ, w)
            self._workers.append({"proc": proc, "log": log, "reader": reader, "buf": b"", "error": None,
                                  "eof": False, "chunks": chunks})

    def _poll_workers(self, timeout: float) -> None:
        for key, _ in self._selector.select(timeout):
            w = self._workers[key.data]
            data = key.fileobj.read(65536)
            if not data:
                w["eof"] = True
                self._selector.unregister(key.fileobj)
                continue
            w["buf"] += data
            *lines, w["buf"] = w["buf"].split(b"\n")
            for line in lines:
                text = line.decode(errors="replace")
                if text.startswith("chunk "):
                    self.done += int(text.split()[2])
                elif text.startswith("error "):
                    w["error"] = text[6:]
        for w in self._workers:
            if w["eof"] and w["proc"].poll() is None:
                w["proc"].wait()
            code = w["proc"].poll()
            if code not in (None, 0) or (code == 0 and w["error"]):
                msg = w["error"] or self._log_tail(w)
                raise pairs.PairsError(f"render worker failed (exit {code}): {msg}")

    def _log_tail(self, w) -> str:
        w["log"].flush()
        text = Path(w["log"].name).read_text(errors="replace")
        lines = [ln for ln in text.splitlines() if ln.strip() and "EGL" not in ln]
        return " | ".join(lines[-6:]) or "no output"

    def _stop_workers(self) -> None:
        for w in self._workers:
            if w["proc"].poll() is None:
                w["proc"].terminate()
        for w in self._workers:
            try:
                w["proc"].wait(10)
            except subprocess.TimeoutExpired:
                w["proc"].kill()
                w["proc"].wait()
            w["reader"].close()
            w["log"].close()
        if self._workers:
            self._selector.close()
            shutil.rmtree(self._logdir, ignore_errors=True)
        self._workers = []

    # stepping ----------------------------------------------------------------------------------
    def step(self, timeout: float = 0.5) -> bool:
        """Advance the run; True while there is more to do. Finishes the dataset at the end."""
        if self.finished:
            return False
        if self.todo and (self.config.workers <= 1 or self.worker_mode):
            self.done += self._render_chunk(self.todo[0])
            self.todo.pop(0)
            return True
        if self.todo and self.config.workers > 1:
            if not self._workers:
                self._start_workers()
            self._poll_workers(timeout)
            if all(w["eof"] and w["proc"].poll() == 0 for w in self._workers):
                self._stop_workers()
                self.todo = [c for c in self.todo if not pairs.chunk_done(self.folder, self.manifest, c)]
                if self.todo:
                    raise pairs.PairsError(f"workers exited with chunks {self.todo[:5]} not done")
            return True
        if not self.worker_mode:
            pairs.finalize(self.folder, self.manifest, self.config.durable)
        self.finished = True
        return False

    def close(self) -> None:
        """Clean up after success, error or cancel; work done so far stays and resumes."""
        self._stop_workers()
        if self._scene is not None:
            self._scene.remove()
            self._scene = None
        if self._current:  # a chunk interrupted while writing: no half-written pair stays
            for i in self._current:
                for pattern in (pairs.IMAGE_NAME, pairs.MASK_NAME):
                    try:
                        os.unlink(self.folder / pattern.format(int(i)))
                    except FileNotFoundError:
                        pass
            self._current = []
        if not self.worker_mode and self.folder.is_dir():
            pairs.remove_temporaries(self.folder)
            if not self.finished:
                self._remove_unfinished([c for c in range(self.manifest.n_chunks)
                                         if not pairs.chunk_done(self.folder, self.manifest, c)])

    @property
    def rate(self) -> float:
        return self.done / max(time.perf_counter() - self.started, 1e-9)


def render_pairs(config: RenderConfig, progress=None, should_stop=None, rig=None) -> dict:
    """Render (or resume) a pairs dataset; returns a summary.

    ``progress(done, total)`` is called after every step; ``should_stop()`` returning True
    cancels (raises :class:`Cancelled`; what is done stays and a new run resumes it).
    """
    job = PairsJob(config, rig)
    job.should_stop = should_stop
    start_done = job.done
    t0 = time.perf_counter()
    try:
        if progress is not None:
            progress(job.done, job.total)
        while job.step():
            if progress is not None:
                progress(job.done, job.total)
            if should_stop is not None and should_stop():
                raise Cancelled()
    finally:
        job.close()
    seconds = time.perf_counter() - t0
    rendered = job.total - start_done
    return {"folder": str(job.folder), "count": job.total, "rendered": rendered, "resumed_from": start_done,
            "seconds": seconds, "pairs_per_second": rendered / seconds if seconds > 0 else 0.0,
            "split": job.manifest.split_counts}


def run_worker(config_json: str, chunks: str, fd: int) -> int:
    """Entry of a worker process: render the given chunks, report each on pipe ``fd``."""
    import json

    out = os.fdopen(int(fd), "w", buffering=1)
    try:
        config = RenderConfig.from_dict(json.loads(config_json))
        chunk_list = [int(c) for c in chunks.split(",") if c]
        bpy.ops.wm.read_factory_settings(use_empty=True)
        job = PairsJob(config, worker_chunks=chunk_list)
        try:
            while job.todo:
                c = job.todo[0]
                n = job._render_chunk(job.todo.pop(0))
                out.write(f"chunk {c} {n}\n")
        finally:
            job.close()
    except Exception as e:  # reported to the parent, which names it in its error
        out.write(f"error {type(e).__name__}: {e}\n".replace("\n", " ").rstrip() + "\n")
        out.close()
        return 1
    out.close()
    return 0


# --- the naive loop (for the benchmark) ---------------------------------------------------------
def render_naive(rig, params: np.ndarray, size: int, folder, aa: str = "FXAA") -> float:
    """The obvious loop: set the rig's channel properties (drivers pose the bones), render one
    image, write it and its parameters. Returns the seconds the loop took (scene setup excluded)."""
    from .contact_sheet import setup_scene

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scene, arm_obj = setup_scene(rig, size)
    scene.display.render_aa = aa
    scene.render.dither_intensity = 0.0
    t0 = time.perf_counter()
    for i, p in enumerate(params):
        rig_builder.set_params(arm_obj, p)
        scene.render.filepath = str(folder / f"{i:06d}.png")
        with _quiet_stdout():
            bpy.ops.render.render(write_still=True)
        np.save(folder / f"{i:06d}.npy", p)
    return time.perf_counter() - t0
