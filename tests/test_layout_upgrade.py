"""Layout 1.1 appended the gaze to 1.0: models, tracking files, maps and actor profiles of 1.0
carry over, the new channels at neutral, and nothing they computed changes."""
import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest
import torch

from au2rig.core.animation.retarget import MapError, builtin_path, load_map
from au2rig.core.animation.tracking_io import GAZE_COLUMNS, Tracking, read_tracking
from au2rig.core.nets.generator import GeneratorConfig, build_generator, load_generator, save_generator
from au2rig.core.nets.landmark_net import NetworkConfig, build_network
from au2rig.core.rig import load_rig
from au2rig.core.rig.identity import RigMismatchError
from au2rig.core.rig.layout import LAYOUT, ParameterLayout
from au2rig.core.tracking.track import write_outputs
from au2rig.core.training.restamp import restamp
from au2rig.core.training.train_landmarks import TrainConfig, export_onnx, load_checkpoint, predict_torch, save_weights

EARLIER = 99


class Layout10(ParameterLayout):
    version = "1.0"


OLD = Layout10(LAYOUT.channels[:EARLIER])
GAZE = LAYOUT.group_slice("gaze")


@pytest.fixture(scope="module")
def old_rig():
    return load_rig(layout=OLD)


@pytest.fixture(scope="module")
def old_estimator(old_rig, tmp_path_factory):
    """A landmark estimator of layout 1.0 (random weights): its .pt and ONNX files."""
    torch.manual_seed(0)
    cfg = TrainConfig(network=NetworkConfig(hidden=32, layers=1))
    net = build_network(cfg.network, OLD, old_rig).eval()
    folder = tmp_path_factory.mktemp("old_estimator")
    pt = save_weights(net, folder / "old.pt", cfg, OLD, old_rig)
    onnx_path = export_onnx(net, folder / "old.onnx", OLD, old_rig)
    return net, pt, onnx_path


def _onnx(path, lm, ref):
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = dict(zip([i.name for i in s.get_inputs()], (lm, ref, np.ones((len(lm), 1), np.float32))))
    return s.run(None, feeds)[0]


def test_an_estimator_of_layout_1_0_is_widened_and_computes_the_same(old_estimator, old_rig, rig, tmp_path):
    net, pt, onnx_path = old_estimator
    p = LAYOUT.neutral(6)
    p[:, LAYOUT.group_slice("au")] = np.random.default_rng(1).uniform(0, 0.7, (6, 26))
    lm = rig.landmarks_2d(p).astype(np.float32)
    ref = np.repeat(rig.landmarks_2d(LAYOUT.neutral(1)).astype(np.float32), 6, 0)
    before_onnx, before_pt = _onnx(onnx_path, lm, ref), predict_torch(net, lm, ref)
    for path in (onnx_path, pt):
        copy = tmp_path / path.name
        shutil.copy(path, copy)
        assert "widened from layout 1.0 to 1.1" in restamp(copy, rig)
        assert restamp(copy, rig) == "already current"
    after_onnx = _onnx(tmp_path / onnx_path.name, lm, ref)
    widened, ckpt = load_checkpoint(tmp_path / pt.name)
    after_pt = predict_torch(widened, lm, ref)
    assert after_onnx.shape == after_pt.shape == (6, len(LAYOUT))
    np.testing.assert_array_equal(after_onnx[:, :EARLIER], before_onnx)
    np.testing.assert_allclose(after_pt[:, :EARLIER], before_pt, atol=1e-6)
    assert (after_onnx[:, GAZE] == 0).all() and (after_pt[:, GAZE] == 0).all()
    assert ckpt["layout_version"] == "1.1" and ckpt["rig_identity"] == rig.identity


def test_a_model_of_layout_1_0_for_another_rig_is_refused(old_estimator, rig, tmp_path):
    _, pt, _ = old_estimator
    ckpt = torch.load(pt, weights_only=True)
    ckpt["rig_fingerprint"] = [v + 1e-3 if i > 1 else v for i, v in enumerate(ckpt["rig_fingerprint"])]
    torch.save(ckpt, tmp_path / "other.pt")
    with pytest.raises(RigMismatchError, match="other.pt: made for layout '1.0'; with gaze_yaw, gaze_pitch at "
                                               "neutral the rig 'bdfm' does not compute"):
        restamp(tmp_path / "other.pt", rig)
    ckpt["channels"] = ckpt["channels"][:50]
    torch.save(ckpt, tmp_path / "short.pt")
    with pytest.raises(RigMismatchError, match="short.pt: .*must be retrained"):
        restamp(tmp_path / "short.pt", rig)


