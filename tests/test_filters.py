"""One Euro smoothing, neutral calibration and per-channel gain."""
from __future__ import annotations

import numpy as np
import pytest

from au2rig.core.animation.filters import OneEuroFilter, apply_gain, calibrate, gain_channels, neutral_baseline, smooth
from au2rig.core.rig.layout import LAYOUT

FPS = 30.0
I = LAYOUT.index
AU = LAYOUT.group_slice("au")
POSE = LAYOUT.group_slice("pose")


def _times(n):
    return np.arange(n) / FPS


def _noisy(n=300, seed=0):
    rng = np.random.default_rng(seed)
    p = LAYOUT.neutral(n)
    p[:, AU] = 0.5 + rng.normal(0, 0.05, (n, AU.stop - AU.start))
    p[:, POSE] = rng.normal(0, 1.0, (n, 3))
    return p


def _jitter(x):
    return np.diff(x, axis=0).std()


# --- One Euro ----------------------------------------------------------------------------
def test_one_euro_first_sample_passes_and_channels_are_independent():
    rng = np.random.default_rng(1)
    xs = rng.normal(size=(50, 3))
    ts = _times(50)
    f = OneEuroFilter(3, min_cutoff=[0.5, 1.0, 2.0], beta=[0.0, 0.1, 1.0], d_cutoff=1.0)
    out = f.run(xs, ts)
    assert np.array_equal(out[0], xs[0])
    for c, (mc, b) in enumerate([(0.5, 0.0), (1.0, 0.1), (2.0, 1.0)]):
        single = OneEuroFilter(1, mc, b, 1.0).run(xs[:, c:c + 1], ts)
        assert np.allclose(out[:, c], single[:, 0], atol=1e-12)


def test_one_euro_constant_signal_is_unchanged_and_time_must_increase():
    f = OneEuroFilter(2, min_cutoff=1.0, beta=0.5)
    out = f.run(np.full((20, 2), 0.3), _times(20))
    assert np.allclose(out, 0.3)
    with pytest.raises(ValueError, match="does not increase"):
        f(np.zeros(2), 0.1)
    with pytest.raises(ValueError, match="min_cutoff must be finite and > 0"):
        OneEuroFilter(1, min_cutoff=0.0)


def test_strength_zero_is_identity():
    p = _noisy(60)
    p[10:14] = np.nan
    out = smooth(p, _times(60), 0.0)
    assert np.array_equal(out, p, equal_nan=True) and out is not p


def test_more_strength_less_jitter():
    p = _noisy()
    ts = _times(len(p))
    au_j, pose_j = [], []
    for s in (0.0, 0.25, 0.5, 0.75, 1.0):
        out = smooth(p, ts, s)
        au_j.append(_jitter(out[:, AU]))
        pose_j.append(_jitter(out[:, POSE]))
    assert all(a > b for a, b in zip(au_j, au_j[1:])), au_j
    assert all(a > b for a, b in zip(pose_j, pose_j[1:])), pose_j
    assert au_j[-1] < 0.3 * au_j[0] and pose_j[-1] < 0.2 * pose_j[0]
    # identity and brow style: identity barely moves, brow style (one-hot) is never filtered
    brow = LAYOUT.group_slice("brow_style")
    out = smooth(p, ts, 1.0)
    assert np.array_equal(out[:, brow], p[:, brow])


def test_step_lag_is_bounded_and_no_overshoot():
    n = 120
    p = LAYOUT.neutral(n)
    p[60:, I["AU12_L"]] = 1.0
    p[60:, I["pose_yaw"]] = 20.0
    for s in (0.3, 1.0):
        out = smooth(p, _times(n), s)
        for name, full in (("AU12_L", 1.0), ("pose_yaw", 20.0)):
            y = out[:, I[name]]
            assert np.all(y[:60] == 0)
            frames_to_90 = int(np.argmax(y >= 0.9 * full)) - 60
            assert 0 <= frames_to_90 <= 4, (s, name, frames_to_90)  # at most ~0.13 s at 30 fps
            assert y.max() <= full + 1e-9
            assert abs(y[-1] - full) < 1e-3 * full


