"""Fitting a clip through the rig gives back the strength a shrinking estimate lost."""
import numpy as np

from au2rig.core.rig.layout import LAYOUT
from au2rig.core.tracking.clip_fit import fit_clip


def _clip(rig, n=12, seed=0):
    """Frames of one actor (base face) with random sparse AUs and a turning head, the first frame
    neutral; their landmarks as a video would show them (scaled, turned and shifted in the image)."""
    rng = np.random.default_rng(seed)
    truth = LAYOUT.neutral(n)
    au = np.arange(len(LAYOUT))[LAYOUT.group_slice("au")]
    for i in range(1, n):
        on = rng.choice(au, 3, replace=False)
        truth[i, on] = rng.uniform(0.4, 1.0, 3)
    truth[:, LAYOUT.index["pose_yaw"]] = rng.uniform(-15, 15, n)
    truth[:, LAYOUT.index["pose_pitch"]] = rng.uniform(-8, 8, n)
    truth[0, LAYOUT.group_slice("au")] = 0.0
    lm = rig.landmarks_2d(truth)
    angle = np.deg2rad(5.0)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    video = 2.1 * lm @ rot.T + [40.0, -12.0]
    return truth, video


def test_the_fit_recovers_the_strength_of_a_shrunk_estimate(rig):
    truth, video = _clip(rig)
    au = LAYOUT.group_slice("au")
    init = truth.copy()
    init[:, au] *= 0.5  # an estimate at half strength
    init[1:, LAYOUT.index["pose_yaw"]] *= 0.8  # the reference frame's pose is what the fit is relative to
    fitted, report = fit_clip(rig, video, init, reference=0)
    before = np.abs(init[:, au] - truth[:, au]).mean()
    after = np.abs(fitted[:, au] - truth[:, au]).mean()
    assert after < 0.75 * before, (before, after)  # the prior (PRIOR_SIGMA) holds back part of it
    assert report["error_after"] < 0.5 * report["error_before"]
    yaw = LAYOUT.index["pose_yaw"]
    assert np.abs(fitted[:, yaw] - truth[:, yaw]).mean() < 0.5 * np.abs(init[:, yaw] - truth[:, yaw]).mean()
    assert (fitted[:, au] >= LAYOUT.lo[au]).all() and (fitted[:, au] <= LAYOUT.hi[au]).all()


def test_rows_without_a_face_are_left_as_they_were(rig):
    truth, video = _clip(rig, n=5)
    init = truth.copy()
    init[2] = np.nan
    video[3] = np.nan
    fitted, report = fit_clip(rig, video, init, reference=0)
    assert np.isnan(fitted[2]).all() and np.array_equal(fitted[3], init[3]) and report["frames"] == 3
