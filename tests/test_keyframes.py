"""core.animation.keyframes: frame mapping, gains text, scene frame rate, clean-up of redundant keys."""
import numpy as np
import pytest

from au2rig.core.animation.keyframes import (
    CHANNEL_SETS,
    frame_map,
    parse_gains,
    plan_keys,
    redundant_keys,
    scene_fps,
    select_channels,
)
from au2rig.core.animation.tracking_io import Tracking
from au2rig.core.rig.layout import LAYOUT


def test_frame_map_is_relative_to_the_first_row_and_divided_by_the_step():
    rows, frames = frame_map([7, 8, 9, 10, 12, 13], start_frame=1)
    assert rows.tolist() == [0, 1, 2, 3, 4, 5] and frames.tolist() == [1, 2, 3, 4, 6, 7]
    rows, frames = frame_map([7, 8, 9, 10, 12, 13], start_frame=100, frame_step=2)
    assert rows.tolist() == [0, 2, 5] and frames.tolist() == [100, 101, 103]  # 12 - 7 is odd
    with pytest.raises(ValueError, match="row 2 .frame 8. follows frame 9"):
        frame_map([7, 9, 8])
    with pytest.raises(ValueError, match="frame step"):
        frame_map([1, 2], frame_step=0)


def test_parse_gains():
    assert parse_gains("AU12=1.5, AU4=0.8; AU01_L = 2") == {"AU12": 1.5, "AU4": 0.8, "AU01_L": 2.0}
    assert parse_gains("  ") == {}
    for bad, match in (("AU99=1", "unknown channel 'AU99'"), ("AU12", "NAME=VALUE"),
                       ("AU12=x", "not a number"), ("AU12=-1", ">= 0")):
        with pytest.raises(ValueError, match=match):
            parse_gains(bad)


def test_scene_fps():
    assert scene_fps(30.0) == (30, 1.0)
    assert scene_fps(60.0, 2) == (30, 1.0)
    fps, base = scene_fps(30000 / 1001)
    assert fps == 30 and fps / base == pytest.approx(30000 / 1001)
    with pytest.raises(ValueError, match="no frame rate"):
        scene_fps(0.0)


def test_channel_selection():
    assert len(select_channels("pose+au")) == 29 and len(select_channels("all")) == len(LAYOUT)
    assert select_channels() == select_channels("motion") == select_channels("pose+au") + select_channels("gaze")
    assert [LAYOUT.names[i] for i in select_channels("gaze")] == ["gaze_yaw", "gaze_pitch"]
    assert select_channels(["AU12_L", "pose_yaw"]) == [LAYOUT.index["AU12_L"], 0]
    assert set(CHANNEL_SETS) == {"motion", "pose", "au", "gaze", "pose+au", "au+gaze", "all"}
    assert select_channels("au+gaze") == select_channels("au") + select_channels("gaze")
    with pytest.raises(ValueError, match="'AU99'"):
        select_channels(["AU99"])


def test_plan_has_no_values_where_there_is_no_face_and_applies_gain():
    n = 6
    p = np.tile(LAYOUT.neutral(), (n, 1))
    p[:, LAYOUT.index["AU12_L"]] = 0.3
    ok = np.array([1, 1, 0, 1, 1, 1], bool)
    p[~ok] = np.nan
    t = Tracking(np.arange(n), np.arange(n) / 30, ok, ok * 1.0, p, np.zeros((n, 68, 2)), 30.0)
    plan = plan_keys(t, "au", gains={"AU12": 2.0})
    k = plan.names.index("AU12_L")
    assert np.isnan(plan.values[2]).all()
    assert np.allclose(plan.values[ok, k], 0.6)
    assert set(plan.groups) == {"AUs"}


def test_cleanup_drops_only_what_linear_interpolation_reproduces():
    x = np.arange(40.0)
    y = np.r_[np.zeros(10), np.linspace(0, 1, 10), np.ones(10), np.sin(np.arange(10.0))]
    keep = redundant_keys(x, y, 1e-6)
    assert keep[0] and keep[-1]
    assert keep[:10].sum() == 1  # a flat run keeps its first key only (its end is the ramp's start)
    assert keep[30:].all()  # the wiggle keeps every key
    assert np.abs(np.interp(x, x[keep], y[keep]) - y).max() <= 1e-6
    # a slow curve: each key is close to its neighbours' line, but the cleaned curve must
    # still stay within the tolerance everywhere
    x = np.arange(200.0)
    y = (x / 200) ** 2
    for tol in (1e-4, 1e-3, 1e-2):
        keep = redundant_keys(x, y, tol)
        assert np.abs(np.interp(x, x[keep], y[keep]) - y).max() <= tol + 1e-12
        assert keep.sum() < len(x)
    assert redundant_keys(x[:2], y[:2], 1.0).all()


def test_smoothing_strength_takes_out_jitter_and_zero_keeps_the_values():
    """A held AU with frame-to-frame jitter (+-0.1 around 0.5 at 30 fps): smoothing 0.8 leaves
    less than half the jitter (a low-pass of an alternating signal), smoothing 0 every value."""
    n = 60
    params = np.tile(LAYOUT.neutral(), (n, 1))
    i = LAYOUT.index["AU12_L"]
    params[:, i] = 0.5 + 0.1 * (-1.0) ** np.arange(n)
    t = Tracking(np.arange(n), np.arange(n) / 30.0, np.ones(n, bool), np.ones(n), params,
                 np.zeros((n, 68, 2)), 30.0, {})
    column = list(plan_keys(t, smoothing=0.0).names).index("AU12_L")
    raw = plan_keys(t, smoothing=0.0).values[:, column]
    assert np.array_equal(raw, params[:, i])
    smooth = plan_keys(t, smoothing=0.8).values[:, column]
    assert np.std(np.diff(smooth[10:])) < 0.5 * np.std(np.diff(raw[10:]))
    assert abs(smooth[10:].mean() - 0.5) < 0.05  # the level stays where it was


def test_a_neutral_frame_zeroes_the_aus_there_and_rescales_the_rest():
    n = 20
    p = LAYOUT.neutral(n)
    au = LAYOUT.group_slice("au")
    rng = np.random.default_rng(1)
    p[:, au] = rng.uniform(0.2, 0.9, (n, au.stop - au.start))
    p[:, LAYOUT.index["pose_yaw"]] = 10.0
    ok = np.ones(n, bool)
    ok[7] = False
    p[7] = np.nan
    t = Tracking(np.arange(n), np.arange(n) / 25.0, ok, ok * 1.0, p, np.zeros((n, 68, 2)), 25.0, {})
    plan = plan_keys(t, "all", start_frame=11, neutral_frame=15)  # scene frame 15 = row 4
    rest = p[4, au]
    np.testing.assert_allclose(plan.values[4, au], 0.0, atol=1e-12)
    np.testing.assert_allclose(plan.values[9, au], np.clip((p[9, au] - rest) / (1 - rest), 0, 1), atol=1e-12)
    assert plan.values[9, LAYOUT.index["pose_yaw"]] == 10.0  # the pose is not an AU
    with pytest.raises(ValueError, match="neutral frame 18: the tracking has no face there"):
        plan_keys(t, start_frame=11, neutral_frame=18)
    with pytest.raises(ValueError, match=r"neutral frame 99: the tracking keys no face there \(keys on frames 11"):
        plan_keys(t, start_frame=11, neutral_frame=99)
