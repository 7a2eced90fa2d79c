"""Dataset protocols for users who hold DISFA or BP4D: loaders, evaluation, paper-style table.

Nothing here ships or downloads data; the user points the loaders at their own copy.

DISFA (Mavadati et al. 2013): 27 subjects (SN001 ... SN032 with gaps), 12 AUs
(1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26) coded 0..5 on every frame, stereo videos at 20 fps,
4845 frames per subject. The layout read by :func:`load_disfa` (the official one)::

    ROOT/ActionUnit_Labels/SN001/SN001_au1.txt     one file per AU: SN001_au1.txt ... SN001_au26.txt
                                                   lines "frame,intensity", frame numbers from 1,
                                                   intensity 0..5 (no header; blank lines skipped)
    ROOT/Videos_LeftCamera/LeftVideoSN001_comp.avi    camera="left"
    ROOT/Videos_RightCamera/RightVideoSN001_comp.avi  camera="right"

Every subject folder under ``ActionUnit_Labels`` named ``SN`` + 3 digits is a subject. All 12
label files of a subject must list the same frame numbers, strictly increasing. Label frame
number f is the video's frame index f - 1 (:attr:`Sequence.first_frame` = 1). The number of
subjects and of frames is not enforced (a user may hold a subset), only reported.

DISFA protocol: subject-exclusive 3-fold cross-validation. Default folds
(:func:`disfa_folds`): the subject ids sorted, split into 3 contiguous groups of (nearly) equal
size, so with the 27 subjects fold 1 = the first 9 ids in sorted order, fold 2 = the next 9,
fold 3 = the last 9. A fold file (:func:`read_fold_file`) gives other folds: one fold per line, subject
ids separated by spaces or commas, ``#`` starts a comment.

BP4D as in the FERA 2015 intensity sub-challenge: AUs 6, 10, 12, 14, 17, intensity 0..5, and 9 =
not coded (such frames are dropped for that AU: NaN in :attr:`Sequence.labels`). The layout read
by :func:`load_bp4d` (as FERA 2015 distributed it)::

    LABELS/AU06/F001_T1_AU06.csv    one file per subject, task and AU: rows "frame,intensity"
    ...                             (an optional header on line 1 is skipped); LABELS is
                                    ROOT/AUCoding/AU_INT, else ROOT/AU_INT, else ROOT
                                    (or labels_dir=...)
    FRAMES/F001/T1/<frame>.jpg      the sequence as images named by frame number
                                    (0001.jpg, 2440.jpg, ...; .jpg/.jpeg/.png/.bmp), or
    FRAMES/F001/T1.avi              the sequence as one video (any extension OpenCV reads);
                                    label frame f is the video's index f - first_frame
                                    (first_frame=1 by default)

FRAMES is ROOT unless ``frames_dir`` is given. Label files are found by the file-name pattern
``<subject>_<task>_AU<nn>.csv`` anywhere below LABELS (``label_regex`` replaces it for other
naming, with the named groups ``subject``, ``task`` and ``au``). Every (subject, task) found must
have all 5 AUs with the same frame numbers. Partitions (FERA 2015, 41 subjects): training =
F001, F003, ... F023 and M001, M003, ... M017 (the odd ids, 21 subjects); development = F002,
F004, ... F022 and M002, ... M018 (the even ids, 20 subjects). ``partition`` takes "train",
"development" (default), "all", a list of subject ids, or a file of ids.

Evaluation (:func:`evaluate_protocol`): ``predict(sequence) -> (frames, params)`` gives parameter
vectors (n, len(layout)) for frame numbers in the dataset's numbering (:func:`tracker_predictor`
wraps :func:`core.tracking.track.track_video`). Predictions are aligned to the labelled frames by frame
number; labelled frames the predictor did not return (``--step``, ``--max-frames``) and frames
without a face (NaN AU values) are dropped and counted; a frame not coded for one AU is dropped
for that AU only. The predicted FACS value of a code is ``layout.eval_matrix(codes) @ au *
FACS_SCALE`` (left/right channels as their mean). Per AU: ICC(3,1), MAE (0..5) and Pearson r
from :mod:`core.evaluation.metrics`, per fold (the frames of the fold's test subjects, concatenated),
pooled (all evaluated frames) and the mean over folds; averages over AUs are unweighted and skip
undefined values, as in the paper's Table 1.

Folds only matter for methods trained on the dataset. Our estimator is trained on synthetic rig
faces and never sees DISFA, so every fold is a plain test set and the pooled figures are the
headline; the per-fold figures are reported so the numbers compare with 3-fold results of
methods that are trained per fold (such a method's ``predict`` would pick its model with
:func:`fold_of`).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..rig.layout import FACS_SCALE, LAYOUT, ParameterLayout
from ..util.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from .metrics import icc31, mae, pearson

DISFA_AUS = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)
DISFA_FPS = 20.0
DISFA_FRAMES = 4845
DISFA_SUBJECTS = 27
DISFA_CAMERAS = {"left": ("Videos_LeftCamera", "LeftVideo{subject}_comp.avi"),
                 "right": ("Videos_RightCamera", "RightVideo{subject}_comp.avi")}

BP4D_AUS = (6, 10, 12, 14, 17)
BP4D_FPS = 25.0
BP4D_UNKNOWN = 9  # FERA 2015: intensity 9 = not coded on this frame
BP4D_TRAIN = tuple([f"F{i:03d}" for i in range(1, 24, 2)] + [f"M{i:03d}" for i in range(1, 18, 2)])
BP4D_DEVELOPMENT = tuple([f"F{i:03d}" for i in range(2, 23, 2)] + [f"M{i:03d}" for i in range(2, 19, 2)])
BP4D_LABEL_REGEX = r"(?P<subject>[A-Za-z]+\d+)_(?P<task>[A-Za-z]*\d+)_AU(?P<au>\d+)\.csv"


class DatasetError(ValueError):
    """A dataset file that is missing or malformed; the message names the file (and line)."""


@dataclass
class Sequence:
    """One labelled sequence: a subject's video (DISFA) or a subject's task (BP4D).

    ``frames`` (n,) int: the labelled frame numbers in the dataset's numbering; ``labels``
    (n, len(codes)) float FACS 0..5, NaN where a frame is not coded for that AU. ``source``
    is a video file or a folder of images; for a video, frame number f is the video's index
    ``f - first_frame``; for a folder, ``image_frames`` / ``images`` list its images by frame
    number (sorted).
    """

    dataset: str
    subject: str
    task: str
    source: Path
    frames: np.ndarray
    labels: np.ndarray
    codes: tuple[int, ...]
    fps: float
    first_frame: int = 1
    image_frames: np.ndarray | None = None
    images: tuple[Path, ...] = ()
    label_files: tuple[Path, ...] = ()
    meta: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.subject}_{self.task}" if self.task else self.subject

    @property
    def is_video(self) -> bool:
        return self.image_frames is None

    def __len__(self) -> int:
        return len(self.frames)


# --- label files ------------------------------------------------------------------------------
def _number(text: str):
    try:
        v = float(text)
    except ValueError:
        return None
    return v if np.isfinite(v) else None


def read_label_file(path, *, unknown: float | None = None, header_ok: bool = False,
                    min_frame: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``frame,intensity`` -> (frames int, intensities float; NaN where ``unknown``).

    Refuses, naming the file and line: a row without exactly two fields, a frame number that is
    not an integer >= ``min_frame``, frame numbers not strictly increasing, an intensity that is
    not a number or outside 0..5 (other than ``unknown``), a file without rows. Blank lines are
    skipped; with ``header_ok`` a non-numeric first line is taken as a header.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"missing label file {path}")
    try:
        text = path.read_text(encoding="utf-8-sig", errors="strict")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not a text file ({exc})") from None
    frames, values = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        fields = [f for f in re.split(r"[,;\t ]+", line) if f]
        if header_ok and number == 1 and not frames and any(_number(f) is None for f in fields):
            continue
        if len(fields) != 2:
            raise DatasetError(f"{path} line {number}: expected 'frame,intensity', got {line!r}")
        f, v = _number(fields[0]), _number(fields[1])
        if f is None or f != int(f) or f < min_frame:
            raise DatasetError(f"{path} line {number}: frame {fields[0]!r} is not an integer >= {min_frame}")
        if v is None:
            raise DatasetError(f"{path} line {number}: intensity {fields[1]!r} is not a number")
        if frames and int(f) <= frames[-1]:
            raise DatasetError(f"{path} line {number}: frame {int(f)} after frame {frames[-1]} "
                               f"(frame numbers must increase)")
        if unknown is not None and v == unknown:
            v = np.nan
        elif not 0 <= v <= 5:
            extra = f" (or {unknown:g} = not coded)" if unknown is not None else ""
            raise DatasetError(f"{path} line {number}: intensity {fields[1]} outside 0..5{extra}")
        frames.append(int(f))
        values.append(v)
    if not frames:
        raise DatasetError(f"{path}: no 'frame,intensity' rows")
    return np.asarray(frames, np.int64), np.asarray(values, np.float64)


def _same_frames(reference: tuple[Path, np.ndarray], other: tuple[Path, np.ndarray]) -> None:
    (pa, fa), (pb, fb) = reference, other
    if len(fa) != len(fb):
        raise DatasetError(f"frame counts differ between {pa} ({len(fa)} frames) and {pb} ({len(fb)} frames)")
    diff = np.flatnonzero(fa != fb)
    if diff.size:
        i = int(diff[0])
        raise DatasetError(f"frame numbers differ between {pa} and {pb}: row {i + 1} is frame {fa[i]} "
                           f"in the first, {fb[i]} in the second")


def _stack_labels(files: list[tuple[Path, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    first = (files[0][0], files[0][1])
    for path, frames, _ in files[1:]:
        _same_frames(first, (path, frames))
    return files[0][1], np.stack([v for _, _, v in files], axis=1)


# --- DISFA ------------------------------------------------------------------------------------
def load_disfa(root, camera: str = "left", subjects: Iterable[str] | None = None,
               require_video: bool = True) -> list[Sequence]:
    """DISFA's sequences (one per subject) in the official layout (see the module doc)."""
    root = Path(root)
    if camera not in DISFA_CAMERAS:
        raise ValueError(f"camera must be one of {sorted(DISFA_CAMERAS)}, got {camera!r}")
    labels_root = root / "ActionUnit_Labels"
    if not labels_root.is_dir():
        raise DatasetError(f"{root}: no ActionUnit_Labels folder (expected {labels_root})")
    found = sorted(p.name for p in labels_root.iterdir() if p.is_dir() and re.fullmatch(r"SN\d{3}", p.name))
    if subjects is not None:
        wanted = sorted(set(subjects))
        missing = [s for s in wanted if s not in found]
        if missing:
            raise DatasetError(f"{labels_root}: no label folder for subject(s) {', '.join(missing)}")
        found = wanted
    if not found:
        raise DatasetError(f"{labels_root}: no subject folders (SN001, SN002, ...)")
    video_dir, video_name = DISFA_CAMERAS[camera]
    sequences = []
    for subject in found:
        files = []
        for code in DISFA_AUS:
            path = labels_root / subject / f"{subject}_au{code}.txt"
            if not path.is_file():
                raise DatasetError(f"missing label file {path} for AU {code} of {subject}")
            files.append((path, *read_label_file(path, min_frame=1)))
        frames, labels = _stack_labels(files)
        video = root / video_dir / video_name.format(subject=subject)
        if require_video and not video.is_file():
            raise DatasetError(f"missing video {video} for {subject} ({camera} camera)")
        sequences.append(Sequence("disfa", subject, "", video, frames, labels, DISFA_AUS, DISFA_FPS,
                                  first_frame=1, label_files=tuple(p for p, _, _ in files),
                                  meta={"camera": camera}))
    return sequences


