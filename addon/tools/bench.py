"""One bench command: every figure of the project beside what it is compared to, measured in one run.

    au2rig bench [--preset small|full] [-o out/bench]

Rows (each measured in the same run as its comparison):

1. tracker frames/s end to end vs the bare landmark backend (decode + detect) on the same video
   (``tests/benchmarks/bench_tracker.py``);
2. rig-render pairs/s (``render_pairs``, auto LOD) vs the naive one-render-per-pair loop
   (``tests/benchmarks/bench_rig_render.py``);
3. bulk bake time vs per-key ``keyframe_insert`` extrapolated (``tests/benchmarks/bench_bake.py``);
4. estimator ICC / MAE / pose error on held-out rig faces (exact landmarks), with vs without the
   actor's reference frame;
5. synthetic recovery through renders and tracking (``addon.tools.recovery``), tracked vs the rig's
   exact landmarks of the same frames;
6. the image path (generator / image estimator), when it exists.

A row whose part is missing or fails says so ("not available: ...") and the run goes on. The table
is printed and written to ``BENCH.md`` (with ``bench.json``) beside its PNG charts: per-AU ICC and
MAE bars of rows 4 and 5 and the AU curves of one tracked clip.

A development tool of the repository (it imports ``core`` and ``tests/benchmarks/`` directly), so
build_addon.py leaves it out of the extension.
"""
from __future__ import annotations

import importlib.util
import json
import os
import platform
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

# tiny is for the tests only: every row runs, on very little work
PRESETS = {
    "tiny": {"tracker_frames": 20, "tracker_repeat": 1, "naive_pairs": 10, "real_pairs": 20, "bake_frames": 100,
             "bake_naive_frames": 20, "heldout": 200, "actors": 1, "seconds": 1.0, "cycles_actors": 0,
             "cycles_seconds": 0.0, "fps": 15.0},
    "small": {"tracker_frames": None, "tracker_repeat": 3, "naive_pairs": 30, "real_pairs": 160,
              "bake_frames": 10_000, "bake_naive_frames": 200, "heldout": 2000, "actors": 2, "seconds": 3.0,
              "cycles_actors": 1, "cycles_seconds": 1.0, "fps": 15.0},
    "full": {"tracker_frames": None, "tracker_repeat": 3, "naive_pairs": 60, "real_pairs": 400,
             "bake_frames": 10_000, "bake_naive_frames": 200, "heldout": 5000, "actors": 4, "seconds": 4.0,
             "cycles_actors": 1, "cycles_seconds": 4.0, "fps": 15.0},
}
RENDER_SIZE = 128


class Unavailable(Exception):
    """A part the row needs is not there (not a failure): the row reads "not available (reason)"."""


@dataclass
class Row:
    name: str
    figure: str
    comparison: str = ""
    ratio: str = ""
    seconds: float = float("nan")
    ok: bool = True
    extra: dict = field(default_factory=dict, repr=False)  # numbers for charts and bench.json


def unavailable_text(exc: BaseException) -> str:
    if isinstance(exc, Unavailable):
        return f"not available ({exc})"
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"not available: {type(exc).__name__}" + (f": {reason}" if reason else "")


def run_row(name: str, fn, *args, log=None, **kwargs) -> Row:
    """``fn(*args, **kwargs)`` returns a :class:`Row` (its name is set here); any exception becomes a
    row that says "not available" with the reason, so the bench runs to the end."""
    start = time.perf_counter()
    try:
        row = fn(*args, **kwargs)
        row.name = name
    except Exception as exc:  # noqa: BLE001 - one failing row must not end the bench
        if log is not None and not isinstance(exc, Unavailable):
            log(f"[bench] {name} failed:\n{traceback.format_exc()}")
        row = Row(name, unavailable_text(exc), ok=False)
    row.seconds = time.perf_counter() - start
    return row


# ----------------------------------------------------------------------------------------- formatting

HEADERS = ("row", "figure", "compared to (same run)", "ratio / note", "time")


