"""The facial parameter regressor R of the image path (Song et al. 2021, §2.4, Fig. 3).

R reads the frozen feature extractor's output (``core.nets.face_parser``: the global feature f_gb and
the region representations T of Eq. 5) and predicts the full parameter vector of the shared
layout through four sub-regressors, each fed the feature groups the paper assigns:

=================  ========================================  ==========================
sub-regressor      features                                   outputs
=================  ========================================  ==========================
head pose          f_gb                                       yaw, pitch, roll residual
identity           T_eyes, T_nose, T_mouth, T_face            64 identity sliders
brow style         T_brows                                    6 brow styles (softmax)
AU                 T_eyes, T_nose, T_mouth, T_face            26 AU channels
=================  ========================================  ==========================

Each sub-regressor (Fig. 3a): *feature fusion* (every map average-pooled to one common
``pool`` x ``pool`` size, then concatenated along channels) -> a stride-2 convolution + batch
norm + ReLU -> two attention blocks (Fig. 3b: an FC layer whose output is re-weighted by a
squeeze-and-excitation gate, SENet applied to a vector) -> two FC layers.

Output ranges follow the layout: AUs and identity sliders through a sigmoid onto [lo, hi], pose
through a tanh onto [lo, hi], the brow style as a softmax (a point of the simplex whose corners
are the one-hot styles the generator was trained on).

Roll: R sees five-point aligned crops (``core.alignment.align``), which remove the in-plane rotation, so
its roll output is the residual; the head's roll is the alignment's plus that residual, as in
the landmark path.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..rig.layout import LAYOUT, ParameterLayout

# feature groups of each sub-regressor (names of core.nets.face_parser.REGIONS, plus "f_gb")
GROUP_FEATURES = {
    "pose": ("f_gb",),
    "identity": ("eyes", "nose", "mouth", "face"),
    "brow_style": ("brows",),
    "au": ("eyes", "nose", "mouth", "face"),
    "gaze": ("eyes",),
}


@dataclass(frozen=True)
class RegressorConfig:
    """Shape of R. ``crop_size``: the aligned crops' size (F_seg's input); ``pool``: the common
    size of the fused maps (at most the smallest map's); ``width``: conv channels; ``hidden``:
    width of the attention blocks and the first FC; ``reduction``: SE bottleneck."""

    crop_size: int = 128
    pool: int = 4
    width: int = 128
    hidden: int = 256
    reduction: int = 4

    def to_dict(self) -> dict:
        return asdict(self)


class AttentionBlock(nn.Module):
    """Fig. 3b: y = FC(x); y * sigmoid(FC(relu(FC(mean-free y))))."""

    def __init__(self, dim: int, reduction: int):
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.squeeze = nn.Linear(dim, max(1, dim // reduction))
        self.excite = nn.Linear(max(1, dim // reduction), dim)

    def forward(self, x):
        y = F.relu(self.norm(self.fc(x)))
        gate = torch.sigmoid(self.excite(F.relu(self.squeeze(y))))
        return y * gate + x


class SubRegressor(nn.Module):
    """Feature fusion -> stride-2 conv + BN -> two attention blocks -> two FC."""

    def __init__(self, in_channels: int, n_out: int, cfg: RegressorConfig, stride: int):
        """``stride``: the largest stride among the maps it fuses (sets the smallest map's size)."""
        super().__init__()
        self.pool = cfg.pool
        self.conv = nn.Conv2d(in_channels, cfg.width, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cfg.width)
        fused = min(cfg.pool, cfg.crop_size // stride)
        self.proj = nn.Linear(cfg.width * ((fused + 1) // 2) ** 2, cfg.hidden)
        self.attention = nn.Sequential(AttentionBlock(cfg.hidden, cfg.reduction),
                                       AttentionBlock(cfg.hidden, cfg.reduction))
        self.fc1 = nn.Linear(cfg.hidden, cfg.hidden)
        self.fc2 = nn.Linear(cfg.hidden, n_out)

    def fuse(self, maps) -> torch.Tensor:
        """Average-pool every map to one size (``pool``, or the smallest map's when that is
        smaller), then concatenate along channels."""
        size = min([self.pool] + [int(m.shape[-1]) for m in maps])
        return torch.cat([F.avg_pool2d(m, int(m.shape[-1]) // size) if m.shape[-1] > size else m for m in maps], 1)

    def forward(self, maps):
        x = F.relu(self.bn(self.conv(self.fuse(maps))))
        x = self.attention(self.proj(x.flatten(1)))
        return self.fc2(F.relu(self.fc1(x)))


class Regressor(nn.Module):
    """R: parser features -> (N, P) parameter vector in the shared layout (roll = residual)."""

    def __init__(self, channels: dict, cfg: RegressorConfig = RegressorConfig(),
                 layout: ParameterLayout = LAYOUT):
        super().__init__()
        self.cfg = cfg
        self.layout = layout
        self.slices = {g: layout.group_slice(g) for g in GROUP_FEATURES}
        self.heads = nn.ModuleDict({
            g: SubRegressor(sum(channels[f][0] for f in feats), self.slices[g].stop - self.slices[g].start, cfg,
                            max(channels[f][1] for f in feats))
            for g, feats in GROUP_FEATURES.items()})

    def forward(self, f_gb, regions: dict) -> torch.Tensor:
        feats = dict(regions, f_gb=f_gb)
        order = sorted(GROUP_FEATURES, key=lambda g: self.slices[g].start)
        raw = torch.cat([self.heads[g]([feats[f] for f in GROUP_FEATURES[g]]) for g in order], -1)
        return squash(raw, self.layout)


def squash(raw: torch.Tensor, layout: ParameterLayout = LAYOUT) -> torch.Tensor:
    """Unconstrained (N, P) -> parameters within the layout's ranges: pose and gaze by tanh, AUs
    and identity sliders by a sigmoid, the brow style by a softmax."""
    lo = raw.new_tensor(layout.lo)
    hi = raw.new_tensor(layout.hi)
    parts = []
    for g in sorted(GROUP_FEATURES, key=lambda g: layout.group_slice(g).start):
        s = layout.group_slice(g)
        x = raw[:, s]
        if g == "brow_style":
            parts.append(torch.softmax(x, -1))
        elif g in ("pose", "gaze"):
            parts.append(lo[s] + (hi[s] - lo[s]) * (torch.tanh(x) + 1) / 2)
        else:
            parts.append(lo[s] + (hi[s] - lo[s]) * torch.sigmoid(x))
    return torch.cat(parts, -1)


def unsquash(params: torch.Tensor, layout: ParameterLayout = LAYOUT, eps: float = 1e-4) -> torch.Tensor:
    """The inverse of :func:`squash` (values at the range ends are pulled in by ``eps``)."""
    lo = params.new_tensor(layout.lo)
    hi = params.new_tensor(layout.hi)
    u = ((params - lo) / (hi - lo).clamp_min(1e-12)).clamp(eps, 1 - eps)
    out = torch.log(u) - torch.log1p(-u)  # logit
    for group in ("pose", "gaze"):
        s = layout.group_slice(group)
        out[:, s] = torch.atanh(2 * u[:, s] - 1)
    brow = layout.group_slice("brow_style")
    out[:, brow] = torch.log(params[:, brow].clamp_min(eps))
    return out


def region_channels(parser) -> dict:
    """(channels, stride) of f_gb and of each region representation of a face parser."""
    from .face_parser import REGIONS, STAGE_CHANNELS, STAGES

    out = {"f_gb": (parser.ffm.convblk.conv.out_channels, 8)}
    out.update({name: (STAGE_CHANNELS[stage], STAGES[stage]) for name, (stage, _) in REGIONS.items()})
    return out
