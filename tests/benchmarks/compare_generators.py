"""Two or more G checkpoints side by side on the held-out pairs of one dataset: PSNR over the whole
image and over the face's small parts, the error in each corner of the image, and the
normalisation "droplet" (one spot where a layer's activations are many times those elsewhere in
every image: instance normalisation's side effect, StyleGAN's droplet).

    python tests/benchmarks/compare_generators.py PAIRS_DIR G.pt [G.pt ...] [--max 1024] [--out DIR]

Per G: PSNR (dB) whole and facial (the dataset's masks, FEATURE_REGIONS of train_generator), the
mean absolute error (0-255 grey levels) in the 16x16 px corners (top-left, top-right,
bottom-left, bottom-right; the renders' background is plain there) and in the image as a whole,
and the spread of G's top-left corner over the held-out images (a droplet is the same in every
image, the rendered background too, so the error is what tells them apart). The droplet: per layer
of 8 px and more, each position's largest activation over the channels (before the
normalisation; after the demodulation), averaged over the images, and its peak over the median
of the positions, with the peak's place; a network without a droplet stays within a few times
its median, as the activations follow the face.
``--out DIR`` writes ``generators.png``: per G, its mean absolute error map (x4, brighter is
worse) and its images of the first four held-out pairs, under the renders.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

CORNER = 16


def corner_errors(err: np.ndarray) -> dict[str, float]:
    """Mean absolute error per 16x16 corner of ``err`` (H, W) (grey levels)."""
    c = CORNER
    return {"top-left": float(err[:c, :c].mean()), "top-right": float(err[:c, -c:].mean()),
            "bottom-left": float(err[-c:, :c].mean()), "bottom-right": float(err[-c:, -c:].mean())}


@torch.no_grad()
def droplet(g, params: torch.Tensor) -> list[tuple[int, float, tuple[int, int]]]:
    """Per layer whose output is 8 px or more: (size, peak / median of the positions' mean
    largest |activation|, (y, x) of the peak)."""
    acts = []
    hooks = [block[0].register_forward_hook(lambda m, i, o: acts.append(o)) for block in g.blocks]
    try:
        g(params)
    finally:
        for h in hooks:
            h.remove()
    out = []
    for a in acts[:-1]:  # the last layer maps to RGB
        m = a.abs().amax(1).mean(0)
        if m.shape[-1] < 8:
            continue
        k = int(m.argmax())
        out.append((m.shape[-1], float(m.max() / m.median().clamp_min(1e-9)), divmod(k, m.shape[-1])))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pairs", type=Path)
    ap.add_argument("generators", type=Path, nargs="+")
    ap.add_argument("--max", type=int, default=1024, help="held-out pairs to score (default 1024)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from au2rig.core.datasets.pairs import PairsDataset
    from au2rig.core.nets.generator import load_generator
    from au2rig.core.rig import load_rig
    from au2rig.core.training.train_generator import _Images, evaluate, feature_psnr

    rig = load_rig()
    ds = PairsDataset(args.pairs, "val")
    src = _Images(ds, ds.manifest.resolution, masks=bool(ds.manifest.masks))
    params, images, *masks = src.batch(np.arange(min(len(ds), args.max)))
    src.close()
    print(f"{args.pairs}: {len(params)} held-out pairs at {images.shape[-1]} px")
    head = f"{'G':28s} {'norm':9s} {'PSNR':>6s} {'facial':>7s} {'err all':>8s}  " + \
        "  ".join(f"{k:>12s}" for k in ("top-left", "top-right", "bottom-left", "bottom-right")) + \
        f"  {'TL spread':>9s}"
    print(head)
    maps, samples, drops = [], [], []
    for path in args.generators:
        g, _ = load_generator(path, rig=rig)
        g.eval()
        _, db, gen = evaluate(g, params, images, torch.device("cpu"))
        fdb = feature_psnr(gen, images, masks[0]) if masks else float("nan")
        err = ((gen - images).abs().mean(1) * 255).numpy()  # (N, H, W) grey levels
        mean_err = err.mean(0)
        corners = corner_errors(mean_err)
        spread = float((gen[:, :, :CORNER, :CORNER] * 255).std(0).mean())
        name = str(path)[-28:]
        print(f"{name:28s} {g.cfg.norm:9s} {db:6.2f} {fdb:7.2f} {mean_err.mean():8.2f}  "
              + "  ".join(f"{corners[k]:12.2f}" for k in corners) + f"  {spread:9.2f}")
        maps.append(mean_err)
        samples.append(gen[:4])
        drops.append((name, droplet(g, params[:64])))
    print(f"the renders' own top-left spread: {float((images[:, :, :CORNER, :CORNER] * 255).std(0).mean()):.2f}")
    print("droplet: per layer, the peak of the positions' largest activation over their median (place y, x)")
    for name, layers in drops:
        print(f"{name:28s} " + "  ".join(f"{size}px {ratio:6.1f} ({yx[0]},{yx[1]})" for size, ratio, yx in layers))
    if args.out is not None:
        import cv2

        from au2rig.core.tracking.overlay import to_bgr8

        def row(ims):
            return np.hstack([to_bgr8(im) for im in ims])

        rows = [np.hstack([row(images[:4]), np.zeros_like(to_bgr8(images[0]))])]
        for m, s in zip(maps, samples):
            heat = cv2.cvtColor(np.clip(m * 4, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
            rows.append(np.hstack([row(s), heat]))
        args.out.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(args.out / "generators.png"), np.vstack(rows))
        print(f"wrote {args.out / 'generators.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
