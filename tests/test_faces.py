"""Aligned face crops: transforms (numpy, torch, OpenCV agree), the crops file, real media and pairs."""
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from au2rig.core.alignment import crops
from au2rig.core.alignment.align import apply_similarity, five_points, roll_degrees, template
from au2rig.core.alignment.crops import CROP_SIZE, EYE_DISTANCE
from au2rig.core.datasets import faces, pairs
from au2rig.core.datasets.faces import FaceCrops
from au2rig.core.datasets.labels import CLASS_INDEX, landmark_mask, rig_mask_to_classes
from au2rig.core.rig import load_rig
from au2rig.core.rig.layout import LAYOUT
from au2rig.core.training.chain import warp_to_crop

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"

torch.set_num_threads(1)
cv2.setNumThreads(1)


@pytest.fixture(scope="module")
def rig():
    return load_rig()


def _params(n, seed, roll=15.0, yaw=20.0, pitch=10.0):
    rng = np.random.default_rng(seed)
    p = pairs.sample_params(LAYOUT, n, seed, pose_limits=(yaw, pitch, roll))
    p[:, LAYOUT.group_slice("au")] *= rng.uniform(0, 1, (n, 1)) < 0.5
    return p


def _face_image(landmarks, shape, seed=0):
    """An RGB picture drawn from 68 landmarks: labels painted, plus texture so edges are smooth."""
    from au2rig.core.datasets.labels import colorize

    rng = np.random.default_rng(seed)
    img = colorize(landmark_mask(landmarks, shape)).astype(np.float32)
    img += rng.normal(0, 6, img.shape)
    img = cv2.GaussianBlur(img, (0, 0), 1.0)
    return np.clip(img + 40, 0, 255).astype(np.uint8)


# --- transforms -------------------------------------------------------------------------------
def test_crop_transform_puts_the_template_at_the_centre(rig):
    lm = rig.landmarks_2d(_params(6, 1), 256)
    t = crops.crop_transform(lm)  # batched numpy
    five = apply_similarity(t, five_points(lm))
    target = template() * EYE_DISTANCE * CROP_SIZE + CROP_SIZE / 2
    assert np.allclose(five.mean(1), target.mean(0), atol=1e-9)
    assert np.abs(five - target).max() < 0.06 * CROP_SIZE
    eyes = five[:, :2]
    assert np.abs(eyes[:, 0, 1] - eyes[:, 1, 1]).max() < 3.0  # eyes level (least squares over 5 points)
    one = crops.crop_transform(lm[2])
    assert np.allclose([v[2] for v in t], one)
    # torch: same numbers, batched, differentiable
    lt = torch.tensor(lm, requires_grad=True)
    tt = crops.crop_transform(lt)
    assert all(np.allclose(a.detach().numpy(), b) for a, b in zip(tt, t))
    sum(v.sum() for v in tt).backward()
    assert lt.grad is not None and torch.isfinite(lt.grad).all() and lt.grad.abs().sum() > 0


def test_crop_image_keeps_the_pixel_convention():
    """A blob centred at a known continuous point lands where the transform maps that point."""
    h, w = 300, 400
    ys, xs = np.mgrid[0:h, 0:w] + 0.5  # pixel centres
    centre = np.array([211.3, 147.8])
    blob = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * 6.0 ** 2))
    img = np.repeat((blob * 250)[:, :, None], 3, axis=2).astype(np.uint8)
    angle, scale = np.deg2rad(17.0), 0.45
    t = (scale * np.cos(angle), scale * np.sin(angle), -30.0, -20.0)
    crop, got = crops.crop_image(img, size=128, transform=t)
    assert got == pytest.approx(t)
    v = crop[:, :, 0].astype(float)
    cy, cx = np.mgrid[0:128, 0:128] + 0.5
    found = np.array([(v * cx).sum() / v.sum(), (v * cy).sum() / v.sum()])
    expected = crops.transform_points(t, centre[None])[0]
    assert np.abs(found - expected).max() < 0.08  # without the half-pixel correction: ~0.4 px off