def _cells(row: Row) -> tuple[str, ...]:
    t = "" if not np.isfinite(row.seconds) else f"{row.seconds:.0f} s" if row.seconds >= 10 else f"{row.seconds:.1f} s"
    return row.name, row.figure, row.comparison, row.ratio, t


TEXT_WIDTHS = (20, 46, 46, 28, 6)  # wrap longer cells onto more lines


def format_table(rows: list[Row], widths=TEXT_WIDTHS) -> str:
    """Fixed-width text table; long cells wrap onto continuation lines; a rule between rows."""
    import textwrap

    cells = [HEADERS] + [_cells(r) for r in rows]
    wrapped = [[textwrap.wrap(v, w, break_on_hyphens=False) or [""] for v, w in zip(c, widths)] for c in cells]
    cols = [max(len(line) for c in wrapped for line in c[i]) for i in range(len(HEADERS))]
    rule = "  ".join("-" * w for w in cols)
    lines = []
    for k, c in enumerate(wrapped):
        for j in range(max(len(parts) for parts in c)):
            lines.append("  ".join((parts[j] if j < len(parts) else "").ljust(w)
                                   for parts, w in zip(c, cols)).rstrip())
        lines.append(rule)
    return "\n".join(lines[:-1])


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def format_markdown(rows: list[Row], title: str = "au2rig bench", notes=(), charts=()) -> str:
    """Markdown: a title, notes (bullets), the table, links to the charts (``(caption, file)``)."""
    lines = [f"# {title}", ""]
    lines += [f"- {n}" for n in notes]
    if notes:
        lines.append("")
    lines.append("| " + " | ".join(HEADERS) + " |")
    lines.append("|" + "|".join("---" for _ in HEADERS) + "|")
    lines += ["| " + " | ".join(_md(c) for c in _cells(r)) + " |" for r in rows]
    if charts:
        lines += ["", "## Charts", ""]
        for caption, name in charts:
            lines += [f"### {caption}", "", f"![{caption}]({name})", ""]
    return "\n".join(lines).rstrip() + "\n"


def _mean_pose(report: dict) -> float:
    return float(np.nanmean(list(report["pose_mae_deg"].values())))


def _quality(report: dict) -> str:
    m = report["mean"]
    return f"ICC {m['icc']:.3f}, MAE {m['mae']:.3f}, pose {_mean_pose(report):.2f} deg"


# --------------------------------------------------------------------------------------------- rows

def _script(name: str):
    """A tests/benchmarks/ script as a module (its measuring functions), loaded by path."""
    path = ROOT / "tests" / "benchmarks" / f"{name}.py"
    if not path.is_file():
        raise Unavailable(f"{path.relative_to(ROOT)} missing")
    module_name = f"_au2rig_bench_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def row_tracker(p: dict, state: dict, out_dir: Path) -> Row:
    bt = _script("bench_tracker")
    video = bt.default_video()
    if video is None:  # a fresh machine: make the embedded default clip (what `make demo` tracks)
        from .. import demo
        from .._core import load_rig, scripted_performance

        video = demo.render_clip(load_rig(), scripted_performance(30.0), out_dir / "demo_clip.mp4",
                                 progress=False)
    r = bt.measure(video, p["tracker_repeat"], p["tracker_frames"])
    state["tracker"] = r
    fps = r["fps"]
    track, bare, alone = fps["tracker end to end"], fps["decode + backend"], fps["backend alone"]
    info = r["info"]
    reference = fps.get("reference")
    versus = (f"; MediaPipe's FaceLandmarker (../shared/reference) {reference:.0f} frames/s" if reference
              else "; the reference tracker (../shared/reference) is not here")
    ratio = f"{track / bare:.2f}x the bare backend" + (
        f"; {track / reference:.2f}x the reference (goal >= 0.7)" if reference else "")
    return Row("", f"tracker {track:.0f} frames/s end to end (its start-up and the actor's range-of-motion fit "
                   f"included)",
               f"bare backend {bare:.0f} frames/s (decode + detect), {alone:.0f} detect only{versus}; "
               f"{Path(video).name} {info['width']}x{info['height']}, {r['frames']} frames, best of {r['repeat']}",
               ratio, extra={"fps": fps, "video": str(video)})


