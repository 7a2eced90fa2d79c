"""The parameter layout: groups, ranges, neutral values, FACS mapping, input checks."""
import numpy as np
import pytest

from au2rig.core.rig.layout import EARLIER_LAYOUTS, FACS_SCALE, LAYOUT

DISFA = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)
BP4D = (6, 10, 12, 14, 17)
OPENFACE = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)


def test_groups_in_order_and_sized():
    groups = [c.group for c in LAYOUT.channels]
    order = [g for i, g in enumerate(groups) if i == 0 or groups[i - 1] != g]
    assert order == ["pose", "au", "identity", "brow_style", "gaze"]
    assert LAYOUT.group_names("pose") == ("pose_yaw", "pose_pitch", "pose_roll")
    assert LAYOUT.group_names("gaze") == ("gaze_yaw", "gaze_pitch")
    assert 24 <= len(LAYOUT.group_names("au")) <= 32
    assert len(LAYOUT.group_names("identity")) >= 60
    assert len(LAYOUT.group_names("brow_style")) >= 6


def test_earlier_layouts_are_this_layouts_first_channels():
    """Version 1.1 appended the gaze: files and models of 1.0 hold the first 99 channels."""
    assert LAYOUT.version == "1.1" and EARLIER_LAYOUTS == {"1.0": 99}
    assert LAYOUT.names[99:] == LAYOUT.group_names("gaze")


def test_au_channels_cover_the_evaluation_sets_and_splits():
    codes = set(LAYOUT.eval_codes())
    assert set(DISFA) | set(BP4D) | set(OPENFACE) | {18, 22, 24, 43, 30} <= codes
    sides = {c.name: c.side for c in LAYOUT.au_channels}
    for name in ("AU01", "AU02", "AU12", "AU43", "AU30"):
        assert sides[f"{name}_L"] == "L" and sides[f"{name}_R"] == "R"
    for c in LAYOUT.au_channels:
        assert c.name.startswith(f"AU{c.facs:02d}") and c.description


def test_neutral_is_the_base_face():
    n = LAYOUT.neutral()
    assert np.all(n[LAYOUT.group_slice("pose")] == 0)
    assert np.all(n[LAYOUT.group_slice("au")] == 0)
    assert np.all(n[LAYOUT.group_slice("identity")] == 0.5)
    brow = n[LAYOUT.group_slice("brow_style")]
    assert brow[0] == 1 and brow.sum() == 1
    assert LAYOUT.neutral(3).shape == (3, len(LAYOUT))


def test_eval_matrix_averages_sides_and_reports_facs_scale():
    p = LAYOUT.neutral()
    p[LAYOUT.index["AU12_L"]] = 1.0
    p[LAYOUT.index["AU43_L"]] = 0.4
    p[LAYOUT.index["AU43_R"]] = 0.6
    facs = LAYOUT.to_facs(p)
    assert facs[12] == pytest.approx(0.5 * FACS_SCALE)
    assert facs[45] == pytest.approx(0.5 * FACS_SCALE) and facs[43] == pytest.approx(0.5 * FACS_SCALE)
    assert facs[26] == 0
    m = LAYOUT.eval_matrix(DISFA)
    assert m.shape == (12, len(LAYOUT.au_channels)) and np.allclose(m.sum(1), 1)


def test_wrong_length_names_the_expected_length():
    with pytest.raises(ValueError, match=rf"expected length {len(LAYOUT)}.*got length 5"):
        LAYOUT.check(np.zeros(5))


def test_non_finite_value_names_index_and_channel():
    p = LAYOUT.neutral()
    i = LAYOUT.index["AU26"]
    p[i] = np.nan
    with pytest.raises(ValueError, match=rf"index {i} \(AU26\) is not finite"):
        LAYOUT.check(p)


def test_out_of_range_is_clamped_or_refused_in_strict_mode():
    p = LAYOUT.neutral()
    i = LAYOUT.index["pose_yaw"]
    p[i] = 80.0
    p[LAYOUT.index["AU12_L"]] = -0.3
    assert LAYOUT.check(p)[i] == 80.0  # check alone does not change values
    c = LAYOUT.clamp(p)
    assert c[i] == 45.0 and c[LAYOUT.index["AU12_L"]] == 0.0
    with pytest.raises(ValueError, match=r"index 0 \(pose_yaw\) = 80 outside \[-45, 45\]"):
        LAYOUT.check(p, strict=True)


def test_describe_round_trips_names():
    d = LAYOUT.describe()
    assert d["version"] == LAYOUT.version
    assert [c["name"] for c in d["channels"]] == list(LAYOUT.names)
