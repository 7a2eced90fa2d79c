"""Actor profiles: the neutral of one take carried to a take that never rests."""
import json

import numpy as np
import pytest
from conftest import render_performance_part

from au2rig.core.rig.layout import LAYOUT
from au2rig.core.tracking.actor import ActorProfileError, profile_from_tracking, read_profile, write_profile
from au2rig.core.tracking.track import TrackConfig, track_video


@pytest.fixture(scope="module")
def takes(tmp_path_factory):
    """Two takes of the same rendered actor: one rests then starts to smile, one only smiles."""
    folder = tmp_path_factory.mktemp("takes")
    return (render_performance_part(slice(0, 12), folder / "rests.mp4"),
            render_performance_part(slice(17, 25), folder / "smiles.mp4"))


def _smile(tracking):
    return tracking.params[:, [LAYOUT.index["AU12_L"], LAYOUT.index["AU12_R"]]].mean()


def test_a_profile_keeps_the_smile_of_a_take_that_never_rests(takes, tmp_path):
    (rests, _), (smiles, perf) = takes
    first = track_video(rests, TrackConfig(), progress=False)
    profile = profile_from_tracking(first)
    assert profile.source["frame"] in range(0, 9)  # a neutral frame of the first take
    path = write_profile(profile, tmp_path / "actor.json")
    alone = track_video(smiles, TrackConfig(), progress=False)
    with_profile = track_video(smiles, TrackConfig(actor=str(path)), progress=False)
    truth = perf.params[:, LAYOUT.index["AU12_L"]].mean()  # 0.9 throughout
    # alone, the smiling frames are taken for the actor's neutral and calibrated away
    assert _smile(alone) < 0.3 < truth
    assert _smile(with_profile) > _smile(alone) + 0.3
    assert with_profile.meta["calibration"]["actor"]["profile"] == str(path)


