"""Pairs dataset format without Blender: sampling, split, manifest, atomic writes, verify."""
from __future__ import annotations

import errno
import json

import cv2
import numpy as np
import pytest
from conftest import make_synthetic_rig, random_params

from au2rig.core.datasets import pairs
from au2rig.core.rig import LOD_FACTORS, auto_lod, load_rig, lod_of
from au2rig.core.rig.layout import LAYOUT
from au2rig.core.rig.skinning import Skinning
from au2rig.core.util import atomic

AU = LAYOUT.group_slice("au")
BROW = LAYOUT.group_slice("brow_style")
POSE = LAYOUT.group_slice("pose")


def test_sampling_is_deterministic_per_index():
    a = pairs.sample_params(LAYOUT, 50, seed=3)
    b = pairs.sample_params(LAYOUT, 20, seed=3, start=30)
    assert np.array_equal(a[30:], b)  # pair i depends on (seed, i) only: resume gives the same pairs
    assert not np.array_equal(a, pairs.sample_params(LAYOUT, 50, seed=4))
    assert len(np.unique(a, axis=0)) == 50


def test_sampling_covers_the_ranges():
    p = pairs.sample_params(LAYOUT, 2000, seed=0, pose_limits=(20.0, 10.0, 5.0))
    LAYOUT.check(p, strict=True)
    assert np.abs(p[:, POSE]).max(0) == pytest.approx([20.0, 10.0, 5.0], rel=0.02)
    assert p[:, AU].min() < 0.01 and p[:, AU].max() > 0.99
    ident = p[:, LAYOUT.group_slice("identity")]
    assert ident.min() < 0.01 and ident.max() > 0.99 and abs(ident.mean() - 0.5) < 0.01
    assert np.array_equal(p[:, BROW].sum(1), np.ones(2000)) and set(np.unique(p[:, BROW])) == {0.0, 1.0}
    assert np.bincount(p[:, BROW].argmax(1)).min() > 2000 / 6 * 0.8  # every style, about equally


@pytest.mark.parametrize("k", [0, 1, 3])
def test_sparse_au(k):
    p = pairs.sample_params(LAYOUT, 200, seed=1, sparse_k=k)
    active = (p[:, AU] > 0).sum(1)
    assert active.max() == k and (active == k).mean() > 0.95  # (a uniform draw is 0 with probability 0)


def test_bad_sampling_options_are_refused():
    with pytest.raises(ValueError, match="pose_yaw"):
        pairs.sample_params(LAYOUT, 1, 0, pose_limits=(60.0, 10.0, 10.0))
    with pytest.raises(ValueError, match="sparse_k"):
        pairs.sample_params(LAYOUT, 1, 0, sparse_k=27)


def test_gaze_is_drawn_on_its_own_stream_and_an_old_manifest_means_eyes_ahead(fake):
    """The eyes' turn comes from a stream of its own: with it off every other channel is what it
    was, so the pairs of a dataset drawn before gaze are drawn again exactly on resume and verify;
    a manifest without ``gaze_limits`` reads as (0, 0)."""
    gaze = LAYOUT.group_slice("gaze")
    ahead = pairs.sample_params(LAYOUT, 300, seed=2)
    turned = pairs.sample_params(LAYOUT, 300, seed=2, gaze_limits=(30.0, 20.0))
    others = np.ones(len(LAYOUT), bool)
    others[gaze] = False
    assert np.array_equal(ahead[:, others], turned[:, others]) and not ahead[:, gaze].any()
    assert np.abs(turned[:, gaze]).max(0) == pytest.approx([30.0, 20.0], rel=0.03)
    assert pairs.Sampling().gaze_limits == (30.0, 20.0)  # new datasets turn the eyes
    with pytest.raises(ValueError, match="gaze_yaw"):
        pairs.sample_params(LAYOUT, 1, 0, gaze_limits=(40.0, 10.0))
    folder, m, rig = fake
    d = json.loads((folder / "manifest.json").read_text())
    assert d["sampling"]["gaze_limits"] == [30.0, 20.0]
    del d["sampling"]["gaze_limits"]
    old = pairs.Manifest.from_dict(d)
    assert old.sampling["gaze_limits"] == [0.0, 0.0]
    assert pairs.Sampling(**old.sampling).gaze_limits == (0.0, 0.0)
    ahead = pairs.Sampling(gaze_limits=(0.0, 0.0))
    _write_fake(folder.parent / "ahead", rig, sampling=ahead)
    report = pairs.verify(folder.parent / "ahead", rig=rig)
    assert report.ok, report.summary()
    assert np.abs(pairs.PairsDataset(folder).params[:, gaze]).max() > 5  # the default turns them
    assert not pairs.PairsDataset(folder.parent / "ahead").params[:, gaze].any()
    with pytest.raises(pairs.PairsError, match="sampling is"):  # turned there, ahead for this run
        pairs.prepare_folder(folder, _manifest(rig, sampling=ahead))


