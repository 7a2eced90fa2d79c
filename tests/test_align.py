"""Five-point alignment: recovers a known similarity, gives roll back as head pose."""
import numpy as np
import pytest
import torch

from au2rig.core.alignment.align import (
    align,
    aligned_crop,
    apply_similarity,
    five_points,
    invert_similarity,
    roll_degrees,
    similarity,
    template,
)
from au2rig.core.rig import load_rig
from au2rig.core.rig.layout import LAYOUT


@pytest.fixture(scope="module")
def faces():
    rig = load_rig()
    rng = np.random.default_rng(3)
    p = LAYOUT.neutral(6)
    p[:, LAYOUT.group_slice("identity")] = rng.uniform(0, 1, (6, 64))
    p[:, LAYOUT.group_slice("au")] = rng.uniform(0, 1, (6, 26)) * (rng.uniform(0, 1, (6, 26)) < 0.3)
    return rig.landmarks_2d(p)


def test_recovers_a_known_similarity(faces):
    rng = np.random.default_rng(0)
    for lm in faces:
        angle, scale, shift = rng.uniform(-1, 1), rng.uniform(0.3, 3), rng.uniform(-200, 200, 2)
        known = (scale * np.cos(angle), scale * np.sin(angle), shift[0], shift[1])
        moved = apply_similarity(tuple(np.float64(k) for k in known), lm)
        got = similarity(five_points(moved), five_points(lm))  # maps moved back onto lm
        expected = invert_similarity(known)
        assert np.allclose(got, expected, atol=1e-9)
        a1, _ = align(lm)
        a2, _ = align(moved)
        assert np.abs(a1 - a2).max() < 1e-9  # alignment removes the similarity


def test_template_is_normalised():
    t = template()
    assert np.allclose(t.mean(0), 0, atol=1e-12)
    assert np.linalg.norm(t[1] - t[0]) == pytest.approx(1.0)
    assert t[0, 1] == pytest.approx(t[1, 1]) and t[0, 0] < t[1, 0]  # eyes level, right eye on image left


@pytest.mark.parametrize("roll", [-20.0, -5.0, 0.0, 12.0, 25.0])
def test_roll_comes_back_as_head_pose(roll):
    rig = load_rig()
    p = LAYOUT.neutral(1)
    p[0, LAYOUT.index["pose_roll"]] = roll
    _, t = align(rig.landmarks_2d(p))
    assert roll_degrees(t)[0] == pytest.approx(roll, abs=1.0)


def test_numpy_and_torch_agree(faces):
    a_np, t_np = align(faces)
    a_t, t_t = align(torch.tensor(faces))
    assert np.abs(a_t.numpy() - a_np).max() < 1e-12
    assert np.allclose(roll_degrees(t_t).numpy(), roll_degrees(t_np))


def test_aligned_crop_puts_the_eyes_on_the_template(faces):
    img = np.zeros((256, 256, 3), np.uint8)
    crop, t = aligned_crop(img, faces[0], 128)
    assert crop.shape == (128, 128, 3)
    five = apply_similarity(tuple(np.float64(v) for v in t), five_points(faces[0]))
    target = template() * 0.4 * 128 + 64
    assert np.allclose(five.mean(0), target.mean(0), atol=1e-9)  # least squares: centroids meet
    assert np.abs(five - target).max() < 0.05 * 128
