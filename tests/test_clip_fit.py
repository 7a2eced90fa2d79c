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


def _shown(rig, channels, n=40, seed=1):
    """A take of one actor showing only ``channels`` (at random strengths), the head turning."""
    rng = np.random.default_rng(seed)
    truth = LAYOUT.neutral(n)
    for name in channels:
        truth[:, LAYOUT.index[name]] = rng.uniform(0.0, 0.9, n) * (rng.random(n) < 0.6)
    truth[:, LAYOUT.index["pose_yaw"]] = rng.uniform(-12, 12, n)
    truth[:, LAYOUT.index["pose_pitch"]] = rng.uniform(-6, 6, n)
    video = 1.7 * rig.landmarks_2d(truth) + [25.0, 8.0]
    rest = 1.7 * rig.landmarks_2d(LAYOUT.neutral()) + [25.0, 8.0]
    return truth, video, rest


def test_the_range_of_motion_restores_an_actor_s_strength_without_changing_the_timing(rig):
    from au2rig.core.tracking.clip_fit import fit_range

    shown = ["AU12_L", "AU12_R", "AU26", "AU02_L"]
    truth, video, rest = _shown(rig, shown)
    estimate = truth.copy()
    au = LAYOUT.group_slice("au")
    estimate[:, au] *= 0.55  # the estimator reads this actor at a little over half strength
    gains, report = fit_range(rig, video, estimate, rest=rest, fps=1.0)  # every frame one observation
    names = LAYOUT.group_names("au")
    for name in shown:
        assert abs(gains[names.index(name)] - 1 / 0.55) < 0.35, (name, gains[names.index(name)])
    assert report["error_after"] < 0.5 * report["error_before"]
    # channels the take never shows keep their prior
    quiet = [i for i, n in enumerate(names) if n not in shown]
    assert np.abs(gains[quiet] - 1.0).max() < 0.1
    prior = np.full(len(names), 1.4)
    again, _ = fit_range(rig, video, estimate, rest=rest, prior=prior, fps=1.0)
    assert np.abs(again[quiet] - 1.4).max() < 0.1


def test_an_actor_who_never_smiles_is_not_made_to(rig):
    """Adaptation is a fit through the rig, not a stretch of each channel to its own range: an
    estimate that wobbles at a low level where the face does not move stays low."""
    from au2rig.core.tracking.clip_fit import fit_range

    truth, video, rest = _shown(rig, ["AU26"], n=60, seed=3)
    estimate = truth.copy()
    rng = np.random.default_rng(4)
    smile = [LAYOUT.index["AU12_L"], LAYOUT.index["AU12_R"]]
    estimate[:, smile] = rng.uniform(0.0, 0.08, (len(truth), 2))  # noise, the face never smiles
    gains, _ = fit_range(rig, video, estimate, rest=rest, fps=30.0)
    names = LAYOUT.group_names("au")
    for name in ("AU12_L", "AU12_R"):
        g = gains[names.index(name)]
        assert g <= 1.1 and (g * estimate[:, LAYOUT.index[name]]).max() < 0.2  # below FACS 1 (of 5)


def test_a_detector_that_follows_an_expression_in_part_is_not_taken_for_a_weaker_actor(rig):
    """A detector that reports half of the brow raise's motion and 0.6 of the smile's (the
    rig's landmarks at that share of the channels), read by an estimator that reads what it sees:
    through the detector's response the range gives the actor's full strength back; taken at face
    value it stays at the estimator's."""
    from au2rig.core.tracking.clip_fit import detector_response, fit_range

    shown = ["AU12_L", "AU12_R", "AU02_L", "AU02_R"]
    truth, _, rest = _shown(rig, shown)
    names = LAYOUT.group_names("au")
    response = np.ones(len(names))
    for name, share in (("AU02_L", 0.5), ("AU02_R", 0.5), ("AU12_L", 0.6), ("AU12_R", 0.6)):
        response[names.index(name)] = share
    au = LAYOUT.group_slice("au")
    seen_params = truth.copy()
    seen_params[:, au] *= response
    video = 1.7 * rig.landmarks_2d(seen_params) + [25.0, 8.0]
    estimate = seen_params  # the estimator reads the damped motion as a weaker expression
    through, _ = fit_range(rig, video, estimate, rest=rest, fps=1.0, response=response)
    plain, _ = fit_range(rig, video, estimate, rest=rest, fps=1.0)
    for name in shown:
        k = names.index(name)
        want = 1 / response[k]
        assert abs(through[k] - want) < 0.25 * want and abs(plain[k] - 1.0) < 0.15, (name, through[k], plain[k])
    shipped = detector_response("mediapipe")  # as measured on the rig's renders; eyes closing followed whole
    assert shipped.shape == (len(names),) and (shipped <= 1.0).all() and (shipped >= 0.2).all()
    assert all(shipped[k] == 1.0 for k, name in enumerate(names) if name.startswith("AU43"))
    assert shipped[names.index("AU26")] > 0.7 and shipped[names.index("AU02_L")] < 0.6
    assert detector_response("fan") is None