def disfa_folds(subjects: Iterable[str], k: int = 3) -> list[tuple[str, ...]]:
    """Subject-exclusive folds: the ids sorted and split into ``k`` contiguous groups
    (sizes differ by at most one; 27 subjects -> 3 x 9)."""
    ids = sorted(set(subjects))
    if len(ids) < k:
        raise ValueError(f"{k} folds need at least {k} subjects, got {len(ids)}")
    bounds = np.linspace(0, len(ids), k + 1).round().astype(int)
    return [tuple(ids[bounds[i]:bounds[i + 1]]) for i in range(k)]


def read_fold_file(path) -> list[tuple[str, ...]]:
    """Folds from a text file: one fold per line, subject ids separated by spaces or commas;
    ``#`` starts a comment, blank lines are skipped. A subject in two folds is refused."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"missing fold file {path}")
    folds, seen = [], {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        ids = [s for s in re.split(r"[,\s]+", line.split("#", 1)[0]) if s]
        if not ids:
            continue
        for s in ids:
            if s in seen:
                raise DatasetError(f"{path} line {number}: subject {s} is already in fold {seen[s]}")
            seen[s] = len(folds) + 1
        folds.append(tuple(ids))
    if not folds:
        raise DatasetError(f"{path}: no folds (one line of subject ids per fold)")
    return folds


# --- BP4D -------------------------------------------------------------------------------------
def _partition_subjects(partition) -> tuple[str, ...] | None:
    if partition is None or partition == "all":
        return None
    if isinstance(partition, str) and partition in ("train", "training"):
        return BP4D_TRAIN
    if isinstance(partition, str) and partition in ("development", "devel", "dev"):
        return BP4D_DEVELOPMENT
    if isinstance(partition, (str, Path)):
        path = Path(partition)
        if not path.is_file():
            raise DatasetError(f"partition {str(partition)!r}: not train, development, all, nor a file of "
                               f"subject ids")
        ids = [s for s in re.split(r"[,\s]+", re.sub(r"#[^\n]*", "", path.read_text(encoding="utf-8"))) if s]
        if not ids:
            raise DatasetError(f"{path}: no subject ids")
        return tuple(ids)
    return tuple(partition)


def _find_labels_dir(root: Path) -> Path:
    for candidate in (root / "AUCoding" / "AU_INT", root / "AU_INT"):
        if candidate.is_dir():
            return candidate
    return root


def _sequence_source(frames_dir: Path, subject: str, task: str) -> tuple[Path, np.ndarray | None, tuple]:
    folder = frames_dir / subject / task
    if folder.is_dir():
        found = {}
        for p in folder.iterdir():
            if p.suffix.lower() in IMAGE_SUFFIXES and p.stem.isdigit():
                n = int(p.stem)
                if n in found:
                    raise DatasetError(f"{folder}: two images for frame {n} ({found[n].name}, {p.name})")
                found[n] = p
        if not found:
            raise DatasetError(f"{folder}: no images named by frame number (0001.jpg, ...)")
        numbers = np.asarray(sorted(found), np.int64)
        return folder, numbers, tuple(found[n] for n in numbers)
    for suffix in VIDEO_SUFFIXES:
        for cand in (frames_dir / subject / (task + suffix), frames_dir / subject / (task + suffix.upper())):
            if cand.is_file():
                return cand, None, ()
    raise DatasetError(f"missing frames for {subject} {task}: no folder {folder} and no video "
                       f"{frames_dir / subject / task}.avi (or .mp4, ...)")


def load_bp4d(root, partition="development", labels_dir=None, frames_dir=None,
              label_regex: str = BP4D_LABEL_REGEX, first_frame: int = 1,
              require_frames: bool = True) -> list[Sequence]:
    """BP4D sequences (one per subject and task) of a partition, FERA 2015 layout (module doc).

    ``partition``: "development" (default), "train", "all", a list of subject ids or a file of
    them. A named partition takes the subjects of it that are found (a user may hold a subset;
    the command reports how many); a list or file of ids must be found in full. Frames coded 9
    are NaN in ``labels``. ``first_frame``: the frame number of a video's
    first frame (image folders map frame numbers through the image names).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"no BP4D folder at {root}")
    labels_dir = Path(labels_dir) if labels_dir else _find_labels_dir(root)
    frames_dir = Path(frames_dir) if frames_dir else root
    pattern = re.compile(label_regex)
    wanted = _partition_subjects(partition)
    groups: dict[tuple[str, str], dict[int, Path]] = {}
    for path in sorted(labels_dir.rglob("*")):
        m = pattern.fullmatch(path.name)
        if not m or not path.is_file():
            continue
        subject, task, code = m["subject"], m["task"], int(m["au"])
        if code not in BP4D_AUS or (wanted is not None and subject not in wanted):
            continue
        per_au = groups.setdefault((subject, task), {})
        if code in per_au:
            raise DatasetError(f"two label files for {subject} {task} AU {code}: {per_au[code]} and {path}")
        per_au[code] = path
    if not groups:
        which = "any subject" if wanted is None else f"the partition's subjects ({', '.join(wanted[:4])} ...)"
        raise DatasetError(f"{labels_dir}: no label files for {which} named like F001_T1_AU06.csv")
    named = isinstance(partition, str) and not Path(partition).is_file()
    if wanted is not None and not named:  # an explicit list: every subject must be there
        absent = sorted(set(wanted) - {s for s, _ in groups})
        if absent:
            raise DatasetError(f"{labels_dir}: no label files for subject(s) {', '.join(absent)} of the partition")
    sequences = []
    for (subject, task), per_au in sorted(groups.items()):
        files = []
        for code in BP4D_AUS:
            path = per_au.get(code)
            if path is None:
                some = next(iter(per_au.values()))
                expected = some.parent.parent / f"AU{code:02d}" / f"{subject}_{task}_AU{code:02d}.csv"
                raise DatasetError(f"missing label file {expected} for AU {code} of {subject} {task}")
            files.append((path, *read_label_file(path, unknown=BP4D_UNKNOWN, header_ok=True)))
        frames, labels = _stack_labels(files)
        if require_frames:
            source, image_frames, images = _sequence_source(frames_dir, subject, task)
        else:
            source, image_frames, images = frames_dir / subject / task, None, ()
        sequences.append(Sequence("bp4d", subject, task, source, frames, labels, BP4D_AUS, BP4D_FPS,
                                  first_frame=first_frame, image_frames=image_frames, images=images,
                                  label_files=tuple(p for p, _, _ in files)))
    return sequences


