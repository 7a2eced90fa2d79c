"""Files from elsewhere: loading never runs code, and every damaged file fails with the project's
own error naming it (never another exception type, never a hang).

Each reader gets MUTATIONS damaged copies of a valid file: byte flips, truncations, insertions,
deletions and duplicated runs, drawn from a fixed seed.
"""
import json
import time

import cv2
import numpy as np
import pytest

from au2rig.core.animation.retarget import MapError, builtin_path, load_map
from au2rig.core.animation.tracking_io import Tracking, TrackingFileError, read_tracking
from au2rig.core.datasets import pairs
from au2rig.core.nets.checkpoints import CheckpointError, read_checkpoint
from au2rig.core.rig import RigSpecError, load_rig
from au2rig.core.rig.layout import LAYOUT
from au2rig.core.tracking.actor import ActorProfileError, make_profile, read_profile, write_profile
from au2rig.core.tracking.estimator import ModelFileError, open_session
from au2rig.core.tracking.track import write_outputs

MUTATIONS = 500
SLOW_CALL_S = 10.0


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One damaged copy of ``data``."""
    b = bytearray(data)
    kind = rng.integers(5)
    n = len(b)
    if kind == 0:  # flip 1-8 random bytes
        for i in rng.integers(0, n, rng.integers(1, 9)):
            b[i] ^= int(rng.integers(1, 256))
    elif kind == 1:  # truncate
        del b[int(rng.integers(0, n)):]
    elif kind == 2:  # insert random bytes
        at = int(rng.integers(0, n + 1))
        b[at:at] = rng.integers(0, 256, int(rng.integers(1, 64))).astype(np.uint8).tobytes()
    elif kind == 3:  # delete a run
        at = int(rng.integers(0, n))
        del b[at:at + int(rng.integers(1, 256))]
    else:  # duplicate a run
        at = int(rng.integers(0, n))
        run = b[at:at + int(rng.integers(1, 512))]
        to = int(rng.integers(0, n + 1))
        b[to:to] = run
    return bytes(b)


def check_reader(tmp_path, good: bytes, suffix: str, read, errors, seed: int, name: str = "damaged"):
    """Feed MUTATIONS damaged copies to ``read(path)``: each reads, or raises one of ``errors``
    naming the file. Returns (read, refused) counts."""
    rng = np.random.default_rng(seed)
    path = tmp_path / f"{name}{suffix}"
    counts = {"read": 0, "refused": 0}
    for k in range(MUTATIONS):
        data = mutate(good, rng)
        path.write_bytes(data)
        start = time.perf_counter()
        try:
            read(path)
            counts["read"] += 1
        except errors as e:
            assert path.name in str(e), f"mutation {k}: {type(e).__name__} does not name the file: {e}"
            counts["refused"] += 1
        except Exception as e:  # noqa: BLE001 - the point: nothing else may escape
            pytest.fail(f"mutation {k} of {name}{suffix}: {type(e).__name__} escaped: {e}")
        assert time.perf_counter() - start < SLOW_CALL_S, f"mutation {k}: the reader took too long"
    assert counts["refused"] > MUTATIONS // 4, counts  # the damage was really seen
    print(f"{name}{suffix}: {MUTATIONS} damaged copies, {counts['read']} read, {counts['refused']} refused")
    return counts


# --- the valid originals -------------------------------------------------------------------------
def _tracking(n=12) -> Tracking:
    rng = np.random.default_rng(0)
    params = np.clip(LAYOUT.neutral(n) + rng.normal(0, 0.05, (n, len(LAYOUT))), LAYOUT.lo, LAYOUT.hi)
    lms = rng.uniform(100, 300, (n, 68, 2))
    success = np.ones(n, bool)
    success[3] = False
    params[3], lms[3] = np.nan, np.nan
    return Tracking(np.arange(n), np.arange(n) / 30.0, success, np.full(n, 0.9), params, lms, 30.0, {"video": "x"})


@pytest.fixture(scope="module")
def tracking_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tracking")
    write_outputs(_tracking(), folder / "t.csv")
    return {s: (folder / f"t{s}").read_bytes() for s in (".csv", ".json", ".npz")}


@pytest.mark.parametrize("suffix,seed", [(".csv", 1), (".json", 2), (".npz", 3)])
def test_tracking_files(tracking_files, tmp_path, suffix, seed):
    check_reader(tmp_path, tracking_files[suffix], suffix, read_tracking, TrackingFileError, seed)


def test_openface_csv(tmp_path):
    from test_tracking_io import _openface_csv

    good = tmp_path / "openface.csv"
    _openface_csv(good, [(i + 1, i != 2, (0.1, -0.2, 0.05), {12: 2.5, 45: 1.0}) for i in range(6)])
    read_tracking(good)
    check_reader(tmp_path, good.read_bytes(), ".csv", read_tracking, TrackingFileError, 4, "openface")


def test_retarget_maps(tmp_path):
    for seed, name in enumerate(("bdfm", "arkit52")):
        check_reader(tmp_path, builtin_path(name).read_bytes(), ".json", load_map, MapError, 10 + seed, name)


def test_actor_profiles(tmp_path):
    profile = make_profile(np.random.default_rng(0).uniform(100, 300, (68, 2)),
                           np.zeros(len(LAYOUT.group_names("au"))), {"video": "a.mp4", "frame": 3})
    good = write_profile(profile, tmp_path / "good.json").read_bytes()
    check_reader(tmp_path, good, ".json", read_profile, ActorProfileError, 20)


def test_pairs_manifest_and_chunk_record(tmp_path, rig):
    m = pairs.Manifest.for_rig(rig, resolution=16, engine="workbench", seed=7, count=8, chunk_size=4)
    manifest = (json.dumps(m.to_dict(), indent=1) + "\n").encode()
    folder = tmp_path / "ds"
    folder.mkdir()

    def read_manifest(path):
        (folder / "manifest.json").write_bytes(path.read_bytes())
        return pairs.read_manifest(folder)

    counts = check_reader(tmp_path, manifest, ".json", read_manifest, pairs.PairsError, 30, "manifest")
    assert counts["read"] < MUTATIONS

    import io

    buf = io.BytesIO()
    np.savez(buf, indices=np.arange(4), params=LAYOUT.neutral(4), landmarks=np.zeros((4, 68, 2), np.float32))
    (folder / "chunks").mkdir()

    def read_chunk(path):
        (folder / pairs.CHUNK_NAME.format(0)).write_bytes(path.read_bytes())
        return pairs.read_chunk(folder, 0)

    check_reader(tmp_path, buf.getvalue(), ".npz", read_chunk, pairs.PairsError, 31, "000000")


def test_rig_specs(tmp_path):
    from au2rig.core.rig.evaluate import DEFAULT_RIG

    def build(path):
        from au2rig.core.rig import load as rig_load

        for key in [k for k in rig_load._CACHE if k[0] == str(path.resolve())]:  # each damaged copy afresh
            del rig_load._CACHE[key]
        return load_rig(path)

    check_reader(tmp_path, DEFAULT_RIG.read_bytes(), ".toml", build, RigSpecError, 40, "spec")


def test_checkpoints(tmp_path):
    import torch

    good = tmp_path / "good.pt"
    torch.save({"format": "au2rig-test", "version": 1, "config": {"a": 1}, "model": {"w": torch.zeros(8, 8)}}, good)
    read_checkpoint(good, "au2rig-test", "test")
    check_reader(tmp_path, good.read_bytes(), ".pt", lambda p: read_checkpoint(p, "au2rig-test", "test"),
                 CheckpointError, 50)


def test_onnx_models(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = "kind", json.dumps("landmarks")
    good = tmp_path / "good.onnx"
    onnx.save(model, str(good))
    assert open_session(good)[1] == {"kind": "landmarks"}
    check_reader(tmp_path, good.read_bytes(), ".onnx", open_session, ModelFileError, 60)


# --- code in a checkpoint never runs ----------------------------------------------------------------
class _Touch:
    """Unpickling this calls Path.touch on the marker: what a crafted checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        from pathlib import Path

        return (Path.touch, (Path(self.marker),))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    import torch

    from au2rig.core.nets.generator import load_generator
    from au2rig.core.training.restamp import restamp
    from au2rig.core.training.train_landmarks import load_checkpoint

    marker = tmp_path / "marker"
    for name, fmt in (("landmarks.pt", "au2rig-landmark-estimator"), ("g.pt", "au2rig-generator-training")):
        crafted = tmp_path / name
        torch.save({"format": fmt, "version": 1, "payload": _Touch(marker)}, crafted)
        loader = load_checkpoint if name == "landmarks.pt" else load_generator
        with pytest.raises(CheckpointError, match=f"{name}: not a readable au2rig .* holds something other than"):
            loader(crafted)
        with pytest.raises(ValueError, match=name):
            restamp(crafted, load_rig())
        assert not marker.exists(), "loading ran the file's code"


# --- a video shorter than its container says ----------------------------------------------------------
def test_a_truncated_video_warns_and_keeps_what_was_read(short_clip, tmp_path):
    from au2rig.core.tracking.track import ShortVideoWarning, TrackConfig, read_frames, track_video

    avi = tmp_path / "full.avi"
    writer = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (640, 360))
    for _, frame in read_frames(short_clip):
        writer.write(frame)
    writer.release()
    data = avi.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[:len(data) * 5 // 8])
    with pytest.warns(ShortVideoWarning, match=r"cut.avi: the file says 8 frames but only \d could be decoded"):
        tracking = track_video(cut, TrackConfig(), progress=False)
    short = tracking.meta["short_video"]
    assert short["promised"] == 8 and 0 < short["decoded"] == len(tracking) < 8
    assert tracking.success.all()
    whole = track_video(avi, TrackConfig(), progress=False)
    assert len(whole) == 8 and whole.meta["short_video"] is None