def test_split_is_deterministic_and_independent_of_count():
    s = pairs.split_of(0, np.arange(5000), 0.1)
    assert np.array_equal(s[:100], pairs.split_of(0, np.arange(100), 0.1))
    assert abs(s.mean() - 0.1) < 0.02
    assert not np.array_equal(s, pairs.split_of(1, np.arange(5000), 0.1))
    assert pairs.split_of(0, np.arange(50), 0.0).sum() == 0


def test_randomization_draws():
    off = pairs.draw_randomization(pairs.Randomization(), 0, 5, 3)
    assert len(off) == len(pairs.draw_columns(("a", "b", "c")))
    assert off[0] == 0 and off[1] == 0 and np.all(off[8:] == 1)
    on = pairs.Randomization(light=True, background=True, colors=True)
    d = pairs.draw_randomization(on, 0, 5, 3)
    assert np.array_equal(d, pairs.draw_randomization(on, 0, 5, 3))
    assert not np.array_equal(d, pairs.draw_randomization(on, 0, 6, 3))
    assert abs(d[0]) <= 60 and abs(d[1]) <= 0.5 and np.all(np.abs(d[8:] - 1) <= 0.2)


def test_fast_skinning_matches_core():
    for rig in (make_synthetic_rig(), load_rig()):
        params = random_params(rig.layout, np.random.default_rng(0), 3)
        got = Skinning(rig).positions(params)
        assert got.dtype == np.float32
        assert np.abs(got - rig.skin(params)).max() < 1e-5 * rig.height


# --- render levels of detail ---------------------------------------------------------------------
SAME_RIG = ("name", "layout", "bone_names", "bone_parents", "bone_heads", "bone_lengths", "bone_rotation_modes",
            "base_locals", "basis", "coefficient_names", "regions", "region_colors", "camera", "lights")


def test_lod_rig_is_the_same_rig_with_a_coarser_mesh():
    full = load_rig()
    assert lod_of(full, 0) is full and full.lod == 0
    params = random_params(full.layout, np.random.default_rng(1), 3)
    faces = len(full.faces)
    for k in range(1, len(LOD_FACTORS)):
        lod = lod_of(full, k)
        assert lod is load_rig(lod=k) and lod.lod == k and f"LOD {k}" in repr(lod)
        for name in SAME_RIG:  # same parameters drive it: bones, tables, camera, regions
            a, b = getattr(full, name), getattr(lod, name)
            assert (np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b), name
        assert faces > len(lod.faces) < 1.5 * len(full.faces) / LOD_FACTORS[k] ** 2 and lod.identity != full.identity
        faces = len(lod.faces)
        assert set(np.unique(lod.face_regions)) == set(range(len(lod.regions)))  # every region still drawn
        got = Skinning(lod).positions(params)  # the fast deformer works on it, like on the full rig
        assert got.shape == (3, len(lod.vertices), 3)
        assert np.abs(got - lod.skin(params)).max() < 1e-5 * lod.height
        # the same face sampled more sparsely: its own landmark vertices stay near the full rig's
        err = np.linalg.norm(lod.landmarks_3d(params) - full.landmarks_3d(params), axis=-1)
        assert np.median(err) < 0.01 * full.height and err.max() < 0.03 * full.height, (k, err.max())
    assert [auto_lod(s) for s in (512, 256, 255, 128, 127, 64, 16)] == [0, 0, 1, 1, 2, 2, 2]


