"""The generator G (core/nets/generator.py) and its losses (core/nets/perceptual.py)."""
from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from au2rig.core.nets.generator import (
    DemodulatedUp,
    GeneratorConfig,
    build_generator,
    check_meta,
    count_parameters,
    generator_meta,
    landmark_maps,
)
from au2rig.core.nets.perceptual import (
    ImageLoss,
    VGG16Features,
    VGGWeightsError,
    expected_vgg16_shapes,
    load_vgg16,
    perceptual_loss,
    ssim,
)
from au2rig.core.rig.layout import LAYOUT

CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def random_params(n: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.uniform(LAYOUT.lo, LAYOUT.hi, (n, len(LAYOUT))).astype(np.float32))


@pytest.mark.parametrize("resolution", [64, 128, 256])
def test_generator_shapes_and_range(resolution):
    torch.manual_seed(0)
    g = build_generator(GeneratorConfig(resolution=resolution))
    sched = g.cfg.schedule()
    convs = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(convs) == len(sched) == 8
    assert sched[-1][1] == resolution
    assert [c.stride[0] for c in convs] == [s for s, _ in sched]
    assert convs[-1].out_channels == 3 and convs[0].in_channels == len(LAYOUT)
    n_norm = sum(isinstance(m, torch.nn.InstanceNorm2d) for m in g.modules())
    assert n_norm == 6  # every hidden layer but the 2x2 one
    y = g(random_params(2))
    assert y.shape == (2, 3, resolution, resolution)
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    print(f"G {resolution}: {count_parameters(g):,} parameters, schedule {sched}")


@pytest.mark.parametrize("resolution", [64, 128, 256])
def test_landmark_maps_generator_shapes(resolution):
    torch.manual_seed(0)
    g = build_generator(GeneratorConfig(resolution=resolution, base_width=4, max_width=32, landmark_maps=True))
    convs = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(convs) == 8
    inputs = [1] + [size for _, size in g.cfg.schedule()[:-1]]  # each layer's input size
    assert g.map_sizes == [s if 8 <= s <= 64 else 0 for s in inputs]
    assert [s for s in g.map_sizes if s][:4] == [8, 16, 32, 64]
    for conv, size in zip(convs, g.map_sizes):  # a layer with maps takes 68 more channels
        plain = conv.in_channels - (68 if size else 0)
        assert plain == len(LAYOUT) if conv is convs[0] else plain in (3, 4, 8, 16, 32)
    y = g(random_params(2))
    assert y.shape == (2, 3, resolution, resolution) and torch.isfinite(y).all()


def test_landmark_maps_peak_at_the_points():
    pts = torch.tensor([[[10.3, 21.2], [33.3, 5.6]]])  # pixels of a 64 px image
    for size in (16, 64):
        maps = landmark_maps(pts, size, 64, sigma=1.0)
        assert maps.shape == (1, 2, size, size)
        for k, (x, y) in enumerate(pts[0].tolist()):
            row, col = divmod(int(maps[0, k].argmax()), size)
            # the brightest pixel is the one that holds the point, at the map's scale
            assert (col, row) == (int(x * size / 64), int(y * size / 64))
    # a point on a pixel centre gives exactly 1 there
    assert float(landmark_maps(torch.tensor([[[4.5, 7.5]]]), 64, 64, 1.0)[0, 0, 7, 4]) == pytest.approx(1.0)


def test_landmark_maps_follow_the_rig_and_pass_gradients():
    """The maps are drawn at the rig's own projected landmarks, and with the 1x1 code cut off,
    the gradient of G's image still reaches the jaw drop, through the maps alone."""
    from au2rig.core.rig import load_rig

    rig = load_rig()
    torch.manual_seed(0)
    g = build_generator(GeneratorConfig(resolution=64, base_width=4, max_width=32, landmark_maps=True), rig=rig)
    params = torch.tensor(LAYOUT.neutral()[None], dtype=torch.float32, requires_grad=True)
    np.testing.assert_allclose(g.landmarks(params).detach().numpy(),
                               rig.landmarks_2d(LAYOUT.neutral()[None], 64), atol=1e-3)
    with torch.no_grad():
        g.blocks[0][0].weight.zero_()  # the parameter code no longer reaches the image
    jaw = LAYOUT.index["AU26"]
    with_maps = torch.autograd.grad(g(params).sum(), params)[0]
    assert torch.isfinite(with_maps).all() and float(with_maps[0, jaw]) != 0.0
    plain = build_generator(GeneratorConfig(resolution=64, base_width=4, max_width=32, landmark_maps=False))
    with torch.no_grad():
        plain.blocks[0][0].weight.zero_()
    assert float(torch.autograd.grad(plain(params).sum(), params)[0][0, jaw]) == 0.0  # the paper's G: none