# --- evaluation -------------------------------------------------------------------------------
def _fold_table(sequences: list[Sequence], folds) -> dict[str, tuple[str, ...]]:
    subjects = sorted({s.subject for s in sequences})
    if folds is None:
        table = {"all": tuple(subjects)}
    elif isinstance(folds, dict):
        table = {str(k): tuple(v) for k, v in folds.items()}
    else:
        table = {f"fold {i + 1}": tuple(v) for i, v in enumerate(folds)}
    owner: dict[str, str] = {}
    for name, ids in table.items():
        for s in ids:
            if s in owner:
                raise ValueError(f"subject {s} is in two folds ({owner[s]} and {name}); folds must be "
                                 f"subject-exclusive")
            owner[s] = name
    loose = [s for s in subjects if s not in owner]
    if loose:
        raise ValueError(f"subject(s) {', '.join(loose)} in no fold")
    return table


def fold_of(subject: str, folds) -> int:
    """Index of the fold whose test subjects include ``subject``."""
    for i, ids in enumerate(folds.values() if isinstance(folds, dict) else folds):
        if subject in ids:
            return i
    raise KeyError(f"subject {subject} is in no fold")


def align_predictions(sequence: Sequence, frames, params, layout: ParameterLayout = LAYOUT) -> dict:
    """Predicted FACS values at the sequence's labelled frames, and what was dropped.

    Returns ``{"pred": (n, c) NaN where not predicted or no face, "not_predicted", "no_face"}``.
    """
    where = f"predictions for {sequence.name}"
    frames = np.asarray(frames)
    params = np.asarray(params, dtype=np.float64)
    if frames.ndim != 1 or params.ndim != 2 or params.shape != (len(frames), len(layout)):
        raise ValueError(f"{where}: expected frames (n,) and params (n, {len(layout)}), got {frames.shape} "
                         f"and {params.shape}")
    if len(np.unique(frames)) != len(frames):
        raise ValueError(f"{where}: a frame number appears twice")
    m = layout.eval_matrix(sequence.codes) * FACS_SCALE
    au = params[:, layout.group_slice("au")]
    face = np.isfinite(au).all(axis=1)
    facs = np.full((len(frames), len(sequence.codes)), np.nan)
    facs[face] = au[face] @ m.T
    row = {int(f): i for i, f in enumerate(frames)}
    idx = np.array([row.get(int(f), -1) for f in sequence.frames], dtype=np.int64)
    pred = np.full(sequence.labels.shape, np.nan)
    hit = idx >= 0
    pred[hit] = facs[idx[hit]]
    return {"pred": pred, "not_predicted": int((~hit).sum()),
            "no_face": int((hit & ~face[np.where(hit, idx, 0)]).sum())}


