"""Training F_seg on face crops: it learns, resumes exactly, refuses what it cannot use, flips right."""
import json

import cv2
import numpy as np
import pytest
import torch

from au2rig.core.alignment import crops
from au2rig.core.datasets.faces import FaceCrops
from au2rig.core.datasets.labels import CLASS_INDEX, colorize, landmark_mask
from au2rig.core.datasets.pairs import sample_params
from au2rig.core.nets.face_parser import load_face_parser
from au2rig.core.rig import load_rig
from au2rig.core.rig.layout import LAYOUT
from au2rig.core.training import train_parser as tp

torch.set_num_threads(1)
cv2.setNumThreads(1)
SIZE = 64


def _crops(n, seed, rendered, size=SIZE, labels=True):
    """Crops of faces drawn from the rig's landmarks (labels painted, with noise and a colour cast)."""
    rig = load_rig()
    rng = np.random.default_rng(seed)
    params = sample_params(LAYOUT, n, seed, pose_limits=(25.0, 15.0, 15.0))
    lms = rig.landmarks_2d(params, 192)
    out = {k: [] for k in ("crops", "labels", "landmarks", "transform")}
    for lm in lms:
        lab = landmark_mask(lm, (192, 192))
        img = colorize(lab).astype(np.float32) * rng.uniform(0.6, 1.0, 3) + rng.normal(0, 8, (192, 192, 3)) + 30
        img = np.clip(cv2.GaussianBlur(img, (0, 0), 1.0), 0, 255).astype(np.uint8)
        crop, t = crops.crop_image(img, lm, size)
        out["crops"].append(crop)
        out["labels"].append(crops.crop_labels(lab, size=size, transform=t)[0])
        out["landmarks"].append(crops.transform_points(t, lm))
        out["transform"].append(t)
    return FaceCrops(crops=np.stack(out["crops"]), landmarks=np.stack(out["landmarks"]), roll=np.zeros(n),
                     source=["drawn"], source_index=np.zeros(n), frame=np.arange(n),
                     transform=np.array(out["transform"]), params=params if rendered else None,
                     labels=np.stack(out["labels"]) if labels else None)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("crops")
    return [_crops(12, 1, True).save(d / "rendered.npz"), _crops(8, 2, False).save(d / "real.npz")]


def _cfg(**kw):
    base = dict(steps=4, batch=4, lr=1e-3, validate_every=2, checkpoint_every=2, val_fraction=0.2, val_max=4,
                grid_rows=4)
    return tp.ParserTrainConfig(**{**base, **kw})


def test_a_few_steps_lower_the_loss(files, tmp_path):
    said = []
    ckpt = tp.train_parser(files, tmp_path / "run", _cfg(steps=24, validate_every=6, checkpoint_every=24),
                           log=said.append, progress=False)
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["step"] for h in hist] == [6, 12, 18, 24]
    assert hist[-1]["train_loss"] < 0.8 * hist[0]["train_loss"]
    for kind in ("rendered", "real"):
        s = hist[-1][kind]
        assert s["count"] >= 1 and 0 <= s["pixel_accuracy"] <= 1 and "skin" in s["iou"]
    assert "rendered acc" in said[-1] and "real acc" in said[-1]
    grid = cv2.imread(str(tmp_path / "run" / "val_grid.png"))
    assert grid.shape[1] == 3 * SIZE + 4 and grid.shape[0] >= 2 * SIZE
    # export: the project's parser file, with the crop geometry in its meta
    model, state = tp.load_trained_parser(ckpt)
    path = tp.export_parser(model, tmp_path / "parser.pt", state, "au2rig train-parser ...")
    loaded = load_face_parser(path)
    assert loaded.meta["crop_size"] == SIZE and loaded.meta["eye_distance"] == crops.EYE_DISTANCE
    assert loaded.meta["trained"]["steps"] == 24 and loaded.meta["classes"][1] == "skin"
    x = torch.rand(1, 3, SIZE, SIZE)
    assert torch.equal(loaded(x), model(x))
    # the command line, starting from those weights (a negligible learning rate keeps them)
    from au2rig.core.__main__ import main

    again = tmp_path / "again.pt"
    assert main(["train-parser", str(files[0]), "-o", str(tmp_path / "run2"), "--steps", "1", "--batch", "2",
                 "--lr", "1e-12", "--init", str(path), "--threads", "1", "--quiet", "--export", str(again)]) == 0
    after = load_face_parser(again)
    w = "cp.resnet.conv1.weight"
    assert torch.allclose(after.state_dict()[w], loaded.state_dict()[w], atol=1e-9)
    assert after.meta["trained"]["config"]["init"] == str(path.resolve())


