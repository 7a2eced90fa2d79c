"""The landmark estimator: training resumes exactly, checkpoints are checked, ONNX matches torch,
the shipped model recovers held-out rig faces, the self-supervised stage fits real-like faces."""
import dataclasses

import numpy as np
import pytest
import torch

from au2rig.core.evaluation.metrics import au_report, format_report
from au2rig.core.nets.landmark_net import NetworkConfig, build_network
from au2rig.core.rig import load_rig
from au2rig.core.rig.layout import LAYOUT
from au2rig.core.tracking.estimator import DEFAULT_ONNX, OnnxEstimator
from au2rig.core.training.adapt import adapt, reprojection_error
from au2rig.core.training.train_landmarks import (
    TrainConfig,
    export_onnx,
    heldout_set,
    load_checkpoint,
    predict_torch,
    save_weights,
    train,
    train_members,
)

TINY = TrainConfig(samples=512, steps=12, batch=32, validate_every=6, checkpoint_every=4,
                   network=NetworkConfig(hidden=32, layers=2))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tiny")
    return train(out, TINY, progress=False, log=lambda *_: None)


def _state(path):
    return torch.load(path, weights_only=False)


def test_resume_after_interruption_matches_an_uninterrupted_run(tiny_run, tmp_path):
    stopped = train(tmp_path, TINY, progress=False, log=lambda *_: None, stop_after=5)
    assert _state(stopped)["step"] == 5
    resumed = train(tmp_path, TINY, progress=False, log=lambda *_: None)
    a, b = _state(tiny_run), _state(resumed)
    assert a["step"] == b["step"] == TINY.steps
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert a["history"] == b["history"]


def test_a_different_configuration_is_not_resumed(tiny_run):
    with pytest.raises(ValueError, match="different training configuration"):
        train(tiny_run.parent, dataclasses.replace(TINY, lr=1e-4), progress=False, log=lambda *_: None)


def test_checkpoint_loader_names_what_is_wrong(tiny_run, tmp_path):
    net, ckpt = load_checkpoint(tiny_run)
    assert ckpt["step"] == TINY.steps
    bad = tmp_path / "bad.pt"
    torch.save({"format": "something-else"}, bad)
    with pytest.raises(ValueError, match="format field"):
        load_checkpoint(bad)
    torch.save({**ckpt, "channels": list(LAYOUT.names[:-1])}, bad)
    with pytest.raises(ValueError, match="parameter layout"):
        load_checkpoint(bad)
    torch.save({**ckpt, "rig_identity": "0000"}, bad)
    with pytest.raises(ValueError, match=f"bad.pt: model made for rig 'bdfm' with identity '0000'; the loaded "
                                         f"rig 'bdfm' .* has identity '{load_rig().identity}'"):
        load_checkpoint(bad)
    legacy = {k: v for k, v in ckpt.items() if k not in ("rig_identity", "rig_fingerprint")}
    torch.save({**legacy, "rig_hash": "09c3f0db990987c8"}, bad)
    with pytest.raises(ValueError, match="earlier au2rig .* au2rig restamp"):
        load_checkpoint(bad)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_onnx_runtime_matches_torch(tiny_run, tmp_path):
    net, _ = load_checkpoint(tiny_run)
    path = export_onnx(net, tmp_path / "tiny.onnx")
    est = OnnxEstimator(path)
    assert est.kind == "landmarks" and est.meta["rig_identity"] == load_rig().identity
    _, lm, ref = heldout_set(256, seed=5)
    degrees = np.isin([c.group for c in LAYOUT.channels], ("pose", "gaze"))
    for a, b in ((est(lm), predict_torch(net, lm)), (est(lm, ref), predict_torch(net, lm, ref))):
        assert np.abs(a[:, ~degrees] - b[:, ~degrees]).max() < 1e-4
        assert np.abs(a[:, degrees] - b[:, degrees]).max() < 1e-3  # degrees
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.onnx"]