def test_iris_maps_follow_the_gaze_and_pass_gradients():
    """With ``iris_maps`` G gets two more maps at the irises' centres: they sit inside the eyes'
    corners, move the way the eyes turn, and carry the gradient to the gaze channels, which the
    68 landmarks alone never do. A config without the field (a G made before it) builds 68 maps."""
    from au2rig.core.rig import load_rig

    rig = load_rig()
    torch.manual_seed(0)
    cfg = GeneratorConfig(resolution=64, base_width=4, max_width=32, landmark_maps=True, iris_maps=True)
    g = build_generator(cfg, rig=rig)
    params = torch.tensor(np.repeat(LAYOUT.neutral()[None], 3, 0), dtype=torch.float32)
    params[1, LAYOUT.index["gaze_yaw"]] = 30.0  # toward the subject's left: the image's right
    params[2, LAYOUT.index["gaze_pitch"]] = 20.0  # up
    points = g.landmarks(params).detach().numpy()
    assert points.shape == (3, 70, 2)
    np.testing.assert_allclose(points[:, :68], rig.landmarks_2d(params.numpy(), 64), atol=1e-3)
    right, left = points[0, 68], points[0, 69]
    assert points[0, 36, 0] < right[0] < points[0, 39, 0] and points[0, 42, 0] < left[0] < points[0, 45, 0]
    assert (points[1, 68:, 0] - points[0, 68:, 0] > 0.5).all()  # 30 degrees: over half a pixel at 64
    assert (points[2, 68:, 1] - points[0, 68:, 1] < -0.3).all()
    with torch.no_grad():
        g.blocks[0][0].weight.zero_()  # only the maps reach the image
    x = params[:1].clone().requires_grad_(True)
    grad = torch.autograd.grad(g(x).sum(), x)[0][0]
    assert float(grad[LAYOUT.index["gaze_yaw"]]) != 0.0 and float(grad[LAYOUT.index["gaze_pitch"]]) != 0.0
    old = {k: v for k, v in asdict(cfg).items() if k != "iris_maps"}
    assert build_generator(GeneratorConfig(**old), rig=rig).n_landmarks == 68

def test_generator_config_rejects_bad_resolution():
    with pytest.raises(ValueError, match="resolution"):
        GeneratorConfig(resolution=96)
    with pytest.raises(ValueError, match="norm must be one of"):
        GeneratorConfig(norm="batch")


def test_demodulation_takes_no_image_statistics():
    """A demodulated layer is linear in its input and blind to the scale of its style (the
    demodulation divides it out); nothing in it depends on the image's own statistics, so an
    image's far corner cannot steer its centre (what instance normalisation allows)."""
    torch.manual_seed(0)
    layer = DemodulatedUp(n_params=5, cin=6, cout=4, stride=2)
    with torch.no_grad():
        layer.style.weight.normal_()  # styles that differ per image
    x, z = torch.randn(3, 6, 8, 8), torch.randn(3, 5)
    y = layer(x, z)
    assert y.shape == (3, 4, 16, 16)
    with torch.no_grad():
        bias = layer.bias.view(1, -1, 1, 1)
        np.testing.assert_allclose(layer(2.5 * x, z) - bias, 2.5 * (y - bias), atol=1e-5)
        layer.style.weight.mul_(3.0)
        layer.style.bias.mul_(3.0)
        np.testing.assert_allclose(layer(x, z), y, atol=1e-5)
        # a change in one corner of the input reaches the output only near that corner
        x2 = x.clone()
        x2[:, :, :2, :2] += 50.0
        far = (layer(x2, z) - y)[:, :, 8:, 8:]
        assert far.abs().max() < 1e-5
    # the same change through instance normalisation moves the whole image
    inorm = torch.nn.InstanceNorm2d(6, affine=False)
    assert (inorm(x2) - inorm(x))[:, :, 4:, 4:].abs().max() > 0.1
    g = build_generator(GeneratorConfig(resolution=64, base_width=4, max_width=32, norm="demod"))
    assert not any(isinstance(m, torch.nn.InstanceNorm2d) for m in g.modules())
    # every layer but the first (2x2) and the last (to RGB): 4, 8, 16, 32, 64, 64
    assert sum(isinstance(m, DemodulatedUp) for m in g.modules()) == 6


def test_meta_round_trip_and_refusal(synthetic_rig):
    cfg = GeneratorConfig(resolution=64)
    meta = generator_meta(cfg, LAYOUT, synthetic_rig)
    assert meta["channels"] == list(LAYOUT.names) and meta["config"]["resolution"] == 64
    check_meta(meta, LAYOUT, synthetic_rig)
    with pytest.raises(ValueError, match="generator made for rig 'synthetic'"):
        check_meta(dict(meta, rig_identity="other"), LAYOUT, synthetic_rig)
    bad = dict(meta, channels=list(reversed(meta["channels"])))
    with pytest.raises(ValueError, match="channel 0"):
        check_meta(bad, LAYOUT)
    with pytest.raises(ValueError, match="layout version"):
        check_meta(dict(meta, layout_version="0.0"), LAYOUT)


def smooth_targets(n: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 8, 8, generator=g)
    return F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)