def _nanmean(v) -> float:
    v = np.asarray(v, float)
    ok = np.isfinite(v)
    return float(v[ok].mean()) if ok.any() else float("nan")


def score(pred: np.ndarray, true: np.ndarray, codes) -> dict:
    """Per-AU ICC(3,1), MAE, Pearson r (core.evaluation.metrics) on the frames where both are finite,
    and their unweighted means over AUs (undefined AUs skipped, counted in n_*)."""
    per_au, icc_v, mae_v, r_v = {}, [], [], []
    for j, code in enumerate(codes):
        keep = np.isfinite(pred[:, j]) & np.isfinite(true[:, j])
        a, b = pred[keep, j], true[keep, j]
        row = {"icc": float(icc31(a, b)), "mae": float(mae(a, b)), "pearson": float(pearson(a, b)),
               "n": int(keep.sum())}
        per_au[f"AU{code:02d}"] = row
        icc_v.append(row["icc"])
        mae_v.append(row["mae"])
        r_v.append(row["pearson"])
    mean = {"icc": _nanmean(icc_v), "mae": _nanmean(mae_v), "pearson": _nanmean(r_v),
            "n_icc": int(np.isfinite(icc_v).sum()), "n_mae": int(np.isfinite(mae_v).sum()),
            "n_pearson": int(np.isfinite(r_v).sum())}
    return {"per_au": per_au, "mean": mean}


