"""Perception backends (core/tracking/landmarks.py): conventions, the mesh -> iBUG map, face picking, FAN loading."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from au2rig.core.rig.layout import LAYOUT
from au2rig.core.tracking.landmarks import (
    BACKENDS,
    BackendUnavailable,
    Face,
    LandmarkMap,
    fit_mediapipe_map,
    inter_ocular,
    lips_at_width,
    load_landmark_map,
    open_backend,
    pick_face,
)

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"


def _media(name: str) -> Path:
    if not MEDIA.is_dir():
        pytest.skip(f"../shared/media is absent: no real face media beside the project ({MEDIA})")
    path = MEDIA / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def _check_face(face: Face, shape, inside: bool = True):
    h, w = shape[:2]
    assert face.landmarks.shape == (68, 2) and face.landmarks.dtype == float
    assert np.isfinite(face.landmarks).all()
    assert face.box.shape == (4,) and face.box[0] < face.box[2] and face.box[1] < face.box[3]
    assert 0.0 <= face.confidence <= 1.0
    if inside:
        assert (face.landmarks >= 0).all() and (face.landmarks[:, 0] <= w).all() and (face.landmarks[:, 1] <= h).all()


# --- interface ---------------------------------------------------------------------------------
def test_unknown_backend_lists_the_names():
    with pytest.raises(ValueError) as e:
        open_backend("dlib")
    for name in BACKENDS:
        assert name in str(e.value)


def test_missing_mediapipe_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import mediapipe... -> ImportError
    monkeypatch.delitem(sys.modules, "mediapipe.python.solution_base", raising=False)
    monkeypatch.delitem(sys.modules, "mediapipe.python", raising=False)
    with pytest.raises(BackendUnavailable, match="pip install --no-deps mediapipe==0.10.21"):
        open_backend("mediapipe")


def test_bundled_map_is_valid():
    m = load_landmark_map()
    assert m.indices.shape[0] == 68 and m.indices.shape[1] <= 3
    assert (m.weights >= 0).all() and np.allclose(m.weights.sum(1), 1)
    assert m.meta["made_by"].startswith("tests/benchmarks/fit_mediapipe_map.py")
    assert m.meta["fit"]["held_out"]["mean_iod"] < 0.1


def test_lids_brows_and_lips_are_the_meshs_own_points():
    """The points expressions move come from the mesh's anatomy, not from a fit on rig renders
    (where the mesh never sees a lid close): each row is exactly its ANATOMICAL entry."""
    import importlib.util

    script = Path(__file__).resolve().parent / "benchmarks" / "fit_mediapipe_map.py"
    spec = importlib.util.spec_from_file_location("fit_mediapipe_map", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    m = load_landmark_map()
    assert len(module.ANATOMICAL) == 38
    for i, pairs in module.ANATOMICAL.items():
        got = {int(p): float(w) for p, w in zip(m.indices[i], m.weights[i]) if w > 0}
        assert got == pytest.approx({p: w for p, w in pairs}), i
    # the upper and lower lid margins are different points: a closed eye brings them together
    for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
        assert set(m.indices[upper][m.weights[upper] > 0]).isdisjoint(m.indices[lower][m.weights[lower] > 0])


def test_fit_recovers_a_known_map():
    rng = np.random.default_rng(0)
    mesh = rng.normal(0, 50, (40, 12, 2)) + 100
    idx = np.array([rng.choice(12, 3, replace=False) for _ in range(68)])
    w = rng.dirichlet(np.ones(3), 68)
    target = LandmarkMap(idx, w, {})(mesh)
    fitted = fit_mediapipe_map(mesh, target, candidates=12)
    assert np.abs(fitted(mesh) - target).max() < 1e-6


# --- mediapipe -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mediapipe_static():
    pytest.importorskip("mediapipe")
    with open_backend("mediapipe", video=False) as b:
        yield b


def test_blank_image_has_no_face(mediapipe_static):
    for value in (0, 128):
        assert mediapipe_static.detect(np.full((240, 320, 3), value, np.uint8)) == []


def test_rejects_non_images(mediapipe_static):
    with pytest.raises(ValueError, match="uint8"):
        mediapipe_static.detect(np.zeros((10, 10), np.uint8))


@pytest.fixture(scope="module")
def rig_render(tmp_path_factory):
    """A render of the performer's face (not in the map's training set), its params and size."""
    pytest.importorskip("bpy")
    from au2rig.addon.contact_sheet import render_tile, setup_scene
    from au2rig.core.animation.performance import performer_identity
    from au2rig.core.rig import load_rig

    rig = load_rig()
    size = 256
    p = performer_identity()
    p[LAYOUT.index["pose_yaw"]] = 15.0
    p[LAYOUT.index["pose_roll"]] = -8.0
    p[LAYOUT.index["AU12_L"]] = p[LAYOUT.index["AU12_R"]] = 0.7
    scene, arm = setup_scene(rig, size)
    img = render_tile(scene, arm, p, tmp_path_factory.mktemp("render") / "face.png")
    return img, rig.landmarks_2d(p, size)[0]


def test_mapped_points_match_the_rig(mediapipe_static, rig_render):
    img, truth = rig_render
    faces = mediapipe_static.detect(img)
    assert len(faces) == 1
    face = faces[0]
    _check_face(face, img.shape)
    err = np.linalg.norm(face.landmarks - truth, axis=1) / inter_ocular(truth)
    assert err.mean() < 0.1, f"mean error {err.mean():.3f} of the inter-ocular distance"
    assert face.box[0] <= truth[:, 0].min() + 10 and face.box[2] >= truth[:, 0].max() - 10


def _layout_ok(pts: np.ndarray):
    """Anatomy of an upright face: brows above eyes above nose tip above mouth above chin;
    the subject's right (points 36-41) on the image's left."""
    brows, eyes, nose_tip = pts[17:27, 1].mean(), pts[36:48, 1].mean(), pts[30, 1]
    mouth, chin = pts[48:68, 1].mean(), pts[8, 1]
    assert brows < eyes < nose_tip < mouth < chin
    assert pts[36:42, 0].mean() < pts[42:48, 0].mean()
    assert pts[0, 0] < pts[30, 0] < pts[16, 0]


@pytest.mark.parametrize("name", ["single_face.jpg", "Tom_Cruise_avp_2014_4.jpg", "0-f1-su-ph.jpg"])
def test_real_images(mediapipe_static, name):
    import cv2

    img = cv2.imread(str(_media(name)))
    faces = mediapipe_static.detect(img)
    assert len(faces) == 1
    _check_face(faces[0], img.shape)
    assert faces[0].confidence > 0.5
    _layout_ok(faces[0].landmarks)


def test_video_tracking_follows_the_face():
    pytest.importorskip("mediapipe")
    import cv2

    cap = cv2.VideoCapture(str(_media("single_face.mp4")))
    frames = []
    while len(frames) < 20:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    with open_backend("mediapipe", video=True, max_faces=1) as b:
        picked = None
        for f in frames:
            picked = pick_face(b.detect(f), picked, f.shape)
            assert picked is not None
            _check_face(picked, f.shape)
            assert picked.confidence > 0.5  # carried over from the detection while tracking
            _layout_ok(picked.landmarks)
        b.reset()
        assert len(b.detect(frames[0])) == 1


def test_lips_at_width_stretches_along_the_corner_line_only():
    rng = np.random.default_rng(0)
    angle = math.radians(25)
    unit, up = np.array([math.cos(angle), math.sin(angle)]), np.array([-math.sin(angle), math.cos(angle)])
    along = np.concatenate([[-1.0], rng.uniform(-0.9, 0.9, 5), [1.0], rng.uniform(-0.9, 0.9, 13)]) * 30
    across = np.concatenate([[0.0], rng.uniform(-8, 8, 5), [0.0], rng.uniform(-8, 8, 13)])
    centre = np.array([200.0, 300.0])
    lips = centre + along[:, None] * unit + across[:, None] * up
    out = lips_at_width(lips, 45.0)
    assert np.linalg.norm(out[6] - out[0]) == pytest.approx(45.0, abs=1e-9)
    np.testing.assert_allclose((out - centre) @ up, across, atol=1e-9)  # nothing moves across the line
    np.testing.assert_allclose((out - centre) @ unit, along * 0.75, atol=1e-9)  # 60 -> 45 apart
    np.testing.assert_allclose(lips_at_width(lips, float("nan")), lips)
    np.testing.assert_allclose(lips_at_width(lips, 60.0), lips, atol=1e-9)


def test_a_pucker_narrows_the_mouth():
    """A real pucker (``mead_M030``: lips pushed out into an O a quarter narrower than at rest,
    frame 42; frame 30 rests with the lips closed): the mouth's corners come closer by a fifth or
    more (the plain mesh's own corners: not at all)."""
    pytest.importorskip("mediapipe")
    import cv2

    path = _media("clips/mead_M030_front_surprised_level3_001.mp4")
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) <= 42:
        ok, f = cap.read()
        assert ok, f"{path}: ended before frame 42"
        frames.append(f)
    cap.release()
    width = {}
    with open_backend("mediapipe", video=False, max_faces=1) as b:
        for k in (30, 42):
            (face,) = b.detect(frames[k])
            lm = face.landmarks
            width[k] = np.linalg.norm(lm[54] - lm[48]) / np.linalg.norm(lm[45] - lm[36])
    assert width[42] < 0.8 * width[30], width


