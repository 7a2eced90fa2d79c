"""The differentiable chain of the image path and the paper's five losses (§2.5, Eq. 7-12).

``RenderChain`` holds the frozen networks: the generator G (parameters -> the rig's render,
``core.nets.generator``) and the feature extractor F_seg (``core.nets.face_parser``). Faces enter the
image path as five-point aligned crops (``core.datasets.faces``); G's images are aligned the same way
before F_seg sees them: the rig's own 68 landmarks of the same parameters (``core.rig.evaluate``, exact
and differentiable) give the five points, and ``warp_to_crop`` resamples G's image onto the
crop; gradients reach the parameters through G and through the alignment. So
a real face and its re-rendering are compared in one frame of reference, as the paper compares
aligned photos with aligned renders.

``Objective`` is Eq. 7 for a batch of real crops I, with y' = R(F_seg(I)):

* content (Eq. 8): ``||T(G(y')) - T(I)||_1``, the region representations of F_seg
  (``representation_distance``: per region the mean absolute difference, summed);
* identity (Eq. 9): ``1 - cos(F_reg(G(y'_gbe)), F_reg(I))``, y'_gbe = y' with the base
  (neutral) AUs; F_reg is ``core.nets.face_id`` (dlib's ResNet ported, or LightCNN-29v2);
* parameter (Eq. 10): ``||h' - h_b||^2 + alpha ||x'_id - x_bid||^2 + beta ||x'_au - x_bau||^2``
  toward the frontal pose, the base identity (0.5) and zero AUs. Each term is a mean over its
  channels, the pose in units of its range, so the weights do not depend on channel counts;
* loopback (Eq. 11): R re-estimates G's images of y'_gbe and y'_gbi (= y' with the base
  identity and brow style) and must give those parameters back: ``||y_gbe - R(F_seg(G(y_gbe)))||_1
  + lambda_le ||y_gbi - R(F_seg(G(y_gbi)))||_1`` on range-scaled channels; the targets and the
  images are constants (only R learns from it). Roll is left out: the alignment removes it;
* adversarial (Eq. 12): ``||T_mouth(G(y'_gbe)) - T_mouth(I_b)||_1``, the mouth-region
  representation of the expressionless re-rendering against the base face I_b (frontal,
  neutral, identity 0.5), so the identity sliders do not take over what AUs should do.

Weights (``LossWeights``) default to the paper's: content 1, the other four 0.1 each, and
alpha = beta = lambda_le = 1. A weight of 0 skips its term's work entirely.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ..alignment import align
from ..alignment.crops import CROP_SIZE, EYE_DISTANCE, crop_transform
from ..nets.face_parser import representation_distance
from ..rig.layout import LAYOUT, ParameterLayout

TERMS = ("content", "identity", "parameter", "loopback", "adversarial")


@dataclass(frozen=True)
class LossWeights:
    """Eq. 7's weights (content is the reference term) and Eq. 10/11's balance parameters."""

    content: float = 1.0
    identity: float = 0.1
    parameter: float = 0.1
    loopback: float = 0.1
    adversarial: float = 0.1
    alpha: float = 1.0  # identity term of the parameter loss
    beta: float = 1.0  # AU term of the parameter loss
    loopback_identity: float = 1.0  # lambda_le: the base-identity half of the loopback loss

    def __post_init__(self):
        for k, v in asdict(self).items():
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"loss weight {k} must be a finite number >= 0, got {v!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def _freeze(module: nn.Module) -> nn.Module:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


class RenderChain(nn.Module):
    """Frozen G + rig alignment + frozen F_seg: parameters -> aligned crops -> features."""

    def __init__(self, generator, parser, rig, layout: ParameterLayout = LAYOUT, size: int = CROP_SIZE,
                 eye_distance: float = EYE_DISTANCE):
        super().__init__()
        self.generator, self.parser = _freeze(generator), _freeze(parser)
        self.rig, self.layout = rig, layout
        self.size, self.eye_distance = int(size), float(eye_distance)
        self.resolution = int(generator.cfg.resolution)

    def train(self, mode: bool = True):  # the frozen networks stay in eval mode
        super().train(mode)
        self.generator.eval()
        self.parser.eval()
        return self

    def generate(self, params: torch.Tensor) -> torch.Tensor:
        """G's images of ``params`` (N, P), aligned like the real crops: (N, 3, size, size)."""
        g = self.generator
        # G's own points (the 68, then the irises when G draws from them), evaluated once for both
        points = g.landmarks(params.double()) if g.rig is not None else None
        lm = (self.rig.landmarks_2d(params.double(), self.resolution) if points is None
              else points[:, :len(self.rig.landmark_vertices)])
        images = g(params, None if points is None else points.to(params.dtype))
        transform = tuple(t.to(images.dtype) for t in crop_transform(lm, self.size, self.eye_distance))
        return warp_to_crop(images, transform, self.size)

    def features(self, crops: torch.Tensor):
        return self.parser.features(crops)