def test_crop_labels_are_nearest_with_background_outside(rig):
    lm = rig.landmarks_2d(_params(1, 2), 256)[0]
    labels = landmark_mask(lm, (256, 256))
    crop, t = crops.crop_labels(labels, lm)
    assert crop.dtype == np.uint8 and crop.shape == (CROP_SIZE, CROP_SIZE)
    assert set(np.unique(crop)) <= set(np.unique(labels))  # no blended values
    far = crops.crop_labels(np.full((40, 40), 7, np.uint8), size=64, transform=(1.0, 0.0, 200.0, 200.0))[0]
    assert (far == 0).all()  # outside the image: background
    # the nose tip lands on nose pixels in the crop
    tip = crops.transform_points(t, lm[None, 30])[0]
    assert crop[int(tip[1]) - 1, int(tip[0])] == CLASS_INDEX["nose"]


def test_warp_to_crop_matches_opencv_and_is_differentiable(rig):
    lm = rig.landmarks_2d(_params(2, 3), 256)
    imgs = [_face_image(lm[i], (256, 256), seed=i) for i in range(2)]
    t = crops.crop_transform(lm)
    x = torch.tensor(np.stack(imgs).transpose(0, 3, 1, 2), dtype=torch.float32, requires_grad=True)
    out = warp_to_crop(x, tuple(torch.tensor(v) for v in t))
    assert out.shape == (2, 3, CROP_SIZE, CROP_SIZE)
    for i in range(2):
        ref, _ = crops.crop_image(imgs[i], lm[i])
        diff = np.abs(out[i].detach().numpy().transpose(1, 2, 0) - ref.astype(np.float32))[8:-8, 8:-8]
        assert diff.max() <= 2.5 and diff.mean() < 0.3  # OpenCV: 1/32 px steps, rounded to uint8
    out[:, :, 60:70, 60:70].sum().backward()
    assert x.grad.abs().sum() > 0 and x.grad[:, :, :10, :10].abs().sum() == 0  # only the sampled pixels


# --- the crops file ------------------------------------------------------------------------------
def _small_crops(n=5, params=True, labels=True, size=32):
    rng = np.random.default_rng(0)
    return FaceCrops(crops=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
                     landmarks=rng.uniform(0, size, (n, 68, 2)), roll=rng.uniform(-10, 10, n),
                     source=["a.mp4", "b/c.jpg"], source_index=np.arange(n) % 2, frame=np.arange(n) * 3,
                     transform=rng.normal(size=(n, 4)),
                     params=rng.normal(size=(n, 7)) if params else None,
                     labels=rng.integers(0, 19, (n, size, size), dtype=np.uint8) if labels else None,
                     missed=[4, 0])


@pytest.mark.parametrize("params,labels", [(True, True), (False, False)])
def test_save_load_round_trip(tmp_path, params, labels):
    c = _small_crops(params=params, labels=labels)
    path = c.save(tmp_path / "c.npz")
    d = FaceCrops.load(path)
    for name in ("crops", "landmarks", "roll", "source_index", "frame", "transform", "missed"):
        assert np.array_equal(getattr(d, name), getattr(c, name)), name
    assert d.source == c.source and d.eye_distance == c.eye_distance
    assert (d.params is None) == (not params) and (d.labels is None) == (not labels)
    if params:
        assert np.array_equal(d.params, c.params) and np.array_equal(d.labels, c.labels)
    s = d.subset([3, 1])
    assert len(s) == 2 and np.array_equal(s.frame, [9, 3]) and s.source == c.source
    both = FaceCrops.concat([c, c.subset([0])])
    assert len(both) == 6 and both.source_index[-1] == 2 and len(both.source) == 4
    assert (both.params is None) == (not params) and (both.labels is None) == (not labels)
    mixed = FaceCrops.concat([c, _small_crops(params=not params, labels=labels)])
    assert mixed.params is None and (mixed.labels is None) == (not labels)  # params of only some: left out
    empty = c.subset(np.zeros(len(c), bool))
    assert len(FaceCrops.load(empty.save(tmp_path / "e.npz"))) == 0