def test_short_gap_holds_state_long_gap_restarts():
    p = _noisy(120, seed=2)
    ts = _times(120)
    # a one-frame dropout: same result as if that frame had never been there
    q = p.copy()
    q[50] = np.nan
    out = smooth(q, ts, 1.0)
    assert np.all(np.isnan(out[50]))
    keep = np.r_[0:50, 51:120]
    ref = smooth(p[keep], ts[keep], 1.0)
    assert np.allclose(out[keep], ref, atol=1e-12)
    # a long gap (0.5 s > max_gap): the filter restarts on the first frame back
    valid = np.ones(120, bool)
    valid[60:75] = False
    out = smooth(p, ts, 1.0, valid=valid)
    assert np.array_equal(out[60:75], p[60:75])  # invalid rows come back as they went in
    assert np.array_equal(out[75], p[75])
    assert not np.allclose(out[76, AU], p[76, AU])
    # ... and continues from where it was after a short one
    valid[60:75] = True
    valid[60:63] = False
    out = smooth(p, ts, 1.0, valid=valid)
    assert not np.allclose(out[63, AU], p[63, AU])


def test_smooth_errors():
    p = _noisy(10)
    ts = _times(10)
    with pytest.raises(ValueError, match="strength must be in 0..1"):
        smooth(p, ts, 1.5)
    bad = ts.copy()
    bad[6] = bad[4]
    with pytest.raises(ValueError, match="row 6 .* follows row 5"):
        smooth(p, bad, 0.5)
    with pytest.raises(ValueError, match=r"params must be \(N, 101\)"):
        smooth(p[:, :5], ts, 0.5)


# --- calibration -------------------------------------------------------------------------
def _actor(n=400, seed=3):
    """An actor whose face rests at AU 0.2 (AU04 at 0.35), expressive in 30% of frames."""
    rng = np.random.default_rng(seed)
    p = LAYOUT.neutral(n)
    rest = np.full(AU.stop - AU.start, 0.2)
    rest[LAYOUT.au_channels.index(LAYOUT.channels[I["AU04"]])] = 0.35
    p[:, AU] = np.clip(rest + rng.normal(0, 0.01, (n, len(rest))), 0, 1)
    busy = rng.random(n) < 0.3
    p[busy, AU] = np.clip(p[busy, AU] + rng.uniform(0.2, 0.8, (busy.sum(), len(rest))), 0, 1)
    p[:, POSE] = rng.normal(0, 5, (n, 3))
    return p, rest


def test_automatic_baseline_finds_the_rest_pose():
    p, rest = _actor()
    p[7] = np.nan  # a frame without a face
    valid = np.isfinite(p).all(1)
    valid[8] = False
    base = neutral_baseline(p, valid)
    assert base.shape == (len(LAYOUT),)
    assert np.allclose(base[AU], rest, atol=0.02)
    cal = calibrate(p, base)
    quiet = np.isfinite(p).all(1) & (p[:, AU].sum(1) < rest.sum() + 0.3)
    assert np.median(cal[quiet][:, AU]) < 0.02
    assert np.array_equal(cal[:, POSE], p[:, POSE], equal_nan=True)
    assert np.all(np.isnan(cal[7]))
    assert np.nanmax(cal[:, AU]) <= 1 and np.nanmin(cal[:, AU]) >= 0


def test_calibrate_formula():
    p = LAYOUT.neutral(3)
    p[:, I["AU12_L"]] = [0.1, 0.6, 1.0]
    base = np.zeros(len(LAYOUT))
    base[I["AU12_L"]] = 0.2
    base[I["AU26"]] = 1.0  # degenerate: the actor "rests" at full intensity -> 0
    base[I["pose_yaw"]] = 30.0  # non-AU baseline entries are ignored
    cal = calibrate(p, base)
    assert np.allclose(cal[:, I["AU12_L"]], [0.0, 0.5, 1.0])
    assert np.all(cal[:, I["AU26"]] == 0)
    assert np.array_equal(cal[:, POSE], p[:, POSE])
    au_only = calibrate(p, base[AU])
    assert np.array_equal(au_only, cal)
    with pytest.raises(ValueError, match="baseline must have length 101 or 26"):
        calibrate(p, np.zeros(5))


