"""Shared fixtures: a tiny synthetic rig that follows the rig spec, and a clean bpy."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from au2rig.core.rig import Camera, Rig, coefficient_names  # noqa: E402 (after pytest.importorskip)
from au2rig.core.rig.layout import LAYOUT  # noqa: E402 (after pytest.importorskip)

# name, parent, head, rotation mode, base scale
SYNTHETIC_BONES = (
    ("root", -1, (0.0, 0.0, 0.0), "XYZ", 1.0),  # no weights: not a deforming bone
    ("neck", 0, (0.0, 0.01, 0.02), "XYZ", 1.0),
    ("head", 1, (0.0, 0.01, 0.08), "XYZ", 1.0),
    ("jaw", 2, (0.0, 0.0, 0.1), "YXZ", 1.0),
    ("lip", 3, (0.0, -0.08, 0.07), "YXZ", 1.0),
    ("brow.L", 2, (0.03, -0.075, 0.17), "XYZ", 0.0),  # hidden unless a brow style shows it
    ("brow.R", 2, (-0.03, -0.075, 0.17), "YXZ", 1.0),
)


def make_synthetic_rig(seed: int = 0) -> Rig:
    """An ellipsoid 'head' on a 7-bone chain with random tables; small enough for fast tests.

    Covers: XYZ and YXZ bones, a root without weights, a base-scale-0 bone shown by brow
    styles, identity tables both antisymmetric (at0 = -at1) and independent, and one
    component (head loc x) touched by every AU so its driver expression is too long for
    one Blender driver.
    """
    rng = np.random.default_rng(seed)
    layout = LAYOUT
    names = [b[0] for b in SYNTHETIC_BONES]
    bi = {n: i for i, n in enumerate(names)}
    nb = len(names)

    # mesh: ellipsoid, latitude/longitude grid with poles
    n_lat, n_lon = 14, 20
    center, radii = np.array([0.0, 0.0, 0.11]), np.array([0.07, 0.09, 0.11])
    theta = np.linspace(0, np.pi, n_lat + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    unit = np.concatenate([[[0, 0, 1.0]], ring, [[0, 0, -1.0]]])
    verts = center + unit * radii
    top, bottom = 0, len(unit) - 1
    at = lambda i, j: 1 + i * n_lon + j % n_lon
    faces = [(top, at(0, j), at(0, j + 1)) for j in range(n_lon)]
    for i in range(n_lat - 2):
        for j in range(n_lon):
            faces += [(at(i, j), at(i + 1, j), at(i + 1, j + 1)), (at(i, j), at(i + 1, j + 1), at(i, j + 1))]
    faces += [(bottom, at(n_lat - 2, j + 1), at(n_lat - 2, j)) for j in range(n_lon)]
    faces = np.array(faces)
    centroid = verts[faces].mean(1)
    # regions: lips in front below the middle, brows in front near the top, skin elsewhere
    regions = ("skin", "lips", "brows")
    face_regions = np.zeros(len(faces), int)
    front = centroid[:, 1] < -0.05
    face_regions[front & (np.abs(centroid[:, 2] - 0.07) < 0.015)] = 1
    face_regions[front & (np.abs(centroid[:, 2] - 0.17) < 0.015)] = 2
    colors = np.array([[0.6, 0.4, 0.3], [0.5, 0.1, 0.1], [0.05, 0.03, 0.02]])

    # weights: 3 nearest deforming bones by distance, softly, plus noise; rows sum to 1
    heads = np.array([b[2] for b in SYNTHETIC_BONES])
    dist = np.linalg.norm(verts[:, None] - heads[None], axis=-1)
    dist[:, bi["root"]] = np.inf
    k = 3
    idx = np.argsort(dist, axis=1)[:, :k]
    w = np.exp(-np.take_along_axis(dist, idx, 1) / 0.03) + 0.05 * rng.random((len(verts), k))
    w /= w.sum(1, keepdims=True)

    # tables
    coef = coefficient_names(layout)
    ci = {n: i for i, n in enumerate(coef)}
    basis = np.zeros((len(coef), nb, 9))
    LOC, ROT, SCALE = 0, 3, 6

    def put(channel, bone, kind, values):
        basis[ci[channel], bi[bone], kind:kind + 3] += values

    # pose, per degree: yaw + rot z, pitch + (chin up) rot -x, roll + rot y
    put("pose_yaw", "neck", ROT, (0, 0, 0.4))
    put("pose_yaw", "head", ROT, (0, 0, 0.6))
    put("pose_pitch", "head", ROT, (-1.0, 0, 0))
    put("pose_roll", "neck", ROT, (0, 0.5, 0))
    put("pose_roll", "head", ROT, (0, 0.5, 0))
    movable = ["jaw", "lip", "brow.L", "brow.R", "head"]
    for ch in layout.group_names("au"):
        for bone in rng.choice(movable, size=2, replace=False):
            put(ch, bone, LOC, rng.normal(0, 0.006, 3))
            put(ch, bone, ROT, rng.normal(0, 8.0, 3))
        put(ch, "head", LOC, (rng.uniform(0.0005, 0.002), 0, 0))  # many terms on one component
    put("AU26", "jaw", ROT, (20.0, 0, 0))
    for i, ch in enumerate(layout.group_names("identity")):
        bone = rng.choice(movable)
        at1 = np.concatenate([rng.normal(0, 0.004, 3), rng.normal(0, 4.0, 3), rng.normal(0, 0.08, 3)])
        at0 = rng.normal(0, 1, 9) * np.abs(at1) if i % 4 == 0 else -at1  # independent or antisymmetric
        basis[ci[f"{ch}@1"], bi[bone]] += at1
        basis[ci[f"{ch}@0"], bi[bone]] += at0
    for i, ch in enumerate(layout.group_names("brow_style")):
        put(ch, "brow.L", SCALE, (1.0, 1.0 + 0.2 * i, 1.0))
        put(ch, "brow.L", LOC, (0, 0, 0.003 * i))
        put(ch, "brow.R", ROT, (0, 3.0 * i, 0))

    base = np.zeros((nb, 9))
    base[:, 6:9] = np.array([b[4] for b in SYNTHETIC_BONES])[:, None]

    front_verts = np.flatnonzero(verts[:, 1] < -0.03)
    landmarks = rng.choice(front_verts, 68, replace=len(front_verts) < 68)
    camera = Camera(location=(0.0, -0.6, 0.12), look_at=(0.0, 0.0, 0.11), lens_mm=50.0,
                    sensor_mm=36.0, resolution=256)
    lights = ({"type": "area", "location": [0.3, -0.5, 0.5], "energy": 20.0, "size": 0.5},
              {"type": "point", "location": [-0.4, -0.3, 0.2], "energy": 5.0})
    return Rig(name="synthetic", source="tests/conftest.py", layout=layout, vertices=verts, faces=faces,
               face_regions=face_regions, regions=regions, region_colors=colors,
               bone_names=tuple(names), bone_parents=np.array([b[1] for b in SYNTHETIC_BONES]),
               bone_heads=heads, bone_lengths=np.full(nb, 0.02),
               bone_rotation_modes=tuple(b[3] for b in SYNTHETIC_BONES), base_locals=base,
               basis=basis, coefficient_names=coef, weight_index=idx, weight_value=w,
               landmark_vertices=landmarks, camera=camera, lights=lights, identity=f"synthetic-{seed}")


def random_params(layout, rng, n: int) -> np.ndarray:
    """(n, P) uniform in every channel's range, brow style one-hot."""
    p = rng.uniform(layout.lo, layout.hi, (n, len(layout)))
    brow = layout.group_slice("brow_style")
    p[:, brow] = np.eye(brow.stop - brow.start)[rng.integers(0, brow.stop - brow.start, n)]
    return p