def test_an_ensemble_is_its_members_mean_and_saves_loads_and_exports_as_one_model(tiny_run, tmp_path):
    """``--members 2``: seeds 0 and 1, each trained (and resumable) in its own folder; the first is
    the single run's network, the ensemble their mean, rebuilt from its checkpoint, and its ONNX
    export agrees with torch."""
    log = []
    net, cfg = train_members(tmp_path / "run", TINY, 2, progress=False, log=log.append)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["seed0", "seed1"]
    assert cfg.network.members == 2 and cfg.seed == TINY.seed and len(log) >= 2
    first, second = (load_checkpoint(tmp_path / "run" / f"seed{k}" / "checkpoint.pt")[0] for k in (0, 1))
    for key, value in load_checkpoint(tiny_run)[0].state_dict().items():  # seed 0 is the single run, bit for bit
        assert torch.equal(value, first.state_dict()[key]), key
    _, lm, ref = heldout_set(64, seed=5)
    mean = (predict_torch(first, lm, ref) + predict_torch(second, lm, ref)) / 2
    np.testing.assert_allclose(predict_torch(net, lm, ref), mean, atol=1e-5)
    assert np.abs(predict_torch(first, lm, ref) - predict_torch(second, lm, ref)).max() > 1e-3  # two draws
    again, _ = load_checkpoint(save_weights(net, tmp_path / "ensemble.pt", cfg))
    np.testing.assert_allclose(predict_torch(again, lm, ref), mean, atol=1e-5)
    est = OnnxEstimator(export_onnx(net, tmp_path / "ensemble.onnx"))
    assert np.abs(est(lm, ref)[:, LAYOUT.group_slice("au")] - mean[:, LAYOUT.group_slice("au")]).max() < 1e-4
    with pytest.raises(ValueError, match="members"):
        train_members(tmp_path / "none", TINY, 0)


def test_shipped_model_recovers_unseen_rig_faces():
    """Held-out rig faces (new seed; random identity, AUs and pose within yaw 30, pitch 20, roll 20),
    each with its actor's neutral frame at another random pose, as the tracker calibrates."""
    params, lm, ref = heldout_set(1500, seed=2024)
    est = OnnxEstimator(DEFAULT_ONNX)
    alone = au_report(est(lm), params)
    report = au_report(est(lm, ref), params)
    print("\nwithout the reference frame:\n" + format_report(alone) + "\nwith it:\n" + format_report(report))
    mean = report["mean"]
    assert mean["icc"] >= 0.80 and mean["mae"] <= 0.35
    assert mean["icc"] > alone["mean"]["icc"]
    assert np.mean(list(report["pose_mae_deg"].values())) <= 3.0


def test_self_supervised_stage_fits_unlabeled_faces(tiny_run, tmp_path):
    torch.set_num_threads(1)
    rig = load_rig()
    params, lm, _ = heldout_set(64, seed=9, jitter=0.01)
    net, _ = load_checkpoint(tiny_run)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        err0 = float(reprojection_error(net, rig, torch.tensor(lm, dtype=torch.float32))[0].mean())
    net = adapt(net, lm.astype(np.float32), tmp_path, steps=30, batch=32, lr=3e-3, progress=False,
                log=lambda *_: None)
    report = net.adapt_report
    assert report["reprojection_before"] == pytest.approx(err0, rel=1e-5)
    assert np.isfinite(report["reprojection_after"]) and report["reprojection_after"] < err0
    assert any(not torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_network_shapes():
    net = build_network(NetworkConfig(hidden=16, layers=1))
    out = net(torch.zeros(3, 68, 2) + torch.arange(68.0)[None, :, None])
    assert out.shape == (3, len(LAYOUT))


def test_without_brow_sideways_the_brows_count_by_their_height_alone():
    """``NetworkConfig(brow_sideways=False)`` (``train-landmarks --no-brow-sideways``): the face mesh
    reports a tenth of the knit by which the rig's brows frown, so the network does not see the
    brows' sideways motion (with a reference, their sideways place is the reference's); their
    height still counts. ``brow_sideways=True`` (the default, as shipped) sees both."""
    torch.manual_seed(0)
    rig = load_rig()
    neutral = torch.tensor(rig.landmarks_2d(LAYOUT.neutral(1), 256), dtype=torch.float32)
    sideways, down = neutral.clone(), neutral.clone()
    sideways[:, 17:27, 0] += torch.linspace(4.0, -4.0, 10)  # brows pulled toward each other
    down[:, 17:27, 1] += 3.0
    for seen in (False, True):
        net = build_network(NetworkConfig(hidden=16, layers=1, brow_sideways=seen)).eval()
        with torch.no_grad():
            base, side, low = (net(x, neutral) for x in (neutral, sideways, down))
        assert torch.equal(base, side) != seen
        assert not torch.equal(base, low)
    assert NetworkConfig().brow_sideways is True


def test_brow_sideways_is_kept_by_checkpoints_and_defaults_for_older_ones(tmp_path):
    """A network trained without the brows' sideways motion reloads that way; a checkpoint whose
    configuration does not name the option (trained before it) loads seeing it, as trained."""
    cfg = dataclasses.replace(TINY, steps=2, network=NetworkConfig(hidden=32, layers=2, brow_sideways=False))
    path = train(tmp_path / "blind", cfg, progress=False, log=lambda *_: None)
    assert load_checkpoint(path)[0].fixed.sum() == 10
    ckpt = _state(path)
    del ckpt["config"]["network"]["brow_sideways"]
    old = tmp_path / "old.pt"
    torch.save(ckpt, old)
    assert not load_checkpoint(old)[0].fixed.any()