def test_bad_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.npz"):
        FaceCrops.load(tmp_path / "nothere.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz.*not a readable"):
        FaceCrops.load(junk)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ValueError, match="other.npz.*not an au2rig face-crops file"):
        FaceCrops.load(other)
    c = _small_crops()
    arrays = dict(np.load(c.save(tmp_path / "c.npz")))
    del arrays["roll"]
    np.savez(tmp_path / "noroll.npz", **arrays)
    with pytest.raises(ValueError, match="noroll.npz: field 'roll' is missing"):
        FaceCrops.load(tmp_path / "noroll.npz")
    arrays = dict(np.load(tmp_path / "c.npz"))
    arrays["labels"] = arrays["labels"][:, :4]
    np.savez(tmp_path / "badlabels.npz", **arrays)
    with pytest.raises(ValueError, match="badlabels.npz: labels must have shape"):
        FaceCrops.load(tmp_path / "badlabels.npz")


# --- real media --------------------------------------------------------------------------------------
def _check_aligned(c: FaceCrops, tol: float):
    target = template() * EYE_DISTANCE * c.size + c.size / 2
    five = five_points(c.landmarks.astype(np.float64))
    assert np.abs(five.mean(1) - target.mean(0)).max() < 1e-3
    assert np.abs(five[:, :2] - target[:2]).max() < tol  # eye centres near their place


def test_collect_faces_on_real_media(tmp_path):
    if not MEDIA.is_dir():
        pytest.skip(f"no real media at {MEDIA} (kept beside the project, not in it)")
    video = MEDIA / "single_face.mp4"
    folder = tmp_path / "jpgs"
    folder.mkdir()
    for name in ("single_face.jpg", "0-f1-su-ph.jpg"):
        shutil.copy(MEDIA / name, folder / name)
    c = faces.collect_faces([video, folder], every=24, progress=False)
    assert c.source == [str(video), str(folder / "0-f1-su-ph.jpg"), str(folder / "single_face.jpg")]
    assert list(c.source_index) == [0, 0, 0, 1, 2] and list(c.frame) == [0, 24, 48, 0, 0]
    assert c.crops.shape == (5, CROP_SIZE, CROP_SIZE, 3) and c.params is None and not c.rendered
    assert c.labels.shape == (5, CROP_SIZE, CROP_SIZE) and list(c.missed) == [0, 0, 0]
    _check_aligned(c, 0.06 * CROP_SIZE)
    assert np.abs(c.roll).max() < 15
    # the labels sit on the face: eyes around the eye landmarks, background in the corners
    for i in range(len(c)):
        lab = c.labels[i]
        assert lab[:4, :4].max() == 0
        for idx, name in ((slice(36, 42), "r_eye"), (slice(42, 48), "l_eye")):
            x, y = c.landmarks[i, idx].mean(0)
            assert lab[int(y), int(x)] == CLASS_INDEX[name]
    again = faces.collect_faces([video], every=24, max_per_source=2, labels=False, progress=False)
    assert len(again) == 2 and again.labels is None
    assert np.array_equal(again.crops, c.crops[:2])  # deterministic


def test_a_video_without_a_face_gives_no_crops(tmp_path):
    path = tmp_path / "noface.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    rng = np.random.default_rng(0)
    for k in range(6):
        frame = cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), (0, 0), 3)
        cv2.putText(frame, f"card {k}", (20, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
        writer.write(frame)
    writer.release()
    said = []
    c = faces.collect_faces([path], progress=False, log=said.append)
    assert len(c) == 0 and c.source == [str(path)] and list(c.missed) == [6]
    assert said == [f"6 frames without a face in {path}"]
    assert c.crops.shape == (0, CROP_SIZE, CROP_SIZE, 3) and c.labels.shape == (0, CROP_SIZE, CROP_SIZE)


def test_missing_and_unknown_sources_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.mp4"):
        faces.collect_faces([tmp_path / "gone.mp4"], progress=False)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="notes.txt: not an image"):
        faces.collect_faces([tmp_path / "notes.txt"], progress=False)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg: OpenCV cannot read it"):
        faces.collect_faces([tmp_path / "broken.jpg"], progress=False)
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match="broken.mp4"):
        faces.collect_faces([tmp_path / "broken.mp4"], progress=False)


