"""Training of G on a tiny real pairs dataset (core/training/train_generator.py)."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("bpy")

from au2rig.addon.rig_render import RenderConfig, render_pairs  # noqa: E402 (after pytest.importorskip)
from au2rig.core.nets.generator import (
    GeneratorConfig,  # noqa: E402 (after pytest.importorskip)
    load_generator,  # noqa: E402 (after pytest.importorskip)
)
from au2rig.core.training.train_generator import (  # noqa: E402 (after pytest.importorskip)
    GeneratorTrainConfig,
    check_dataset,
    export_generator_onnx,
    train_generator,
)

N, SIZE = 24, 64
SMALL = GeneratorConfig(resolution=64, base_width=4, max_width=64)


def config(**kw) -> GeneratorTrainConfig:
    base = dict(generator=SMALL, steps=12, batch=8, lr=3e-3, validate_every=4, checkpoint_every=4, seed=3)
    return GeneratorTrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory, rig):
    folder = tmp_path_factory.mktemp("gpairs") / "ds"
    render_pairs(RenderConfig(output=str(folder), count=N, size=SIZE, chunk_size=8, val_fraction=0.25, masks=True),
                 rig=rig)
    return folder


@pytest.fixture(scope="module")
def full_run(pairs_dir, tmp_path_factory, rig):
    out = tmp_path_factory.mktemp("grun") / "run"
    torch.set_num_threads(1)
    ckpt = train_generator(pairs_dir, out, config(), rig=rig, log=lambda s: None, progress=False)
    return out, torch.load(ckpt, weights_only=False)


def test_training_lowers_the_loss_and_validates(full_run):
    out, ckpt = full_run
    hist = ckpt["history"]
    assert [h["step"] for h in hist] == [4, 8, 12] and ckpt["step"] == 12
    assert hist[-1]["train_loss"] < hist[0]["train_loss"], hist
    assert all(np.isfinite(h["val_psnr"]) and 0 < h["val_l1"] < 1 for h in hist)
    grid = cv2.imread(str(out / "val_grid.png"))
    assert grid is not None and grid.shape[1] == 2 * SIZE + 2 and grid.shape[0] >= SIZE
    assert json.loads((out / "history.json").read_text()) == hist
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_interrupted_run_resumes_bit_exactly(full_run, pairs_dir, tmp_path, rig):
    _, ref = full_run
    out = tmp_path / "run"
    torch.set_num_threads(1)
    logs = []
    train_generator(pairs_dir, out, config(), rig=rig, log=logs.append, progress=False, stop_after=5)
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 5
    ckpt = train_generator(pairs_dir, out, config(), rig=rig, log=logs.append, progress=False)
    assert any("resuming" in s and "step 5" in s for s in logs)
    got = torch.load(ckpt, weights_only=False)
    assert got["history"] == ref["history"]
    assert got["model"].keys() == ref["model"].keys()
    for k in ref["model"]:
        assert torch.equal(got["model"][k], ref["model"][k]), k
    # another configuration in the same folder is refused
    with pytest.raises(ValueError, match="different training configuration.*lr"):
        train_generator(pairs_dir, out, config(lr=1e-3), rig=rig, log=logs.append, progress=False)


def test_other_rig_or_layout_is_refused(pairs_dir, tmp_path, rig):
    check_dataset(pairs_dir, rig=rig)
    for field, value, message in (("rig_identity", "0badc0de", f"pairs dataset made for rig 'bdfm' with identity "
                                                               f"'0badc0de'; the loaded rig 'bdfm' .* has identity "
                                                               f"'{rig.identity}'"),
                                  ("layout_version", "0.9", f"layout 0.9 vs {rig.layout.version}")):
        copy = tmp_path / field
        shutil.copytree(pairs_dir, copy)
        m = json.loads((copy / "manifest.json").read_text())
        m[field] = value
        (copy / "manifest.json").write_text(json.dumps(m))
        with pytest.raises(ValueError, match=message):
            train_generator(copy, tmp_path / f"run_{field}", config(), rig=rig, progress=False)
        assert not (tmp_path / f"run_{field}" / "checkpoint.pt").exists()


@pytest.mark.filterwarnings("ignore")  # the legacy exporter's notes
def test_export_matches_onnx_runtime(full_run, tmp_path, rig, synthetic_rig):
    import onnx
    import onnxruntime as ort

    out, _ = full_run
    g, ckpt = load_generator(out / "checkpoint.pt", rig=rig)
    path, diff = export_generator_onnx(g, tmp_path / "g.onnx", rig=rig)
    assert diff <= 1e-4
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["kind"]) == "generator" and json.loads(meta["rig_identity"]) == rig.identity
    assert json.loads(meta["layout_version"]) == rig.layout.version
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).uniform(rig.layout.lo, rig.layout.hi, (2, len(rig.layout))).astype(np.float32)
    (img,) = sess.run(None, {"params": x})
    with torch.no_grad():
        np.testing.assert_allclose(img, g(torch.from_numpy(x)).numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="generator made for rig 'bdfm'"):
        load_generator(out / "checkpoint.pt", rig=synthetic_rig)


def test_weights_only_file_in_half_precision_loads_back(tmp_path, rig, synthetic_rig):
    from au2rig.core.nets.generator import build_generator, save_generator
    from au2rig.core.rig.layout import LAYOUT

    torch.manual_seed(0)
    g = build_generator(SMALL).eval()
    path = save_generator(g, tmp_path / "g.pt", rig, half=True)
    full = save_generator(g, tmp_path / "g32.pt", rig)
    assert path.stat().st_size < 0.6 * full.stat().st_size
    back, ckpt = load_generator(path, rig=rig)
    assert all(v.dtype == torch.float32 for v in back.state_dict().values() if v.is_floating_point())
    x = torch.from_numpy(np.random.default_rng(0).uniform(LAYOUT.lo, LAYOUT.hi, (4, len(LAYOUT))).astype(np.float32))
    with torch.no_grad():
        assert float((back.eval()(x) - g(x)).abs().max()) < 5e-3
    with pytest.raises(ValueError, match="made for rig"):
        load_generator(path, rig=synthetic_rig)


def test_facial_region_loss_and_warm_start(full_run, pairs_dir, tmp_path, rig):
    """--region-weight adds an L1 on the facial parts (from the masks) and --init starts from
    another run's weights; validation reports the PSNR over the facial parts."""
    out, ref = full_run
    assert all(np.isfinite(h["val_feature_psnr"]) for h in ref["history"])
    torch.set_num_threads(1)
    cfg = config(steps=4, region_weight=5.0, init=str(out / "checkpoint.pt"))
    logs = []
    ckpt = torch.load(train_generator(pairs_dir, tmp_path / "warm", cfg, rig=rig, log=logs.append,
                                      progress=False), weights_only=False)
    assert any("starting from the weights of" in m for m in logs)
    # a warm start begins where the other run ended: its first validation is already near it
    assert ckpt["history"][0]["val_psnr"] > ref["history"][0]["val_psnr"]
    assert ckpt["config"]["region_weight"] == 5.0
    # the same steps from the same weights and seed without the term end elsewhere: the term counts
    plain = torch.load(train_generator(pairs_dir, tmp_path / "warm0", config(steps=4, region_weight=0.0,
                                                                             init=str(out / "checkpoint.pt")),
                                       rig=rig, log=logs.append, progress=False), weights_only=True)
    moved = max(float((ckpt["model"][k] - plain["model"][k]).abs().max()) for k in plain["model"]
                if plain["model"][k].is_floating_point())
    assert moved > 1e-6, "region_weight 5 trained the same weights as region_weight 0"