def row_render(p: dict, state: dict) -> Row:
    br = _script("bench_rig_render")
    r = br.measure(RENDER_SIZE, p["naive_pairs"], p["real_pairs"], None, "FXAA", ("auto",))
    real = r["real"][0]
    note = f"{real['rate'] / r['naive']:.2f}x (steady {real['steady'] / r['naive']:.2f}x)"
    if not real["report"].ok:
        note += "; dataset verify FAILED"
    state["render_steady"] = real["steady"]
    return Row("", f"render-pairs {real['rate']:.1f} pairs/s at {RENDER_SIZE} px ({real['count']} pairs, "
                   f"{r['workers']} workers, LOD {real['lod']}, start-up included; steady {real['steady']:.1f})",
               f"naive loop {r['naive']:.1f} pairs/s ({p['naive_pairs']} pairs, 1 process, full mesh)", note,
               extra={"naive": r["naive"], "rate": real["rate"], "steady": real["steady"]})


def row_bake(p: dict, state: dict) -> Row:
    bb = _script("bench_bake")
    r = bb.measure(p["bake_frames"], p["bake_naive_frames"])
    return Row("", f"bulk bake {r['frames']:,} frames x {r['channels']} channels in {r['bulk_s']:.2f} s "
                   f"({1e6 * r['bulk_s'] / r['frames']:.0f} ms per 1,000 frames)",
               f"keyframe_insert {r['extrapolated_s']:.1f} s (extrapolated from {r['naive_frames']} frames, "
               f"a lower bound)", f"{r['ratio']:.0f}x faster (at least)",
               extra={k: v for k, v in r.items()})


def row_estimator(p: dict, state: dict) -> Row:
    from au2rig.core.evaluation.metrics import au_report
    from au2rig.core.tracking.estimator import DEFAULT_ONNX, OnnxEstimator
    from au2rig.core.training.train_landmarks import heldout_set

    params, landmarks, reference = heldout_set(p["heldout"], 12345)
    est = OnnxEstimator(DEFAULT_ONNX)
    with_ref = au_report(est(landmarks, reference), params)
    without = au_report(est(landmarks), params)
    state["estimator"] = {"with reference": with_ref, "no reference": without}
    d_icc = with_ref["mean"]["icc"] - without["mean"]["icc"]
    d_mae = with_ref["mean"]["mae"] - without["mean"]["mae"]
    return Row("", f"{p['heldout']} held-out rig faces, exact landmarks, with the actor's reference frame: "
                   f"{_quality(with_ref)}",
               f"without reference: {_quality(without)}", f"ICC {d_icc:+.3f}, MAE {d_mae:+.3f}",
               extra={"with_reference": with_ref["mean"], "no_reference": without["mean"]})


def _recovery_row(r: dict, engine: str, seconds: float) -> Row:
    t, e = r["tracked"], r["exact"]
    ratio = t["mean"]["icc"] / e["mean"]["icc"] if e["mean"]["icc"] else float("nan")
    return Row("", f"{engine}: {r['actors']} actor(s) x {seconds:g} s, {r['frames']} frames tracked from renders: "
                   f"{_quality(t)}",
               f"exact landmarks, same frames: {_quality(e)}",
               f"tracked keeps {ratio:.2f} of the exact ICC; MAE {t['mean']['mae'] - e['mean']['mae']:+.3f}",
               extra={"tracked": t["mean"], "exact": e["mean"]})


def row_recovery(p: dict, state: dict, out_dir: Path, engine: str, progress: bool) -> Row:
    from .recovery import run_recovery

    actors, seconds = (p["actors"], p["seconds"]) if engine == "workbench" else (p["cycles_actors"],
                                                                                 p["cycles_seconds"])
    if actors <= 0 or seconds <= 0:
        raise Unavailable(f"preset has no {engine} actor")
    result = run_recovery(out_dir / "recovery", actors if engine == "workbench" else 0,
                          actors if engine == "cycles" else 0, seconds, p["fps"], progress=progress)
    state.setdefault("recovery", {}).update(result)
    return _recovery_row(result[engine], engine, seconds)


