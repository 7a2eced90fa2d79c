"""Pairs per second of the rig render: the naive loop vs the real one (render-pairs), same run.

    python tests/benchmarks/bench_rig_render.py [--size 128] [--naive 60] [--count 400] [--workers N]
                                          [--no-full]

naive: one process, the full mesh; set the rig's channel properties (drivers pose the bones),
render one image with Workbench, write it and its parameters; scene setup excluded from the time.
real:  ``render_pairs`` with ``workers`` processes (default: one per core), same Workbench
settings (FXAA, no masks, no randomisation), the whole dataset format (atomic writes, chunk
records, fsync, landmarks, final arrays), the mesh level of detail chosen for the size
("auto"). Reported as wall time of the whole command (worker start-up included) and steady
state (pairs after the first chunk of each worker). For scale, the real renderer again with the
full mesh (``--lod full``), unless ``--no-full``. Same image size and anti-aliasing throughout;
``tests/benchmarks/lod_compare.py`` measures how much the LOD changes the images.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]



def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--naive", type=int, default=60, help="pairs for the naive loop (default 60)")
    ap.add_argument("--count", type=int, default=400, help="pairs for the real run (default 400)")
    ap.add_argument("--workers", type=int, default=None, help="default: one per available core")
    ap.add_argument("--aa", default="FXAA")
    ap.add_argument("--no-full", action="store_true", help="skip the real renderer at the full mesh")
    args = ap.parse_args(argv)
    workers = args.workers or len(os.sched_getaffinity(0))
    runs = [("real", "auto")] + ([] if args.no_full else [("real, full mesh", "full")])
    r = measure(args.size, args.naive, args.count, workers, args.aa, [lod for _, lod in runs])
    rig, naive, naive_s, naive_cpu, results = r["rig"], r["naive"], r["naive_s"], r["naive_cpu"], r["real"]
    cores, load0 = r["cores"], r["load_before"]

    load = os.getloadavg()[0]
    print(f"rig render, {args.size} px, Workbench AA {args.aa}, {cores} cores, load average {load0:.1f} before, "
          f"{load:.1f} after (other processes share these cores when it exceeds {cores})")
    print(f"  naive loop          : {naive:6.1f} pairs/s  ({args.naive} pairs in {naive_s:.1f} s, 1 process, "
          f"full mesh {len(rig.vertices)} vertices; {naive_cpu * 1000:.0f} ms CPU per pair)")
    for (name, _), r in zip(runs, results):
        print(f"  {name + ' (LOD ' + str(r['lod']) + ')':20s}: {r['rate']:6.1f} pairs/s  ({args.count} pairs in "
              f"{r['wall']:.1f} s, {workers} workers, start-up included; {r['vertices']} vertices; "
              f"{r['cpu'] * 1000:.0f} ms CPU per pair)")
        print(f"  {'  steady state':20s}: {r['steady']:6.1f} pairs/s  -> ratio real / naive "
              f"{r['rate'] / naive:.2f}x (steady {r['steady'] / naive:.2f}x); dataset verify: "
              f"{'ok' if r['report'].ok else r['report'].summary(3)}")
    main_run = results[0]
    print(f"  ratio real (auto LOD) / naive: {main_run['rate'] / naive:.2f}x; 80,000 pairs would take "
          f"{80000 / main_run['steady'] / 60:.1f} min")
    ok = all(r["report"].ok and r["rendered"] == args.count for r in results)
    return 0 if ok else 1


def measure(size: int = 128, naive_count: int = 60, count: int = 400, workers: int | None = None, aa: str = "FXAA",
            lods=("auto", "full")) -> dict:
    """The naive loop over ``naive_count`` pairs, then ``render_pairs`` of ``count`` pairs once per
    mesh level of detail in ``lods``, in a temporary folder. Returns ``{"naive": pairs/s, "naive_s",
    "naive_cpu": CPU s per pair, "real": [one dict per lod: rate, steady, wall, cpu, lod, vertices,
    report, rendered, count], "rig", "cores", "workers", "load_before"}``."""
    from au2rig.addon.rig_render import render_naive
    from au2rig.core.datasets.pairs import sample_params
    from au2rig.core.rig import load_rig
    from au2rig.core.rig.layout import LAYOUT

    rig = load_rig()
    cores = len(os.sched_getaffinity(0))
    workers = workers or cores
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        params = sample_params(LAYOUT, naive_count, seed=1)
        c0 = _cpu()
        naive_s = render_naive(rig, params, size, Path(tmp) / "naive", aa)
        naive_cpu = (_cpu() - c0) / naive_count
        results = [_real(rig, Path(tmp) / lod, size, count, aa, workers, lod) for lod in lods]
    return {"naive": naive_count / naive_s, "naive_s": naive_s, "naive_cpu": naive_cpu, "real": results,
            "rig": rig, "cores": cores, "workers": workers, "load_before": load0}


def _real(rig, folder, size, count, aa, workers, lod) -> dict:
    from au2rig.addon.rig_render import RenderConfig, render_pairs
    from au2rig.core.datasets.pairs import verify

    marks = []
    config = RenderConfig(output=str(folder), count=count, size=size, seed=2, workers=workers, aa=aa, lod=lod)
    c0 = _cpu()
    t0 = time.perf_counter()
    summary = render_pairs(config, progress=lambda done, total: marks.append((time.perf_counter(), done)))
    wall = time.perf_counter() - t0
    cpu = (_cpu() - c0) / count
    # steady state: from the first progress report past one chunk per worker to the last chunk
    first = next(((t, d) for t, d in marks if d >= workers * config.chunk_size), marks[0])
    last = max((t, d) for t, d in marks if d <= count)
    steady = (last[1] - first[1]) / (last[0] - first[0]) if last[0] > first[0] else count / wall
    render_rig = config.render_rig(rig)
    return {"rate": count / wall, "count": count, "steady": steady, "wall": wall, "cpu": cpu, "lod": render_rig.lod,
            "vertices": len(render_rig.vertices), "report": verify(config.output, rig=rig, images=False),
            "rendered": summary["rendered"]}


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


if __name__ == "__main__":
    sys.exit(main())
