"""Gaze: where the irises sit in their eyes, angles against where the open eyes look most, blinks held,
and the tracker reading the rig's turned eyes on its own renders (no media needed)."""
import numpy as np
import pytest

from au2rig.core.rig.layout import LAYOUT
from au2rig.core.tracking.gaze import EYES, WIDTH_IN_RADII, eye_offsets, gaze_angles, head_parallax

GAZE = LAYOUT.group_slice("gaze")


def mesh(shift=(0.0, 0.0), roll_deg=0.0):
    """478 points: two eyes 30 px wide (16-point elliptical contours, corners at the ends) with
    their irises at the centre moved by ``shift`` (along, up; fractions of the eye's width), the
    whole face turned by ``roll_deg`` in the image."""
    p = np.zeros((478, 2))
    for (iris, left, right, contour), cx in zip(EYES, (100.0, 160.0)):
        start = np.pi if contour[0] == left else 0.0  # contour[0] is a corner, contour[8] the other
        for k, index in enumerate(contour):
            a = start + 2 * np.pi * k / 16
            p[index] = (cx + 15 * np.cos(a), 100 - 5 * np.sin(a))
        assert np.allclose(p[left], (cx - 15, 100)) and np.allclose(p[right], (cx + 15, 100))
        p[iris] = (cx + 30 * shift[0], 100 - 30 * shift[1])
    c, s = np.cos(np.radians(roll_deg)), np.sin(np.radians(roll_deg))
    return (p - 130) @ np.array([[c, s], [-s, c]]) + 130


def test_the_iris_offset_is_measured_in_the_eye_and_ignores_head_roll():
    np.testing.assert_allclose(eye_offsets(mesh()), [0, 0], atol=1e-12)
    np.testing.assert_allclose(eye_offsets(mesh((0.1, 0.05))), [0.1, 0.05], atol=1e-12)
    np.testing.assert_allclose(eye_offsets(mesh((0.1, 0.05), roll_deg=25)), [0.1, 0.05], atol=1e-12)
    np.testing.assert_allclose(eye_offsets(mesh((-0.2, 0.0), roll_deg=-40)), [-0.2, 0.0], atol=1e-12)


def _landmarks(n, closed=(), lowered=()):
    """The rig's neutral 68 points; ``closed`` frames with the upper lids down on the lower ones,
    ``lowered`` frames with them two thirds of the way there (a third of the opening left)."""
    from au2rig.core.rig import load_rig

    lm = np.repeat(load_rig().landmarks_2d(LAYOUT.neutral(1)), n, 0)
    for i in closed:
        lm[i, [37, 38, 43, 44]] = lm[i, [41, 40, 47, 46]]  # upper lids down onto the lower ones
    for i in lowered:
        lm[i, [37, 38, 43, 44]] += 2 / 3 * (lm[i, [41, 40, 47, 46]] - lm[i, [37, 38, 43, 44]])
    return lm


def test_angles_are_relative_to_the_resting_frames_and_closed_eyes_hold_the_gaze():
    n = 12
    offsets = np.tile([0.04, -0.02], (n, 1))  # the actor's resting eyes sit a little off centre
    offsets[4:8] += [0.2, 0.1]  # then look to their left and up
    offsets[9] = np.nan  # no irises found
    lm = _landmarks(n, closed=[6])
    offsets[6] = [0.4, -0.4]  # an iris under a closed lid: a guess, not used
    angles = gaze_angles(offsets, lm, neutral_rows=[0, 1, 2])
    want = np.degrees(np.arcsin(WIDTH_IN_RADII * np.array([0.2, 0.1])))  # 30 and 14.5 degrees
    np.testing.assert_allclose(angles[[0, 1, 2, 3, 8, 10, 11]], 0, atol=1e-9)
    np.testing.assert_allclose(angles[[4, 5, 7]], np.tile(want, (3, 1)), atol=1e-9)
    np.testing.assert_allclose(angles[6], want, atol=1e-9)  # held through the blink
    np.testing.assert_allclose(angles[9], [0, 0], atol=1e-9)  # between open frames
    assert np.isnan(gaze_angles(np.full((3, 2), np.nan), _landmarks(3), [0, 1])).all()


def test_a_blink_holds_the_gaze_and_a_lid_lowered_for_longer_is_read():
    """A lid lowered to a third of its opening for 0.2 s is a blink: the iris reading under it is not
    used. Lowered for a second, it is the lid following a look down: read. Closed, never read."""
    fps, n = 30.0, 90
    offsets = np.zeros((n, 2))
    offsets[10:16] = [0.0, -0.3]  # a blink (6 frames): the iris under the lid reads down
    offsets[30:60] = [0.0, -0.1]  # a look down held for a second, the lids following it
    offsets[70:85] = [0.0, -0.3]  # eyes shut for half a second: the iris a guess
    lm = _landmarks(n, closed=range(70, 85), lowered=[*range(10, 16), *range(30, 60)])
    angles = gaze_angles(offsets, lm, neutral_rows=[0, 1, 2], times=np.arange(n) / fps)
    down = np.degrees(np.arcsin(WIDTH_IN_RADII * -0.1))
    np.testing.assert_allclose(angles[10:16], 0, atol=1e-9)
    np.testing.assert_allclose(angles[30:60, 1], down, atol=1e-9)
    np.testing.assert_allclose(angles[70:85], 0, atol=1e-9)
    # the same lowered frames at 10 fps last 0.6 s: no longer a blink
    slow = gaze_angles(offsets, lm, neutral_rows=[0, 1, 2], times=np.arange(n) / 10.0)
    np.testing.assert_allclose(slow[10:16, 1], np.degrees(np.arcsin(WIDTH_IN_RADII * -0.3)), atol=1e-9)