def with_base_au(params: torch.Tensor, layout: ParameterLayout = LAYOUT) -> torch.Tensor:
    """``params`` with every AU at its neutral value ("base AU")."""
    s = layout.group_slice("au")
    base = params.new_tensor(layout.neutral()[s]).expand(len(params), -1)
    return torch.cat([params[:, :s.start], base, params[:, s.stop:]], 1)


def with_base_identity(params: torch.Tensor, layout: ParameterLayout = LAYOUT) -> torch.Tensor:
    """``params`` with the base identity: sliders at 0.5 and the default brow style."""
    out = params
    for group in ("identity", "brow_style"):
        s = layout.group_slice(group)
        base = params.new_tensor(layout.neutral()[s]).expand(len(params), -1)
        out = torch.cat([out[:, :s.start], base, out[:, s.stop:]], 1)
    return out


class Objective(nn.Module):
    """Eq. 7 on a batch of aligned real crops; only ``regressor`` has trainable weights."""

    def __init__(self, chain: RenderChain, regressor: nn.Module, embedder: nn.Module | None = None,
                 weights: LossWeights = LossWeights(), layout: ParameterLayout = LAYOUT):
        super().__init__()
        if weights.identity > 0 and embedder is None:
            raise ValueError("the identity loss needs a face embedder (F_reg); give one or set its weight to 0")
        self.chain, self.regressor, self.embedder = chain, regressor, embedder
        self.weights, self.layout = weights, layout
        lo, hi = np.asarray(layout.lo, np.float32), np.asarray(layout.hi, np.float32)
        self.register_buffer("lo", torch.from_numpy(lo), persistent=False)
        self.register_buffer("inv_span", torch.from_numpy(1.0 / np.where(hi > lo, hi - lo, 1.0)), persistent=False)
        self.register_buffer("neutral", torch.from_numpy(layout.neutral().astype(np.float32)), persistent=False)
        keep = np.ones(len(layout), np.float32)
        keep[layout.names.index("pose_roll")] = 0.0  # not observable after the alignment
        self.register_buffer("loopback_mask", torch.from_numpy(keep), persistent=False)
        self._base_mouth = None

    def base_mouth(self) -> torch.Tensor:
        """T_bm: the mouth representation of the base face (frontal, neutral, identity 0.5)."""
        if self._base_mouth is None:
            with torch.no_grad():
                crop = self.chain.generate(self.neutral[None])
                self._base_mouth = self.chain.features(crop).regions["mouth"]
        return self._base_mouth

    def estimate(self, features) -> torch.Tensor:
        return self.regressor(features.f_gb, features.regions)

    def predict(self, crops: torch.Tensor) -> torch.Tensor:
        """y' = R(F_seg(crops))."""
        return self.estimate(self.chain.features(crops))

    def scaled(self, params: torch.Tensor) -> torch.Tensor:
        return (params - self.lo) * self.inv_span

    def parameter_loss(self, y: torch.Tensor) -> torch.Tensor:
        lay, w = self.layout, self.weights
        d = (self.scaled(y) - self.scaled(self.neutral[None])) ** 2
        pose = d[:, lay.group_slice("pose")].mean(1) * 4.0  # (h - 0) in units of half the range
        ident = d[:, lay.group_slice("identity")].mean(1)
        au = d[:, lay.group_slice("au")].mean(1)
        return pose + w.alpha * ident + w.beta * au

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """(total loss, {term: per-sample (N,) loss}, y') for real crops (N, 3, S, S) in [0, 1]."""
        w, chain = self.weights, self.chain
        with torch.no_grad():
            real = chain.features(crops)
        y = self.estimate(real)
        terms = {}
        if w.content > 0:
            terms["content"] = representation_distance(chain.features(chain.generate(y)).regions, real.regions)
        if w.parameter > 0:
            terms["parameter"] = self.parameter_loss(y)
        need_gbe = w.identity > 0 or w.adversarial > 0 or w.loopback > 0
        if need_gbe:
            y_gbe = with_base_au(y, self.layout)
            crop_gbe = chain.generate(y_gbe)
            feats_gbe = chain.features(crop_gbe) if (w.adversarial > 0 or w.loopback > 0) else None
        if w.identity > 0:
            from ..nets.face_id import identity_loss

            terms["identity"] = identity_loss(self.embedder, crop_gbe, crops)
        if w.adversarial > 0:
            terms["adversarial"] = (feats_gbe.regions["mouth"] - self.base_mouth()).abs().flatten(1).mean(1)
        if w.loopback > 0:
            terms["loopback"] = self.loopback_loss(y_gbe.detach(), feats_gbe,
                                                   with_base_identity(y, self.layout).detach())
        total = sum(getattr(w, k) * v.mean() for k, v in terms.items())
        return total, terms, y

    def loopback_loss(self, y_gbe: torch.Tensor, feats_gbe, y_gbi: torch.Tensor) -> torch.Tensor:
        detached = type(feats_gbe)(*(v.detach() if torch.is_tensor(v) else {k: t.detach() for k, t in v.items()}
                                     for v in feats_gbe))
        with torch.no_grad():
            feats_gbi = self.chain.features(self.chain.generate(y_gbi))
        mask = self.loopback_mask

        def l1(pred, target):
            return ((self.scaled(pred) - self.scaled(target)).abs() * mask).sum(1) / mask.sum()

        return (l1(self.estimate(detached), y_gbe)
                + self.weights.loopback_identity * l1(self.estimate(feats_gbi), y_gbi))


def warp_to_crop(images, transform, size: int = CROP_SIZE):
    """Torch crops: (N, C, H, W) float images and a batched transform (a, b, tx, ty), each (N,),
    -> (N, C, size, size), bilinear with border padding; differentiable w.r.t. the images (and
    the transform). Samples the same points as :func:`crop_image`."""
    import torch.nn.functional as F

    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got {tuple(images.shape)}")
    n, _, h, w = images.shape
    a, b, tx, ty = (torch.as_tensor(v, dtype=images.dtype, device=images.device).reshape(-1).expand(n)
                    for v in transform)
    ia, ib, itx, ity = align.invert_similarity((a, b, tx, ty))
    c = (torch.arange(size, dtype=images.dtype, device=images.device) + 0.5)
    y, x = torch.meshgrid(c, c, indexing="ij")  # crop pixel centres, continuous coordinates
    x, y = x[None], y[None]
    ia, ib, itx, ity = (v[:, None, None] for v in (ia, ib, itx, ity))
    sx = ia * x - ib * y + itx
    sy = ib * x + ia * y + ity
    grid = torch.stack([2.0 * sx / w - 1.0, 2.0 * sy / h - 1.0], dim=-1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
