"""The landmark path's network: 68 landmarks in pixels (and optionally the actor's neutral frame)
-> the full parameter vector. Five-point alignment is part of the graph, then an MLP; the roll
is the alignment's rotation plus the network's residual (see ``core/training/train_landmarks.py``).
Several such networks trained alike from different seeds make an ensemble: their mean."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..alignment.align import BROW_POINTS, apply_similarity, five_points, roll_degrees, similarity, template
from ..rig.evaluate import Rig
from ..rig.layout import GROUPS, LAYOUT, ParameterLayout
from ..rig.load import load_rig


@dataclass(frozen=True)
class NetworkConfig:
    hidden: int = 512
    layers: int = 4
    pose_scale: float = 30.0   # degrees per unit of the pose head
    members: int = 1           # networks averaged (trained one by one, each from its own seed)
    # the brows' sideways motion as input: a frown pulls the rig's brows together, but the face
    # mesh reports a tenth of that, so a model that reads frowns by the knit misses detected ones;
    # False: the brows' sideways place is the reference's, their drop and rise carry the brow AUs
    # (tried, not shipped: figures in core/tracking/README.md)
    brow_sideways: bool = True


def _torch():
    import torch

    return torch


def build_network(cfg: NetworkConfig = NetworkConfig(), layout: ParameterLayout = LAYOUT, rig: Rig | None = None):
    """The network of ``cfg``: one MLP, or the :func:`ensemble` of ``cfg.members`` of them."""
    if cfg.members > 1:
        return ensemble([build_network(replace(cfg, members=1), layout, rig) for _ in range(cfg.members)])
    torch = _torch()
    nn = torch.nn
    rig = rig or load_rig()

    class LandmarkNet(nn.Module):
        """(N, 68, 2) landmarks in pixels -> (N, P) parameter vectors."""

        def __init__(self):
            super().__init__()
            self.register_buffer("template", torch.tensor(template(), dtype=torch.float32))
            mean = apply_similarity(similarity(five_points(rig.landmarks_2d(layout.neutral(1))),
                                               np.asarray(template())), rig.landmarks_2d(layout.neutral(1)))[0]
            self.register_buffer("mean_shape", torch.tensor(mean, dtype=torch.float32))
            fixed = np.zeros((68, 2), np.float32)  # inputs taken from the reference, not the frame
            if not cfg.brow_sideways:
                fixed[list(BROW_POINTS), 0] = 1.0
            self.register_buffer("fixed", torch.tensor(fixed.reshape(1, -1)), persistent=False)
            width, layers = cfg.hidden, []
            size_in = 68 * 2 * 2 + 1
            for i in range(cfg.layers):
                layers += [nn.Linear(size_in if i == 0 else width, width), nn.LayerNorm(width), nn.GELU()]
            self.body = nn.Sequential(*layers)
            present = {c.group for c in layout.channels}
            self.groups = {g: layout.group_slice(g) for g in GROUPS if g in present}
            self.head = nn.Linear(width, len(layout))
            self.pose_scale = float(cfg.pose_scale)

        def normalise(self, landmarks):
            transform = similarity(five_points(landmarks), self.template)
            aligned = apply_similarity(transform, landmarks)
            return (aligned - self.mean_shape).flatten(1) * 4.0, transform

        def forward(self, landmarks, reference=None, has_reference=None, clamp: bool = True):
            """Parameter vectors from landmarks (N, 68, 2) and optionally the actor's neutral
            reference frame (N, 68, 2) with ``has_reference`` (N, 1) 1 where it is given.
            ``clamp=False`` (training) leaves AU and identity values unclipped so that the loss
            still has a gradient outside 0..1."""
            x, transform = self.normalise(landmarks)
            if reference is None:
                ref = torch.zeros_like(x)
                has_reference = torch.zeros_like(x[:, :1])
            else:
                if has_reference is None:
                    has_reference = torch.ones_like(x[:, :1])
                ref = torch.where(has_reference > 0, self.normalise(reference)[0], torch.zeros_like(x))
            x = x * (1.0 - self.fixed) + ref * self.fixed  # without a reference: the mean face's
            raw = self.head(self.body(torch.cat([x, ref, has_reference], 1)))
            g = self.groups
            pose = raw[:, g["pose"]] * self.pose_scale
            roll = roll_degrees(transform)
            pose = torch.cat([pose[:, :2], pose[:, 2:3] + roll[:, None]], 1)
            au, ident = raw[:, g["au"]], raw[:, g["identity"]]
            if clamp:
                au, ident = au.clamp(0.0, 1.0), ident.clamp(0.0, 1.0)
            # gaze, in degrees like the pose: the 68 points hardly see it (the tracker reads it from
            # the irises); trained on faces that look ahead, the model leaves it near 0
            gaze = [raw[:, g["gaze"]] * self.pose_scale] if "gaze" in g else []
            return torch.cat([pose, au, ident, torch.softmax(raw[:, g["brow_style"]], 1), *gaze], 1)

    return LandmarkNet()


def ensemble(networks):
    """The mean of ``networks`` (same inputs and outputs) as one network: what one seed's draw gets
    wrong the others mostly do not (on real faces one channel moves by 0.04-0.3 in r from seed to
    seed; see ``core/tracking/README.md``)."""
    torch = _torch()

    class Ensemble(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.members = torch.nn.ModuleList(networks)

        def forward(self, landmarks, reference=None, has_reference=None, clamp: bool = True):
            return torch.stack([m(landmarks, reference, has_reference, clamp) for m in self.members]).mean(0)

    return Ensemble()
