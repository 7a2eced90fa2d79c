"""Animate from video (real bpy, headless): the operator tracks a clip (a rendered smile of the
rig, so no media is needed) and keys the BDFM; bad videos, videos without a face and cancelled
runs key nothing."""
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
pytest.importorskip("onnxruntime")
pytest.importorskip("mediapipe")
cv2 = pytest.importorskip("cv2")

from au2rig import addon  # noqa: E402 (after pytest.importorskip)
from au2rig.addon import video  # noqa: E402 (after pytest.importorskip)
from au2rig.addon.animate import KeyOptions  # noqa: E402 (after pytest.importorskip)
from au2rig.addon.bake import action_fcurves  # noqa: E402 (after pytest.importorskip)
from au2rig.core.animation.tracking_io import read_tracking  # noqa: E402 (after pytest.importorskip)
from au2rig.core.rig.layout import LAYOUT  # noqa: E402 (after pytest.importorskip)
from au2rig.core.tracking.track import TrackConfig  # noqa: E402 (after pytest.importorskip)

MOTION = [n for n in LAYOUT.names if LAYOUT.channels[LAYOUT.index[n]].group in ("pose", "au", "gaze")]


@pytest.fixture
def arm(bdfm_arm):
    """The BDFM with the add-on registered."""
    addon.register()
    yield bdfm_arm
    addon.unregister()


@pytest.fixture(scope="module")
def clip_tracking(rig, smile_clip):
    """The smile clip tracked once, every frame (the reference for the operator's keys)."""
    from au2rig.core.tracking.track import track_video

    return track_video(smile_clip, TrackConfig(), progress=False)


def keys(fc):
    co = np.empty(2 * len(fc.keyframe_points), np.float32)
    fc.keyframe_points.foreach_get("co", co)
    return co[0::2], co[1::2]


def grey_video(path: Path, frames: int = 8) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened()
    for _ in range(frames):
        writer.write(np.full((48, 64, 3), 128, np.uint8))
    writer.release()
    return path


def fails(path, expect, **options) -> str:
    """The operator refuses (headless, an ERROR report raises RuntimeError) and keys nothing."""
    before = set(bpy.data.actions)
    with pytest.raises(RuntimeError) as info:
        bpy.ops.au2rig.animate_from_video(filepath=str(path), **options)
    assert set(bpy.data.actions) == before  # nothing keyed, no empty Action left
    message = str(info.value)
    assert expect in message
    return message


def test_a_smile_video_animates_the_rig(arm, clip_tracking, tmp_path, smile_clip):
    clip = smile_clip
    out = tmp_path / "smile.csv"
    result = bpy.ops.au2rig.animate_from_video(filepath=str(clip), start_frame=10, frame_step=2,
                                               smoothing=0.3, save_tracking=True, tracking_path=str(out))
    assert result == {'FINISHED'}
    action = arm.animation_data.action
    assert action is not None and action.name == "BDFM_tracking"
    fcs = {fc.data_path[2:-2]: fc for fc in action_fcurves(action)}
    assert sorted(fcs) == sorted(MOTION)  # pose, AU and gaze channel properties
    n = (len(clip_tracking) + 1) // 2  # every second frame
    x, _ = keys(fcs["pose_yaw"])
    assert x.tolist() == list(range(10, 10 + n))  # first video frame on frame 10, one key per tracked frame
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (10, 9 + n)
    assert np.isclose(scene.render.fps / scene.render.fps_base, clip_tracking.fps / 2)
    _, au12 = keys(fcs["AU12_L"])
    third = max(1, n // 3)
    assert au12[-third:].mean() > au12[:third].mean() + 0.1  # the smile at the end
    saved = read_tracking(out)  # the tracking saved as asked, keyed as saved
    assert len(saved) == n and saved.frames.tolist() == list(range(0, 2 * n, 2))
    assert np.allclose(au12, saved.params[:, LAYOUT.index["AU12_L"]], atol=1e-5)
    assert out.with_suffix(".json").is_file()


def test_missing_video_is_named_and_keys_nothing(arm, tmp_path):
    fails(tmp_path / "nowhere.mp4", "nowhere.mp4")


def test_corrupt_video_is_named_and_keys_nothing(arm, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    fails(bad, "broken.mp4")


def test_video_without_a_face_keys_nothing(arm, tmp_path):
    grey = grey_video(tmp_path / "grey.avi")
    message = fails(grey, "no face found in")
    assert "grey.avi" in message


def test_bad_options_are_refused_before_tracking(arm, tmp_path):
    grey = grey_video(tmp_path / "grey.avi")
    fails(grey, "smiling", neutral="smiling")
    fails(grey, "AU99", gains="AU99=2")
    fails(grey, "Nobody", target="Nobody")


def test_parse_neutral():
    assert video.parse_neutral("auto") == "auto" and video.parse_neutral(" ") == "auto"
    assert video.parse_neutral("None") is None and video.parse_neutral("12") == 12
    with pytest.raises(ValueError, match="frame number"):
        video.parse_neutral("-3")


def test_the_modal_worker_in_a_thread_then_finish_keys_the_rig(arm, clip_tracking, smile_clip):
    track = video.load_tracker()
    job = video.TrackJob(track, smile_clip, TrackConfig(step=3))
    job.start()  # the modal operator's thread
    job.thread.join(60)
    assert not job.running and job.error is None
    assert job.done == job.total == (len(clip_tracking) + 2) // 3
    obj, action, report, tracking = video.finish(bpy.context, job, KeyOptions(start_frame=1, frame_step=3))
    assert obj == arm and report is None and arm.animation_data.action == action
    x, _ = keys({fc.data_path[2:-2]: fc for fc in action_fcurves(action)}["AU12_L"])
    assert x.tolist() == list(range(1, 1 + job.total))


def test_a_cancelled_job_keys_nothing(arm, smile_clip):
    track = video.load_tracker()
    job = video.TrackJob(track, smile_clip, TrackConfig())
    job.stop.set()  # ESC before the first frame is through
    job.run()
    assert job.done < 5
    before = set(bpy.data.actions)
    with pytest.raises(video.TrackCancelled, match="no Action"):
        video.finish(bpy.context, job, KeyOptions())
    assert set(bpy.data.actions) == before
    assert arm.animation_data is None or arm.animation_data.action is None


def test_missing_tracker_dependencies_are_reported(arm, monkeypatch):
    def lacking():
        raise ImportError("No module named 'onnxruntime'")

    monkeypatch.setattr(video, "tracker", lacking)
    with pytest.raises(ValueError, match="tracking needs onnxruntime, opencv and mediapipe"):
        video.load_tracker()