def test_lod_needs_a_rig_from_a_spec(synthetic_rig):
    assert lod_of(synthetic_rig, 0) is synthetic_rig
    with pytest.raises(ValueError, match="not loaded from a spec"):
        lod_of(synthetic_rig, 1)
    with pytest.raises(ValueError, match="lod must be one of"):
        load_rig(lod=len(LOD_FACTORS))
    with pytest.raises(ValueError, match="already a level of detail"):
        lod_of(load_rig(lod=1), 2)


def test_manifest_records_the_render_lod(tmp_path):
    full, lod = load_rig(), load_rig(lod=1)
    m = _manifest(full, render_rig=lod)
    assert (m.rig_identity, m.render_lod, m.render_identity) == (full.identity, 1, lod.identity)
    plain = _manifest(full)
    assert (plain.render_lod, plain.render_identity) == (0, full.identity)
    assert plain.mismatch(m) == "render_lod is 0 there but 1 for this run"
    # the fingerprint is computed floats: compared under a tolerance, never by mismatch()
    nudged = pairs.Manifest.from_dict(dict(plain.to_dict(), rig_fingerprint=[v * (1 + 1e-12) for v in
                                                                             plain.rig_fingerprint]))
    assert nudged.mismatch(plain) is None
    legacy = plain.to_dict()  # format 1: a CPU-dependent rig hash; told to render again
    del legacy["rig_identity"], legacy["render_identity"], legacy["rig_fingerprint"]
    legacy.update(format_version=1, rig_hash="ff52c9e22f001f0f", render_hash="ff52c9e22f001f0f")
    with pytest.raises(pairs.PairsError, match="earlier au2rig .*'ff52c9e22f001f0f'.* render the dataset again"):
        pairs.Manifest.from_dict(legacy)


def test_lod_dataset_verifies_against_the_full_rig(tmp_path):
    full, lod = load_rig(), load_rig(lod=1)
    folder = tmp_path / "ds"
    _write_fake(folder, full, count=4, render_rig=lod)
    report = pairs.verify(folder, rig=full)  # landmarks: the full rig's; images: LOD 1 of it
    assert report.ok, report.summary()
    d = json.loads((folder / "manifest.json").read_text())
    assert (d["render_lod"], d["render_identity"]) == (1, lod.identity)
    d["render_identity"] = "0" * 16
    (folder / "manifest.json").write_text(json.dumps(d))
    report = pairs.verify(folder, rig=full)
    assert [p.what for p in report.problems] == ["render LOD"] and "LOD 1" in report.problems[0].detail


# --- a fake dataset written with the core functions (images drawn with numpy) ---------------------
def _manifest(rig, count=10, chunk=4, masks=True, render_rig=None, sampling=pairs.Sampling()):
    return pairs.Manifest.for_rig(rig, resolution=16, engine="workbench", seed=7, count=count, chunk_size=chunk,
                                  masks=masks, render_rig=render_rig, sampling=sampling)


def _png(img) -> bytes:
    return cv2.imencode(".png", img)[1].tobytes()


