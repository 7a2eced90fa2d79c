"""Tracking result files: CSV (ours and OpenFace's), JSON and NPZ."""
from __future__ import annotations

import csv
import json
import math
import os

import numpy as np
import pytest

from au2rig.core.animation import tracking_io
from au2rig.core.animation.tracking_io import (
    Tracking,
    csv_columns,
    pose_from_openface,
    pose_to_openface,
    read_tracking,
    write_csv,
    write_json,
    write_npz,
)
from au2rig.core.rig.layout import FACS_SCALE, LAYOUT

I = LAYOUT.index
WRITERS = {".csv": write_csv, ".json": write_json, ".npz": write_npz}


def make_tracking(n=12, seed=0, missing=(3, 7)) -> Tracking:
    rng = np.random.default_rng(seed)
    params = rng.uniform(LAYOUT.lo, LAYOUT.hi, (n, len(LAYOUT)))
    brow = LAYOUT.group_slice("brow_style")
    params[:, brow] = np.eye(6)[rng.integers(0, 6, n)]
    success = np.ones(n, bool)
    success[list(missing)] = False
    params[~success] = np.nan
    lms = rng.uniform(0, 640, (n, 68, 2))
    lms[~success] = np.nan
    conf = np.where(success, rng.uniform(0.5, 1, n), 0.0)
    meta = {"video": "clip.mp4", "size": [640, 480], "backend": "synthetic",
            "smoothing": 0.5, "gains": {"AU12": 1.2}, "au2rig": "0.1.0"}
    return Tracking(np.arange(n), np.arange(n) / 30.0, success, conf, params, lms, 30.0, meta)


