"""The image path: regressor R, the five losses, unsupervised training, GE-Net fitting, ONNX.

Real torch and ONNX Runtime throughout. The frozen networks are small real ones made here
(a narrow G at 64 px, a randomly initialised F_seg at 64 px) saved in the project's formats;
the "real" faces are G's own aligned renders, and frames of the shared media when present.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from au2rig.core.datasets.faces import FaceCrops
from au2rig.core.nets.face_parser import FaceParser, save_face_parser
from au2rig.core.nets.generator import GeneratorConfig, build_generator, save_generator
from au2rig.core.nets.regressor import Regressor, RegressorConfig, region_channels, squash, unsquash
from au2rig.core.rig.layout import LAYOUT
from au2rig.core.training.chain import LossWeights, Objective, RenderChain, with_base_au, with_base_identity

SIZE = 64
ROOT = Path(__file__).resolve().parents[1]


class Constant(torch.nn.Module):
    """A regressor that returns fixed parameters whatever it sees (for the zero-loss checks)."""

    def __init__(self, params):
        super().__init__()
        self.params = params
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, f_gb, regions):
        return self.params.expand(len(f_gb), -1) + 0 * self.dummy


@pytest.fixture(scope="module")
def nets(rig, tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("image_path")
    # G as train-generator makes it (iris maps, demodulation), small
    g = build_generator(GeneratorConfig(resolution=64, base_width=2, max_width=16, iris_maps=True, norm="demod"),
                        rig=rig)
    g_path = save_generator(g, folder / "generator.pt", rig)
    parser = FaceParser(19).eval()
    p_path = save_face_parser(parser, folder / "parser.pt", {"crop_size": SIZE, "eye_distance": 0.3})
    return {"g": g, "parser": parser, "g_path": g_path, "p_path": p_path, "folder": folder}


@pytest.fixture(scope="module")
def chain(nets, rig):
    return RenderChain(nets["g"], nets["parser"], rig, size=SIZE)


def dlib_embedder():
    from au2rig.core.nets.face_id import EmbedderUnavailable, open_face_embedder

    try:
        return open_face_embedder("dlib")
    except (EmbedderUnavailable, FileNotFoundError) as exc:
        pytest.skip(f"dlib face-embedding weights not installed ({exc})")


def random_params(n, seed=0):
    rng = np.random.default_rng(seed)
    p = LAYOUT.neutral(n).astype(np.float32)
    pose = LAYOUT.group_slice("pose")
    p[:, pose] = rng.uniform(-15, 15, (n, 3))
    au = LAYOUT.group_slice("au")
    p[:, au] = rng.uniform(0, 1, (n, au.stop - au.start)) * (rng.uniform(size=(n, au.stop - au.start)) < 0.2)
    ident = LAYOUT.group_slice("identity")
    p[:, ident] = rng.uniform(0.3, 0.7, (n, ident.stop - ident.start))
    return torch.from_numpy(p)


def crops_file(chain, path, n=24, seed=0) -> FaceCrops:
    """Aligned crops of G's renders with their parameters (the roll stays in the crop: 0 removed)."""
    params = random_params(n, seed)
    with torch.no_grad():
        img = chain.generate(params)
    crops = (img.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)
    fc = FaceCrops(crops=crops, landmarks=np.zeros((n, 68, 2)), roll=np.zeros(n), source=["generated"],
                   source_index=np.zeros(n), frame=np.arange(n), params=params.numpy())
    fc.save(path)
    return fc


def test_squash_roundtrip_and_ranges():
    raw = torch.randn(16, len(LAYOUT)) * 3
    p = squash(raw)
    lo, hi = torch.tensor(LAYOUT.lo, dtype=torch.float32), torch.tensor(LAYOUT.hi, dtype=torch.float32)
    assert (p >= lo - 1e-5).all() and (p <= hi + 1e-5).all()
    assert torch.allclose(p[:, LAYOUT.group_slice("brow_style")].sum(1), torch.ones(16), atol=1e-5)
    inner = squash(torch.randn(16, len(LAYOUT)))  # away from the range ends, where eps clamps
    assert torch.allclose(squash(unsquash(inner)), inner, atol=1e-4)


def test_regressor_shapes(nets):
    r = Regressor(region_channels(nets["parser"]), RegressorConfig(crop_size=SIZE))
    with torch.no_grad():
        f = nets["parser"].features(torch.rand(3, 3, SIZE, SIZE))
        y = r.eval()(f.f_gb, f.regions)
    assert y.shape == (3, len(LAYOUT))
    assert set(r.heads) == {"pose", "au", "identity", "brow_style", "gaze"}
    # each sub-regressor: fusion -> stride-2 conv + BN -> two SE attention blocks -> two FC
    head = r.heads["au"]
    assert head.conv.stride == (2, 2) and len(head.attention) == 2 and head.fc2.out_features == 26