@pytest.fixture(scope="session")
def synthetic_rig() -> Rig:
    return make_synthetic_rig()


@pytest.fixture
def clean_bpy():
    """bpy reset to an empty factory scene."""
    bpy = pytest.importorskip("bpy")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy


@pytest.fixture
def bdfm_arm(clean_bpy):
    """A fresh empty scene holding the built-in rig (BDFM), its armature active."""
    from au2rig.addon.rig_builder import build_rig
    from au2rig.core.rig import load_rig

    arm_obj, _ = build_rig(load_rig())
    clean_bpy.context.view_layer.objects.active = arm_obj
    return arm_obj


@pytest.fixture(scope="session")
def rig():
    """The built-in rig (BDFM), loaded once."""
    from au2rig.core.rig import load_rig

    return load_rig()


def render_performance_part(rows: slice, path):
    """Rows ``rows`` of the scripted performance at 15 fps, rendered from the rig into a 640x360
    video at ``path``: a face video that needs no media."""
    from au2rig.addon.demo import render_clip
    from au2rig.core.animation.performance import Performance, scripted_performance
    from au2rig.core.rig import load_rig

    perf = scripted_performance(15)
    part = Performance(perf.times[rows], perf.params[rows], perf.labels[rows], perf.fps)
    return render_clip(load_rig(), part, path, progress=False), part


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory):
    """Eight frames of the scripted performance (into the smile)."""
    return render_performance_part(slice(12, 20), tmp_path_factory.mktemp("clip") / "clip.mp4")[0]


@pytest.fixture(scope="session")
def smile_clip(tmp_path_factory):
    """The rig (with another face than the base one) neutral, then smiling broadly; 25 frames."""
    return render_performance_part(slice(0, 25), tmp_path_factory.mktemp("smile") / "smile.mp4")[0]


@pytest.fixture(scope="session")
def blink_clip(tmp_path_factory):
    """The rig blinking: open (4 frames), closing, closed (5 frames), opening; 12 frames. Returns
    ``(video, performance)``."""
    return render_performance_part(slice(28, 40), tmp_path_factory.mktemp("blink") / "blink.mp4")


@pytest.fixture(scope="session")
def face_gap_clip(smile_clip, tmp_path_factory):
    """The face (12 frames), 12 frames without one (0.8 s, longer than the tracker waits before it
    looks for a face anew), then the face again (8 frames); MJPG at 15 fps."""
    import cv2

    from au2rig.core.tracking.track import read_frames

    frames = [image for _, image in read_frames(smile_clip)]
    path = tmp_path_factory.mktemp("gap") / "face_gap.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (640, 360))
    for f in frames[:12] + [np.full_like(frames[0], 90)] * 12 + frames[12:20]:
        writer.write(f)
    writer.release()
    return path