def evaluate_protocol(sequences: list[Sequence], predict: Callable, folds=None,
                      layout: ParameterLayout = LAYOUT, on_sequence: Callable | None = None) -> dict:
    """Run ``predict(sequence) -> (frames, params (n, len(layout)))`` on every sequence and score it.

    ``folds``: None (one group with every subject: BP4D's partition), a list of subject-id
    tuples (fold 1, 2, ...) or a dict name -> ids; subject-exclusive and covering every
    sequence's subject. Each sequence is predicted once. Folds only matter for methods trained
    on the dataset (see the module doc); the result has per-fold, pooled and fold-mean scores.

    Returns ``{"dataset", "codes", "folds": [{"name", "subjects", "n_frames", **score}],
    "pooled": {**score, "n_frames"}, "fold_mean": score-like, "counts": {...},
    "sequences": [...]}`` where counts has labelled, not_predicted, no_face and evaluated
    frames, and per AU the frames not coded (``not_coded``).
    """
    if not sequences:
        raise ValueError("no sequences to evaluate")
    codes = tuple(sequences[0].codes)
    for s in sequences:
        if tuple(s.codes) != codes:
            raise ValueError(f"{s.name}: AU codes {s.codes} differ from {codes}")
    table = _fold_table(sequences, folds)
    results, per_seq = {}, []
    for s in sequences:
        frames, params = predict(s)
        got = align_predictions(s, frames, params, layout)
        results[s.name] = got["pred"]
        evaluated = np.isfinite(got["pred"]).all(axis=1) & np.isfinite(s.labels).any(axis=1)
        per_seq.append({"name": s.name, "subject": s.subject, "task": s.task, "labelled": len(s),
                        "not_predicted": got["not_predicted"], "no_face": got["no_face"],
                        "evaluated": int(evaluated.sum())})
        if on_sequence:
            on_sequence(s, per_seq[-1])

    def pooled(subset: list[Sequence]) -> dict:
        pred = np.concatenate([results[s.name] for s in subset]) if subset else np.zeros((0, len(codes)))
        true = np.concatenate([s.labels for s in subset]) if subset else np.zeros((0, len(codes)))
        out = score(pred, true, codes)
        out["n_frames"] = int((np.isfinite(pred).all(axis=1) & np.isfinite(true).any(axis=1)).sum())
        return out

    fold_results = []
    for name, ids in table.items():
        subset = [s for s in sequences if s.subject in ids]
        fold_results.append({"name": name, "subjects": list(ids), "n_sequences": len(subset), **pooled(subset)})
    fold_mean_au = {}
    for key in fold_results[0]["per_au"]:
        fold_mean_au[key] = {m: _nanmean([f["per_au"][key][m] for f in fold_results])
                             for m in ("icc", "mae", "pearson")}
    fm = {m: _nanmean([fold_mean_au[k][m] for k in fold_mean_au]) for m in ("icc", "mae", "pearson")}
    all_labels = np.concatenate([s.labels for s in sequences])
    counts = {"sequences": len(sequences),
              "labelled": int(sum(len(s) for s in sequences)),
              "not_predicted": int(sum(p["not_predicted"] for p in per_seq)),
              "no_face": int(sum(p["no_face"] for p in per_seq)),
              "evaluated": int(sum(p["evaluated"] for p in per_seq)),
              "not_coded": {f"AU{c:02d}": int(np.isnan(all_labels[:, j]).sum()) for j, c in enumerate(codes)}}
    return {"dataset": sequences[0].dataset, "codes": list(codes), "folds": fold_results,
            "pooled": pooled(list(sequences)), "fold_mean": {"per_au": fold_mean_au, "mean": fm},
            "counts": counts, "sequences": per_seq}