# --- pairs datasets ----------------------------------------------------------------------------------------
REGION_OF_CLASS = {"skin": "skin", "l_brow": "brows", "r_brow": "brows", "l_eye": "sclera", "r_eye": "sclera",
                   "nose": "nose", "u_lip": "lips", "l_lip": "lips", "mouth": "mouth_interior"}


def _write_pairs(folder, rig, count=6, res=128):
    """A small finished pairs dataset written with core.datasets.pairs; images and masks drawn from the
    rig's landmarks (no Blender)."""
    m = pairs.Manifest.for_rig(rig, resolution=res, engine="workbench", seed=3, count=count, chunk_size=4,
                               masks=True, val_fraction=0.5)
    for c in pairs.prepare_folder(folder, m):
        idx = m.chunk_indices(c)
        params = _params(len(idx), 100 + c)
        lms = rig.landmarks_2d(params, res)
        files = {"image": [], "mask": []}
        for i, lm in zip(idx, lms):
            classes = landmark_mask(lm, (res, res))
            mask = np.full((res, res), pairs.BACKGROUND, np.uint8)
            for name, region in REGION_OF_CLASS.items():
                mask[classes == CLASS_INDEX[name]] = rig.regions.index(region)
            img = cv2.imencode(".png", _face_image(lm, (res, res), int(i))[:, :, ::-1])[1].tobytes()
            msk = cv2.imencode(".png", mask)[1].tobytes()
            pairs.atomic_write(folder / pairs.IMAGE_NAME.format(int(i)), img, durable=False)
            pairs.atomic_write(folder / pairs.MASK_NAME.format(int(i)), msk, durable=False)
            files["image"].append(img)
            files["mask"].append(msk)
        draws = np.stack([pairs.draw_randomization(pairs.Randomization(), m.seed, int(i), len(rig.regions))
                          for i in idx])
        pairs.write_chunk(folder, m, c, params, lms, draws, files, durable=False)
    return pairs.finalize(folder, m, durable=False)


def _expected_crop(image, lm, rig, labels=False):
    """The aligned crop computed here from its definition, with none of the code under test: the
    least-squares similarity (a linear solve) taking the five points (eye centres, nose tip, mouth
    corners) onto the rig's neutral five points, eyes EYE_DISTANCE x CROP_SIZE apart and centred;
    then every crop pixel centre mapped back into the image and sampled there (bilinear, borders
    repeated; or the nearest pixel, 0 outside, for a label map)."""
    def five(points):
        return np.stack([points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]])

    target = five(rig.landmarks_2d(LAYOUT.neutral(1))[0])
    target = (target - target.mean(0)) / np.linalg.norm(target[1] - target[0]) * EYE_DISTANCE * CROP_SIZE
    target += CROP_SIZE / 2
    src = five(np.asarray(lm, np.float64))
    rows = [[x, -y, 1, 0] for x, y in src] + [[y, x, 0, 1] for x, y in src]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), np.r_[target[:, 0], target[:, 1]], rcond=None)[0]
    v, u = np.mgrid[0:CROP_SIZE, 0:CROP_SIZE] + 0.5  # crop pixel centres, corner origin
    inv = np.linalg.inv(np.array([[a, -b], [b, a]]))
    x, y = np.einsum("ij,jhw->ihw", inv, np.stack([u - tx, v - ty]))  # image points, corner origin
    h, w = image.shape[:2]
    if labels:
        i, j = np.floor(y).astype(int), np.floor(x).astype(int)
        inside = (i >= 0) & (i < h) & (j >= 0) & (j < w)
        return np.where(inside, image[i.clip(0, h - 1), j.clip(0, w - 1)], 0)
    x, y = x - 0.5, y - 0.5  # pixel-centre coordinates
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    def px(i, j):
        return image[i.clip(0, h - 1), j.clip(0, w - 1)].astype(np.float64)
    top = px(y0, x0) * (1 - fx) + px(y0, x0 + 1) * fx
    bottom = px(y0 + 1, x0) * (1 - fx) + px(y0 + 1, x0 + 1) * fx
    return top * (1 - fy) + bottom * fy


