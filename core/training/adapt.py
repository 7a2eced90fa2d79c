"""Self-supervised stage of the landmark estimator, on unlabeled real faces.

For landmarks detected in real video, the estimator's parameters go through the
differentiable rig and the rig's camera; the projected landmarks, aligned like the input,
must match the detected ones (content loss). As in the paper, a parameter loss pulls
towards the neutral pose, base identity and zero AUs (sparsity), and a loopback loss asks
the estimator to recover parameters it predicted once they are altered (AUs zeroed, or
identity set to base) and re-projected through the rig. Synthetic supervised batches stay
in the mix so the estimator does not drift from the rig's meaning of each channel.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..alignment.align import align
from ..rig.evaluate import Rig
from ..rig.layout import LAYOUT, ParameterLayout
from ..rig.load import load_rig
from ..util.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from .train_landmarks import SUPERVISED_WEIGHTS, TrainConfig, parameter_loss_terms, synthetic_batch, synthetic_set


@dataclass(frozen=True)
class AdaptWeights:
    content: float = 1.0
    parameter: float = 0.1
    loopback: float = 0.1
    synthetic: float = 1.0


def _sources(paths) -> list[Path]:
    out = []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"no video, image or folder at {p}")
        files = sorted(p.rglob("*")) if p.is_dir() else [p]
        out += [f for f in files if f.suffix.lower() in VIDEO_SUFFIXES + IMAGE_SUFFIXES]
    if not out:
        raise ValueError(f"no videos or images in {', '.join(map(str, paths))}")
    return out


def collect_landmarks(paths, backend: str = "mediapipe", step: int = 1, max_per_video: int = 5000,
                      log=print) -> np.ndarray:
    """(N, 68, 2) landmarks of the followed face in every usable frame / image of ``paths``."""
    import cv2

    from ..tracking.landmarks import open_backend, pick_face
    from ..tracking.track import read_frames

    found = []
    for source in _sources(paths):
        before = len(found)
        if source.suffix.lower() in IMAGE_SUFFIXES:
            image = cv2.imread(str(source), cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"{source}: not a readable image")
            with open_backend(backend, video=False) as b:
                face = pick_face(b.detect(image), None, image.shape)
            if face is not None:
                found.append(face.landmarks)
        else:
            previous = None
            with open_backend(backend, video=True, max_faces=1) as b:
                for _, image in read_frames(source, step=step, max_frames=max_per_video):
                    face = pick_face(b.detect(image), previous, image.shape)
                    if face is not None:
                        previous = face
                        found.append(face.landmarks)
        log(f"{source}: {len(found) - before} faces")
    if not found:
        raise ValueError(f"no face found in {', '.join(map(str, paths))}")
    return np.asarray(found, np.float32)


def reprojection_error(net, rig: Rig, landmarks):
    """Per-face mean distance (template units = inter-ocular distances) between the aligned input
    landmarks and the aligned projection of the estimated parameters through the rig."""
    params = net(landmarks)
    projected = rig.project(rig.landmarks_3d(params))
    a, _ = align(landmarks)
    b, _ = align(projected.to(landmarks.dtype))
    return (a - b).norm(dim=-1).mean(-1), params


def adapt(net, paths_or_landmarks, out_dir, steps: int = 2000, seed: int = 0, batch: int = 128, lr: float = 2e-4,
          weights: AdaptWeights = AdaptWeights(), rig: Rig | None = None, layout: ParameterLayout = LAYOUT,
          log=print, progress: bool = True):
    """Fine-tune ``net`` on unlabeled faces (paths, or an (N, 68, 2) array of detected landmarks)."""
    import torch
    from tqdm import tqdm

    rig = rig or load_rig()
    if isinstance(paths_or_landmarks, np.ndarray):
        real = paths_or_landmarks.astype(np.float32)
    else:
        real = collect_landmarks(paths_or_landmarks, log=log)
    real_t = torch.from_numpy(real)
    cfg = TrainConfig(samples=20_000, seed=seed)
    params, points, reference = synthetic_set(cfg, rig, Path(out_dir) / "synthetic_adapt.npz", layout)
    params_t, points_t, reference_t = map(torch.from_numpy, (params, points, reference))
    gen = torch.Generator().manual_seed(seed)
    neutral = torch.tensor(layout.neutral(), dtype=torch.float32)
    au, ident, pose = layout.group_slice("au"), layout.group_slice("identity"), layout.group_slice("pose")

    with torch.no_grad():
        net.eval()
        before = float(reprojection_error(net, rig, real_t)[0].mean())
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    net.train()
    bar = tqdm(range(steps), desc="self-supervised", unit="step", disable=not progress)
    for _ in bar:
        idx = torch.randint(0, len(real_t), (batch,), generator=gen)
        content, pred = reprojection_error(net, rig, real_t[idx])
        content = content.mean()
        parameter = ((pred[:, pose] - neutral[pose]).abs().mean() / 30.0 + pred[:, au].abs().mean()
                     + (pred[:, ident] - neutral[ident]).abs().mean())
        altered = pred.detach().clone()
        half = batch // 2
        altered[:half, au] = 0.0
        altered[half:, ident] = neutral[ident]
        looped = rig.project(rig.landmarks_3d(altered)).to(torch.float32)
        loop_terms = parameter_loss_terms(net(looped, clamp=False), altered, layout)
        loopback = sum(SUPERVISED_WEIGHTS[k] * v for k, v in loop_terms.items() if k != "brow")
        sidx = torch.randint(0, len(params_t), (batch,), generator=gen)
        syn, ref, has_ref = synthetic_batch(rig, points_t[sidx], reference_t[sidx], gen, cfg)
        syn_terms = parameter_loss_terms(net(syn, ref, has_ref, clamp=False), params_t[sidx], layout)
        synthetic = sum(SUPERVISED_WEIGHTS[k] * v for k, v in syn_terms.items())
        loss = (weights.content * content + weights.parameter * parameter + weights.loopback * loopback
                + weights.synthetic * synthetic)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.set_postfix(content=f"{content.item():.4f}", loop=f"{loopback.item():.4f}")
    bar.close()
    with torch.no_grad():
        net.eval()
        after = float(reprojection_error(net, rig, real_t)[0].mean())
    log(f"self-supervised on {len(real)} real faces: landmark reprojection error {before:.4f} -> {after:.4f} "
        f"inter-ocular distances")
    net.adapt_report = {"faces": len(real), "reprojection_before": before, "reprojection_after": after}
    return net


__all__ = ["AdaptWeights", "adapt", "collect_landmarks", "reprojection_error"]