def test_a_generator_of_layout_1_0_ignores_the_gaze_after_widening(old_rig, rig, tmp_path):
    torch.manual_seed(0)
    cfg = GeneratorConfig(resolution=64, base_width=1, max_width=4, maps_min_size=8, maps_max_size=16)
    old = build_generator(cfg, OLD, old_rig).eval()
    path = save_generator(old, tmp_path / "g.pt", old_rig, OLD)
    assert "widened" in restamp(path, rig)
    g, _ = load_generator(path)
    p = LAYOUT.neutral(3)
    p[:, 3:29] = np.random.default_rng(2).uniform(0, 0.8, (3, 26))
    looking = p.copy()
    looking[:, GAZE] = [[20.0, -10.0]] * 3
    with torch.no_grad():
        before = old(torch.tensor(p[:, :EARLIER], dtype=torch.float32))
        after = g(torch.tensor(p, dtype=torch.float32))
        turned = g(torch.tensor(looking, dtype=torch.float32), g.landmarks(torch.tensor(p, dtype=torch.float32)))
    torch.testing.assert_close(after, before, atol=1e-6, rtol=0)
    torch.testing.assert_close(turned, before, atol=1e-6, rtol=0)


def _tracking(n=5):
    rng = np.random.default_rng(3)
    p = LAYOUT.neutral(n)
    p[:, GAZE] = rng.uniform(-20, 20, (n, 2))
    p[:, LAYOUT.group_slice("au")] = rng.uniform(0, 1, (n, 26))
    lm = np.repeat(load_rig().landmarks_2d(LAYOUT.neutral(1)), n, 0)
    ok = np.ones(n, bool)
    ok[2] = False
    p[2], lm[2] = np.nan, np.nan
    return Tracking(np.arange(n), np.arange(n) / 25.0, ok, ok * 0.9, p, lm, 25.0, {})


def test_tracking_files_of_layout_1_0_read_with_the_gaze_at_neutral(tmp_path):
    t = _tracking()
    csv_path, json_path, npz_path = write_outputs(t, tmp_path / "t.csv")
    expected = t.params.copy()
    expected[t.success, GAZE.start:] = 0.0
    # the same files as layout 1.0 wrote them: no gaze columns, 99 channels
    rows = [line.split(",") for line in csv_path.read_text().splitlines()]
    keep = [i for i, h in enumerate(rows[0]) if h not in GAZE_COLUMNS + LAYOUT.group_names("gaze")]
    (tmp_path / "old.csv").write_text("\n".join(",".join(r[i] for i in keep) for r in rows) + "\n")
    doc = json.loads(json_path.read_text())
    doc["layout"] = {"version": "1.0", "channels": list(LAYOUT.names[:EARLIER])}
    for frame in doc["frames"]:
        frame["params"] = frame["params"][:EARLIER] if frame["params"] else frame["params"]
    (tmp_path / "old.json").write_text(json.dumps(doc))
    z = dict(np.load(npz_path))
    z.update(params=z["params"][:, :EARLIER], layout_version=np.array("1.0"),
             layout_channels=np.array(json.dumps(list(LAYOUT.names[:EARLIER]))))
    np.savez(tmp_path / "old.npz", **z)
    for name in ("old.csv", "old.json", "old.npz"):
        back = read_tracking(tmp_path / name)
        np.testing.assert_allclose(back.params, expected, atol=1e-12, err_msg=name)
    doc["layout"]["version"] = "0.9"
    (tmp_path / "older.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="older.json: layout version '0.9', this au2rig reads '1.1' \\(and 1.0\\)"):
        read_tracking(tmp_path / "older.json")


def test_the_csv_carries_the_gaze_in_openface_columns(tmp_path):
    t = _tracking()
    path = write_outputs(t, tmp_path / "t.csv", twins=())[0]
    header = path.read_text().splitlines()[0].split(",")
    assert header[4:6] == ["gaze_angle_x", "gaze_angle_y"] and header[6] == "pose_Rx"
    first = dict(zip(header, path.read_text().splitlines()[1].split(",")))
    yaw, pitch = t.params[0, GAZE]
    assert float(first["gaze_angle_x"]) == pytest.approx(np.radians(yaw))
    assert float(first["gaze_angle_y"]) == pytest.approx(-np.radians(pitch))
    # OpenFace's own CSV: its gaze angles become the gaze channels
    openface = tmp_path / "openface.csv"
    openface.write_text("frame, face_id, timestamp, confidence, success, gaze_angle_x, gaze_angle_y, pose_Rx, "
                        "pose_Ry, pose_Rz, AU12_r\n1, 0, 0.0, 0.98, 1, 0.2, -0.1, 0, 0, 0, 2.5\n")
    back = read_tracking(openface)
    assert back.params[0, GAZE] == pytest.approx([np.degrees(0.2), np.degrees(0.1)])


def test_a_map_of_layout_1_0_still_loads(tmp_path):
    data = json.loads(builtin_path("arkit52").read_text())
    data["layout"] = "1.0"
    data["entries"] = [e for e in data["entries"] if not any(c.startswith("gaze") for c in e["terms"])]
    (tmp_path / "old.json").write_text(json.dumps(data))
    assert load_map(tmp_path / "old.json").name == data["name"]
    data["layout"] = "0.9"
    (tmp_path / "older.json").write_text(json.dumps(data))
    with pytest.raises(MapError, match="made for layout '0.9'"):
        load_map(tmp_path / "older.json")