def test_the_chain_runs_the_shipped_generator(rig):
    """The image path's chain draws with the G the project ships (its landmark and iris maps
    included) and aligns its images like the real crops."""
    from au2rig.core.nets.generator import load_generator

    g, _ = load_generator(ROOT / "core" / "models" / "generator.pt", rig=rig)
    chain = RenderChain(g, FaceParser(19).eval(), rig, size=SIZE)
    params = torch.as_tensor(np.stack([LAYOUT.neutral()] * 2), dtype=torch.float32).requires_grad_()
    crops = chain.generate(params)
    assert crops.shape == (2, 3, SIZE, SIZE) and torch.isfinite(crops).all()
    crops.mean().backward()
    assert params.grad is not None and torch.isfinite(params.grad).all()


def test_losses_zero_where_they_should_be(chain):
    neutral = torch.from_numpy(LAYOUT.neutral(1).astype(np.float32))
    with torch.no_grad():
        crop = chain.generate(neutral)
    w = LossWeights(identity=0.0)
    obj = Objective(chain, Constant(neutral), None, w)
    total, terms, y = obj(crop)
    # the neutral face re-estimated as neutral: its own re-rendering, no sparsity cost, its
    # expressionless render is the base face, and G's images of y give y back
    for k in ("content", "parameter", "adversarial", "loopback"):
        assert float(terms[k].abs().max()) < 1e-5, (k, terms[k])
    # another face estimated exactly: content still zero, the others are not
    p = random_params(2, seed=3)
    with torch.no_grad():
        crops = chain.generate(p)
    total, terms, _ = Objective(chain, Constant(p[:1]), None, w)(crops[:1])
    assert float(terms["content"].max()) < 1e-5
    assert float(terms["parameter"].min()) > 1e-3
    total2, terms2, _ = Objective(chain, Constant(p[1:]), None, w)(crops[:1])
    assert float(terms2["content"].min()) > float(terms["content"].max())


def test_identity_loss_zero_on_own_expressionless_render(chain):
    emb = dlib_embedder()
    p = random_params(2, seed=5)
    with torch.no_grad():
        gbe = chain.generate(with_base_au(p))
        other = chain.generate(with_base_identity(random_params(2, seed=9)))
    w = LossWeights(identity=1.0, loopback=0.0, adversarial=0.0, parameter=0.0, content=0.0)
    _, same, _ = Objective(chain, Constant(p[:1]), emb, w)(gbe[:1])
    assert float(same["identity"].max()) < 1e-4
    _, diff, _ = Objective(chain, Constant(p[:1]), emb, w)(other[:1])
    assert float(diff["identity"].min()) > float(same["identity"].max())


