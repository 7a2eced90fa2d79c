"""Agreement between predicted and true parameters: ICC(3,1), MAE, Pearson r, pose error.

All functions are pure numpy. Columns are independent: an (n, m) input gives m results.

Undefined values are ``nan``, never an exception:

* :func:`icc31` is ``nan`` when both raters are constant over the targets of a column
  (BMS + EMS == 0: no variance to agree on) or when there are fewer than 2 targets.
  One constant rater against a varying one is defined and gives 0.
* :func:`pearson` is ``nan`` when either column is constant or has fewer than 2 rows.
* Means over AUs in :func:`au_report` skip ``nan`` AUs (``np.nanmean``) and say how many
  AUs went into each mean (``report["mean"]["n_icc"]`` ...); a mean over no AU is ``nan``.
  This is how an AU that never occurs in a test set (truth and prediction both constant 0)
  is left out of the paper-style average instead of turning it into ``nan``.
"""
from __future__ import annotations

import numpy as np

from ..rig.layout import FACS_SCALE, LAYOUT, ParameterLayout

POSE_AXES = ("yaw", "pitch", "roll")


def _pair(a, b, what: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """Both as float (n, m); True when the inputs were 1-D."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"{what}: shapes differ, {x.shape} vs {y.shape}")
    if x.ndim not in (1, 2):
        raise ValueError(f"{what}: expected (n,) or (n, m) arrays, got shape {x.shape}")
    flat = x.ndim == 1
    x, y = (x[:, None], y[:, None]) if flat else (x, y)
    for name, arr in (("a", x), ("b", y)):
        bad = ~np.isfinite(arr)
        if bad.any():
            row, col = (int(v) for v in np.argwhere(bad)[0])
            raise ValueError(f"{what}: {name}[row {row}, column {col}] is not finite")
    return x, y, flat


def _out(v: np.ndarray, flat: bool):
    return float(v[0]) if flat else v


def icc31(a, b) -> float | np.ndarray:
    """ICC(3,1) of Shrout & Fleiss (1979): two-way mixed, consistency, single rater.

    ``a`` and ``b`` are the two raters (k = 2), rows the n targets (frames). With the grand
    mean g, row means r_i, column means c_j:

    BMS = k * sum_i (r_i - g)^2 / (n - 1)                      (between targets)
    EMS = sum_ij (x_ij - r_i - c_j + g)^2 / ((n - 1)(k - 1))    (residual)
    ICC(3,1) = (BMS - EMS) / (BMS + (k - 1) EMS)

    A constant offset between the raters only moves the column means, so it does not change
    the result (consistency, not absolute agreement). (n,) inputs give a float, (n, m)
    inputs one value per column. ``nan`` where undefined (see the module doc).
    """
    x, y, flat = _pair(a, b, "icc31")
    n, k = x.shape[0], 2
    if n < 2:
        return _out(np.full(x.shape[1], np.nan), flat)
    data = np.stack([x, y], axis=1)  # (n, k, m)
    grand = data.mean(axis=(0, 1))
    rows = data.mean(axis=1)  # (n, m)
    cols = data.mean(axis=0)  # (k, m)
    bms = k * ((rows - grand) ** 2).sum(0) / (n - 1)
    resid = data - rows[:, None] - cols[None] + grand
    ems = (resid ** 2).sum(axis=(0, 1)) / ((n - 1) * (k - 1))
    denom = bms + (k - 1) * ems
    both_constant = (np.ptp(x, axis=0) == 0) & (np.ptp(y, axis=0) == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        icc = np.where(both_constant | (denom <= 0), np.nan, (bms - ems) / denom)
    return _out(icc, flat)


def mae(a, b) -> float | np.ndarray:
    """Mean absolute error per column (a float for (n,) inputs; nan for 0 rows)."""
    x, y, flat = _pair(a, b, "mae")
    if x.shape[0] == 0:
        return _out(np.full(x.shape[1], np.nan), flat)
    return _out(np.abs(x - y).mean(0), flat)


def pearson(a, b) -> float | np.ndarray:
    """Pearson correlation per column; nan where a column is constant or has < 2 rows."""
    x, y, flat = _pair(a, b, "pearson")
    if x.shape[0] < 2:
        return _out(np.full(x.shape[1], np.nan), flat)
    dx = x - x.mean(0)
    dy = y - y.mean(0)
    sx = np.sqrt((dx ** 2).sum(0))
    sy = np.sqrt((dy ** 2).sum(0))
    constant = (np.ptp(x, axis=0) == 0) | (np.ptp(y, axis=0) == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(constant, np.nan, (dx * dy).sum(0) / (sx * sy))
    return _out(np.clip(r, -1.0, 1.0), flat)


def _finite_rows(*blocks: np.ndarray) -> np.ndarray:
    keep = np.ones(blocks[0].shape[0], bool)
    for blk in blocks:
        keep &= np.isfinite(blk).all(axis=1)
    return keep


def au_report(pred_params, true_params, layout: ParameterLayout = LAYOUT,
              codes=None) -> dict:
    """Per-AU ICC(3,1), MAE and Pearson r on the FACS 0..5 scale, their means, pose MAE.

    ``pred_params`` and ``true_params`` are (N, len(layout)) parameter vectors. AU channels
    are mapped to FACS codes with ``layout.eval_matrix(codes)`` (left/right as their mean,
    AU43 also as AU45) and multiplied by ``FACS_SCALE``. ``codes`` restricts the report to a
    dataset's AUs (e.g. DISFA's 12); default: every code of ``layout.eval_codes()``.

    Frames where either side has a non-finite AU value (no face) are left out of the AU
    metrics; frames where either side has a non-finite pose are left out of the pose MAE
    (so a ground truth without pose, all NaN, gives nan pose errors). Means over AUs skip
    nan values ("as in the paper's Table 1": an unweighted mean over AUs).

    Returns ``{"codes", "per_au": {"AU01": {"icc", "mae", "pearson"}, ...},
    "mean": {"icc", "mae", "pearson", "n_icc", "n_mae", "n_pearson"},
    "pose_mae_deg": {"yaw", "pitch", "roll"}, "n_frames", "n_au_frames", "n_pose_frames"}``.
    """
    pred = np.asarray(pred_params, dtype=np.float64)
    true = np.asarray(true_params, dtype=np.float64)
    width = len(layout)
    for name, arr in (("pred_params", pred), ("true_params", true)):
        if arr.ndim != 2 or arr.shape[1] != width:
            raise ValueError(f"au_report: {name} must be (N, {width}) for layout "
                             f"{layout.version}, got shape {arr.shape}")
    if pred.shape[0] != true.shape[0]:
        raise ValueError(f"au_report: pred_params has {pred.shape[0]} frames, "
                         f"true_params {true.shape[0]}")
    codes = layout.eval_codes() if codes is None else tuple(int(c) for c in codes)
    m = layout.eval_matrix(codes) * FACS_SCALE
    au = layout.group_slice("au")
    pose = layout.group_slice("pose")

    keep = _finite_rows(pred[:, au], true[:, au])
    fp, ft = pred[keep, au] @ m.T, true[keep, au] @ m.T
    icc, err, r = icc31(fp, ft), mae(fp, ft), pearson(fp, ft)
    per_au = {f"AU{c:02d}": {"icc": float(icc[i]), "mae": float(err[i]), "pearson": float(r[i])}
              for i, c in enumerate(codes)}

    def nanmean(v: np.ndarray) -> float:
        ok = np.isfinite(v)
        return float(v[ok].mean()) if ok.any() else float("nan")

    mean = {"icc": nanmean(icc), "mae": nanmean(err), "pearson": nanmean(r),
            "n_icc": int(np.isfinite(icc).sum()), "n_mae": int(np.isfinite(err).sum()),
            "n_pearson": int(np.isfinite(r).sum())}

    keep_pose = _finite_rows(pred[:, pose], true[:, pose])
    pose_err = mae(pred[keep_pose, pose], true[keep_pose, pose])
    return {"codes": list(codes), "per_au": per_au, "mean": mean,
            "pose_mae_deg": {ax: float(pose_err[i]) for i, ax in enumerate(POSE_AXES)},
            "n_frames": int(pred.shape[0]), "n_au_frames": int(keep.sum()),
            "n_pose_frames": int(keep_pose.sum())}


def _num(v: float, width: int = 8) -> str:
    return f"{'nan':>{width}}" if not np.isfinite(v) else f"{v:>{width}.3f}"


def format_report(report: dict) -> str:
    """A fixed-width table of :func:`au_report`'s result, one AU per line, then the means."""
    head = f"{'AU':<6}{'ICC':>8}{'MAE':>8}{'r':>8}"
    lines = [head, "-" * len(head)]
    for name, row in report["per_au"].items():
        lines.append(f"{name:<6}{_num(row['icc'])}{_num(row['mae'])}{_num(row['pearson'])}")
    mean = report["mean"]
    lines.append("-" * len(head))
    lines.append(f"{'mean':<6}{_num(mean['icc'])}{_num(mean['mae'])}{_num(mean['pearson'])}")
    pose = report["pose_mae_deg"]
    lines.append("pose MAE (deg): " + "  ".join(f"{ax} {_num(pose[ax], 0).strip()}"
                                                for ax in POSE_AXES))
    lines.append(f"frames: {report['n_frames']} (AU metrics on {report['n_au_frames']}, "
                 f"pose on {report['n_pose_frames']}); means over "
                 f"{mean['n_icc']}/{len(report['per_au'])} AUs with a defined ICC")
    return "\n".join(lines)


