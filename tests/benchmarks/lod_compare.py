"""Full mesh vs render levels of detail: image difference, landmark regions, render cost.

    python tests/benchmarks/lod_compare.py [--size 128] [--count 20] [--out lod_compare.png] [--settings]

Renders ``count`` random parameter vectors (the pairs sampler, seed 11) with the pairs renderer
(Workbench, FXAA) at the full mesh and at every LOD of the built-in rig, and prints per LOD:
vertices / triangles, mean absolute difference in grey levels (0..255, all channels) and PSNR
against the full mesh, the largest per-image difference, the share of pixels off by more than
32 levels, how often the full rig's landmarks land in the same mask region as on the full
mesh's render, and the CPU time per render (one process). ``--out`` writes a side-by-side
picture: a row per parameter vector, columns full | LOD 1 | LOD 2 | ... | 4x |full - coarsest|.
``--settings`` also times cheaper Workbench settings on the chosen LOD and reports their
difference from the default look.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def render_set(rig, params, size, aa="FXAA", masks=False, tweak=None):
    """(images (N, H, W, 3) uint8 BGR, masks or None, CPU seconds per image render)."""
    import cv2

    from au2rig.addon.rig_render import RenderConfig, RenderScene
    from au2rig.core.datasets import pairs

    config = RenderConfig(output="/nonexistent", size=size, aa=aa, masks=masks)
    scene = RenderScene(rig, config)
    if tweak is not None:
        tweak(scene.scene)
    try:
        draws = np.stack([pairs.draw_randomization(config.randomization, 0, i, len(rig.regions))
                          for i in range(len(params))])
        scene.render_chunk(params[:1], draws[:1])  # warm-up (first render compiles shaders)
        c0 = time.process_time()
        images, mask_pngs = scene.render_chunk(params, draws)
        cpu = (time.process_time() - c0) / len(params)  # (masks, if any, are included)
    finally:
        scene.remove()
    dec = lambda b, flag: cv2.imdecode(np.frombuffer(b, np.uint8), flag)
    imgs = np.stack([dec(b, cv2.IMREAD_COLOR) for b in images])
    mks = np.stack([dec(b, cv2.IMREAD_UNCHANGED) for b in mask_pngs]) if masks else None
    return imgs, mks, cpu


def psnr(a, b) -> float:
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--out", default=None, help="side-by-side PNG to write")
    ap.add_argument("--rows", type=int, default=8, help="parameter vectors shown in the picture")
    ap.add_argument("--settings", action="store_true", help="also time cheaper Workbench settings")
    ap.add_argument("--settings-lod", type=int, default=None, help="LOD for --settings (default: auto)")
    args = ap.parse_args(argv)

    import cv2

    from au2rig.core.datasets import pairs
    from au2rig.core.rig import LOD_FACTORS, auto_lod, load_rig

    full = load_rig()
    params = pairs.sample_params(full.layout, args.count, seed=11)
    lms = np.floor(full.landmarks_2d(params, args.size)).astype(int).clip(0, args.size - 1)
    rigs = [load_rig(lod=k) for k in range(len(LOD_FACTORS))]
    results = [render_set(r, params, args.size, masks=True) for r in rigs]
    ref, ref_masks, _ = results[0]
    rows = np.arange(len(params))
    ref_labels = ref_masks[rows[:, None], lms[..., 1], lms[..., 0]]
    face = [full.regions.index(r) for r in full.regions if r != "hair"]
    print(f"{args.size} px, {args.count} random parameter vectors, Workbench FXAA; auto LOD at this size: "
          f"{auto_lod(args.size)}")
    print("  LOD  vertices  triangles   MAD (grey)  PSNR dB  worst-image MAD  px off>32  lm same region  "
          "lm on face  ms/render")
    for k, (r, (imgs, masks, cpu)) in enumerate(zip(rigs, results)):
        diff = np.abs(imgs.astype(int) - ref)
        per_image = diff.reshape(len(imgs), -1).mean(1)
        off = (diff.max(-1) > 32).mean()
        labels = masks[rows[:, None], lms[..., 1], lms[..., 0]]
        same = (labels == ref_labels).mean()
        on_face = np.isin(labels, face).mean()
        print(f"  {k:3d}  {len(r.vertices):8d}  {len(r.faces):9d}   {diff.mean():10.3f}  {psnr(imgs, ref):7.2f}  "
              f"{per_image.max():15.3f}  {off * 100:8.3f}%  {same * 100:13.1f}%  {on_face * 100:9.1f}%  "
              f"{cpu * 1000:8.1f}")
    if args.out:
        n = min(args.rows, len(params))
        coarse = results[-1][0]
        cols = [res[0][:n] for res in results]
        cols.append(np.clip(np.abs(coarse[:n].astype(int) - ref[:n]) * 4, 0, 255).astype(np.uint8))
        grid = np.concatenate([np.concatenate(list(c), 0) for c in cols], 1)
        grid = cv2.resize(grid, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(args.out, grid)
        print(f"  wrote {args.out}: rows = parameter vectors, columns = full, "
              f"{', '.join(f'LOD {k}' for k in range(1, len(rigs)))}, 4x |full - LOD {len(rigs) - 1}| "
              f"(shown 2x)")
    if args.settings:
        k = auto_lod(args.size) if args.settings_lod is None else args.settings_lod
        settings_table(rigs[k], params, args.size, k)
    return 0


def _culling(scene):
    scene.display.shading.show_backface_culling = True


def _no_specular(scene):
    scene.display.shading.show_specular_highlight = False


def _png_fast(scene):
    scene.render.image_settings.compression = 0


def settings_table(rig, params, size, k):
    base, _, base_cpu = render_set(rig, params, size)
    print(f"Workbench settings at LOD {k} ({size} px): CPU per render (one process), difference from FXAA default")
    print(f"  {'FXAA (default)':28s} {base_cpu * 1000:6.1f} ms")
    for name, aa, tweak in (("render_aa OFF", "OFF", None), ("render_aa 5 (5 samples)", "5", None),
                            ("backface culling", "FXAA", _culling), ("no specular highlight", "FXAA", _no_specular),
                            ("PNG compression 0", "FXAA", _png_fast)):
        imgs, _, cpu = render_set(rig, params, size, aa=aa, tweak=tweak)
        diff = np.abs(imgs.astype(int) - base)
        print(f"  {name:28s} {cpu * 1000:6.1f} ms ({(cpu - base_cpu) * 1000:+5.1f}), MAD {diff.mean():.3f}, "
              f"PSNR {psnr(imgs, base):.1f} dB")


if __name__ == "__main__":
    sys.exit(main())