def test_the_heads_turn_is_taken_off_the_irises_reading():
    """The irises lie in front of the eye corners: on the rig, a head pitched with the eyes still in
    the head reads about half its pitch as a look, a yaw less (the contour's centroid is deeper).
    Taken off against the pose where the eyes look ahead, such frames read as looking ahead."""
    from au2rig.core.rig import load_rig

    parallax = head_parallax(load_rig())
    assert 0.3 < parallax[1] < 0.7 and 0.0 < parallax[0] < parallax[1], parallax
    pose = np.zeros((12, 2))  # six more frames look ahead with the head straight
    pose[:6] = [[0, 0], [2, -1], [-2, 1], [20, 0], [0, 15], [-10, -15]]
    looks = np.zeros((12, 2))  # in the head
    looks[4:6] = [[10, 0], [0, -12]]
    offsets = np.sin(np.radians(looks + parallax * pose)) / WIDTH_IN_RADII
    angles = gaze_angles(offsets, _landmarks(12), [0, 1, 2], pose, parallax)
    np.testing.assert_allclose(angles, looks, atol=1e-9)
    np.testing.assert_allclose(gaze_angles(offsets, _landmarks(12), [0, 1, 2]),  # without the pose
                               looks + parallax * pose, atol=1e-9)  # the head's turn read as a look


def test_ahead_is_where_the_open_eyes_look_most_not_where_the_resting_frames_look():
    """Two of three resting frames catch the eyes turned 20 degrees; the take looks ahead otherwise."""
    n = 20
    looks = np.zeros((n, 2))
    looks[[0, 1]] = [20.0, 0.0]  # resting frames 0-2: two with the eyes turned
    looks[10:14] = [-15.0, 10.0]  # a look aside and up
    offsets = np.sin(np.radians(looks)) / WIDTH_IN_RADII
    angles = gaze_angles(offsets, _landmarks(n), [0, 1, 2])
    np.testing.assert_allclose(angles[2:10], 0, atol=1e-9)
    np.testing.assert_allclose(angles[10:14], np.tile([-15.0, 10.0], (4, 1)), atol=1e-9)
    np.testing.assert_allclose(angles[0], [20.0, 0.0], atol=1e-9)


@pytest.fixture(scope="module")
def gaze_clip(tmp_path_factory):
    """The rig looking ahead, to its left, ahead, to its right, ahead, up, down, ahead (15 fps)."""
    from au2rig.addon.demo import render_clip
    from au2rig.core.animation.performance import Performance, scripted_performance
    from au2rig.core.rig import load_rig

    base = scripted_performance(15).params[0]
    rows, phases = [], []
    for name, yaw, pitch, n in (("ahead", 0, 0, 10), ("left", 25, 0, 6), ("ahead", 0, 0, 4), ("right", -25, 0, 6),
                                ("ahead", 0, 0, 4), ("up", 0, 20, 6), ("down", 0, -20, 6), ("ahead", 0, 0, 4)):
        for _ in range(n):
            p = base.copy()
            p[GAZE] = yaw, pitch
            rows.append(p)
            phases.append(name)
    params = np.array(rows)
    perf = Performance(np.arange(len(params)) / 15.0, params, np.array(phases), 15.0)
    video = render_clip(load_rig(), perf, tmp_path_factory.mktemp("gaze") / "gaze.mp4", progress=False)
    return video, np.array(phases)


def test_the_tracker_reads_the_rigs_turned_eyes(gaze_clip):
    """On the rig's own renders: the sign of every turn, and at least half of the 50 degrees
    between left and right (the rig's small irises read smaller than real ones)."""
    from au2rig.core.tracking.track import TrackConfig, track_video

    video, phase = gaze_clip
    tracking = track_video(video, TrackConfig(), progress=False)
    assert tracking.success.all() and tracking.meta["calibration"]["gaze"] == "irises"
    yaw, pitch = tracking.params[:, GAZE].T
    mean = {name: (yaw[phase == name].mean(), pitch[phase == name].mean()) for name in set(phase)}
    assert mean["left"][0] - mean["right"][0] > 25, mean
    assert mean["left"][0] > mean["ahead"][0] > mean["right"][0], mean
    assert mean["up"][1] > mean["ahead"][1] > mean["down"][1], mean
    plain = track_video(video, TrackConfig(lids=False), progress=False)  # no irises: the eyes look ahead
    assert plain.meta["calibration"]["gaze"] is None and np.all(plain.params[:, GAZE] == 0.0)