def test_the_command_line_saves_and_uses_a_profile(takes, tmp_path):
    import subprocess
    import sys

    (rests, _), (smiles, _) = takes
    actor = tmp_path / "a.json"
    for args in (["track", str(rests), "-o", str(tmp_path / "r.csv"), "--save-actor", str(actor)],
                 ["track", str(smiles), "-o", str(tmp_path / "s.csv"), "--actor", str(actor)]):
        r = subprocess.run([sys.executable, "-m", "au2rig.core", *args, "--quiet"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    assert json.loads(actor.read_text())["format"] == "au2rig actor profile"


def test_a_bad_profile_is_refused_naming_file_and_field(tmp_path, takes):
    (rests, _), _ = takes
    good = profile_from_tracking(track_video(rests, TrackConfig(max_frames=3), progress=False))
    path = write_profile(good, tmp_path / "p.json")
    back = read_profile(path)
    assert np.allclose(back.reference, good.reference, atol=1e-6) and np.allclose(back.baseline, good.baseline)
    data = json.loads(path.read_text())
    assert len(data["motion_range"]) == len(data["au_channels"])  # the take's fitted range of motion
    assert np.allclose(back.motion_range, good.motion_range, atol=1e-6)
    cases = {"reference_landmarks": [[0, 0]] * 67, "baseline": [2.0] * len(data["baseline"]),
             "au_channels": data["au_channels"][:-1], "motion_range": [1.0, -2.0]}
    for field, value in cases.items():
        bad = tmp_path / f"bad_{field}.json"
        bad.write_text(json.dumps(dict(data, **{field: value})))
        with pytest.raises(ActorProfileError, match=f"bad_{field}.json: {field}"):
            read_profile(bad)
    older = tmp_path / "v1.json"  # a profile of the first version (no range of motion) still reads
    older.write_text(json.dumps({k: v for k, v in dict(data, version=1).items() if k != "motion_range"}))
    assert read_profile(older).motion_range is None
    (tmp_path / "junk.json").write_bytes(b"\x9b\xff not json")
    with pytest.raises(ActorProfileError, match="junk.json: not a readable actor profile"):
        track_video(rests, TrackConfig(actor=str(tmp_path / "junk.json")), progress=False)


def test_the_neutral_shape_is_the_median_of_the_resting_frames(rig):
    """One frame with its eyes closed among resting frames does not close the neutral's eyes; the
    camera's scale and position do not matter."""
    from au2rig.core.alignment.align import align
    from au2rig.core.tracking.actor import neutral_shape

    frame = rig.landmarks_2d(LAYOUT.neutral()).reshape(68, 2)
    blink = frame.copy()
    blink[[37, 38, 43, 44]] = blink[[41, 40, 47, 46]]  # the upper lids down onto the lower ones
    frames = np.stack([frame, 2 * frame + 30, frame - 5, blink])  # scaled and moved copies
    shape = neutral_shape(frames)
    np.testing.assert_allclose(shape, align(frame)[0], atol=1e-6)
    assert np.allclose(neutral_shape(frame), align(frame)[0])
    with pytest.raises(ValueError, match="68 finite landmarks"):
        neutral_shape(np.full((2, 68, 2), np.nan))


def test_an_actors_own_proportions_do_not_read_as_expressions(rig):
    """A face the rig's identities cannot make (wide mouth, full lower lip, long jaw) reads as
    neutral at rest, and a jaw opening on it reads as the jaw opening: the AUs come from the
    displacement from the actor's neutral, carried onto the rig's face."""
    from au2rig.core.tracking.actor import neutral_shape
    from au2rig.core.tracking.estimator import OnnxEstimator
    from au2rig.core.tracking.track import estimate

    def landmarks(**aus):
        p = LAYOUT.neutral(1)
        for name, value in aus.items():
            p[0, LAYOUT.index[name]] = value
        return rig.landmarks_2d(p)[0]

    rest = landmarks()
    actor = rest.copy()
    iod = np.linalg.norm(rest[36:42].mean(0) - rest[42:48].mean(0))
    mouth = actor[48:68].mean(0)
    actor[48:68, 0] = mouth[0] + 1.3 * (actor[48:68, 0] - mouth[0])  # a wide mouth
    actor[[55, 56, 57, 58, 59, 65, 66, 67], 1] += 0.06 * iod          # a full lower lip
    actor[4:13, 1] += 0.12 * iod                                       # a long jaw
    frames = np.stack([actor, actor + landmarks(AU26=0.6) - rest])
    est = estimate(OnnxEstimator(), frames, np.ones(2, bool), neutral_shape(actor))
    au = LAYOUT.group_slice("au")
    names = LAYOUT.names[au]
    assert np.abs(est[0, au]).max() < 0.1, dict(zip(names, est[0, au].round(2)))
    assert abs(est[1, LAYOUT.index["AU26"]] - 0.6) < 0.15, dict(zip(names, est[1, au].round(2)))
    others = np.delete(est[1, au], names.index("AU26"))
    assert others.max() < 0.2, dict(zip(names, est[1, au].round(2)))


def test_the_brows_rest_where_the_brows_rest(rig):
    """A talker raises the brows while the mouth and eyes rest: the frames most relaxed overall have
    the brows up. The brows' neutral comes from the frames where the brows rest, so the raised
    brows read as raised and the resting ones as zero (with one neutral for the whole face, the
    raise was the neutral and read as nothing)."""
    from au2rig.core.tracking.actor import neutral_shape
    from au2rig.core.tracking.estimator import OnnxEstimator
    from au2rig.core.tracking.track import estimate, take_neutral

    def landmarks(**aus):
        p = LAYOUT.neutral(1)
        for name, value in aus.items():
            p[0, LAYOUT.index[name]] = value
        return rig.landmarks_2d(p)[0]

    raised = landmarks(AU01_L=0.5, AU01_R=0.5, AU02_L=0.5, AU02_R=0.5)
    frames = np.stack([raised] * 20 + [landmarks(AU12_L=0.5, AU12_R=0.5)] * 5 + [landmarks(AU26=0.5)] * 5
                      + [landmarks(AU12_L=0.3, AU12_R=0.3, AU26=0.3)] * 5 + [landmarks(AU10=0.5)] * 5)
    valid = np.ones(len(frames), bool)
    est = OnnxEstimator()
    first = estimate(est, frames, valid)
    rest, brows, shape = take_neutral(est, first, valid, frames, "auto", np.arange(len(frames)))
    assert set(rest) <= set(range(20))  # the mouth and eyes rest while the brows are up
    assert set(brows) <= set(range(20, 40))  # the brows rest while the mouth moves
    brow_raise = [LAYOUT.index[n] for n in ("AU01_L", "AU01_R", "AU02_L", "AU02_R")]
    again = estimate(est, frames, valid, shape)
    assert again[:20, brow_raise].mean() > 0.3, again[:20, brow_raise].mean()
    assert again[20:, brow_raise].max() < 0.1
    assert estimate(est, frames, valid, neutral_shape(frames[rest]))[:20, brow_raise].max() < 0.1  # one neutral


def test_an_actors_low_brows_at_rest_are_not_a_frown(rig):
    """The other way round: brows that sit low while the face rests (as in a single frame of an
    average face, a frown) are the actor's own; frames whose brows sit higher, found resting from
    single frames, do not make the low brows read as a frown."""
    from au2rig.core.tracking.estimator import OnnxEstimator
    from au2rig.core.tracking.track import estimate, take_neutral

    def landmarks(**aus):
        p = LAYOUT.neutral(1)
        for name, value in aus.items():
            p[0, LAYOUT.index[name]] = value
        return rig.landmarks_2d(p)[0]

    low = landmarks(AU04=0.5)
    frames = np.stack([low] * 20 + [landmarks(AU12_L=0.5, AU12_R=0.5)] * 10 + [landmarks(AU26=0.5)] * 10)
    valid = np.ones(len(frames), bool)
    est = OnnxEstimator()
    rest, brows, shape = take_neutral(est, estimate(est, frames, valid), valid, frames, "auto", np.arange(len(frames)))
    assert set(rest) <= set(range(20))
    again = estimate(est, frames, valid, shape)
    assert again[:20, LAYOUT.index["AU04"]].max() < 0.1, again[:20, LAYOUT.index["AU04"]].max()
    # where the brows' own resting frames are found among those whose brows sit higher (from one
    # frame the low brows may read as a frown, or as brows merely low), the low ones are kept
    from au2rig.core.tracking.actor import neutral_shape

    higher = estimate(est, frames, valid, neutral_shape(frames[rest], frames[20:40]))
    assert higher[:20, LAYOUT.index["AU04"]].max() < 0.1, higher[:20, LAYOUT.index["AU04"]].max()