# --- pick_face -------------------------------------------------------------------------------
def _face(x0, y0, x1, y1, conf=0.9):
    return Face(np.array([x0, y0, x1, y1], float), np.zeros((68, 2)), conf)


def test_pick_face_starts_with_the_largest_central_face():
    shape = (360, 640, 3)
    small_center, big_corner = _face(300, 160, 340, 200), _face(0, 0, 120, 120)
    assert pick_face([small_center, big_corner], None, shape) is big_corner
    # equal sizes: the more central one
    a, b = _face(20, 20, 100, 100), _face(280, 140, 360, 220)
    assert pick_face([a, b], None, shape) is b
    # slightly smaller but central beats slightly larger in the corner
    c = _face(0, 0, 84, 84)
    assert pick_face([c, b], None, shape) is b
    assert pick_face([], None, shape) is None


def test_pick_face_follows_the_same_face():
    shape = (360, 640, 3)
    performer = _face(100, 100, 200, 200)
    bigger_other = _face(350, 50, 600, 300)
    moved = _face(120, 105, 220, 205)
    assert pick_face([bigger_other, moved], performer, shape) is moved
    # the performer is gone: do not jump to someone else
    assert pick_face([bigger_other], performer, shape) is None
    # two candidates near: the overlapping one
    near = _face(180, 100, 280, 200)
    assert pick_face([near, moved], performer, shape) is moved
    # a much smaller box at the same place is not the same face
    assert pick_face([_face(140, 140, 160, 160)], performer, shape) is None


