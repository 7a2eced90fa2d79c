"""Live Link Face CSVs: written through the ARKit map, read back through it in the other
direction (the same scores after the map), timecodes, and files that name their fault."""
import numpy as np
import pytest

from au2rig.core.animation import livelink
from au2rig.core.animation.retarget import evaluate_map, load_builtin
from au2rig.core.animation.tracking_io import Tracking, TrackingFileError, read_tracking, write_livelink
from au2rig.core.rig.layout import LAYOUT

ARKIT = load_builtin("arkit52")


def _tracking(n=40, fps=30.0, seed=0):
    rng = np.random.default_rng(seed)
    p = LAYOUT.neutral(n)
    au = LAYOUT.group_slice("au")
    p[:, au] = rng.uniform(0, 1, (n, au.stop - au.start)) * (rng.uniform(0, 1, (n, au.stop - au.start)) < 0.4)
    p[:, [LAYOUT.index["AU30_L"], LAYOUT.index["AU30_R"]]] *= [[1, 0]] * n  # one jaw direction at a time
    p[:, LAYOUT.group_slice("pose")] = rng.uniform(-20, 20, (n, 3))
    p[:, LAYOUT.group_slice("gaze")] = rng.uniform(-20, 20, (n, 2))
    ok = np.ones(n, bool)
    ok[5] = False
    p[5] = np.nan
    return Tracking(np.arange(n), np.arange(n) / fps, ok, ok * 0.9, p, np.full((n, 68, 2), np.nan), fps, {})


def test_the_header_is_the_apps():
    assert livelink.HEADER[:4] == ("Timecode", "BlendShapeCount", "EyeBlinkLeft", "EyeLookDownLeft")
    assert len(livelink.SHAPES) == 52 and livelink.SHAPES[-1] == "TongueOut"
    assert livelink.HEADER[-9:] == ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                                    "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
    assert {livelink.arkit_name(e.key) for e in ARKIT.entries} <= set(livelink.SHAPES)


def test_timecodes():
    assert livelink.timecode(0.0, 30) == "00:00:00:00.000"
    assert livelink.timecode(3725 + 7.5 / 30, 30) == "01:02:05:07.500"
    assert livelink.parse_timecode("01:02:05:07.500") == (3725, 7.5)
    assert livelink.parse_timecode("00:00:01:59") == (1, 59.0)
    assert livelink.frame_rate(np.array([0, 12.5, 29.0])) == 30 and livelink.frame_rate(np.array([59.9])) == 60
    with pytest.raises(ValueError, match="not a timecode"):
        livelink.parse_timecode("1:2:3")


def test_a_written_capture_reads_back_to_the_same_scores_after_the_map(tmp_path):
    t = _tracking()
    path = write_livelink(t, tmp_path / "capture.csv")
    lines = path.read_text().splitlines()
    assert lines[0].split(",") == list(livelink.HEADER)
    assert len(lines) == 1 + 39  # the frame without a face is left out
    assert lines[1].split(",")[:2] == ["00:00:00:00.000", "61"] and lines[7].startswith("00:00:00:07.000,61,")
    back = read_tracking(path)
    assert back.meta["format"] == "livelink-face-csv" and back.fps == 30.0
    keep = t.success
    np.testing.assert_allclose(back.timestamps, t.timestamps[keep], atol=1e-9)
    want, got = evaluate_map(ARKIT, t.params[keep]), evaluate_map(ARKIT, back.params)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], atol=1e-6, err_msg=key)
    for group in ("pose", "gaze"):
        s = LAYOUT.group_slice(group)
        np.testing.assert_allclose(back.params[:, s], t.params[keep][:, s], atol=1e-9)
    # channels the map reads one to one come back as they were
    for name in ("AU12_L", "AU43_R", "AU26", "AU05", "AU04"):
        np.testing.assert_allclose(back.params[:, LAYOUT.index[name]], t.params[keep, LAYOUT.index[name]], atol=1e-6)


def _hand_made(tmp_path, rows):
    """A capture in the app's layout, written by hand: {column: value} per row, 0 elsewhere."""
    lines = [",".join(livelink.HEADER)]
    for i, values in enumerate(rows):
        cells = [f"00:00:00:{i:02d}.000", "61"] + [str(values.get(name, 0.0)) for name in livelink.HEADER[2:]]
        lines.append(",".join(cells))
    path = tmp_path / "phone.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_hand_made_capture_becomes_the_layouts_channels(tmp_path):
    # an open mouth as ARKit scores it: the jaw open, the lips apart (lower lip down), not closed
    path = _hand_made(tmp_path, [{"JawOpen": 0.6, "MouthLowerDownLeft": 0.3, "MouthLowerDownRight": 0.3,
                                  "MouthSmileLeft": 0.8, "EyeBlinkRight": 1.0, "HeadYaw": 0.2,
                                  "LeftEyeYaw": 0.1, "RightEyeYaw": 0.3},
                                 {"BrowInnerUp": 0.5, "EyeLookOutLeft": 0.5, "EyeLookInRight": 0.5}])
    t = read_tracking(path)
    p = {name: t.params[:, LAYOUT.index[name]] for name in LAYOUT.names}
    assert p["AU26"][0] == pytest.approx(0.6) and p["AU25"][0] == pytest.approx(0.6)
    assert p["AU12_L"][0] == pytest.approx(0.8) and p["AU12_R"][0] == pytest.approx(0.0)
    assert p["AU43_R"][0] == pytest.approx(1.0) and p["AU43_L"][0] == pytest.approx(0.0)
    assert p["pose_yaw"][0] == pytest.approx(np.degrees(0.2)) and p["gaze_yaw"][0] == pytest.approx(np.degrees(0.2))
    assert p["AU01_L"][1] == pytest.approx(0.5) and p["AU01_R"][1] == pytest.approx(0.5)
    assert p["gaze_yaw"][1] == pytest.approx(0.0)  # the file's eye angles, not the shapes, carry the gaze
    assert np.isnan(t.landmarks).all() and t.success.all()


def test_a_bad_capture_names_the_row_and_column(tmp_path):
    path = _hand_made(tmp_path, [{}, {}])
    text = path.read_text().splitlines()
    text[2] = text[2].replace("00:00:00:01.000", "soon", 1)
    (tmp_path / "bad_time.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(TrackingFileError, match="bad_time.csv: row 3, column 'Timecode'"):
        read_tracking(tmp_path / "bad_time.csv")
    header = path.read_text().splitlines()
    header[0] = header[0].replace(",JawOpen,", ",Jaw,")
    (tmp_path / "no_jaw.csv").write_text("\n".join(header) + "\n")
    with pytest.raises(TrackingFileError, match="no_jaw.csv: row 1 \\(header\\): missing column 'JawOpen'"):
        read_tracking(tmp_path / "no_jaw.csv")


def test_the_command_writes_a_capture_of_any_tracking(tmp_path):
    import subprocess
    import sys

    from au2rig.core.animation.tracking_io import write_csv

    write_csv(_tracking(), tmp_path / "t.csv")
    r = subprocess.run([sys.executable, "-m", "au2rig.core", "livelink", str(tmp_path / "t.csv"), "-o",
                        str(tmp_path / "capture.csv")], capture_output=True, text=True)
    assert r.returncode == 0 and "39 frames with a face" in r.stdout, r.stderr
    assert read_tracking(tmp_path / "capture.csv").meta["format"] == "livelink-face-csv"