GENERATOR_PT = ROOT / "core" / "models" / "generator.pt"  # the trained G the project ships


def row_image_path(p: dict, state: dict) -> Row:
    """The image path: the shipped G's images/s (torch, CPU) against the rig's own render speed
    (row 2), and F_seg + R faces/s through ONNX Runtime (the architecture's speed)."""
    if not GENERATOR_PT.is_file():
        raise Unavailable(f"image path not built: no trained generator at {GENERATOR_PT}")
    import tempfile
    import time

    import torch

    from au2rig.core.nets.face_parser import FaceParser
    from au2rig.core.nets.generator import load_generator
    from au2rig.core.nets.regressor import Regressor, RegressorConfig, region_channels
    from au2rig.core.tracking.estimator import OnnxImageEstimator
    from au2rig.core.training.chain import LossWeights, Objective, RenderChain
    from au2rig.core.training.image_estimator import export_image_estimator

    from .._core import LAYOUT, load_rig

    g, _ = load_generator(GENERATOR_PT)
    x = torch.from_numpy(LAYOUT.neutral(32).astype(np.float32))
    with torch.no_grad():
        g(x)
        start = time.perf_counter()
        for _ in range(3):
            g(x)
    g_rate = 3 * len(x) / (time.perf_counter() - start)
    parser = FaceParser(19)
    chain = RenderChain(g, parser, load_rig())
    r = Regressor(region_channels(parser), RegressorConfig(crop_size=chain.size))
    with tempfile.TemporaryDirectory() as tmp:
        path, _ = export_image_estimator(Objective(chain, r, None, LossWeights(identity=0.0)), Path(tmp) / "m.onnx")
        est = OnnxImageEstimator(path, threads=2)
        crops = np.random.default_rng(0).integers(0, 255, (64, chain.size, chain.size, 3), dtype=np.uint8)
        est(crops[:8])
        start = time.perf_counter()
        est(crops)
        e_rate = len(crops) / (time.perf_counter() - start)
    render = state.get("render_steady")
    comparison = (f"the rig rendered by Workbench: {render:.1f} pairs/s (row 2, steady)" if render
                  else "the rig rendered by Workbench: see row 2")
    ratio = f"G {g_rate / render:.2g}x the renderer" if render else ""
    return Row("", f"G {g_rate:.0f} images/s at {g.cfg.resolution} px (torch, CPU, batch 32); F_seg + R "
                   f"{e_rate:.0f} faces/s ({chain.size} px crops, ONNX Runtime, 2 threads, batch 64)",
               comparison, ratio, extra={"generator_rate": g_rate, "estimator_rate": e_rate})


# ------------------------------------------------------------------------------------------- charts