def _num(v: float, width: int = 7) -> str:
    return f"{'nan':>{width}}" if not np.isfinite(v) else f"{v:>{width}.2f}"


def format_protocol_table(result: dict) -> str:
    """The paper-style table (Table 1): one AU per row, ICC and MAE (and r) pooled, then ICC /
    MAE per fold when there are several folds; the last row is the unweighted average."""
    folds = result["folds"] if len(result["folds"]) > 1 else []
    head = f"{'AU':<6}{'ICC':>7}{'MAE':>7}{'r':>7}"
    for i in range(len(folds)):
        head += f" |{f'f{i + 1} ICC':>8}{f'f{i + 1} MAE':>8}"
    title = f"{result['dataset'].upper()}: {result['counts']['sequences']} sequences, pooled"
    if folds:
        title += f"; per fold of {len(folds)} subject-exclusive folds"
    lines = [title, head, "-" * len(head)]
    pooled = result["pooled"]
    for key, row in pooled["per_au"].items():
        line = f"{key:<6}{_num(row['icc'])}{_num(row['mae'])}{_num(row['pearson'])}"
        for f in folds:
            line += f" |{_num(f['per_au'][key]['icc'], 8)}{_num(f['per_au'][key]['mae'], 8)}"
        lines.append(line)
    lines.append("-" * len(head))
    mean = pooled["mean"]
    line = f"{'Avg':<6}{_num(mean['icc'])}{_num(mean['mae'])}{_num(mean['pearson'])}"
    for f in folds:
        line += f" |{_num(f['mean']['icc'], 8)}{_num(f['mean']['mae'], 8)}"
    lines.append(line)
    if folds:
        fm = result["fold_mean"]["mean"]
        lines.append(f"mean over folds: ICC {_num(fm['icc'], 0).strip()}, MAE {_num(fm['mae'], 0).strip()}, "
                     f"r {_num(fm['pearson'], 0).strip()}")
    c = result["counts"]
    lines.append(f"frames: {c['labelled']} labelled, {c['evaluated']} evaluated, {c['not_predicted']} not "
                 f"predicted (step / max frames), {c['no_face']} without a face")
    coded = {k: v for k, v in c["not_coded"].items() if v}
    if coded:
        lines.append("not coded (dropped per AU): " + ", ".join(f"{k} {v}" for k, v in coded.items()))
    return "\n".join(lines)