def test_resume_is_exact(files, tmp_path):
    cfg = _cfg(steps=5)
    a = torch.load(tp.train_parser(files, tmp_path / "a", cfg, log=lambda s: None, progress=False),
                   weights_only=False)
    said = []
    tp.train_parser(files, tmp_path / "b", cfg, log=said.append, stop_after=3, progress=False)
    b = torch.load(tp.train_parser(files, tmp_path / "b", cfg, log=said.append, progress=False),
                   weights_only=False)
    assert any("resuming" in s and "step 3" in s for s in said)
    assert a["step"] == b["step"] == 5
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert json.dumps(a["history"]) == json.dumps(b["history"])
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)
    # another configuration, or other crops, in the same folder: refused with the reason
    with pytest.raises(ValueError, match=r"different training configuration.*\(lr differ\)"):
        tp.train_parser(files, tmp_path / "a", _cfg(steps=5, lr=2e-3), progress=False)
    with pytest.raises(ValueError, match=r"crops differ"):
        tp.train_parser(files[:1], tmp_path / "a", cfg, progress=False)


def test_crops_without_labels_are_refused(files, tmp_path):
    bare = _crops(2, 3, False, labels=False).save(tmp_path / "bare.npz")
    with pytest.raises(ValueError, match="bare.npz: face crops without labels"):
        tp.train_parser([files[0], bare], tmp_path / "run", _cfg(), progress=False)
    odd = _crops(2, 3, False, size=48).save(tmp_path / "odd.npz")
    with pytest.raises(ValueError, match="not a multiple of 32"):
        tp.load_crops([odd])
    other = _crops(2, 3, False, size=32).save(tmp_path / "small.npz")
    with pytest.raises(ValueError, match="small.npz: crops of 32 px"):
        tp.load_crops([files[0], other])


def test_flip_swaps_left_and_right(files):
    c = FaceCrops.load(files[0])
    still = tp.ParserTrainConfig(jitter_scale=0, jitter_angle=0, jitter_shift=0, jitter_color=0, jitter_gain=0)
    rng = np.random.default_rng(0)
    for i in range(3):
        img, lab = c.crops[i], c.labels[i]
        x, y = tp.augment(img, lab, rng, still, flip=True)
        assert np.abs(x * 255 - img[:, ::-1]).max() < 1e-3  # an exact mirror
        assert np.array_equal(y, tp.FLIP_CLASSES[lab[:, ::-1]])
        for name in ("r_eye", "r_brow"):  # the subject's right stays on the image left
            for labels in (lab, y):
                xs = np.nonzero(labels == CLASS_INDEX[name])[1]
                assert xs.size and xs.mean() + 0.5 < SIZE / 2
        assert (y == CLASS_INDEX["l_eye"]).sum() == (lab == CLASS_INDEX["r_eye"]).sum()
        x0, y0 = tp.augment(img, lab, rng, still, flip=False)
        assert np.array_equal(y0, lab) and np.abs(x0 * 255 - img).max() < 1e-3
    assert set(tp.FLIP_CLASSES[[2, 3, 4, 5, 7, 8]]) == {3, 2, 5, 4, 8, 7}
    # jitter moves image and labels together: the labels' colours still sit under the same pixels
    jitter = tp.ParserTrainConfig(jitter_color=0, jitter_gain=0)
    for _ in range(4):
        x, y = tp.augment(c.crops[0], c.labels[0], rng, jitter)
        nose = y == CLASS_INDEX["nose"]
        assert nose.sum() > 20
        ref = c.crops[0][c.labels[0] == CLASS_INDEX["nose"]].mean(0)
        assert np.abs(x[nose].mean(0) * 255 - ref).max() < 25


def test_batches_mix_the_kinds_in_proportion():
    cfg = tp.ParserTrainConfig(batch=16, real_share=0.3)
    counts = [tp.real_count(cfg, s) for s in range(100)]
    assert sum(counts) == 480 and set(counts) <= {4, 5}


def test_scores():
    gt = np.zeros((2, 8, 8), np.uint8)
    gt[:, 2:6, 2:6] = CLASS_INDEX["skin"]
    gt[:, 3, 3] = CLASS_INDEX["nose"]
    s = tp.scores(gt, gt)
    assert s["pixel_accuracy"] == 1.0 and s["miou"] == 1.0 and s["miou_classes"] == ["background", "skin", "nose"]
    pred = gt.copy()
    pred[:, 3, 3] = CLASS_INDEX["skin"]
    s = tp.scores(gt, pred)
    assert s["iou"]["nose"] == 0.0 and s["iou"]["skin"] == pytest.approx(15 / 16)
    assert s["miou"] == pytest.approx((1 + 15 / 16 + 0) / 3)
    assert s["pixel_accuracy"] == pytest.approx(126 / 128)
