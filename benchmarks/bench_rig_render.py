"""Pairs per second of the rig render: the naive loop vs the real one (render-pairs), same run.

    python benchmarks/bench_rig_render.py [--size 128] [--naive 60] [--count 400] [--workers N]

naive: one process; set the rig's channel properties (drivers pose the bones), render one
image with Workbench, write it and its parameters; scene setup excluded from the time.
real:  ``render_pairs`` with ``workers`` processes (default: one per core), same Workbench
settings (FXAA, no masks, no randomisation), the whole dataset format (atomic writes, chunk
records, fsync, landmarks, final arrays). Reported twice: wall time of the whole command
(worker start-up included) and steady state (pairs after the first chunk of each worker).
Both use the same images size and anti-aliasing, so the ratio is like for like.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))



def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--naive", type=int, default=60, help="pairs for the naive loop (default 60)")
    ap.add_argument("--count", type=int, default=400, help="pairs for the real run (default 400)")
    ap.add_argument("--workers", type=int, default=None, help="default: one per available core")
    ap.add_argument("--aa", default="FXAA")
    args = ap.parse_args(argv)
    workers = args.workers or len(os.sched_getaffinity(0))

    from addon.rig_render import RenderConfig, render_naive, render_pairs
    from core.layout import LAYOUT
    from core.pairs import sample_params, verify
    from core.rig import load_rig

    rig = load_rig()
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        params = sample_params(LAYOUT, args.naive, seed=1)
        c0 = _cpu()
        naive_s = render_naive(rig, params, args.size, Path(tmp) / "naive", args.aa)
        naive = args.naive / naive_s
        naive_cpu = (_cpu() - c0) / args.naive

        marks = []
        config = RenderConfig(output=str(Path(tmp) / "real"), count=args.count, size=args.size, seed=2,
                              workers=workers, aa=args.aa)
        c0 = _cpu()
        t0 = time.perf_counter()
        summary = render_pairs(config, progress=lambda done, total: marks.append((time.perf_counter(), done)))
        wall = time.perf_counter() - t0
        real_cpu = (_cpu() - c0) / args.count
        real = args.count / wall
        # steady state: from the first progress report past one chunk per worker to the last chunk
        first = next((t, d) for t, d in marks if d >= workers * config.chunk_size)
        last = max((t, d) for t, d in marks if d <= args.count and d > first[1])
        steady = (last[1] - first[1]) / (last[0] - first[0])
        report = verify(config.output, rig=rig, images=False)

    load = os.getloadavg()[0]
    print(f"rig render, {args.size} px, Workbench AA {args.aa}, {cores} cores, load average {load:.1f} "
          f"(other processes share these cores when it exceeds {cores})")
    print(f"  naive loop : {naive:6.1f} pairs/s  ({args.naive} pairs in {naive_s:.1f} s, 1 process)")
    print(f"  real       : {real:6.1f} pairs/s  ({args.count} pairs in {wall:.1f} s, {workers} workers, "
          f"start-up included)")
    print(f"  real steady: {steady:6.1f} pairs/s")
    print(f"  ratio real / naive: {real / naive:.2f}x (steady {steady / naive:.2f}x)")
    print(f"  CPU time per pair: naive {naive_cpu * 1000:.0f} ms, real {real_cpu * 1000:.0f} ms "
          f"(start-up included) -> on {cores} idle cores at most {naive_cpu and 1 / naive_cpu:.1f} (naive, "
          f"one process) and {cores / real_cpu:.1f} (real) pairs/s")
    print(f"  80,000 pairs would take {80000 / steady / 60:.1f} min; dataset verify: "
          f"{'ok' if report.ok else report.summary(3)}")
    return 0 if report.ok and summary["rendered"] == args.count else 1


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


if __name__ == "__main__":
    sys.exit(main())
