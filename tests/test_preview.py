"""The preview: the video beside the rig keyed from its tracking, rendered in Blender."""
import cv2
import numpy as np

from au2rig.addon.preview import render_preview
from au2rig.core.tracking.track import TrackConfig, read_frames, track_video


def _frames(path):
    return [image for _, image in read_frames(path)]


def test_preview_shows_the_video_beside_the_keyed_rig(short_clip, tmp_path):
    tracking = track_video(short_clip, TrackConfig(), progress=False)
    assert tracking.success.all()
    path = render_preview(short_clip, tracking, tmp_path / "p.mp4", size=96, progress=False)
    frames = _frames(path)
    assert len(frames) == len(tracking) == 8
    video = _frames(short_clip)
    left_w = 2 * round(video[0].shape[1] * 96 / video[0].shape[0] / 2)
    h, w = frames[0].shape[:2]
    assert w == left_w + 96 and h > 96
    # the left half is the clip's frame; the right half the rig, which smiles as the clip does
    left = cv2.resize(video[-1], (left_w, 96), interpolation=cv2.INTER_AREA)
    assert np.abs(frames[-1][30:96, :left_w].astype(int) - left[30:]).mean() < 6
    rig_first, rig_last = frames[0][:96, left_w:].astype(int), frames[-1][:96, left_w:].astype(int)
    assert np.abs(rig_first - rig_last).mean() > 0.5  # the keyed face moved
    assert [p.name for p in tmp_path.iterdir()] == ["p.mp4"]  # no temporary left behind