def _same(a: Tracking, b: Tracking, exact=True):
    assert np.array_equal(a.frames, b.frames)
    assert np.array_equal(a.success, b.success)
    for name in ("timestamps", "confidence", "params", "landmarks"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape, name
        assert np.array_equal(np.isnan(x), np.isnan(y)), name
        assert np.allclose(x, y, equal_nan=True, atol=0 if exact else 1e-9), name


@pytest.mark.parametrize("ext", [".csv", ".json", ".npz"])
def test_round_trip(tmp_path, ext):
    t = make_tracking()
    path = tmp_path / f"track{ext}"
    WRITERS[ext](t, path)
    back = read_tracking(path)
    _same(t, back)
    assert np.all(np.isnan(back.params[[3, 7]])) and not back.success[[3, 7]].any()
    assert back.fps == pytest.approx(30.0)
    if ext == ".csv":
        assert back.meta == {"source": str(path), "format": "au2rig-csv"}
    else:
        assert back.meta == t.meta
    assert sorted(os.listdir(tmp_path)) == [f"track{ext}"]


def test_csv_columns_and_values(tmp_path):
    t = make_tracking(missing=(3,))
    t.params[0, I["pose_yaw"]] = 10.0
    t.params[0, I["pose_pitch"]] = 5.0
    t.params[0, I["pose_roll"]] = -7.0
    path = write_csv(t, tmp_path / "t.csv")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    assert header == list(csv_columns())
    assert header[:9] == ["frame", "timestamp", "confidence", "success", "gaze_angle_x", "gaze_angle_y",
                          "pose_Rx", "pose_Ry", "pose_Rz"]
    au_cols = [h for h in header if h.endswith("_r") and h.startswith("AU")]
    assert au_cols == [f"AU{c:02d}_r" for c in sorted(LAYOUT.eval_codes())]
    assert au_cols[:3] == ["AU01_r", "AU02_r", "AU04_r"] and au_cols[-1] == "AU45_r"
    x0 = header.index("x_0")
    assert header[x0:x0 + 136] == [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]
    assert header[-len(LAYOUT):] == list(LAYOUT.names)
    col = {h: i for i, h in enumerate(header)}

    row = rows[1]
    # our degrees -> OpenFace radians: Rx = -pitch, Ry = -yaw, Rz = +roll
    assert float(row[col["pose_Rx"]]) == pytest.approx(-math.radians(5.0))
    assert float(row[col["pose_Ry"]]) == pytest.approx(-math.radians(10.0))
    assert float(row[col["pose_Rz"]]) == pytest.approx(math.radians(-7.0))
    facs = LAYOUT.to_facs(t.params[0])
    for code, v in facs.items():
        assert float(row[col[f"AU{code:02d}_r"]]) == pytest.approx(float(v))
    p12 = (t.params[0, I["AU12_L"]] + t.params[0, I["AU12_R"]]) / 2 * FACS_SCALE
    assert float(row[col["AU12_r"]]) == pytest.approx(p12)
    assert float(row[col["x_5"]]) == t.landmarks[0, 5, 0]
    assert float(row[col["y_5"]]) == t.landmarks[0, 5, 1]
    assert float(row[col["pose_yaw"]]) == 10.0

    noface = rows[4]  # frame 3: no face
    assert noface[:4] == ["3", repr(3 / 30.0), "0.0", "0"]
    assert all(cell == "" for cell in noface[4:])


def test_pose_conversion_round_trip():
    deg = np.array([[10.0, -20.0, 5.0], [-45.0, 30.0, -30.0]])
    rad = pose_to_openface(deg)
    assert np.allclose(rad[0], np.radians([20.0, -10.0, 5.0]))
    assert np.allclose(pose_from_openface(rad), deg)


def _openface_csv(path, rows):
    """A CSV laid out like OpenFace 2.x FeatureExtraction output (', ' separators)."""
    aus_r = [1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45]
    aus_c = aus_r[:-1] + [28, 45]
    header = (["frame", "face_id", "timestamp", "confidence", "success"]
              + [f"gaze_{e}_{a}" for e in (0, 1) for a in "xyz"] + ["gaze_angle_x", "gaze_angle_y"]
              + ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"]
              + [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]
              + [f"AU{c:02d}_r" for c in aus_r] + [f"AU{c:02d}_c" for c in aus_c])
    lines = [", ".join(header)]
    for frame, ok, rxyz, au_vals in rows:
        vals = {"frame": frame, "face_id": 0, "timestamp": (frame - 1) / 25.0,
                "confidence": 0.98 if ok else 0.0, "success": int(ok),
                "pose_Tx": 10.0, "pose_Ty": 5.0, "pose_Tz": 400.0}
        vals.update(zip(["pose_Rx", "pose_Ry", "pose_Rz"], rxyz))
        vals.update({f"x_{i}": 100.0 + i for i in range(68)})
        vals.update({f"y_{i}": 200.0 + i for i in range(68)})
        vals.update({f"AU{c:02d}_r": au_vals.get(c, 0.0) for c in aus_r})
        cells = [vals.get(h, 0) if ok or h in ("frame", "face_id", "timestamp", "confidence", "success")
                 else 0 for h in header]
        lines.append(", ".join(str(c) for c in cells))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_reads_an_openface_csv(tmp_path):
    path = _openface_csv(tmp_path / "openface.csv", [
        (1, True, (0.1, -0.2, 0.05), {12: 2.5, 45: 5.0, 26: 1.0, 4: 6.0}),
        (2, False, (0, 0, 0), {}),
        (3, True, (0.0, 0.0, 0.0), {}),
    ])
    t = read_tracking(path)
    assert t.meta["format"] == "openface-csv"
    assert list(t.frames) == [1, 2, 3] and list(t.success) == [True, False, True]
    assert t.fps == pytest.approx(25.0)
    p = t.params[0]
    assert p[I["AU12_L"]] == p[I["AU12_R"]] == pytest.approx(0.5)
    assert p[I["AU43_L"]] == p[I["AU43_R"]] == pytest.approx(1.0)  # from AU45_r
    assert p[I["AU26"]] == pytest.approx(0.2)
    assert p[I["AU04"]] == 1.0  # 6 / 5 clipped to the range
    for name in ("AU18", "AU22", "AU24", "AU30_L", "AU30_R"):
        assert p[I[name]] == 0.0  # OpenFace does not estimate these
    assert np.array_equal(p[LAYOUT.group_slice("identity")], np.full(64, 0.5))
    assert np.array_equal(p[LAYOUT.group_slice("brow_style")], LAYOUT.neutral()[LAYOUT.group_slice("brow_style")])
    assert p[I["pose_pitch"]] == pytest.approx(-math.degrees(0.1))
    assert p[I["pose_yaw"]] == pytest.approx(math.degrees(0.2))
    assert p[I["pose_roll"]] == pytest.approx(math.degrees(0.05))
    assert t.landmarks[0, 3].tolist() == [103.0, 203.0]
    assert np.all(np.isnan(t.params[1])) and np.all(np.isnan(t.landmarks[1]))
    assert t.confidence[1] == 0
    assert np.all(t.params[2, LAYOUT.group_slice("au")] == 0)
    # and what we read we can write in our own format
    write_npz(t, tmp_path / "again.npz")
    _same(t, read_tracking(tmp_path / "again.npz"))


# --- errors -------------------------------------------------------------------------------
def _csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _write_rows(path, rows):
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def test_csv_missing_column_is_named(tmp_path):
    path = write_csv(make_tracking(), tmp_path / "t.csv")
    rows = _csv_rows(path)
    j = rows[0].index("AU12_R")
    _write_rows(path, [r[:j] + r[j + 1:] for r in rows])
    with pytest.raises(ValueError, match=r"t\.csv: row 1 \(header\): missing column 'AU12_R'"):
        read_tracking(path)
    _write_rows(path, [r[1:] for r in rows])
    with pytest.raises(ValueError, match="missing column 'frame'"):
        read_tracking(path)


def test_csv_bad_cell_names_file_row_frame_and_column(tmp_path):
    path = write_csv(make_tracking(), tmp_path / "t.csv")
    rows = _csv_rows(path)
    j = rows[0].index("id_nose_length")
    rows[6][j] = "abc"  # file row 7 holds frame 5
    _write_rows(path, rows)
    with pytest.raises(ValueError, match=r"t\.csv: row 7 \(frame 5\), column 'id_nose_length': "
                                         r"'abc' is not a number"):
        read_tracking(path)
    rows[6][j] = ""
    _write_rows(path, rows)
    with pytest.raises(ValueError, match=r"row 7 \(frame 5\), column 'id_nose_length': empty cell"):
        read_tracking(path)
    rows[6][j] = "0.5"
    rows[6][rows[0].index("success")] = "yes"
    _write_rows(path, rows)
    with pytest.raises(ValueError, match=r"row 7 \(frame 5\), column 'success': 'yes' is not a number"):
        read_tracking(path)
    rows[6][rows[0].index("success")] = "1"
    rows[6].append("extra")
    _write_rows(path, rows)
    width = len(csv_columns())
    with pytest.raises(ValueError, match=fr"row 7: {width + 1} cells, header has {width}"):
        read_tracking(path)


def test_json_errors_name_file_frame_and_field(tmp_path):
    path = write_json(make_tracking(), tmp_path / "t.json")
    doc = json.loads(path.read_text())
    doc["frames"][5]["params"] = doc["frames"][5]["params"][:-1]
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"t\.json: frame 5, field 'params': shape \(100,\), expected \(101,\)"):
        read_tracking(path)
    doc = json.loads(write_json(make_tracking(), path).read_text())
    doc["frames"][2]["params"][4] = "x"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"frame 2, field 'params': not a list of numbers"):
        read_tracking(path)
    doc["frames"][2]["params"][4] = None
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"frame 2, field 'params', channel 'AU01_R': missing"):
        read_tracking(path)
    doc = json.loads(write_json(make_tracking(), path).read_text())
    doc["layout"]["version"] = "0.9"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"t\.json: layout version '0\.9'"):
        read_tracking(path)
    doc["layout"]["version"] = LAYOUT.version
    doc["layout"]["channels"][12] = "AU12_X"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"layout channel 12 is 'AU12_X', expected 'AU10'"):
        read_tracking(path)
    doc["layout"]["channels"] = list(LAYOUT.names)
    del doc["frames"][1]["timestamp"]
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"frames\[1\] \(frame 1\): missing field 'timestamp'"):
        read_tracking(path)