# --- the tracker as a predictor -----------------------------------------------------------------
def _frames_video(sequence: Sequence, folder: Path, step: int, max_frames: int | None) -> tuple[Path, np.ndarray]:
    """Write an image sequence's frames from the first to the last labelled one (every
    ``step``-th, at most ``max_frames``) into an MJPG AVI; return it and its frame numbers."""
    import cv2

    lo, hi = int(sequence.frames.min()), int(sequence.frames.max())
    sel = np.flatnonzero((sequence.image_frames >= lo) & (sequence.image_frames <= hi))[::max(step, 1)]
    if max_frames is not None:
        sel = sel[:max_frames]
    if sel.size == 0:
        raise DatasetError(f"{sequence.source}: no image between the labelled frames {lo} and {hi}")
    path = folder / f"{sequence.name}.avi"
    writer = None
    try:
        for i in sel:
            image = cv2.imread(str(sequence.images[i]))
            if image is None:
                raise DatasetError(f"{sequence.images[i]}: OpenCV cannot read this image")
            if writer is None:
                size = (image.shape[1], image.shape[0])
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"),
                                         sequence.fps / max(step, 1), size)
            elif (image.shape[1], image.shape[0]) != size:
                raise DatasetError(f"{sequence.images[i]}: size {image.shape[1]}x{image.shape[0]} differs from "
                                   f"the sequence's first image ({size[0]}x{size[1]})")
            writer.write(image)
    finally:
        if writer is not None:
            writer.release()
    return path, sequence.image_frames[sel]


def tracker_predictor(config=None, progress: bool = False) -> Callable:
    """``predict(sequence)`` running :func:`core.tracking.track.track_video` with ``config`` (a
    ``TrackConfig``; its start / step / max_frames apply per sequence). A video is tracked as
    it is; an image folder is first written into a temporary MJPG AVI (its labelled span)."""
    from dataclasses import replace

    from ..tracking.track import TrackConfig, track_video

    config = config or TrackConfig()

    def predict(sequence: Sequence):
        if sequence.is_video:
            tracking = track_video(sequence.source, config, progress=progress)
            return tracking.frames + sequence.first_frame, tracking.params
        with tempfile.TemporaryDirectory(prefix="au2rig_frames_") as tmp:
            video, numbers = _frames_video(sequence, Path(tmp), config.step, config.max_frames)
            tracking = track_video(video, replace(config, start=0, step=1, max_frames=None), progress=progress)
            return numbers[tracking.frames], tracking.params

    return predict