def test_baseline_from_a_named_frame_and_its_errors():
    p, _ = _actor(50)
    p[4] = np.nan
    assert np.array_equal(neutral_baseline(p, frame=12), p[12])
    with pytest.raises(ValueError, match="frame 50 is out of range"):
        neutral_baseline(p, frame=50)
    with pytest.raises(ValueError, match="frame -1 is out of range"):
        neutral_baseline(p, frame=-1)
    with pytest.raises(ValueError, match="frame 4 has no face"):
        neutral_baseline(p, frame=4)
    valid = np.ones(50, bool)
    valid[9] = False
    with pytest.raises(ValueError, match="frame 9 has no face"):
        neutral_baseline(p, valid, frame=9)
    with pytest.raises(ValueError, match="no frame with a face"):
        neutral_baseline(np.full((5, len(LAYOUT)), np.nan))


# --- gain --------------------------------------------------------------------------------
def test_gain_by_channel_name_and_facs_code():
    p = LAYOUT.neutral(2)
    p[:, I["AU12_L"]] = [0.3, 0.8]
    p[:, I["AU12_R"]] = [0.2, 0.4]
    p[:, I["AU26"]] = 0.5
    p[:, I["pose_yaw"]] = 10.0
    p[:, I["id_nose_length"]] = 0.6

    out = apply_gain(p, {"AU12_L": 2.0})
    assert np.allclose(out[:, I["AU12_L"]], [0.6, 1.0])  # clipped to the range
    assert np.array_equal(np.delete(out, I["AU12_L"], 1), np.delete(p, I["AU12_L"], 1))

    out = apply_gain(p, {"AU12": 1.5, "AU04": 3.0, "pose_yaw": 0.5, "id_nose_length": 2.0})
    assert np.allclose(out[:, I["AU12_L"]], [0.45, 1.0])
    assert np.allclose(out[:, I["AU12_R"]], [0.3, 0.6])
    assert np.allclose(out[:, I["pose_yaw"]], 5.0)
    assert np.allclose(out[:, I["id_nose_length"]], 0.7)  # about the neutral 0.5
    assert np.array_equal(out[:, I["AU26"]], p[:, I["AU26"]])
    assert gain_channels("AU1") == [I["AU01_L"], I["AU01_R"]]


def test_gain_errors_name_the_channel():
    p = LAYOUT.neutral(1)
    with pytest.raises(ValueError, match="unknown channel 'AU99'"):
        apply_gain(p, {"AU99": 1.0})
    with pytest.raises(ValueError, match="unknown channel 'smile'"):
        apply_gain(p, {"smile": 1.0})
    with pytest.raises(ValueError, match="gain of 'AU26' must be finite and >= 0"):
        apply_gain(p, {"AU26": -1.0})


def test_the_dense_path_is_the_same_filter():
    """run_dense (every sample present: what smoothing a tracking uses) gives what the filter
    gives sample by sample (to 1e-12: the same arithmetic, rearranged), across a gap that
    restarts it and from a carried-on state."""
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(600, 5))
    ts = np.cumsum(rng.uniform(0.02, 0.05, 600))
    ts[300:] += 1.0  # longer than max_gap: a restart
    settings = (rng.uniform(0.1, 2, 5), rng.uniform(0, 1, 5), np.ones(5))
    one, dense = OneEuroFilter(5, *settings), OneEuroFilter(5, *settings)
    np.testing.assert_allclose(dense.run_dense(xs[:100], ts[:100]), one.run(xs[:100], ts[:100]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(dense.run_dense(xs[100:], ts[100:]), one.run(xs[100:], ts[100:]), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="does not increase"):
        OneEuroFilter(5, *settings).run_dense(xs[:3], ts[[0, 2, 1]])