def test_npz_errors_name_file_and_array(tmp_path):
    t = make_tracking()
    path = write_npz(t, tmp_path / "t.npz")
    good = dict(np.load(path))
    bad = dict(good, params=good["params"][:, :98])
    np.savez(path, **bad)
    with pytest.raises(ValueError, match=r"t\.npz: params must have shape \(12, 101\).*got \(12, 98\)"):
        read_tracking(path)
    bad = {k: v for k, v in good.items() if k != "landmarks"}
    np.savez(path, **bad)
    with pytest.raises(ValueError, match=r"t\.npz: missing array 'landmarks'"):
        read_tracking(path)
    bad = dict(good, layout_channels=np.array(json.dumps(list(LAYOUT.names[:-1]))))
    np.savez(path, **bad)
    with pytest.raises(ValueError, match=r"t\.npz: layout has 100 channels, expected 101"):
        read_tracking(path)
    p = good["params"].copy()
    p[4, I["AU26"]] = np.nan
    np.savez(path, **dict(good, params=p))
    with pytest.raises(ValueError, match=r"t\.npz: frame 4: AU26 is not finite"):
        read_tracking(path)
    with pytest.raises(ValueError, match=r"unknown tracking file type '\.txt'"):
        read_tracking(tmp_path / "t.txt")


