"""Dataset protocols: DISFA / BP4D loaders on tiny fabricated datasets in the official layouts,
subject-exclusive folds, evaluation against core.evaluation.metrics, and errors that name the file."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from au2rig.core.evaluation.metrics import au_report, icc31, mae, pearson
from au2rig.core.evaluation.protocols import (
    BP4D_AUS,
    BP4D_DEVELOPMENT,
    BP4D_TRAIN,
    DISFA_AUS,
    DatasetError,
    Sequence,
    _frames_video,
    disfa_folds,
    evaluate_protocol,
    fold_of,
    format_protocol_table,
    load_bp4d,
    load_disfa,
    main_protocol,
    read_fold_file,
    read_label_file,
)
from au2rig.core.rig.layout import LAYOUT


# --- fabricating datasets ---------------------------------------------------------------------
def write_video(path, n: int, size=(32, 24)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20.0, size)
    for i in range(n):
        w.write(np.full((size[1], size[0], 3), 10 * i % 255, np.uint8))
    w.release()


def make_disfa(root, subjects=("SN001", "SN002", "SN005", "SN010", "SN011", "SN016"), n=12, seed=0,
               videos=True) -> dict:
    rng = np.random.default_rng(seed)
    truth = {}
    for s in subjects:
        labels = rng.integers(0, 6, size=(n, len(DISFA_AUS)))
        truth[s] = labels
        folder = root / "ActionUnit_Labels" / s
        folder.mkdir(parents=True, exist_ok=True)
        for j, code in enumerate(DISFA_AUS):
            rows = "".join(f"{f},{labels[f - 1, j]}\n" for f in range(1, n + 1))
            (folder / f"{s}_au{code}.txt").write_text(rows)
        if videos:
            write_video(root / "Videos_LeftCamera" / f"LeftVideo{s}_comp.avi", n)
    return truth


def make_bp4d(root, seqs=(("F001", "T1"), ("F002", "T1"), ("F002", "T2"), ("M002", "T3")), n=10, first=100,
              seed=1, unknown_every=4) -> dict:
    """Labels under ROOT/AUCoding/AU_INT/AUnn/; frames as image folders, except F002/T2 as a video."""
    rng = np.random.default_rng(seed)
    truth = {}
    for subject, task in seqs:
        frames = np.arange(first, first + n)
        labels = rng.integers(0, 6, size=(n, len(BP4D_AUS))).astype(float)
        for j, code in enumerate(BP4D_AUS):
            raw = labels[:, j].copy()
            raw[(np.arange(n) + j) % unknown_every == 0] = 9  # not coded
            labels[:, j] = np.where(raw == 9, np.nan, raw)
            folder = root / "AUCoding" / "AU_INT" / f"AU{code:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            rows = "".join(f"{f},{int(v)}\n" for f, v in zip(frames, raw))
            (folder / f"{subject}_{task}_AU{code:02d}.csv").write_text(rows)
        truth[(subject, task)] = (frames, labels)
        if (subject, task) == ("F002", "T2"):
            write_video(root / subject / f"{task}.avi", n)
        else:
            img_dir = root / subject / task
            img_dir.mkdir(parents=True, exist_ok=True)
            for f in range(first - 2, first + n + 2):  # a few unlabelled images around the coded span
                cv2.imwrite(str(img_dir / f"{f:04d}.jpg"), np.full((24, 32, 3), f % 255, np.uint8))
    return truth


def params_from_labels(labels, codes, noise=0.0, seed=0) -> np.ndarray:
    """Parameter vectors whose AU channels report the labels (FACS/5), plus noise; NaN labels -> 0."""
    rng = np.random.default_rng(seed)
    p = LAYOUT.neutral(len(labels))
    au0 = LAYOUT.group_slice("au").start
    for j, code in enumerate(codes):
        value = np.nan_to_num(labels[:, j]) / 5.0 + noise * rng.standard_normal(len(labels))
        for k, ch in enumerate(LAYOUT.au_channels):
            if code in ch.eval_as:
                p[:, au0 + k] = value
    return p


def label_predictor(noise=0.0):
    def predict(seq: Sequence):
        return seq.frames.copy(), params_from_labels(seq.labels, seq.codes, noise, seed=hash(seq.name) % 1000)
    return predict


# --- DISFA loader -----------------------------------------------------------------------------
def test_disfa_loader_reads_official_layout(tmp_path):
    truth = make_disfa(tmp_path, n=12)
    seqs = load_disfa(tmp_path)
    assert [s.subject for s in seqs] == sorted(truth)
    for s in seqs:
        assert s.codes == DISFA_AUS and s.fps == 20.0 and s.first_frame == 1 and s.is_video
        assert s.labels.shape == (12, 12)
        np.testing.assert_array_equal(s.frames, np.arange(1, 13))
        np.testing.assert_array_equal(s.labels, truth[s.subject])
        assert s.source == tmp_path / "Videos_LeftCamera" / f"LeftVideo{s.subject}_comp.avi"
        assert s.label_files[2].name == f"{s.subject}_au4.txt"
    assert [s.subject for s in load_disfa(tmp_path, subjects=["SN005", "SN001"])] == ["SN001", "SN005"]
    with pytest.raises(DatasetError, match=r"RightVideoSN001_comp\.avi"):
        load_disfa(tmp_path, camera="right")
    assert len(load_disfa(tmp_path, camera="right", require_video=False)) == 6


@pytest.mark.parametrize("case, pattern", [
    ("intensity", r"SN002_au4\.txt line 3: intensity 7 outside 0\.\.5"),
    ("missing", r"missing label file .*SN002_au9\.txt for AU 9 of SN002"),
    ("count", r"frame counts differ between .*SN002_au1\.txt \(12 frames\) and .*SN002_au2\.txt \(11 frames\)"),
    ("frame", r"SN002_au5\.txt line 2: frame 'x' is not an integer >= 1"),
    ("fields", r"SN002_au6\.txt line 4: expected 'frame,intensity'"),
    ("order", r"SN002_au12\.txt line 5: frame 3 after frame 4"),
    ("number", r"SN002_au15\.txt line 1: intensity 'high' is not a number"),
    ("empty", r"SN002_au17\.txt: no 'frame,intensity' rows"),
    ("shifted", r"frame numbers differ between .*SN002_au1\.txt and .*SN002_au20\.txt: row 1"),
    ("video", r"missing video .*LeftVideoSN002_comp\.avi for SN002"),
])
def test_disfa_malformed_files_are_named(tmp_path, case, pattern):
    make_disfa(tmp_path, n=12)
    d = tmp_path / "ActionUnit_Labels" / "SN002"

    def edit(code, fn):
        p = d / f"SN002_au{code}.txt"
        lines = p.read_text().splitlines()
        p.write_text("\n".join(fn(lines)) + "\n")

    if case == "intensity":
        edit(4, lambda ls: ls[:2] + ["3,7"] + ls[3:])
    elif case == "missing":
        (d / "SN002_au9.txt").unlink()
    elif case == "count":
        edit(2, lambda ls: ls[:-1])
    elif case == "frame":
        edit(5, lambda ls: ls[:1] + ["x,1"] + ls[2:])
    elif case == "fields":
        edit(6, lambda ls: ls[:3] + ["4,1,2"] + ls[4:])
    elif case == "order":
        edit(12, lambda ls: ls[:4] + ["3,1"] + ls[5:])
    elif case == "number":
        edit(15, lambda ls: ["1,high"] + ls[1:])
    elif case == "empty":
        (d / "SN002_au17.txt").write_text("\n\n")
    elif case == "shifted":
        edit(20, lambda ls: [f"{int(x.split(',')[0]) + 1},{x.split(',')[1]}" for x in ls])
    elif case == "video":
        (tmp_path / "Videos_LeftCamera" / "LeftVideoSN002_comp.avi").unlink()
    with pytest.raises(DatasetError, match=pattern):
        load_disfa(tmp_path)


def test_disfa_missing_root_and_subject(tmp_path):
    with pytest.raises(DatasetError, match="ActionUnit_Labels"):
        load_disfa(tmp_path)
    make_disfa(tmp_path, subjects=("SN001", "SN002", "SN003"), n=4)
    with pytest.raises(DatasetError, match="SN009"):
        load_disfa(tmp_path, subjects=["SN001", "SN009"])


# --- folds ------------------------------------------------------------------------------------
def test_disfa_folds_are_subject_exclusive_and_cover_everyone():
    ids = [f"SN{i:03d}" for i in range(1, 33) if i not in (14, 15, 19, 20, 22)]
    assert len(ids) == 27
    folds = disfa_folds(reversed(ids))
    assert [len(f) for f in folds] == [9, 9, 9]
    assert sum(folds, ()) == tuple(sorted(ids))  # contiguous groups of the sorted ids, all covered
    assert all(not set(a) & set(b) for i, a in enumerate(folds) for b in folds[i + 1:])
    assert fold_of(ids[0], folds) == 0 and fold_of(ids[-1], folds) == 2
    assert [len(f) for f in disfa_folds([f"S{i}" for i in range(7)])] == [2, 3, 2]
    assert disfa_folds(ids) == disfa_folds(sorted(ids))  # deterministic


def test_fold_file(tmp_path):
    p = tmp_path / "folds.txt"
    p.write_text("# my folds\nSN001 SN002\n\nSN005, SN010  # second\nSN011 SN016\n")
    assert read_fold_file(p) == [("SN001", "SN002"), ("SN005", "SN010"), ("SN011", "SN016")]
    p.write_text("SN001 SN002\nSN003 SN001\n")
    with pytest.raises(DatasetError, match=r"folds\.txt line 2: subject SN001 is already in fold 1"):
        read_fold_file(p)
    with pytest.raises(DatasetError, match="missing fold file"):
        read_fold_file(tmp_path / "nope.txt")


def test_folds_must_be_exclusive_and_complete(tmp_path):
    make_disfa(tmp_path, subjects=("SN001", "SN002", "SN003"), n=5, videos=False)
    seqs = load_disfa(tmp_path, require_video=False)
    with pytest.raises(ValueError, match="SN002 is in two folds"):
        evaluate_protocol(seqs, label_predictor(), [("SN001", "SN002"), ("SN002", "SN003")])
    with pytest.raises(ValueError, match="SN003 in no fold"):
        evaluate_protocol(seqs, label_predictor(), [("SN001",), ("SN002",)])


# --- BP4D loader ------------------------------------------------------------------------------
def test_bp4d_partitions_are_the_fera2015_split():
    assert len(BP4D_TRAIN) == 21 and len(BP4D_DEVELOPMENT) == 20
    assert not set(BP4D_TRAIN) & set(BP4D_DEVELOPMENT)
    assert BP4D_TRAIN[:2] == ("F001", "F003") and BP4D_DEVELOPMENT[-1] == "M018"


def test_bp4d_loader_drops_frames_coded_9(tmp_path):
    truth = make_bp4d(tmp_path)
    seqs = load_bp4d(tmp_path)  # development: F002, M002
    assert [s.name for s in seqs] == ["F002_T1", "F002_T2", "M002_T3"]
    for s in seqs:
        frames, labels = truth[(s.subject, s.task)]
        assert s.codes == BP4D_AUS and s.labels.shape == (10, 5)
        np.testing.assert_array_equal(s.frames, frames)
        np.testing.assert_array_equal(s.labels, labels)  # NaN where coded 9
        assert np.isnan(s.labels).sum() == 13  # (frame + AU index) % 4 == 0 coded 9
        assert s.label_files[0].name == f"{s.name}_AU06.csv"
    by_name = {s.name: s for s in seqs}
    img = by_name["F002_T1"]
    assert not img.is_video and img.source == tmp_path / "F002" / "T1"
    np.testing.assert_array_equal(img.image_frames, np.arange(98, 112))
    assert img.images[0].name == "0098.jpg"
    assert by_name["F002_T2"].is_video and by_name["F002_T2"].source.name == "T2.avi"
    assert [s.name for s in load_bp4d(tmp_path, partition="train")] == ["F001_T1"]
    assert len(load_bp4d(tmp_path, partition="all")) == 4
    assert [s.name for s in load_bp4d(tmp_path, partition=["M002"])] == ["M002_T3"]
    (tmp_path / "part.txt").write_text("F001  # training subject\nM002\n")
    assert [s.name for s in load_bp4d(tmp_path, partition=tmp_path / "part.txt")] == ["F001_T1", "M002_T3"]
    # a header line is skipped; labels_dir given explicitly works too
    p = tmp_path / "AUCoding" / "AU_INT" / "AU10" / "M002_T3_AU10.csv"
    p.write_text("frame,intensity\n" + p.read_text())
    assert len(load_bp4d(tmp_path, labels_dir=tmp_path / "AUCoding" / "AU_INT")) == 3


@pytest.mark.parametrize("case, pattern", [
    ("intensity", r"F002_T1_AU12\.csv line 3: intensity 7 outside 0\.\.5 \(or 9 = not coded\)"),
    ("missing", r"missing label file .*AU14.F002_T1_AU14\.csv for AU 14 of F002 T1"),
    ("count", r"frame counts differ between .*F002_T1_AU06\.csv \(10 frames\) and .*F002_T1_AU17\.csv \(9 frames\)"),
    ("frames", r"missing frames for M002 T3: no folder .*M002.T3"),
    ("noimages", r"M002.T3: no images named by frame number"),
    ("subject", r"no label files for subject\(s\) F004(?!\S)(?!, F00)"),
])
def test_bp4d_malformed_files_are_named(tmp_path, case, pattern):
    make_bp4d(tmp_path)
    au = tmp_path / "AUCoding" / "AU_INT"
    partition = "development"
    if case == "intensity":
        p = au / "AU12" / "F002_T1_AU12.csv"
        lines = p.read_text().splitlines()
        p.write_text("\n".join(lines[:2] + ["102,7"] + lines[3:]) + "\n")
    elif case == "missing":
        (au / "AU14" / "F002_T1_AU14.csv").unlink()
    elif case == "count":
        p = au / "AU17" / "F002_T1_AU17.csv"
        p.write_text("\n".join(p.read_text().splitlines()[:-1]) + "\n")
    elif case in ("frames", "noimages"):
        for f in (tmp_path / "M002" / "T3").iterdir():
            f.unlink()
        if case == "frames":
            (tmp_path / "M002" / "T3").rmdir()
    elif case == "subject":
        partition = ["F002", "F004"]
    with pytest.raises(DatasetError, match=pattern):
        load_bp4d(tmp_path, partition=partition)


def test_read_label_file_unknown_code(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("5,0\n6,9\n7,5\n")
    frames, values = read_label_file(p, unknown=9)
    np.testing.assert_array_equal(frames, [5, 6, 7])
    assert values[0] == 0 and np.isnan(values[1]) and values[2] == 5
    with pytest.raises(DatasetError, match=r"x\.csv line 2: intensity 9 outside 0\.\.5$"):
        read_label_file(p)  # DISFA has no "not coded" value


# --- evaluation -------------------------------------------------------------------------------
def test_perfect_predictions_give_icc_1_mae_0(tmp_path):
    make_disfa(tmp_path, n=12)
    seqs = load_disfa(tmp_path)
    folds = disfa_folds([s.subject for s in seqs])
    res = evaluate_protocol(seqs, label_predictor(), folds)
    assert [f["subjects"] for f in res["folds"]] == [list(f) for f in folds]
    for block in [res["pooled"]] + res["folds"]:
        for row in block["per_au"].values():
            assert row["icc"] == pytest.approx(1.0) and row["mae"] == pytest.approx(0.0, abs=1e-12)
            assert row["pearson"] == pytest.approx(1.0)
        assert block["mean"]["icc"] == pytest.approx(1.0) and block["mean"]["n_icc"] == 12
    assert res["pooled"]["n_frames"] == 6 * 12 and res["counts"]["evaluated"] == 72
    assert res["fold_mean"]["mean"]["mae"] == pytest.approx(0.0, abs=1e-12)
    table = format_protocol_table(res)
    assert "AU01" in table and "AU26" in table and "Avg" in table and "f3 ICC" in table
    assert "1.00" in table


def test_noisy_predictions_match_core_metrics(tmp_path):
    make_disfa(tmp_path, n=12)
    seqs = load_disfa(tmp_path)
    predict = label_predictor(noise=0.1)
    folds = disfa_folds([s.subject for s in seqs])
    res = evaluate_protocol(seqs, predict, folds)
    pred = np.concatenate([predict(s)[1] for s in seqs])
    true = np.concatenate([params_from_labels(s.labels, s.codes) for s in seqs])
    ref = au_report(pred, true, codes=DISFA_AUS)  # the same numbers through core.evaluation.metrics' report
    for key, row in res["pooled"]["per_au"].items():
        assert row["icc"] == pytest.approx(ref["per_au"][key]["icc"])
        assert row["mae"] == pytest.approx(ref["per_au"][key]["mae"])
        assert row["pearson"] == pytest.approx(ref["per_au"][key]["pearson"])
        assert 0.5 < row["icc"] < 1.0 and 0.1 < row["mae"] < 1.0
    assert res["pooled"]["mean"]["icc"] == pytest.approx(ref["mean"]["icc"])
    # fold 2 by hand
    f2 = [s for s in seqs if s.subject in folds[1]]
    fp = np.concatenate([predict(s)[1] for s in f2])[:, LAYOUT.group_slice("au")] @ \
        LAYOUT.eval_matrix(DISFA_AUS).T * 5
    ft = np.concatenate([s.labels for s in f2])
    assert res["folds"][1]["per_au"]["AU12"]["icc"] == pytest.approx(icc31(fp[:, 6], ft[:, 6]))
    assert res["folds"][1]["mean"]["mae"] == pytest.approx(np.mean(mae(fp, ft)))
    assert res["fold_mean"]["per_au"]["AU01"]["icc"] == pytest.approx(
        np.mean([f["per_au"]["AU01"]["icc"] for f in res["folds"]]))


def test_alignment_drops_and_counts_frames(tmp_path):
    make_disfa(tmp_path, subjects=("SN001", "SN002", "SN003"), n=12, videos=False)
    seqs = load_disfa(tmp_path, require_video=False)

    def predict(seq):  # every 2nd frame, in the video's own order shuffled, frames 5 and 9 without a face
        frames = seq.frames[::2][::-1]
        params = params_from_labels(seq.labels[::2][::-1], seq.codes, 0.05, seed=3)
        params[np.isin(frames, (5, 9))] = np.nan
        return np.append(frames, 99), np.vstack([params, LAYOUT.neutral(1)])  # frame 99 has no label

    res = evaluate_protocol(seqs, predict)
    c = res["counts"]
    assert c["labelled"] == 36 and c["not_predicted"] == 18 and c["no_face"] == 6 and c["evaluated"] == 12
    keep = np.isin(np.arange(1, 13), [1, 3, 7, 11])
    pred = np.concatenate([params_from_labels(s.labels[::2][::-1], s.codes, 0.05, seed=3)[::-1][[0, 1, 3, 5]]
                           for s in seqs])
    fp = pred[:, LAYOUT.group_slice("au")] @ LAYOUT.eval_matrix(DISFA_AUS).T * 5
    ft = np.concatenate([s.labels[keep] for s in seqs])
    np.testing.assert_allclose([r["icc"] for r in res["pooled"]["per_au"].values()], icc31(fp, ft))
    np.testing.assert_allclose([r["pearson"] for r in res["pooled"]["per_au"].values()], pearson(fp, ft))
    assert all(r["n"] == 12 for r in res["pooled"]["per_au"].values())
    assert "18 not predicted" in format_protocol_table(res)


def test_bp4d_evaluation_skips_uncoded_frames_per_au(tmp_path):
    make_bp4d(tmp_path)
    seqs = load_bp4d(tmp_path, partition="all")
    res = evaluate_protocol(seqs, label_predictor(noise=0.05))
    assert len(res["folds"]) == 1 and res["folds"][0]["name"] == "all"
    for j, code in enumerate(BP4D_AUS):
        coded = int(sum(np.isfinite(s.labels[:, j]).sum() for s in seqs))
        row = res["pooled"]["per_au"][f"AU{code:02d}"]
        assert row["n"] == coded and res["counts"]["not_coded"][f"AU{code:02d}"] == 40 - coded
        assert np.isfinite(row["icc"]) and row["icc"] > 0.8
    perfect = evaluate_protocol(seqs, label_predictor())
    assert perfect["pooled"]["mean"]["icc"] == pytest.approx(1.0)
    assert perfect["pooled"]["mean"]["mae"] == pytest.approx(0.0, abs=1e-12)
    assert "not coded" in format_protocol_table(res) and "f1 ICC" not in format_protocol_table(res)


def test_predictions_of_wrong_shape_are_refused(tmp_path):
    make_disfa(tmp_path, subjects=("SN001",), n=4, videos=False)
    seqs = load_disfa(tmp_path, require_video=False)
    with pytest.raises(ValueError, match="predictions for SN001: expected frames"):
        evaluate_protocol(seqs, lambda s: (s.frames, np.zeros((4, 10))))
    with pytest.raises(ValueError, match="appears twice"):
        evaluate_protocol(seqs, lambda s: (np.ones(4, int), LAYOUT.neutral(4)))


def test_image_folder_becomes_a_video_of_its_labelled_span(tmp_path):
    make_bp4d(tmp_path)
    seq = next(s for s in load_bp4d(tmp_path) if s.name == "F002_T1")
    video, numbers = _frames_video(seq, tmp_path, step=3, max_frames=3)
    np.testing.assert_array_equal(numbers, [100, 103, 106])
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    cap.release()


def test_command_runs_the_tracker_on_disfa(tmp_path, capsys):
    """End to end through the real tracker: plain frames have no face, so nothing is evaluated."""
    make_disfa(tmp_path, subjects=("SN001", "SN002", "SN003"), n=6)
    out = tmp_path / "res.json"
    assert main_protocol(["disfa", str(tmp_path), "--max-frames", "4", "--step", "1", "--json", str(out),
                          "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "DISFA" in text and "6 not predicted" in text and "12 without a face" in text
    res = json.loads(out.read_text())
    assert res["counts"]["no_face"] == 12 and res["counts"]["evaluated"] == 0
    assert res["pooled"]["mean"]["icc"] is None and res["config"]["max_frames"] == 4


def test_command_runs_the_tracker_on_bp4d_images_and_video(tmp_path, capsys):
    """Image folders go through a temporary video; frame numbers come back in BP4D's numbering."""
    make_bp4d(tmp_path)
    out = tmp_path / "res.json"
    assert main_protocol(["bp4d", str(tmp_path), "--partition", "all", "--step", "2", "--first-frame", "100",
                          "--json", str(out), "--quiet"]) == 0
    assert "BP4D" in capsys.readouterr().out
    res = json.loads(out.read_text())
    assert res["counts"] == {"sequences": 4, "labelled": 40, "not_predicted": 20, "no_face": 20, "evaluated": 0,
                             "not_coded": res["counts"]["not_coded"]}
    assert all(row["no_face"] == 5 for row in res["sequences"])