def test_crops_from_a_pairs_dataset(tmp_path, rig):
    folder = tmp_path / "pairs"
    m = _write_pairs(folder, rig)
    ds = pairs.PairsDataset(folder, "val")
    c = faces.crops_from_pairs(folder, split="val", progress=False)
    assert len(c) == len(ds) > 0 and c.rendered and c.source == [str(folder)]
    assert np.array_equal(c.frame, ds.indices) and np.allclose(c.params, ds.params[ds.indices])
    _check_aligned(c, 0.06 * CROP_SIZE)
    assert np.allclose(c.roll, [roll_degrees(crops.crop_transform(ds.landmarks[i])) for i in ds.indices], atol=1e-4)
    for k, i in enumerate(ds.indices):
        lm = ds.landmarks[i].astype(np.float64)
        classes = rig_mask_to_classes(ds[k]["mask"], lm, m.regions)
        expected = _expected_crop(classes, lm, rig, labels=True)
        assert (c.labels[k] == expected).mean() > 0.995  # nearest sampling: a pixel may round the other way
        drawn = _expected_crop(landmark_mask(lm, (128, 128)), lm, rig, labels=True)
        assert (c.labels[k] == drawn).mean() > 0.97  # left/right and upper/lower split as drawn
        image = np.rint(ds[k]["image"] * 255).astype(np.uint8)
        diff = np.abs(c.crops[k].astype(np.float64) - _expected_crop(image, lm, rig))
        assert diff.max() <= 3 and diff.mean() < 0.4, (diff.max(), diff.mean())  # OpenCV: 1/32 px weights
    limited = faces.crops_from_pairs(folder, max_count=1, labels=False, progress=False)
    assert len(limited) == 1 and limited.labels is None and limited.frame[0] == 0


@pytest.fixture(scope="module")
def pairs128(tmp_path_factory):
    """A small pairs dataset rendered by Blender at 128 px with masks (half of it validation)."""
    pytest.importorskip("bpy")
    from au2rig.addon.rig_render import RenderConfig, render_pairs

    folder = tmp_path_factory.mktemp("pairs") / "pairs128"
    render_pairs(RenderConfig(output=str(folder), count=16, size=128, masks=True, chunk_size=8, workers=1,
                              val_fraction=0.5), rig=load_rig())
    return folder


def test_crops_from_real_renders_with_detection(pairs128):
    c = faces.crops_from_pairs(pairs128, split="val", max_count=6, progress=False)
    d = faces.crops_from_pairs(pairs128, split="val", max_count=6, detect=True, progress=False)
    assert len(c) == 6 and len(d) + int(d.missed[0]) == 6 and len(d) >= 3
    # random AUs and poses: a jaw opening carries the mouth corners down (as on real faces), and the
    # five-point fit shares that between the corners and the eyes (at most 0.080 of the crop seen)
    _check_aligned(c, 0.09 * CROP_SIZE)
    assert set(np.unique(c.labels)) >= {0, 1, 10, 12, 13}
    k = np.searchsorted(c.frame, d.frame)
    assert np.array_equal(c.frame[k], d.frame) and np.allclose(d.params, c.params[k])


def test_command_line(tmp_path):
    if not MEDIA.is_dir():
        pytest.skip(f"no real media at {MEDIA} (kept beside the project, not in it)")
    from au2rig.core.__main__ import main

    out = tmp_path / "out.npz"
    assert main(["faces", str(MEDIA / "single_face.jpg"), "-o", str(out), "--size", "64", "--quiet"]) == 0
    c = FaceCrops.load(out)
    assert len(c) == 1 and c.size == 64 and c.labels is not None
