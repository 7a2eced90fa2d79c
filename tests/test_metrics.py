"""ICC(3,1), MAE, Pearson r and the AU report."""
from __future__ import annotations

import numpy as np
import pytest

from au2rig.core.evaluation.metrics import au_report, change_match, format_report, icc31, mae, pearson
from au2rig.core.rig.layout import FACS_SCALE, LAYOUT


def test_icc31_hand_computed_5x2():
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    b = np.array([2.0, 2.0, 4.0, 5.0, 5.0])
    # n = 5 targets, k = 2 raters. Row means 1.5, 2, 3.5, 4.5, 5; grand mean 33 / 10 = 3.3;
    # column means 3.0 and 3.6.
    # SS_total = sum x^2 - 10 * 3.3^2 = 129 - 108.9 = 20.1
    # SS_rows  = 2 * (1.8^2 + 1.3^2 + 0.2^2 + 1.2^2 + 1.7^2) = 2 * 9.3 = 18.6
    # SS_cols  = 5 * (0.3^2 + 0.3^2) = 0.9
    # SS_error = 20.1 - 18.6 - 0.9 = 0.6
    # BMS = 18.6 / (n - 1) = 4.65 ; EMS = 0.6 / ((n - 1)(k - 1)) = 0.15
    # ICC(3,1) = (4.65 - 0.15) / (4.65 + 0.15) = 4.5 / 4.8 = 0.9375
    assert icc31(a, b) == pytest.approx(0.9375, abs=1e-12)
    assert isinstance(icc31(a, b), float)


def test_icc31_properties():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 5, 200)
    assert icc31(truth, truth) == pytest.approx(1.0)
    noisy = truth + rng.normal(0, 0.5, 200)
    base = icc31(truth, noisy)
    assert base < 1.0
    # consistency: a constant offset between the raters changes nothing
    assert icc31(truth, noisy + 1.7) == pytest.approx(base, abs=1e-12)
    # more noise, lower agreement
    assert icc31(truth, truth + rng.normal(0, 2.0, 200)) < base
    # symmetric in the raters
    assert icc31(noisy, truth) == pytest.approx(base, abs=1e-12)


def test_icc31_matches_closed_form_for_two_raters():
    # An independent formulation: for k = 2, BMS = var(a + b) / 2 and EMS = var(a - b) / 2,
    # so ICC(3,1) = 2 cov(a, b) / (var a + var b).
    rng = np.random.default_rng(1)
    a = rng.normal(size=(50, 4))
    b = 0.6 * a + rng.normal(size=(50, 4)) + 3.0
    got = icc31(a, b)
    assert got.shape == (4,)
    for j in range(4):
        c = np.cov(a[:, j], b[:, j])
        assert got[j] == pytest.approx(2 * c[0, 1] / (c[0, 0] + c[1, 1]), abs=1e-12)


def test_icc31_matches_pingouin():
    pg = pytest.importorskip("pingouin", reason="pingouin is not installed (dev extra)")
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(2)
    for n in (5, 30, 200):
        a = rng.uniform(0, 5, n)
        b = np.clip(a + rng.normal(0, 0.8, n) + 0.3, 0, 5)
        df = pd.DataFrame({"target": np.tile(np.arange(n), 2),
                           "rater": np.repeat(["a", "b"], n),
                           "score": np.concatenate([a, b])})
        table = pg.intraclass_corr(data=df, targets="target", raters="rater", ratings="score")
        ref = float(table.set_index("Type").loc["ICC3", "ICC"])
        assert icc31(a, b) == pytest.approx(ref, abs=1e-10)


def test_icc31_zero_variance_and_small_n():
    assert np.isnan(icc31(np.zeros(10), np.zeros(10)))
    assert np.isnan(icc31(np.full(10, 2.0), np.full(10, 3.0)))
    assert icc31(np.zeros(10), np.arange(10.0)) == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(icc31([1.0], [1.0]))
    out = icc31(np.stack([np.zeros(5), np.arange(5.0)], 1), np.stack([np.zeros(5), np.arange(5.0)], 1))
    assert np.isnan(out[0]) and out[1] == pytest.approx(1.0)


def test_icc31_refuses_bad_input():
    with pytest.raises(ValueError, match="shapes differ"):
        icc31(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match=r"b\[row 2, column 0\] is not finite"):
        icc31(np.zeros(4), np.array([0, 1, np.nan, 2.0]))


def test_mae_and_pearson():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([1.5, 1.5, 3.5, 4.5])
    assert mae(a, b) == pytest.approx(0.5)
    assert pearson(a, 2 * a + 1) == pytest.approx(1.0)
    assert pearson(a, -a) == pytest.approx(-1.0)
    assert pearson(a, b) == pytest.approx(np.corrcoef(a, b)[0, 1])
    assert np.isnan(pearson(a, np.ones(4)))
    two = pearson(np.stack([a, a], 1), np.stack([b, -b], 1))
    assert two.shape == (2,) and two[0] == pytest.approx(-two[1])


def _params(rng, n):
    p = LAYOUT.neutral(n)
    p[:, LAYOUT.group_slice("pose")] = rng.uniform(-20, 20, (n, 3))
    p[:, LAYOUT.group_slice("au")] = rng.uniform(0, 0.8, (n, len(LAYOUT.au_channels)))
    return p


