"""Bake speed: bulk keys (addon.bake.bake_action) vs one keyframe_insert per key, same rig, same run.

    python tests/benchmarks/bench_bake.py [--frames 10000] [--naive-frames 200]

Builds the BDFM, bakes ``--frames`` frames onto all 99 channel properties with
``bake_action`` (goal: under 3 s for 10,000 frames), then keys ``--naive-frames`` frames the
per-key way (``addon.demo.key_performance``: set the property, ``keyframe_insert``) and
extrapolates that linearly to ``--frames``. The per-key way gets slower per key as curves
grow (Blender 5.0.1: ~37k keys/s at 200 frames, ~10k keys/s at 1,000), so the linear
extrapolation is a lower bound of its time and the printed ratio a lower bound too.

Then the re-bake of a tracking kept in the .blend, what a changed gain or smoothing costs: through
the operator (``bpy.ops.au2rig.rebake``) and as the Face Capture panel's sliders run it on each
change (``addon.animate.rebake``, without the operator's scene updates): ``--frames`` frames of
every layout channel, with One Euro smoothing and a gain, on the BDFM and (``--rigify``;
generating the rig takes ~10 s) on a Rigify face through its retarget map; five times each.
Goal: under 0.5 s each.
"""
from __future__ import annotations

import argparse
import sys
import time

import bpy
import numpy as np

from au2rig.addon.bake import Curve, action_fcurves, bake_action
from au2rig.addon.rig_builder import build_rig
from au2rig.core.animation.keyframes import GROUP_LABELS
from au2rig.core.rig import load_rig
from au2rig.core.rig.layout import LAYOUT


def random_params(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(LAYOUT.lo, LAYOUT.hi, (n, len(LAYOUT)))


def insert_per_key(arm, params: np.ndarray) -> int:
    """The per-key way, for scale: set each property and ``keyframe_insert`` it, frame by frame."""
    keys = 0
    for frame, p in enumerate(params, start=1):
        for i, name in enumerate(LAYOUT.names):
            arm[name] = float(p[i])
            arm.keyframe_insert(data_path=f'["{name}"]', frame=frame)
            keys += 1
    return keys


def measure(frames: int = 10_000, naive_frames: int = 200) -> dict:
    """Build the BDFM in a fresh scene, bake ``frames`` frames in bulk, key ``naive_frames`` the
    per-key way. Returns ``{"frames", "channels", "keys", "bulk_s", "naive_frames", "naive_keys",
    "naive_s", "naive_rate": keys/s, "extrapolated_s", "ratio"}``."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    rig = load_rig()
    arm, _ = build_rig(rig)
    channels = len(LAYOUT)

    params = random_params(frames)
    times = np.arange(1, frames + 1, dtype=np.float64)
    t0 = time.perf_counter()
    curves = [Curve(f'["{name}"]', params[:, i], group=GROUP_LABELS[LAYOUT.channels[i].group])
              for i, name in enumerate(LAYOUT.names)]
    action = bake_action(arm, "bench_bulk", times, curves)
    bulk = time.perf_counter() - t0
    keys = sum(len(fc.keyframe_points) for fc in action_fcurves(action))
    assert keys == frames * channels, keys

    arm.animation_data.action = None
    small = random_params(naive_frames, seed=1)
    t0 = time.perf_counter()
    naive_keys = insert_per_key(arm, small)
    naive = time.perf_counter() - t0
    assert naive_keys == naive_frames * channels
    naive_rate = naive_keys / naive
    extrapolated = frames * channels / naive_rate
    return {"frames": frames, "channels": channels, "keys": keys, "bulk_s": bulk, "naive_frames": naive_frames,
            "naive_keys": naive_keys, "naive_s": naive, "naive_rate": naive_rate, "extrapolated_s": extrapolated,
            "ratio": extrapolated / bulk}


def measure_rebake(frames: int = 10_000, rigify: bool = False, repeats: int = 5) -> dict:
    """Seconds of ``bpy.ops.au2rig.rebake`` for a stored tracking of ``frames`` rows (every
    channel, smoothing 0.5, a gain), ``repeats`` times (the machine is shared: the median says
    more than one run): {"bdfm": [s, ...], "rigify": [s, ...] (with ``rigify``)}."""
    from au2rig import addon
    from au2rig.addon.animate import rebake
    from au2rig.addon.stored import store_tracking
    from au2rig.core.animation.tracking_io import Tracking

    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon.register()
    params = random_params(frames, seed=2)
    params[:, LAYOUT.group_slice("brow_style")] = np.eye(6)[np.zeros(frames, int)]
    n = len(params)
    tracking = Tracking(np.arange(n), np.arange(n) / 30.0, np.ones(n, bool), np.ones(n), params,
                        np.full((n, 68, 2), np.nan), 30.0, {})
    targets = {"bdfm": build_rig(load_rig())[0]}
    if rigify:
        from au2rig.addon.tools.retarget_maps import generate_rigify_rig

        targets["rigify"] = generate_rigify_rig()
    out = {}
    for name, obj in targets.items():
        seconds, panel = [], []
        for k in range(repeats):  # each from the stored tracking as saved, with other options
            store_tracking(obj, tracking, {"retarget_map": "bdfm" if name == "bdfm" else "rigify_face"})
            t0 = time.perf_counter()
            result = bpy.ops.au2rig.rebake(target=obj.name, channels="all", smoothing=0.5, gains=f"AU12={1.5 + k}")
            seconds.append(time.perf_counter() - t0)
            assert result == {'FINISHED'}, result
            # what a slider in the Face Capture panel runs on each change (no operator around it)
            t0 = time.perf_counter()
            rebake(bpy.context, obj, smoothing=0.4, gains=f"AU12={1.2 + k}")
            panel.append(time.perf_counter() - t0)
        out[name] = seconds
        out[f"{name}, panel"] = panel
    addon.unregister()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10_000)
    ap.add_argument("--naive-frames", type=int, default=200)
    ap.add_argument("--rigify", action="store_true", help="also re-bake onto a Rigify face (generates it, ~10 s)")
    args = ap.parse_args(argv)
    r = measure(args.frames, args.naive_frames)
    keys, bulk, channels, naive_keys, naive = r["keys"], r["bulk_s"], r["channels"], r["naive_keys"], r["naive_s"]
    naive_rate, extrapolated = r["naive_rate"], r["extrapolated_s"]

    print(f"Blender {bpy.app.version_string}, BDFM, {channels} channel properties")
    print(f"bulk bake_action : {args.frames} frames x {channels} = {keys} keys in {bulk:.2f} s "
          f"({keys / bulk:,.0f} keys/s; {1000 * bulk / args.frames * 1000:.0f} ms per 1,000 frames)")
    print(f"keyframe_insert  : {args.naive_frames} frames x {channels} = {naive_keys} keys in {naive:.2f} s "
          f"({naive_rate:,.0f} keys/s) -> {extrapolated:.1f} s for {args.frames} frames "
          f"(linear extrapolation: a lower bound, per-key cost grows with the curve)")
    print(f"ratio            : bulk is {extrapolated / bulk:.0f}x faster (at least)")
    for name, seconds in measure_rebake(args.frames, args.rigify).items():
        print(f"re-bake ({name:13s}): {args.frames} stored frames x {channels} channels, smoothing and a gain, "
              f"median {np.median(seconds):.2f} s, fastest {min(seconds):.2f} s of {len(seconds)} (goal < 0.5 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
