"""F_seg (core/nets/face_parser.py): public state-dict layout, loader checks, Eq. 4-5 shapes, ONNX,
and the label makers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from au2rig.core.datasets.labels import CLASS_INDEX, CLASSES, colorize, landmark_mask, rig_mask_to_classes
from au2rig.core.nets.face_parser import (
    REGIONS,
    FaceParser,
    ParserFeatures,
    ParserOutput,
    load_face_parser,
    region_attention,
    representation_distance,
    save_face_parser,
)

torch.set_num_threads(1)

# conv weights: ResNet18 20 (stem 1, blocks 16, downsample 3), ARMs 4, context heads 3, FFM 3,
# output heads 6 = 36; BatchNorms: ResNet18 20, ARMs 4, context heads 3, FFM 1, output heads 3
# = 31, each weight, bias, running_mean, running_var, num_batches_tracked
N_TENSORS = 36 + 31 * 5
N_TENSORS_WITHOUT_COUNTERS = 36 + 31 * 4
RIG_REGIONS = ["skin", "hair", "brows", "lids", "lashes", "sclera", "iris", "pupil", "nose", "lips",
               "mouth_interior", "teeth"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = FaceParser()
    # give the BatchNorms non-trivial statistics so eval mode is not an identity
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.1, 0.1)
    return m.eval()


def test_public_layout(model):
    sd = model.state_dict()
    expect = {
        "cp.resnet.conv1.weight": (64, 3, 7, 7),
        "cp.resnet.bn1.running_var": (64,),
        "cp.resnet.layer2.0.downsample.0.weight": (128, 64, 1, 1),
        "cp.resnet.layer4.0.downsample.1.weight": (512,),
        "cp.resnet.layer4.1.conv2.weight": (512, 512, 3, 3),
        "cp.arm16.conv.conv.weight": (128, 256, 3, 3),
        "cp.arm16.conv_atten.weight": (128, 128, 1, 1),
        "cp.arm32.bn_atten.bias": (128,),
        "cp.conv_head32.conv.weight": (128, 128, 3, 3),
        "cp.conv_avg.conv.weight": (128, 512, 1, 1),
        "ffm.convblk.conv.weight": (256, 256, 1, 1),
        "ffm.conv1.weight": (64, 256, 1, 1),
        "ffm.conv2.weight": (256, 64, 1, 1),
        "conv_out.conv.conv.weight": (256, 256, 3, 3),
        "conv_out.conv_out.weight": (19, 256, 1, 1),
        "conv_out16.conv.conv.weight": (64, 128, 3, 3),
        "conv_out32.conv_out.weight": (19, 64, 1, 1),
    }
    for key, shape in expect.items():
        assert tuple(sd[key].shape) == shape, key
    assert len(sd) == N_TENSORS == 191
    assert sum(not k.endswith("num_batches_tracked") for k in sd) == N_TENSORS_WITHOUT_COUNTERS
    assert not any(k.startswith(("mean", "std", "sp.")) or ".fc." in k for k in sd)
    assert "cp.resnet.layer1.0.downsample.0.weight" not in sd
    assert len(CLASSES) == 19 and CLASSES[4] == "l_eye" and CLASSES[17] == "hair"
    assert REGIONS["face"] == ("layer4", tuple(range(1, 14)))


def _public_file(model, tmp_path, transform=None, name="79999_iter.pth"):
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    obj = transform(sd) if transform else sd
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_loader_accepts_public_formats(model, tmp_path):
    x = torch.rand(1, 3, 64, 64)
    ref = model(x)
    for transform in (None,
                      lambda sd: {"module." + k: v for k, v in sd.items()},
                      lambda sd: {"state_dict": sd},
                      lambda sd: {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}):
        loaded = load_face_parser(_public_file(model, tmp_path, transform))
        assert not loaded.training
        torch.testing.assert_close(loaded(x), ref)


def test_loader_rejects_bad_files(model, tmp_path):
    def renamed(sd):
        sd["ffm.conv1.weightx"] = sd.pop("ffm.conv1.weight")
        return sd

    def removed(sd):
        del sd["cp.arm32.conv_atten.weight"]
        return sd

    def reshaped(sd):
        sd["conv_out16.conv.conv.weight"] = torch.zeros(64, 128, 1, 1)
        return sd

    for transform, key in ((renamed, "ffm.conv1.weight"), (removed, "cp.arm32.conv_atten.weight"),
                           (reshaped, "conv_out16.conv.conv.weight")):
        path = _public_file(model, tmp_path, transform)
        with pytest.raises(ValueError) as err:
            load_face_parser(path)
        assert str(path) in str(err.value) and key in str(err.value)
    assert "(64, 128, 1, 1)" in str(err.value) and "(64, 128, 3, 3)" in str(err.value)

    missing = tmp_path / "nowhere" / "79999_iter.pth"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_face_parser(missing)
    with pytest.raises(ValueError, match="conv_out.conv_out.weight"):  # 19-class file, 14 asked
        load_face_parser(_public_file(model, tmp_path), n_classes=14)


def test_own_checkpoint_roundtrip(model, tmp_path):
    path = save_face_parser(model, tmp_path / "parser.pt", {"input_size": 128, "steps": 10})
    loaded = load_face_parser(path)
    assert loaded.meta["input_size"] == 128 and loaded.meta["classes"] == list(CLASSES)
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(loaded(x), model(x))
    with pytest.raises(ValueError, match="JSON"):
        save_face_parser(model, tmp_path / "bad.pt", {"x": object()})


@pytest.mark.parametrize("size", [128, 256])
def test_feature_shapes(model, size):
    with torch.no_grad():
        out = model.features(torch.rand(2, 3, size, size))
    assert isinstance(out, ParserOutput)
    assert out.logits.shape == (2, 19, size, size)
    assert out.f_gb.shape == (2, 256, size // 8, size // 8)
    channels = {"layer2": (128, 8), "layer3": (256, 16), "layer4": (512, 32)}
    assert list(out.regions) == list(REGIONS)
    for name, (stage, _) in REGIONS.items():
        c, f = channels[stage]
        assert out.regions[name].shape == (2, c, size // f, size // f), name
    assert model.parse(torch.rand(1, 3, size, size)).shape == (1, size, size)


def test_attention_in_unit_range_and_betas(model):
    seen = []
    hooks = [mod.register_forward_hook(lambda _m, _i, o: seen.append(o))
             for mod in (model.cp.arm16.sigmoid_atten, model.cp.arm32.sigmoid_atten, model.ffm.sigmoid)]
    x = torch.rand(1, 3, 128, 128)
    try:
        with torch.no_grad():
            out = model.features(x)
    finally:
        for h in hooks:
            h.remove()
    assert len(seen) == 3
    for a in seen:
        assert a.min() >= 0 and a.max() <= 1
    probs = torch.softmax(out.logits, 1)
    for _, (_, classes) in REGIONS.items():
        a = region_attention(probs, classes, 8)
        assert a.shape == (1, 1, 16, 16) and a.min() >= 0 and a.max() <= 1 + 1e-6
    weighted = FaceParser(betas={"nose": 2.0})
    weighted.load_state_dict(model.state_dict())
    with torch.no_grad():
        out2 = weighted.eval().features(x)
    torch.testing.assert_close(out2.regions["nose"], 2.0 * out.regions["nose"])
    torch.testing.assert_close(out2.regions["eyes"], out.regions["eyes"])
    with pytest.raises(ValueError, match="lips"):
        FaceParser(betas={"lips": 1.0})
    with pytest.raises(ValueError, match="multiple of 32"):
        model(torch.rand(1, 3, 100, 128))


def test_representation_distance(model):
    x = torch.rand(2, 3, 128, 128, requires_grad=True)
    y = torch.rand(2, 3, 128, 128)
    a, b = model.features(x), model.features(y)
    same = representation_distance(a, model.features(x.detach()))
    assert same.shape == (2,) and torch.all(same.abs() < 1e-6)
    d = representation_distance(a, b)
    assert d.shape == (2,) and torch.all(d > 0)
    d.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    only_face = representation_distance(a.regions, b.regions, {n: float(n == "face") for n in REGIONS})
    face = (a.regions["face"] - b.regions["face"]).abs().flatten(1).mean(1)
    torch.testing.assert_close(only_face, face)


def test_onnx_matches_torch(model, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    x = torch.rand(1, 3, 128, 128)
    feats = ParserFeatures(model).eval()
    for name, module, names in (("logits", model, ("logits",)), ("features", feats, feats.output_names)):
        path = tmp_path / f"{name}.onnx"
        torch.onnx.export(module, (x,), str(path), dynamo=False, opset_version=17,
                          input_names=["images"], output_names=list(names))
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"images": x.numpy()})
        with torch.no_grad():
            want = module(x)
        want = (want,) if isinstance(want, torch.Tensor) else want
        assert len(got) == len(want) == len(names)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w.numpy(), atol=1e-4, rtol=1e-4)


# --- labels ----------------------------------------------------------------------------------
def synthetic_landmarks(mouth_open=4.0) -> np.ndarray:
    """A frontal 64 x 64 face: subject's left at larger x. Only the points the code uses matter,
    the rest sit on plausible places."""
    lm = np.zeros((68, 2))
    t = np.linspace(0, np.pi, 17)
    lm[0:17] = np.stack([32 - 24 * np.cos(t), 30 + 26 * np.sin(t)], 1)  # jaw, right ear -> left ear
    lm[17:22] = np.stack([np.linspace(12, 28, 5), [18, 16, 15, 16, 17]], 1)  # right brow
    lm[22:27] = np.stack([np.linspace(36, 52, 5), [17, 16, 15, 16, 18]], 1)  # left brow
    lm[27:31] = np.stack([np.full(4, 32.0), np.linspace(22, 34, 4)], 1)
    lm[31:36] = np.stack([np.linspace(27, 37, 5), [37, 38, 38.5, 38, 37]], 1)
    for start, cx in ((36, 20.0), (42, 44.0)):
        ring = np.array([[-6, 0], [-3, -2.5], [3, -2.5], [6, 0], [3, 2.5], [-3, 2.5]])
        lm[start:start + 6] = ring + [cx, 24.0]
    lm[48:60] = np.array([[22, 46], [25, 43], [29, 41.5], [32, 42], [35, 41.5], [39, 43], [42, 46],
                          [39, 50], [35, 52], [32, 52.5], [29, 52], [25, 50]], float)
    h = mouth_open / 2
    lm[60:68] = np.array([[24, 46.5], [28, 46.5 - h], [32, 46.5 - h], [36, 46.5 - h], [40, 46.5],
                          [36, 46.5 + h], [32, 46.5 + h], [28, 46.5 + h]])
    return lm


def test_rig_mask_to_classes():
    lm = synthetic_landmarks()
    regions = list(reversed(RIG_REGIONS))  # indices come from the names, not fixed positions
    r = {name: i for i, name in enumerate(regions)}
    mask = np.full((64, 64), 255, np.uint8)
    mask[30:60, 8:56] = r["skin"]
    mask[2:8, :] = r["hair"]
    mask[15:18, 12:28] = r["brows"]
    mask[15:18, 36:52] = r["brows"]
    mask[22:27, 15:25] = r["sclera"]
    mask[23:26, 19:21] = r["iris"]
    mask[22:27, 39:49] = r["sclera"]
    mask[23:26, 43:45] = r["pupil"]
    mask[21, 14:26] = r["lashes"]
    mask[21, 38:50] = r["lids"]
    mask[30:38, 30:35] = r["nose"]
    mask[42:45, 24:40] = r["lips"]
    mask[49:52, 24:40] = r["lips"]
    mask[45:49, 26:38] = r["mouth_interior"]
    mask[45, 30:34] = r["teeth"]
    out = rig_mask_to_classes(mask, lm, regions)
    c = CLASS_INDEX
    assert out.dtype == np.uint8 and out.shape == mask.shape
    assert out[0, 0] == c["background"] and out[4, 30] == c["hair"] and out[55, 30] == c["skin"]
    assert set(np.unique(out[15:18, 12:28])) == {c["r_brow"]}  # image left = subject's right
    assert set(np.unique(out[15:18, 36:52])) == {c["l_brow"]}
    assert set(np.unique(out[22:27, 15:25])) == {c["r_eye"]} and out[21, 14] == c["r_eye"]
    assert set(np.unique(out[22:27, 39:49])) == {c["l_eye"]}
    assert out[21, 44] == c["skin"]  # lids
    assert set(np.unique(out[30:38, 30:35])) == {c["nose"]}
    assert set(np.unique(out[42:45, 24:40])) == {c["u_lip"]}
    assert set(np.unique(out[49:52, 24:40])) == {c["l_lip"]}
    assert set(np.unique(out[45:49, 26:38])) == {c["mouth"]}

    # a mirrored face (subject's left now at smaller x) swaps the sides
    flipped = rig_mask_to_classes(mask[:, ::-1], np.stack([64 - lm[:, 0], lm[:, 1]], 1), regions)
    assert set(np.unique(flipped[15:18, 12:28])) == {c["l_brow"]}
    assert set(np.unique(flipped[22:27, 15:25])) == {c["l_eye"]}
    # upside down (roll 180): upper lip is still the one on the nose side
    rolled = rig_mask_to_classes(mask[::-1, ::-1], 64 - lm, regions)
    assert set(np.unique(rolled[::-1, ::-1][42:45, 24:40])) == {c["u_lip"]}
    assert set(np.unique(rolled[::-1, ::-1][15:18, 12:28])) == {c["r_brow"]}

    with pytest.raises(ValueError, match="ears"):
        rig_mask_to_classes(mask, lm, regions + ["ears"])
    with pytest.raises(ValueError, match="40"):
        rig_mask_to_classes(np.full((4, 4), 40, np.uint8), lm, regions)


def test_landmark_mask():
    lm = synthetic_landmarks()
    out = landmark_mask(lm, (64, 64))
    c = CLASS_INDEX

    def at(point):
        x, y = point
        return out[int(y), int(x)]

    assert out.shape == (64, 64) and out.dtype == np.uint8
    assert at(lm[36:42].mean(0)) == c["r_eye"] and at(lm[42:48].mean(0)) == c["l_eye"]
    assert at(lm[19]) == c["r_brow"] and at(lm[24]) == c["l_brow"]
    assert at(lm[60:68].mean(0)) == c["mouth"]
    assert at(lm[51] + [0, 1.5]) == c["u_lip"] and at(lm[57] - [0, 1.5]) == c["l_lip"]
    assert at(lm[30]) == c["nose"] and at([32, 36]) == c["nose"]
    assert at([14, 40]) == c["skin"] and at(lm[8] - [0, 2]) == c["skin"]
    assert out[0, 0] == c["background"] and out[63, 63] == c["background"] and out[0, 63] == 0
    rgb = colorize(out)
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    assert len({tuple(p) for p in colorize(np.arange(19))}) == 19