def test_all_losses_have_finite_gradients_only_on_r(chain):
    torch.manual_seed(1)
    r = Regressor(region_channels(chain.parser), RegressorConfig(crop_size=SIZE))
    obj = Objective(chain, r, dlib_embedder(), LossWeights(identity=0.1)).train()
    with torch.no_grad():
        crops = chain.generate(random_params(4, seed=2))
    total, terms, _ = obj(crops)
    assert set(terms) == {"content", "identity", "parameter", "loopback", "adversarial"}
    for k, v in terms.items():
        assert torch.isfinite(v).all(), k
    total.backward()
    grads = [p.grad for p in r.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    frozen = list(chain.generator.parameters()) + list(chain.parser.parameters())
    assert all(not p.requires_grad and p.grad is None for p in frozen)


def test_each_term_alone_drives_gradients(chain):
    """Every term, alone, reaches R's weights (the ablations switch them off one at a time)."""
    with torch.no_grad():
        crops = chain.generate(random_params(3, seed=4))
    for term in ("content", "parameter", "loopback", "adversarial"):
        torch.manual_seed(2)
        r = Regressor(region_channels(chain.parser), RegressorConfig(crop_size=SIZE))
        w = LossWeights(**{k: (1.0 if k == term else 0.0) for k in ("content", "identity", "parameter",
                                                                      "loopback", "adversarial")})
        total, terms, _ = Objective(chain, r, None, w).train()(crops)
        assert set(terms) == {term}
        total.backward()
        assert sum(float(p.grad.abs().sum()) for p in r.parameters() if p.grad is not None) > 0, term


def _train(nets, tmp, crops, name, steps, stop_after=None, **kw):
    from au2rig.core.training.train_regressor import RegressorTrainConfig, train_regressor

    cfg = RegressorTrainConfig(regressor=RegressorConfig(crop_size=SIZE, width=16, hidden=32),
                               weights=LossWeights(identity=0.0), steps=steps, batch=4, validate_every=4,
                               checkpoint_every=2, val_max=4, grid_rows=2, embedder="none", **kw)
    return train_regressor([crops], tmp / name, nets["g_path"], nets["p_path"], cfg, val_path=crops,
                           log=lambda s: None, stop_after=stop_after, progress=False)


def test_training_changes_only_r_and_resumes_exactly(nets, chain, tmp_path):
    from au2rig.core.training.train_regressor import read_regressor_checkpoint

    crops = tmp_path / "crops.npz"
    crops_file(chain, crops, n=8)
    g_before = {k: v.clone() for k, v in nets["g"].state_dict().items()}
    p_before = {k: v.clone() for k, v in nets["parser"].state_dict().items()}
    full = read_regressor_checkpoint(_train(nets, tmp_path, crops, "full", steps=4))
    _train(nets, tmp_path, crops, "split", steps=4, stop_after=2)
    half = read_regressor_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert half["step"] == 2
    split = read_regressor_checkpoint(_train(nets, tmp_path, crops, "split", steps=4))
    assert split["step"] == full["step"] == 4
    for k, v in full["model"].items():
        assert torch.equal(v, split["model"][k]), k
    assert full["history"] == split["history"]
    # R learned; the frozen networks on disk and in memory did not move
    torch.manual_seed(0)
    assert any(not torch.equal(v, half["model"][k]) for k, v in full["model"].items())
    from au2rig.core.nets.face_parser import load_face_parser
    from au2rig.core.nets.generator import load_generator

    g2, _ = load_generator(nets["g_path"])
    assert all(torch.equal(v, g2.state_dict()[k]) for k, v in g_before.items())
    p2 = load_face_parser(nets["p_path"])
    assert all(torch.equal(v, p2.state_dict()[k]) for k, v in p_before.items())
    entry = full["history"][-1]
    assert {"val_content", "val_parameter", "val_loopback", "val_adversarial", "au_icc", "au_mae"} <= set(entry)
    assert (tmp_path / "full" / "val_grid.png").is_file()


def test_training_refuses_other_configuration(nets, chain, tmp_path):
    crops = tmp_path / "crops.npz"
    crops_file(chain, crops, n=8)
    _train(nets, tmp_path, crops, "run", steps=2)
    with pytest.raises(ValueError, match="lr"):
        _train(nets, tmp_path, crops, "run", steps=2, lr=1e-2)
    with pytest.raises(ValueError, match="not an au2rig regressor checkpoint"):
        from au2rig.core.training.train_regressor import read_regressor_checkpoint

        read_regressor_checkpoint(nets["g_path"])


def test_identity_weight_without_embedder_is_refused(chain):
    r = Regressor(region_channels(chain.parser), RegressorConfig(crop_size=SIZE))
    with pytest.raises(ValueError, match="identity loss needs a face embedder"):
        Objective(chain, r, None, LossWeights(identity=0.1))


def test_genet_fit_lowers_content_loss(chain):
    from au2rig.core.training.genet import FitConfig, fit

    target = random_params(2, seed=11)
    with torch.no_grad():
        crops = chain.generate(target)
    params, history = fit(chain, crops, None, FitConfig(iterations=20, lr=0.02, parameter=0.0))
    assert params.shape == (2, len(LAYOUT))
    assert np.mean(history[-3:]) < 0.95 * history[0]


def test_onnx_export_matches_torch_and_tracker_estimator(nets, chain, tmp_path):
    from au2rig.core.tracking.estimator import OnnxImageEstimator
    from au2rig.core.training.image_estimator import export_image_estimator

    torch.manual_seed(3)
    r = Regressor(region_channels(chain.parser), RegressorConfig(crop_size=SIZE)).eval()
    obj = Objective(chain, r, None, LossWeights(identity=0.0))
    path, diff = export_image_estimator(obj, tmp_path / "image.onnx")
    assert diff < 1e-4
    est = OnnxImageEstimator(path)
    crops = crops_file(chain, tmp_path / "c.npz", n=5)
    roll = np.array([0.0, 5.0, -5.0, 10.0, 0.0])
    out = est(crops.crops, roll)
    with torch.no_grad():
        ref = obj.predict(torch.from_numpy(crops.crops).permute(0, 3, 1, 2).float() / 255).numpy()
    r_i = LAYOUT.names.index("pose_roll")
    assert np.allclose(np.delete(out, r_i, 1), np.delete(ref, r_i, 1), atol=1e-4)
    assert np.allclose(out[:, r_i], ref[:, r_i] + roll, atol=1e-4)
    with pytest.raises(ValueError, match="crops must be"):
        est(crops.crops[:, :32])


def test_image_model_refused_where_a_landmark_model_is_expected(tmp_path):
    from au2rig.core.tracking.estimator import DEFAULT_ONNX, OnnxImageEstimator

    with pytest.raises(ValueError, match="not an image-path model"):
        OnnxImageEstimator(DEFAULT_ONNX)


def test_tracker_runs_an_image_model(nets, chain, tmp_path):
    from pathlib import Path

    from au2rig.core.tracking.track import TrackConfig, model_kind, track_video
    from au2rig.core.training.image_estimator import export_image_estimator

    video = Path(__file__).resolve().parents[2] / "shared" / "media" / "single_face.mp4"
    if not video.is_file():
        pytest.skip(f"{video} is absent (the shared test media are not part of the project)")
    torch.manual_seed(4)
    r = Regressor(region_channels(chain.parser), RegressorConfig(crop_size=SIZE)).eval()
    path, _ = export_image_estimator(Objective(chain, r, None, LossWeights(identity=0.0)), tmp_path / "img.onnx")
    assert model_kind(path) == "image"
    tracking = track_video(video, TrackConfig(model=str(path), max_frames=40, neutral=None, smoothing=0.0),
                           progress=False)
    assert tracking.success.all() and np.isfinite(tracking.params).all()
    assert tracking.meta["model"]["kind"] == "image"
    # the roll is the alignment's plus the model's residual: the man's head is tilted a few degrees
    roll = tracking.params[:, LAYOUT.names.index("pose_roll")]
    assert np.ptp(roll) > 0.1


def test_unlabeled_videos_are_detected_aligned_and_cached(tmp_path):
    from pathlib import Path

    from au2rig.core.training.train_regressor import load_crops

    video = Path(__file__).resolve().parents[2] / "shared" / "media" / "single_face.mp4"
    if not video.is_file():
        pytest.skip(f"{video} is absent (the shared test media are not part of the project)")
    said = []
    crops = load_crops([video], tmp_path / "faces.npz", SIZE, 0.3, said.append)
    assert len(crops) == 72 and crops.size == SIZE and crops.params is None
    assert (tmp_path / "faces.npz").is_file() and "72 faces found" in said[0]
    again = load_crops([video], tmp_path / "faces.npz", SIZE, 0.3, said.append)
    assert len(said) == 1 and np.array_equal(again.crops, crops.crops)  # the cache, not a new detection
    with pytest.raises(ValueError, match="the chain needs 128 px"):
        load_crops([tmp_path / "faces.npz"], size=128)


def test_command_line_eval_image_and_fit(nets, chain, tmp_path, capsys):
    from au2rig.core.__main__ import main
    from au2rig.core.training.image_estimator import export_image_estimator

    crops = tmp_path / "crops.npz"
    crops_file(chain, crops, n=8)
    run = _train(nets, tmp_path, crops, "run", steps=2)
    torch.manual_seed(5)
    r = Regressor(region_channels(chain.parser), RegressorConfig(crop_size=SIZE)).eval()
    model, _ = export_image_estimator(Objective(chain, r, None, LossWeights(identity=0.0)), tmp_path / "m.onnx")
    assert main(["eval-image", str(model), str(crops), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "faces/s through ONNX Runtime" in out and "AU26" in out and "pose MAE" in out
    fitted = tmp_path / "fit.npz"
    assert main(["fit", str(crops), "-o", str(fitted), "--run", str(run), "--iterations", "2", "--max-faces", "3",
                 "--threads", "1", "--quiet"]) == 0
    with np.load(fitted) as f:
        assert f["params"].shape == (3, len(LAYOUT)) and np.isfinite(f["params"]).all()
    assert "s per face" in capsys.readouterr().err


def test_tracker_refuses_a_generator_model(nets, tmp_path):
    from pathlib import Path

    from au2rig.core.tracking.track import TrackConfig, track_video
    from au2rig.core.training.train_generator import export_generator_onnx

    video = Path(__file__).resolve().parents[2] / "shared" / "media" / "single_face.mp4"
    if not video.is_file():
        pytest.skip(f"{video} is absent (the shared test media are not part of the project)")
    path, _ = export_generator_onnx(nets["g"], tmp_path / "g.onnx")
    with pytest.raises(ValueError, match="a 'generator' model; the tracker needs"):
        track_video(video, TrackConfig(model=str(path), max_frames=3), progress=False)