@pytest.mark.parametrize("norm", ["instance", "demod"])
def test_a_few_steps_lower_the_loss(norm):
    torch.manual_seed(0)
    g = build_generator(GeneratorConfig(resolution=64, base_width=4, max_width=64, norm=norm))
    params, targets = random_params(4, seed=1), smooth_targets(4, 64)
    loss_fn = ImageLoss()
    opt = torch.optim.Adam(g.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = loss_fn(g(params), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.7 * losses[0], losses


def test_ssim_properties():
    torch.manual_seed(0)
    a = smooth_targets(2, 32)
    assert ssim(a, a).item() == pytest.approx(1.0, abs=1e-5)
    noisy = (a + 0.1 * torch.randn_like(a)).clamp(0, 1)
    noisier = (a + 0.3 * torch.randn_like(a)).clamp(0, 1)
    s1, s2 = ssim(a, noisy).item(), ssim(a, noisier).item()
    assert s2 < s1 < 0.99
    assert ssim(a, noisy).item() == pytest.approx(ssim(noisy, a).item(), abs=1e-6)
    pred = noisy.clone().requires_grad_(True)
    loss = ImageLoss()(pred, a)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    # images smaller than the window still work
    small = torch.rand(1, 3, 5, 5)
    assert ssim(small, small).item() == pytest.approx(1.0, abs=1e-5)


def torchvision_style_state(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    state = VGG16Features().state_dict()
    state["classifier.0.weight"] = torch.zeros(8, 4)  # classifier keys are ignored
    state["classifier.6.bias"] = torch.zeros(8)
    return state


def test_vgg16_loader_accepts_torchvision_keys(tmp_path):
    shapes = expected_vgg16_shapes()
    assert sorted({int(k.split(".")[1]) for k in shapes}) == list(CONV_INDICES)
    assert shapes["features.5.weight"] == (128, 64, 3, 3)
    state = torchvision_style_state()
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(state, path)
    net = load_vgg16(path)
    assert torch.equal(net.features[28].weight, state["features.28.weight"])
    assert not any(p.requires_grad for p in net.parameters())
    feats = net(torch.rand(1, 3, 32, 32))
    assert [tuple(f.shape) for f in feats] == [(1, 128, 16, 16), (1, 256, 8, 8), (1, 512, 4, 4)]
    assert perceptual_loss(feats, feats).item() == 0
    # the paper's mode through ImageLoss: finite, gradients reach the image
    loss_fn = ImageLoss("vgg16", path)
    pred = torch.rand(1, 3, 32, 32, requires_grad=True)
    loss = loss_fn(pred, torch.rand(1, 3, 32, 32))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_vgg16_loader_rejects_wrong_dicts(tmp_path):
    state = torchvision_style_state()
    missing = dict(state)
    del missing["features.12.bias"]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(VGGWeightsError, match=r"missing key 'features\.12\.bias'"):
        load_vgg16(tmp_path / "missing.pth")
    wrong = dict(state)
    wrong["features.5.weight"] = torch.zeros(64, 64, 3, 3)
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(VGGWeightsError, match=r"features\.5\.weight: expected \(128, 64, 3, 3\), "
                                              r"got \(64, 64, 3, 3\)"):
        load_vgg16(tmp_path / "wrong.pth")
    extra = dict(state)
    extra["features.3.weight"] = torch.zeros(1)
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(VGGWeightsError, match=r"unexpected key 'features\.3\.weight'"):
        load_vgg16(tmp_path / "extra.pth")
    with pytest.raises(FileNotFoundError):
        load_vgg16(tmp_path / "absent.pth")
    with pytest.raises(ValueError, match="vgg_path"):
        ImageLoss("vgg16")


@pytest.mark.filterwarnings("ignore")  # the legacy exporter's deprecation / tracer notes
@pytest.mark.parametrize("maps, irises, norm", [(False, False, "instance"), (True, False, "instance"),
                                                (True, True, "instance"), (True, True, "demod")])
def test_onnx_export_matches_torch(tmp_path, maps, irises, norm):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    g = build_generator(GeneratorConfig(resolution=64, base_width=4, max_width=64, landmark_maps=maps,
                                        iris_maps=irises, norm=norm)).eval()
    if norm == "demod":
        for m in g.modules():  # styles that differ per image, as after training
            if isinstance(m, DemodulatedUp):
                torch.nn.init.normal_(m.style.weight, std=0.5)
    path = tmp_path / "g.onnx"
    torch.onnx.export(g, (random_params(1),), str(path), dynamo=False, opset_version=17,
                      input_names=["params"], output_names=["image"],
                      dynamic_axes={"params": {0: "batch"}, "image": {0: "batch"}})
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = random_params(3, seed=5)
    (onnx_out,) = sess.run(None, {"params": x.numpy()})
    with torch.no_grad():
        ref = g(x).numpy()
    assert onnx_out.shape == (3, 3, 64, 64)
    np.testing.assert_allclose(onnx_out, ref, atol=1e-4)