# --- FAN (face-alignment) with weights the test makes ----------------------------------------------
def _write_fan_weights(folder: Path):
    """Random 2D FAN weights and S3FD weights rigged to report one face box in the image center.

    The S3FD state dict keeps face-alignment's format (``torch.save`` of the state dict) and
    names; its classifier convolutions are zeroed with biases that say 'background' everywhere
    except at the coarsest level (stride 128), whose one anchor (on a 128 px image) decodes,
    with zero regression weights, to a 48 px box around the image center.
    """
    torch = pytest.importorskip("torch")
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    from au2rig.core.tracking.landmarks import fan_weight_files

    gen = torch.Generator().manual_seed(0)

    def fill(net):
        out = {}
        for k, v in net.state_dict().items():
            if k.endswith("running_var"):
                out[k] = torch.ones(v.shape)
            elif k.endswith("num_batches_tracked"):
                out[k] = torch.zeros(v.shape, dtype=torch.long)
            elif k.endswith("running_mean") or k.endswith(".bias"):
                out[k] = torch.zeros(v.shape)
            elif v.ndim > 1:
                fan_in = math.prod(v.shape[1:])
                out[k] = torch.randn(v.shape, generator=gen) * math.sqrt(2.0 / fan_in)
            else:
                out[k] = torch.ones(v.shape)  # norm scales
        return out

    with torch.device("meta"):
        fan, det = FAN(4), s3fd()
    fan_sd, det_sd = fill(fan), fill(det)
    for k in det_sd:
        if "mbox_conf" in k:
            det_sd[k].zero_()
            if k.endswith(".bias"):
                face = k.startswith("conv7_2")
                det_sd[k][-1] = 10.0 if face else -10.0  # last channel: face
                det_sd[k][:-1] = -10.0 if face else 10.0
        if "mbox_loc" in k:
            det_sd[k].zero_()
            if k.startswith("conv7_2") and k.endswith(".bias"):
                det_sd[k][2:] = math.log(48 / 512) / 0.2  # prior 4 * 128 px -> 48 px
    names = list(fan_weight_files("sfd"))
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(fan_sd, folder / next(n for n in names if n.startswith("2DFAN")))
    torch.save(det_sd, folder / next(n for n in names if n.startswith("s3fd")))
    return names


