"""The demo keys the embedded performance onto the rig; Blender plays back the scripted values."""
import numpy as np
import pytest

from addon import contact_sheet
from addon.demo import beat_frames, key_performance, save_blend_atomically
from core.layout import LAYOUT
from core.performance import scripted_performance
from core.rig import load_rig


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