def test_writers_refuse_bad_tracking(tmp_path):
    t = make_tracking()
    t.params[2, I["AU26"]] = np.nan
    with pytest.raises(ValueError, match=r"frame 2: AU26 is not finite in a row with a face"):
        write_csv(t, tmp_path / "t.csv")
    t = make_tracking()
    t.params = t.params[:, :98]
    with pytest.raises(ValueError, match=r"params must have shape \(12, 101\)"):
        write_json(t, tmp_path / "t.json")
    assert os.listdir(tmp_path) == []


# --- atomicity ----------------------------------------------------------------------------
@pytest.mark.parametrize("ext", [".json", ".npz"])
def test_unserialisable_meta_leaves_nothing(tmp_path, ext):
    t = make_tracking()
    t.meta["callback"] = object()
    with pytest.raises(ValueError, match="meta is not JSON-serialisable"):
        WRITERS[ext](t, tmp_path / f"t{ext}")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("ext", [".csv", ".json", ".npz"])
def test_failed_write_leaves_no_file_and_no_temp_file(tmp_path, ext, monkeypatch):
    path = tmp_path / f"t{ext}"

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        WRITERS[ext](make_tracking(), path)
    assert os.listdir(tmp_path) == []
    # an existing file is left as it was
    path.write_text("old")
    with pytest.raises(OSError):
        WRITERS[ext](make_tracking(), path)
    assert os.listdir(tmp_path) == [path.name] and path.read_text() == "old"


def test_failure_midway_through_the_csv_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = tracking_io._fmt

    def flaky(v):
        calls["n"] += 1
        if calls["n"] > 2000:  # a few rows in
            raise RuntimeError("interrupted")
        return real(v)

    monkeypatch.setattr(tracking_io, "_fmt", flaky)
    with pytest.raises(RuntimeError, match="interrupted"):
        write_csv(make_tracking(), tmp_path / "t.csv")
    assert os.listdir(tmp_path) == []