def test_fan_missing_weights_names_files_and_folder(tmp_path, monkeypatch):
    pytest.importorskip("face_alignment")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(BackendUnavailable) as e:
        open_backend("fan")
    msg = str(e.value)
    assert "2DFAN4-11f355bf06.pth.tar" in msg and "s3fd-619a316812.pth" in msg
    assert str(tmp_path / "hub" / "checkpoints") in msg


def test_fan_with_test_made_weights(tmp_path, monkeypatch):
    pytest.importorskip("face_alignment")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    names = _write_fan_weights(tmp_path / "hub" / "checkpoints")
    assert sorted(names) == ["2DFAN4-11f355bf06.pth.tar", "s3fd-619a316812.pth"]
    import socket

    def no_network(*a, **k):
        raise AssertionError("the FAN backend tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    # face-alignment's two numba-jitted helpers take ~20 s to compile on a small CPU: run their
    # plain Python originals (same code) to keep the suite fast
    import face_alignment.utils as fa_utils

    for fn in ("_get_preds_fromhm", "transform_np"):
        monkeypatch.setattr(fa_utils, fn, getattr(fa_utils, fn).py_func)
    img = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    with open_backend("fan", video=True, flip_input=False) as b:
        faces = b.detect(img)
    assert len(faces) == 1
    face = faces[0]
    _check_face(face, img.shape)
    np.testing.assert_allclose(face.box, [40, 40, 88, 88], atol=1e-3)
    assert face.confidence > 0.99


def test_landmark_wire_format_matches_attributes():
    pytest.importorskip("mediapipe")
    from mediapipe.framework.formats import landmark_pb2

    from au2rig.core.tracking.landmarks import _landmark_xy

    rng = np.random.default_rng(1)
    lms = landmark_pb2.NormalizedLandmarkList()
    for x, y, z in rng.uniform(-0.2, 1.2, (468, 3)):
        lms.landmark.add(x=x, y=y, z=z)
    expect = np.array([(p.x, p.y) for p in lms.landmark])
    np.testing.assert_array_equal(_landmark_xy(lms), expect)
    lms.landmark[3].visibility = 0.5  # another layout: the slow path
    np.testing.assert_array_equal(_landmark_xy(lms), expect)