def _write_fake(folder, rig, count=10, chunk=4, masks=True, render_rig=None, sampling=pairs.Sampling()):
    m = _manifest(rig, count, chunk, masks, render_rig, sampling)
    todo = pairs.prepare_folder(folder, m)
    assert todo == list(range(m.n_chunks))
    for c in todo:
        idx = m.chunk_indices(c)
        params = pairs.sample_params(rig.layout, len(idx), m.seed, start=int(idx[0]),
                                     gaze_limits=pairs.Sampling(**m.sampling).gaze_limits)
        images = [_png(np.full((16, 16, 3), int(i), np.uint8)) for i in idx]
        files = {"image": images}
        for i, data in zip(idx, images):
            pairs.atomic_write(folder / pairs.IMAGE_NAME.format(int(i)), data)
        if masks:
            files["mask"] = [_png(np.full((16, 16), int(i) % 3, np.uint8)) for i in idx]
            for i, data in zip(idx, files["mask"]):
                pairs.atomic_write(folder / pairs.MASK_NAME.format(int(i)), data)
        draws = np.stack([pairs.draw_randomization(pairs.Randomization(), m.seed, i, len(rig.regions)) for i in idx])
        pairs.write_chunk(folder, m, c, params, rig.landmarks_2d(params, 16), draws, files)
    pairs.finalize(folder, m)
    return m


@pytest.fixture
def fake(tmp_path, synthetic_rig):
    folder = tmp_path / "ds"
    m = _write_fake(folder, synthetic_rig)
    return folder, m, synthetic_rig


def test_fake_dataset_verifies_and_loads(fake):
    folder, m, rig = fake
    report = pairs.verify(folder, rig=rig)
    assert report.ok, report.summary()
    assert report.checked == 10
    ds = pairs.PairsDataset(folder)
    item = ds[3]
    assert item["index"] == 3 and item["image"].shape == (16, 16, 3) and item["image"].dtype == np.float32
    assert item["image"].max() == pytest.approx(3 / 255) and item["mask"].shape == (16, 16)
    want = pairs.sample_params(LAYOUT, 1, 7, start=3, gaze_limits=(30.0, 20.0))[0]  # the manifest's sampling
    assert np.allclose(item["params"], want.astype(np.float32))
    train, val = pairs.PairsDataset(folder, "train"), pairs.PairsDataset(folder, "val")
    assert len(train) + len(val) == 10 and not set(train.indices) & set(val.indices)
    assert pairs.read_manifest(folder).split_counts == {"train": len(train), "val": len(val)}


def test_manifest_round_trip(fake):
    folder, m, rig = fake
    d = json.loads((folder / "manifest.json").read_text())
    assert d["format"] == "au2rig-pairs" and d["format_version"] == pairs.FORMAT_VERSION
    assert d["rig_identity"] == rig.identity and d["channels"] == list(LAYOUT.names) and d["complete"] is True
    for key in ("layout_version", "resolution", "engine", "camera", "seed", "count", "sampling", "randomization"):
        assert key in d
    back = pairs.read_manifest(folder)
    assert back.to_dict() == d == pairs.Manifest.from_dict(back.to_dict()).to_dict()


def test_resume_refuses_other_settings(fake, tmp_path):
    folder, m, rig = fake
    other = _manifest(rig)
    other.resolution = 32
    with pytest.raises(pairs.PairsError, match="resolution is 16 there but 32"):
        pairs.prepare_folder(folder, other)
    other = _manifest(load_rig())
    with pytest.raises(pairs.PairsError, match="rig_"):
        pairs.prepare_folder(folder, other)
    assert pairs.prepare_folder(folder, _manifest(rig)) == []  # same settings: nothing left to do


def test_bad_output_paths(tmp_path, synthetic_rig):
    m = _manifest(synthetic_rig)
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(pairs.PairsError, match="is a file"):
        pairs.prepare_folder(afile, m)
    with pytest.raises(pairs.PairsError, match="is a file"):
        pairs.prepare_folder(afile / "sub", m)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(pairs.PairsError, match="not a pairs dataset"):
        pairs.prepare_folder(other, m)


