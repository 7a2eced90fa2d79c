"""The embedded scripted performance: deterministic, in range, reaches every beat, smooth."""
import numpy as np

from au2rig.core.animation.performance import BEATS, scripted_performance
from au2rig.core.rig.layout import LAYOUT


def test_performance_is_deterministic_in_range_and_smooth():
    a, b = scripted_performance(30), scripted_performance(30)
    assert np.array_equal(a.params, b.params)
    assert a.params.shape == (len(a.times), len(LAYOUT))
    assert np.array_equal(LAYOUT.clamp(a.params), a.params)
    step = np.abs(np.diff(a.params, axis=0))
    assert step[:, LAYOUT.group_slice("au")].max() < 0.35  # no jump between frames (a blink is fast)
    assert step[:, LAYOUT.group_slice("pose")].max() < 6.0
    ident = a.params[:, LAYOUT.group_slice("identity")]
    assert np.ptp(ident, axis=0).max() == 0 and np.abs(ident - 0.5).max() > 0.1  # one non-base identity


def test_every_beat_is_reached_and_held():
    perf = scripted_performance(30)
    for label, _, values in BEATS:
        frames = [i for i, lab in enumerate(perf.labels) if lab == label]
        assert frames, label
        for name, v in values.items():
            assert np.isclose(perf.params[frames, LAYOUT.index[name]], v).any(), (label, name)


def test_random_performance_is_a_held_out_actor():
    from au2rig.core.animation.performance import random_performance
    from au2rig.core.rig.layout import OPPOSED

    a, b = random_performance(1, seconds=3.0, fps=10), random_performance(1, seconds=3.0, fps=10)
    assert np.array_equal(a.params, b.params)  # deterministic for the seed
    c = random_performance(2, seconds=3.0, fps=10)
    ident = LAYOUT.group_slice("identity")
    assert not np.allclose(a.params[0, ident], c.params[0, ident])  # another actor
    assert np.ptp(a.params[:, ident], axis=0).max() == 0  # one identity throughout
    au = LAYOUT.group_slice("au")
    assert (a.params[: int(0.6 * 10 * 0.45), au] == 0).all()  # the neutral first beat
    assert a.params[:, au].max() > 0.4
    for x, y in OPPOSED:
        assert not ((a.params[:, LAYOUT.index[x]] > 0) & (a.params[:, LAYOUT.index[y]] > 0)).any()
    assert np.all(np.abs(a.params[:, LAYOUT.group_slice("pose")]) <= [30, 20, 20])