def bar_chart(path, title: str, codes, series: dict, panels=(("ICC(3,1)", "icc", -0.2, 1.0),
                                                              ("MAE (FACS 0-5)", "mae", 0.0, None))) -> Path:
    """Grouped per-AU bars drawn with OpenCV. ``series``: label -> ``au_report`` result; one panel
    per ``(caption, key, lo, hi)`` (``hi`` None: from the data)."""
    import cv2

    from au2rig.core.tracking.overlay import write_image

    colors = [(200, 110, 30), (60, 160, 250), (80, 170, 60), (150, 60, 200)]
    names = list(series)
    n, k = len(codes), len(names)
    bar = max(6, min(14, 48 // max(k, 1)))
    group = bar * k + 12
    left, right, panel_h, gap = 70, 20, 230, 64
    width = max(left + right + group * n, 900)
    font = cv2.FONT_HERSHEY_SIMPLEX
    legend, x, y = [], left, 40  # (x, y, label) per series, wrapped to the width
    for name in names:
        m = series[name]["mean"]
        label = f"{name} (mean ICC {m['icc']:.2f}, MAE {m['mae']:.2f})"
        w = 30 + cv2.getTextSize(label, font, 0.45, 1)[0][0]
        if x > left and x + w > width - right:
            x, y = left, y + 20
        legend.append((x, y, label))
        x += w
    top = y + 44
    height = top + len(panels) * (panel_h + gap) - 30
    img = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(img, title, (10, 22), font, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    for c, (x, y, label) in enumerate(legend):
        cv2.rectangle(img, (x, y - 6), (x + 14, y + 6), colors[c % len(colors)], -1)
        cv2.putText(img, label, (x + 20, y + 5), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for j, (caption, key, lo, hi) in enumerate(panels):
        vals = np.array([[series[s]["per_au"][f"AU{c:02d}"][key] for c in codes] for s in names], float)
        if hi is None:
            finite = vals[np.isfinite(vals)]
            hi = max(0.5, float(np.ceil(finite.max() * 2) / 2)) if finite.size else 1.0
        step = 0.2 if hi - lo <= 1.2 else 0.25 if hi - lo <= 2 else 0.5
        y0 = top + j * (panel_h + gap)
        y1 = y0 + panel_h

        def ypix(v):
            return int(round(y1 - (np.clip(v, lo, hi) - lo) / (hi - lo) * panel_h))

        cv2.putText(img, caption, (10, y0 - 8), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for tick in np.arange(lo, hi + step / 2, step).round(6) + 0.0:
            yt = ypix(tick)
            cv2.line(img, (left - 4, yt), (width - right, yt), (225, 225, 225), 1)
            cv2.putText(img, f"{tick:.2f}", (18, yt + 4), font, 0.38, (60, 60, 60), 1, cv2.LINE_AA)
        y_zero = ypix(0.0)
        cv2.line(img, (left - 4, y_zero), (width - right, y_zero), (90, 90, 90), 1)
        for i, code in enumerate(codes):
            gx = left + i * group + 6
            for s in range(k):
                v = vals[s, i]
                xs = gx + s * bar
                if not np.isfinite(v):
                    cv2.putText(img, "-", (xs + 1, y_zero - 3), font, 0.35, (0, 0, 200), 1, cv2.LINE_AA)
                    continue
                yv = ypix(v)
                cv2.rectangle(img, (xs, min(yv, y_zero)), (xs + bar - 2, max(yv, y_zero)), colors[s % len(colors)], -1)
            label = f"AU{code:02d}"
            tw = cv2.getTextSize(label, font, 0.38, 1)[0][0]
            cv2.putText(img, label, (gx + (bar * k - tw) // 2, y1 + 16), font, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return write_image(Path(path), img)


def make_charts(out_dir: Path, state: dict, log=print) -> list[tuple[str, str]]:
    """PNG charts beside BENCH.md from what the rows left in ``state``; ``(caption, file name)``."""
    charts = []

    def attempt(caption, name, fn):
        try:
            fn(out_dir / name)
            charts.append((caption, name))
        except Exception as exc:  # noqa: BLE001 - a chart that cannot be drawn is reported, not fatal
            log(f"[bench] chart {name} not drawn: {unavailable_text(exc)}")

    est = state.get("estimator")
    if est:
        codes = next(iter(est.values()))["codes"]
        attempt("Estimator on held-out rig faces: per-AU ICC and MAE, with vs without the reference frame",
                "estimator_per_au.png",
                lambda p: bar_chart(p, "Estimator on held-out rig faces (exact landmarks)", codes, est))
    rec = state.get("recovery")
    if rec:
        series = {}
        for engine, r in rec.items():
            series[f"{engine} tracked"] = r["tracked"]
        for engine, r in rec.items():
            series[f"{engine} exact landmarks"] = r["exact"]
        codes = next(iter(series.values()))["codes"]
        attempt("Synthetic recovery: per-AU ICC and MAE, tracked from renders vs exact landmarks",
                "recovery_per_au.png",
                lambda p: bar_chart(p, "Synthetic recovery (held-out actors rendered, then tracked)", codes, series))
    clip = None
    for engine in ("workbench", "cycles"):
        if rec and engine in rec and rec[engine].get("clips"):
            clip = rec[engine]["clips"][0]
            caption = f"AU intensity over time, {engine} recovery actor {Path(clip['clip']).name} (grey: truth)"
            break
    if clip is None and state.get("tracker", {}).get("tracking") is not None:
        clip = {"tracking": state["tracker"]["tracking"], "truth": None}
        caption = f"AU intensity over time, {Path(state['tracker']['video']).name} (tracked)"
    if clip is not None:
        from au2rig.core.tracking.overlay import plot_curves

        attempt(caption, "au_curves.png", lambda p: plot_curves(clip["tracking"], p, truth=clip["truth"]))
    return charts


# ---------------------------------------------------------------------------------------------- run

ROW_NAMES = ("1 tracker speed", "2 rig render speed", "3 bake speed", "4 estimator, held-out rig faces",
             "5a recovery, Workbench", "5b recovery, Cycles", "6 image path")


def run_bench(out_dir, preset: str = "small", progress: bool = True, log=None) -> dict:
    """Measure every row, write BENCH.md, bench.json and the charts into ``out_dir``; returns
    ``{"rows", "table", "markdown", "path", "seconds", "charts"}``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; one of {', '.join(PRESETS)}")
    log = log or (lambda text: print(text, file=sys.stderr))
    p = PRESETS[preset]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state: dict = {}
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    start = time.perf_counter()
    plan = [(ROW_NAMES[0], row_tracker, (out_dir,)), (ROW_NAMES[1], row_render, ()), (ROW_NAMES[2], row_bake, ()),
            (ROW_NAMES[3], row_estimator, ()), (ROW_NAMES[4], row_recovery, (out_dir, "workbench", progress)),
            (ROW_NAMES[5], row_recovery, (out_dir, "cycles", progress)), (ROW_NAMES[6], row_image_path, ())]
    rows = []
    for name, fn, extra in plan:
        log(f"[bench] {name} ...")
        row = run_row(name, fn, p, state, *extra, log=log)
        log(f"[bench] {name}: {row.figure} ({row.seconds:.1f} s)")
        rows.append(row)
    charts = make_charts(out_dir, state, log)
    seconds = time.perf_counter() - start
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        import bpy

        blender = bpy.app.version_string
    except ImportError:
        blender = "not importable"
    notes = [f"preset `{preset}`: " + ", ".join(f"{k} {v}" for k, v in p.items()),
             f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.node() or 'host'}, {cores} cores, "
             f"load average {load0:.1f} before / {load1:.1f} after (above {cores}, other processes share the cores "
             f"and speed figures are noisy), Python {platform.python_version()}, Blender {blender}",
             f"whole bench {seconds:.0f} s; each speed figure is a ratio to its comparison measured in this run",
             f"recovery clips are cached by content in `{out_dir / 'recovery'}`: a rerun tracks them again without "
             "rendering (rows 5a/5b then take seconds)",
             "command: `au2rig bench --preset " + preset + "`"]
    table = format_table(rows)
    markdown = format_markdown(rows, f"au2rig bench ({preset})", notes, charts)
    path = out_dir / "BENCH.md"
    from au2rig.core.util.atomic import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(markdown)
    with atomic_path(out_dir / "bench.json") as tmp:
        Path(tmp).write_text(json.dumps({"preset": preset, "settings": p, "seconds": seconds, "notes": notes,
                                         "rows": [asdict(r) for r in rows]}, indent=1, default=_json_default))
    return {"rows": rows, "table": table, "markdown": markdown, "path": path, "seconds": seconds,
            "charts": [out_dir / name for _, name in charts]}


def _json_default(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def main(out_dir, preset: str = "small", progress: bool = True) -> int:
    result = run_bench(out_dir, preset, progress)
    print(result["table"])
    print(f"\nwritten {result['path']} ({result['seconds']:.0f} s)", file=sys.stderr)
    for chart in result["charts"]:
        print(f"  {chart}", file=sys.stderr)
    return 0