MIN_COSINE = 0.1  # a change less aligned with the rig's than this points nowhere


def change_match(generated, rendered) -> dict:
    """How recognisable G's changes are: ``generated`` and ``rendered`` (N, ...) hold, for N
    items (e.g. one AU each at full intensity), G's image and the rig's render of each item minus
    the same of a common reference (the neutral face). Item i counts as recognised when G's
    change is closer in direction (cosine) to the rig's change of item i than to that of any
    other item; a change that points nowhere (zero, or no closer than :data:`MIN_COSINE`: a G
    that draws something else there, whatever few pixels of it correlate) is never recognised.
    Returns ``{"recognised": count, "count": N, "cosine": mean matching cosine, "best": per item
    the index of the closest render}``; chance is 1 in N."""
    g = np.asarray(generated, np.float64).reshape(len(generated), -1)
    r = np.asarray(rendered, np.float64).reshape(len(rendered), -1)
    if g.shape != r.shape:
        raise ValueError(f"generated {g.shape} and rendered {r.shape} differ in shape")
    g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    r = r / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-12)
    cos = g @ r.T
    best = cos.argmax(1)
    hit = (best == np.arange(len(g))) & (np.diag(cos) >= MIN_COSINE)
    return {"recognised": int(hit.sum()), "count": len(g),
            "cosine": float(np.diag(cos).mean()), "best": best.tolist(), "hit": hit.tolist()}