def test_au_report_perfect_and_offset():
    rng = np.random.default_rng(3)
    true = _params(rng, 100)
    rep = au_report(true, true)
    assert rep["codes"] == list(LAYOUT.eval_codes())
    assert set(rep["per_au"]) == {f"AU{c:02d}" for c in LAYOUT.eval_codes()}
    for row in rep["per_au"].values():
        assert row["icc"] == pytest.approx(1.0) and row["mae"] == 0 and row["pearson"] == pytest.approx(1.0)
    assert rep["mean"]["icc"] == pytest.approx(1.0)
    assert rep["pose_mae_deg"] == {"yaw": 0.0, "pitch": 0.0, "roll": 0.0}

    pred = true.copy()
    pred[:, LAYOUT.group_slice("au")] += 0.1  # 0.1 on 0..1 is 0.5 on the FACS scale
    pred[:, LAYOUT.group_slice("pose")] += [1.0, -2.0, 3.0]
    rep = au_report(pred, true)
    for row in rep["per_au"].values():
        assert row["mae"] == pytest.approx(0.1 * FACS_SCALE)
        assert row["icc"] == pytest.approx(1.0)  # consistency ignores the offset
    assert rep["mean"]["mae"] == pytest.approx(0.5)
    assert rep["pose_mae_deg"]["yaw"] == pytest.approx(1.0)
    assert rep["pose_mae_deg"]["pitch"] == pytest.approx(2.0)
    assert rep["pose_mae_deg"]["roll"] == pytest.approx(3.0)


def test_au_report_maps_split_channels_and_au45():
    n = 20
    true = LAYOUT.neutral(n)
    pred = LAYOUT.neutral(n)
    i = LAYOUT.index
    ramp = np.linspace(0, 1, n)
    true[:, i["AU12_L"]] = ramp
    true[:, i["AU12_R"]] = ramp
    pred[:, i["AU12_L"]] = ramp  # right side missing: reports half the intensity
    true[:, i["AU43_L"]] = true[:, i["AU43_R"]] = ramp
    pred[:, i["AU43_L"]] = pred[:, i["AU43_R"]] = ramp
    rep = au_report(pred, true, codes=(12, 43, 45, 4))
    assert rep["codes"] == [12, 43, 45, 4]
    assert rep["per_au"]["AU12"]["mae"] == pytest.approx(np.mean(ramp * 0.5 * FACS_SCALE))
    assert rep["per_au"]["AU45"]["icc"] == pytest.approx(1.0)
    assert rep["per_au"]["AU43"]["mae"] == 0
    # AU04 is 0 in both: ICC and r undefined, left out of the means
    assert np.isnan(rep["per_au"]["AU04"]["icc"]) and np.isnan(rep["per_au"]["AU04"]["pearson"])
    assert rep["mean"]["n_icc"] == 3 and rep["mean"]["n_mae"] == 4
    icc = [rep["per_au"][k]["icc"] for k in ("AU12", "AU43", "AU45")]
    assert rep["mean"]["icc"] == pytest.approx(np.mean(icc))


def test_au_report_drops_frames_without_face_and_checks_shapes():
    rng = np.random.default_rng(4)
    true = _params(rng, 30)
    pred = true.copy()
    pred[5] = np.nan
    true[9, LAYOUT.group_slice("pose")] = np.nan
    rep = au_report(pred, true)
    assert rep["n_frames"] == 30 and rep["n_au_frames"] == 29 and rep["n_pose_frames"] == 28
    assert rep["mean"]["mae"] == 0
    with pytest.raises(ValueError, match=r"pred_params must be \(N, 101\)"):
        au_report(pred[:, :98], true)
    with pytest.raises(ValueError, match="29 frames, true_params 30"):
        au_report(pred[:29], true)


def test_format_report_is_a_fixed_width_table():
    rng = np.random.default_rng(5)
    true = _params(rng, 40)
    pred = true + rng.normal(0, 0.02, true.shape)
    text = format_report(au_report(pred, true, codes=(1, 12, 25)))
    lines = text.splitlines()
    assert lines[0].split() == ["AU", "ICC", "MAE", "r"]
    table = [ln for ln in lines if ln.startswith(("AU01", "AU12", "AU25", "mean"))]
    assert len(table) == 4 and len({len(ln) for ln in table + [lines[0]]}) == 1
    assert "pose MAE (deg): yaw" in text and "frames: 40" in text
    nan_text = format_report(au_report(LAYOUT.neutral(5), LAYOUT.neutral(5), codes=(1,)))
    assert "nan" in nan_text


def test_change_match_counts_the_items_whose_change_points_their_own_way():
    rng = np.random.default_rng(0)
    rendered = rng.normal(size=(5, 4, 4, 3))
    same = change_match(2.0 * rendered + 0.01 * rng.normal(size=rendered.shape), rendered)  # scale is ignored
    assert same["recognised"] == 5 and same["count"] == 5 and same["best"] == [0, 1, 2, 3, 4]
    assert same["cosine"] == pytest.approx(1.0, abs=1e-3)
    order = [1, 2, 3, 4, 0]
    swapped = change_match(rendered[order], rendered)
    assert swapped["recognised"] == 0 and swapped["best"] == order
    with pytest.raises(ValueError, match="shape"):
        change_match(rendered[:, :2], rendered)
    # something else drawn, a trace of the right change in it: closest to its own, but pointing nowhere
    other = rng.normal(size=rendered.shape) + 0.03 * rendered
    blurred = change_match(other, rendered)
    assert blurred["recognised"] == 0 and max(blurred["cosine"], 0) < 0.1