# --- command line -------------------------------------------------------------------------------
def protocol_parser(prog: str = "au2rig eval-dataset") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="AU intensity accuracy (ICC, MAE, r) on DISFA or BP4D "
                                                       "(FERA 2015), which the user holds")
    p.add_argument("dataset", choices=("disfa", "bp4d"))
    p.add_argument("root", help="the dataset's folder (layouts: core/evaluation/protocols.py)")
    p.add_argument("--model", help="estimator ONNX model (default: the shipped one)")
    p.add_argument("--max-frames", type=int, help="at most this many processed frames per sequence")
    p.add_argument("--step", type=int, default=1, help="process every n-th frame (default 1)")
    p.add_argument("--backend", default="mediapipe", help="landmark backend (default mediapipe)")
    p.add_argument("--smoothing", type=float, default=0.3, help="0 (off) .. 1 (strong); default 0.3")
    p.add_argument("--camera", choices=sorted(DISFA_CAMERAS), default="left", help="DISFA camera (default left)")
    p.add_argument("--folds", help="DISFA fold file (one fold of subject ids per line); default: sorted ids "
                                   "in 3 contiguous groups")
    p.add_argument("--partition", default="development",
                   help="BP4D: development (default), train, all, or a file of subject ids")
    p.add_argument("--labels-dir", help="BP4D: folder of the AUnn/ label folders (default: ROOT/AUCoding/AU_INT, "
                                        "ROOT/AU_INT or ROOT)")
    p.add_argument("--frames-dir", help="BP4D: folder of SUBJECT/TASK/ image folders or SUBJECT/TASK.avi "
                                        "videos (default ROOT)")
    p.add_argument("--first-frame", type=int, default=1,
                   help="BP4D videos: the frame number of a video's first frame (default 1)")
    p.add_argument("--subjects", nargs="*", help="only these subjects")
    p.add_argument("--json", help="also write the full result as JSON here")
    p.add_argument("--quiet", action="store_true", help="no per-sequence progress")
    return p


def _jsonable(o):
    """NaN -> None and numpy scalars -> Python, so the JSON is strict."""
    if isinstance(o, dict):
        return {k: _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (float, np.floating)):
        return float(o) if np.isfinite(o) else None
    return o


def main_protocol(argv=None) -> int:
    """``au2rig eval-dataset disfa|bp4d ROOT [--model M.onnx] [--max-frames N] [--step N] ...``"""
    from ..tracking.track import TrackConfig

    args = protocol_parser().parse_args(argv)
    if args.step < 1:
        raise ValueError(f"--step must be >= 1, got {args.step}")
    if args.dataset == "disfa":
        sequences = load_disfa(args.root, camera=args.camera, subjects=args.subjects)
        folds = read_fold_file(args.folds) if args.folds else disfa_folds([s.subject for s in sequences])
        if args.subjects:
            folds = [tuple(x for x in f if x in set(args.subjects)) for f in folds]
            folds = [f for f in folds if f]
    else:
        partition = args.subjects if args.subjects else args.partition
        sequences = load_bp4d(args.root, partition=partition, labels_dir=args.labels_dir,
                              frames_dir=args.frames_dir, first_frame=args.first_frame)
        wanted = _partition_subjects(partition)
        if wanted is not None:
            print(f"BP4D {partition if isinstance(partition, str) else 'subjects'}: "
                  f"{len({s.subject for s in sequences})} of {len(wanted)} subjects found, "
                  f"{len(sequences)} sequences", file=sys.stderr)
        folds = None
    config = TrackConfig(backend=args.backend, model=args.model, smoothing=args.smoothing, step=args.step,
                         max_frames=args.max_frames)

    def report(seq: Sequence, row: dict) -> None:
        if not args.quiet:
            print(f"  {row['name']}: {row['labelled']} labelled frames, {row['evaluated']} evaluated, "
                  f"{row['no_face']} without a face", file=sys.stderr)

    result = evaluate_protocol(sequences, tracker_predictor(config), folds, on_sequence=report)
    result["config"] = {"dataset": args.dataset, "root": str(args.root), "model": args.model,
                        "step": args.step, "max_frames": args.max_frames, "backend": args.backend,
                        "smoothing": args.smoothing, "camera": args.camera if args.dataset == "disfa" else None,
                        "partition": None if args.dataset == "disfa" else (args.subjects or args.partition)}
    print(format_protocol_table(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(_jsonable(result), indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main_protocol())