def test_full_disk_leaves_no_partial_file(tmp_path, monkeypatch):
    def full(path, data, durable):
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "write_file", full)
    target = tmp_path / "x.png"
    with pytest.raises(pairs.PairsError, match=r"x\.png: disk full"):
        pairs.write_dataset_file(target, b"abcdef")
    assert list(tmp_path.iterdir()) == []


def _corrupt_and_check(folder, rig, what, index, damage):
    damage()
    report = pairs.verify(folder, rig=rig)
    assert not report.ok
    assert index in report.indices(what), report.summary()
    return report


def test_verify_names_each_kind_of_corruption(fake):
    folder, m, rig = fake
    img = lambda i: folder / pairs.IMAGE_NAME.format(i)
    _corrupt_and_check(folder, rig, "missing image", 2, lambda: img(2).unlink())
    data = img(5).read_bytes()
    _corrupt_and_check(folder, rig, "truncated image", 5, lambda: img(5).write_bytes(data[:-20]))
    _corrupt_and_check(folder, rig, "wrong image size", 6,
                       lambda: img(6).write_bytes(_png(np.zeros((8, 8, 3), np.uint8))))
    _corrupt_and_check(folder, rig, "image changed", 7,
                       lambda: img(7).write_bytes(_png(np.full((16, 16, 3), 99, np.uint8))))
    mask = folder / pairs.MASK_NAME.format(1)
    _corrupt_and_check(folder, rig, "bad mask labels", 1,
                       lambda: mask.write_bytes(_png(np.full((16, 16), 77, np.uint8))))


def _edit_chunk(folder, chunk, **changes):
    rec = pairs.read_chunk(folder, chunk)
    for key, fn in changes.items():
        rec[key] = fn(rec[key].copy())
    (folder / pairs.CHUNK_NAME.format(chunk)).write_bytes(pairs.npz_bytes(**rec))


@pytest.mark.parametrize("what, index, edit", [
    ("non-finite params", 4, lambda p: (p.__setitem__((0, 5), np.nan), p)[1]),
    ("params out of range", 5, lambda p: (p.__setitem__((1, 0), 80.0), p)[1]),
    ("brow style not one-hot", 6, lambda p: (p.__setitem__((2, BROW.start), 0.5), p)[1]),
    ("params differ from the seed's sample", 7, lambda p: (p.__setitem__((3, 40), 0.123), p)[1]),
])
def test_verify_names_bad_params(fake, what, index, edit):
    folder, m, rig = fake
    _edit_chunk(folder, 1, params=edit)
    report = pairs.verify(folder, rig=rig)
    assert index in report.indices(what), report.summary()


def test_verify_names_landmark_mismatch_and_duplicates(fake):
    folder, m, rig = fake
    _edit_chunk(folder, 0, landmarks=lambda lm: (lm.__setitem__((2, 10, 0), lm[2, 10, 0] + 3), lm)[1])
    assert pairs.verify(folder, rig=rig).indices("landmarks mismatch") == [2]
    params = pairs.read_chunk(folder, 0)["params"]
    _edit_chunk(folder, 2, params=lambda p: (p.__setitem__(0, params[1]), p)[1])
    report = pairs.verify(folder, rig=rig)
    assert 8 in report.indices("duplicate") and "pair 1" in str(
        next(p for p in report.problems if p.what == "duplicate"))


def test_verify_reports_missing_chunks_and_temporaries(fake):
    folder, m, rig = fake
    (folder / pairs.CHUNK_NAME.format(1)).unlink()
    (folder / "images" / f".000004.png{pairs.TMP_MARK}999").write_bytes(b"partial")
    report = pairs.verify(folder, rig=rig)
    assert report.indices("missing pair") == [4, 5, 6, 7]
    assert any(p.what == "temporary file" for p in report.problems)
    assert pairs.prepare_folder(folder, _manifest(rig)) == [1]  # resume: redo chunk 1 only
    assert not list((folder / "images").glob(f"*{pairs.TMP_MARK}*"))
