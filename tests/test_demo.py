"""The demo keys the embedded performance onto the rig; Blender plays back the scripted values."""
import numpy as np
import pytest

from au2rig.addon import contact_sheet
from au2rig.addon.demo import beat_frames, key_performance, save_blend_atomically
from au2rig.core.animation.performance import scripted_performance
from au2rig.core.rig import load_rig
from au2rig.core.rig.layout import LAYOUT


@pytest.fixture(scope="module")
def keyed():
    rig = load_rig()
    perf = scripted_performance(30)
    scene, arm_obj = contact_sheet.setup_scene(rig, 64)
    key_performance(arm_obj, perf)
    return scene, arm_obj, perf


def test_playback_reproduces_the_script(keyed):
    scene, arm_obj, perf = keyed
    for frame in (1, 40, 72, 150, 215, len(perf.params)):
        scene.frame_set(frame)
        got = np.array([arm_obj[n] for n in LAYOUT.names])
        assert np.allclose(got, perf.params[frame - 1], atol=1e-5), frame


def test_beats_land_on_held_poses(keyed):
    _, _, perf = keyed
    frames = dict(beat_frames(perf))
    assert perf.params[frames["smile"] - 1, LAYOUT.index["AU12_L"]] == pytest.approx(0.9)
    assert perf.params[frames["jaw open"] - 1, LAYOUT.index["AU26"]] == pytest.approx(0.9)


def test_blend_is_written_atomically(keyed, tmp_path):
    path = tmp_path / "scene" / "demo.blend"
    save_blend_atomically(path)
    assert path.stat().st_size > 100_000
    assert [p.name for p in path.parent.iterdir()] == ["demo.blend"]


def test_a_rendered_clip_of_the_rig_is_tracked(tmp_path):
    """End to end on the embedded default's kind of input: render part of the script (neutral
    into the smile), track it with the shipped model, find the smile."""
    from au2rig.addon.demo import render_clip, track_clip
    from au2rig.core.animation.performance import Performance

    perf = scripted_performance(15)
    keep = slice(0, 24)  # 1.6 s: neutral, then the smile
    short = Performance(perf.times[keep], perf.params[keep], perf.labels[keep], perf.fps)
    clip = render_clip(load_rig(), short, tmp_path / "clip.mp4", progress=False)
    out = track_clip(clip, short, tmp_path, progress=False)
    tracking = out["tracking"]
    assert len(tracking) == 24 and tracking.success.all()
    au12 = out["report"]["per_au"]
    assert au12["AU12"]["pearson"] > 0.8
    for name in ("demo_tracking.csv", "demo_tracking.json", "demo_tracking.npz", "demo_overlay.png", "demo_curves.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_synthetic_recovery_runs_end_to_end(tmp_path):
    """Render one short held-out actor, track it, score it beside the exact landmarks."""
    from au2rig.addon.tools.recovery import format_recovery, run_recovery

    result = run_recovery(tmp_path, actors=1, cycles_actors=0, seconds=1.8, fps=10, progress=False)
    r = result["workbench"]
    assert r["frames"] == 18  # every frame of the clip had its face found
    assert np.mean(list(r["exact"]["pose_mae_deg"].values())) < 3.0
    assert "AU12" in format_recovery(result)


@pytest.mark.slow
def test_the_demo_command_as_make_demo_runs_it(tmp_path):
    """`au2rig demo` end to end: renders the clip, tracks it with the shipped model, keys the rig,
    writes demo.blend, the strip and the tracking files, and prints the scores."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "au2rig.addon", "demo", "-o", str(tmp_path), "--size", "96"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("demo.blend", "demo_strip.png", "demo_clip.mp4", "demo_tracking.csv", "demo_tracking.json",
                 "demo_tracking.npz", "demo_overlay.png", "demo_curves.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert "mean" in r.stdout + r.stderr and "pose MAE" in r.stdout + r.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
