"""The generator G: parameter vector -> rendered-looking image (Song et al. 2021, §2.2).

G imitates the rig's renderer so that the chain parameters -> image is differentiable. As in
the paper it is DCGAN-like: the (N, P) parameter vector (the full shared layout, P = 99) is
reshaped to (N, P, 1, 1) and goes through **eight** ``ConvTranspose2d`` layers; every layer
but the last is followed by ``InstanceNorm2d`` (affine) and ReLU (the paper's; ``norm="demod"``,
what train-generator makes and the project ships, modulates and demodulates those layers
instead, below), the last one maps to 3 channels and a sigmoid gives RGB in [0, 1].

Input scaling: each channel is first mapped to [0, 1] by its layout range
(``(x - lo) / (hi - lo)``, so the pose in degrees and the 0..1 sliders arrive on one scale);
the scaling is a buffer inside the module, so it is part of the exported ONNX graph.

Upsampling schedule (output side of each layer; "s2" = kernel 4, stride 2, padding 1, which
doubles the size, 1x1 -> 2x2 included; "s1" = kernel 3, stride 1, padding 1, which keeps it)::

    R=256: s2 s2 s2 s2 s2 s2 s2 s2      2  4  8 16 32  64 128 256
    R=128: s2 s2 s2 s2 s2 s2 s2 s1      2  4  8 16 32  64 128 128
    R=64:  s2 s2 s2 s2 s2 s2 s1 s1      2  4  8 16 32  64  64  64

The stride-1 layers sit at the end, at full resolution, where they refine detail with the
narrowest widths. Widths depend on a layer's output size ``s`` only:
``min(max_width, base_width * 256 // s)`` (defaults 16 and 256: 256 channels up to 16x16, then
128, 64, 32, 16), so the three resolutions share their coarse stages.

Instance normalisation over a 2x2 map keeps little besides the per-channel mean that it
removes, so layers whose output is smaller than ``norm_min_size`` (default 4) use ReLU alone.

Normalisation (``norm``): ``"instance"`` is the paper's, and it leaves the "droplet" known from
StyleGAN: a fixed blob in one corner of every image, where the network parks a large activation
to steer the per-image statistics. ``"demod"`` replaces each instance-normalised layer by
StyleGAN2's modulated and demodulated convolution (:class:`DemodulatedUp`): the scaled parameter
vector sets a per-image scale for each input channel, and each output channel is divided by the
norm of its effective weights, so no statistic of the image is taken.

Landmark maps (``landmark_maps``, on by default; this project's addition to the paper's G):
the rig's own 68 landmarks of the same parameters (``core.rig.evaluate``, exact and differentiable),
projected into the render, are drawn as one Gaussian map per landmark (sigma ``map_sigma``
pixels of the map) and concatenated to the input of every layer whose input is
``maps_min_size`` .. ``maps_max_size`` pixels (8 .. 64: at 128 px, the layers that make
16x16 .. 128x128; the last, stride-1 layer goes without, which keeps the cost of a step about
that of the paper's G). The paper's stack has to learn from a 1x1 code where a brow or a lip
corner goes, which an expression moves by a few pixels out of 128; with the
maps, each layer is told where the landmarks are at its own scale, and its convolutions only
have to draw what lies around them. The gradient reaches the parameters through the maps too.

Iris maps (``iris_maps``; on in ``train-generator`` by default): the 68 points say nothing of
where the eyes look, and a G trained with them alone drew every gaze straight ahead (the contact
sheet's gaze tiles: 0 of 4 turned the rig's way). Two more maps sit at the centres of the irises
(their vertices skinned by the eye bones, projected), so the layers are told where each iris is.

:func:`generator_meta` / :func:`check_meta` carry the layout version, channel names and rig
hash that a checkpoint must match.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..rig.identity import check_rig, stamp
from ..rig.layout import LAYOUT, ParameterLayout
from ..util.untrusted import reading
from .checkpoints import CheckpointError, read_checkpoint, save_checkpoint

CHECKPOINT_FORMAT = "au2rig-generator-training"
CHECKPOINT_VERSION = 1

RESOLUTIONS = (64, 128, 256)
N_LAYERS = 8
NORMS = ("instance", "demod")


@dataclass(frozen=True)
class GeneratorConfig:
    """Shape of G. ``resolution``: 64, 128 or 256 (square RGB output)."""

    resolution: int = 128
    base_width: int = 16     # channels of a layer whose output is 256x256
    max_width: int = 256     # cap on the channels of the coarse layers
    norm_min_size: int = 4   # InstanceNorm only on layers with an output at least this large
    landmark_maps: bool = True  # also feed the rig's 68 landmarks as Gaussian maps (False: the paper's G)
    maps_min_size: int = 8   # ... to the layers whose input is at least this large
    maps_max_size: int = 64  # ... and at most this large
    map_sigma: float = 1.0   # Gaussian width, in pixels of each map
    iris_maps: bool = False  # two more maps: the irises' centres (False: the 68 landmarks alone, as G was first made)
    norm: str = "instance"   # "instance" (as G was first made) or "demod": weight demodulation, no per-image statistics

    def __post_init__(self):
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {self.resolution}")
        if not self.map_sigma > 0:
            raise ValueError(f"map_sigma must be positive, got {self.map_sigma!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.base_width < 1 or self.max_width < 1:
            raise ValueError(f"widths must be positive, got base_width={self.base_width}, "
                             f"max_width={self.max_width}")

    def schedule(self) -> list[tuple[int, int]]:
        """Per layer ``(stride, output size)``, eight entries (see the module docstring)."""
        n_up = int(np.log2(self.resolution))  # 6, 7 or 8 doublings from 1x1
        out, size = [], 1
        for i in range(N_LAYERS):
            stride = 2 if i < n_up else 1
            size *= stride
            out.append((stride, size))
        return out

    def width(self, size: int) -> int:
        return max(1, min(self.max_width, self.base_width * 256 // size))


def _upsample_layer(cin: int, cout: int, stride: int) -> nn.ConvTranspose2d:
    if stride == 2:
        return nn.ConvTranspose2d(cin, cout, kernel_size=4, stride=2, padding=1)
    return nn.ConvTranspose2d(cin, cout, kernel_size=3, stride=1, padding=1)


class DemodulatedUp(nn.Module):
    """A transposed convolution whose input channels are scaled per image by a style (an affine
    map of the scaled parameter vector, 1 at initialisation) and whose output channels are then
    divided by the norm of their effective weights (StyleGAN2's modulation and demodulation, in
    the form that scales activations rather than weights: one ordinary convolution per batch).
    Unlike instance normalisation it takes no statistics of the image, so the network has no
    reason to park a large activation in a corner to steer them (the "droplet")."""

    def __init__(self, n_params: int, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv = _upsample_layer(cin, cout, stride)
        self.conv.bias = None  # the bias comes after the demodulation
        self.bias = nn.Parameter(torch.zeros(cout))
        self.style = nn.Linear(n_params, cin)
        nn.init.normal_(self.style.weight, std=0.01)
        nn.init.ones_(self.style.bias)
        # share of the kernel's taps that reach one output pixel (4 of 16 for stride 2, all for 1)
        self.taps = 1.0 / stride ** 2

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        s = self.style(z)  # (N, cin)
        y = self.conv(x * s[:, :, None, None])
        w2 = self.conv.weight.pow(2).sum((2, 3))  # (cin, cout)
        d = torch.rsqrt((s.pow(2) @ w2) * self.taps + 1e-8)  # (N, cout)
        return y * d[:, :, None, None] + self.bias.view(1, -1, 1, 1)


def landmark_maps(points: torch.Tensor, size: int, resolution: int, sigma: float) -> torch.Tensor:
    """(N, K, size, size) Gaussian maps of points (N, K, 2) given in pixels of a ``resolution``
    image (x right, y down, (0, 0) the top-left corner; pixel i spans [i, i + 1))."""
    centres = (torch.arange(size, dtype=points.dtype, device=points.device) + 0.5) * (resolution / size)
    d = (centres.view(1, 1, -1) - points[..., None]) * (size / resolution)  # (N, K, 2, size), map pixels
    g = torch.exp(-0.5 * (d / sigma) ** 2)
    return g[:, :, 1, :, None] * g[:, :, 0, None, :]


class Generator(nn.Module):
    """G: (N, P) parameters -> (N, 3, R, R) images in [0, 1]. ``rig``: the rig whose renders G
    imitates; needed with ``cfg.landmark_maps`` (default: the built-in rig)."""

    def __init__(self, cfg: GeneratorConfig, layout: ParameterLayout = LAYOUT, rig=None):
        super().__init__()
        self.cfg = cfg
        self.rig = None
        if cfg.landmark_maps:
            from ..rig.load import load_rig

            self.rig = rig or load_rig(layout=layout)
            self.n_landmarks = len(self.rig.landmark_vertices)
        self.irises: tuple[np.ndarray, np.ndarray] | None = None
        if cfg.landmark_maps and cfg.iris_maps:
            self.irises = self.rig.iris_vertices()
            self.n_landmarks += 2
        self.n_params = len(layout)
        lo = np.asarray(layout.lo, np.float32)
        span = np.asarray(layout.hi, np.float32) - lo
        span[span == 0] = 1.0
        self.register_buffer("lo", torch.from_numpy(lo).view(1, -1, 1, 1))
        self.register_buffer("inv_span", torch.from_numpy(1.0 / span).view(1, -1, 1, 1))
        self.blocks = nn.ModuleList()
        self.map_sizes: list[int] = []  # per block: the input size that gets the maps (0: none)
        cin, size_in = self.n_params, 1
        sched = cfg.schedule()
        for i, (stride, size) in enumerate(sched):
            last = i == len(sched) - 1
            maps = cfg.landmark_maps and cfg.maps_min_size <= size_in <= cfg.maps_max_size
            self.map_sizes.append(size_in if maps else 0)
            cout = 3 if last else cfg.width(size)
            width_in = cin + (self.n_landmarks if maps else 0)
            normed = not last and size >= cfg.norm_min_size
            if normed and cfg.norm == "demod":
                self.blocks.append(nn.ModuleList([DemodulatedUp(self.n_params, width_in, cout, stride),
                                                  nn.ReLU(inplace=True)]))
            else:
                layers: list[nn.Module] = [_upsample_layer(width_in, cout, stride)]
                if normed:
                    layers.append(nn.InstanceNorm2d(cout, affine=True))
                if not last:
                    layers.append(nn.ReLU(inplace=True))
                self.blocks.append(nn.Sequential(*layers))
            cin, size_in = cout, size

    def landmarks(self, params: torch.Tensor) -> torch.Tensor:
        """(N, 68, 2) the rig's landmarks of ``params`` in pixels of G's output; with
        ``cfg.iris_maps`` (N, 70, 2), the centres of the subject's right and left iris after them."""
        if self.irises is None:
            return self.rig.landmarks_2d(params, self.cfg.resolution)
        right, left = self.irises
        marks = self.rig.landmark_vertices
        skinned = self.rig.skin(params, np.concatenate([marks, right, left]))  # one skinning pass
        k, r = len(marks), len(marks) + len(right)
        points = torch.cat([skinned[:, :k], skinned[:, k:r].mean(1, keepdim=True),
                            skinned[:, r:].mean(1, keepdim=True)], 1)
        return self.rig.project(points, self.cfg.resolution)

    def forward(self, params: torch.Tensor, points: torch.Tensor | None = None) -> torch.Tensor:
        """``points``: the rig's landmarks of ``params`` (:meth:`landmarks`), when the caller
        has them already; otherwise G evaluates them (landmark maps only)."""
        x = params.reshape(params.shape[0], self.n_params, 1, 1)
        x = (x - self.lo) * self.inv_span
        z = x.flatten(1)  # the scaled parameters: the demodulated layers' styles come from them
        if self.rig is not None and points is None:
            points = self.landmarks(params)
        for block, map_size in zip(self.blocks, self.map_sizes):
            if map_size:
                maps = landmark_maps(points, map_size, self.cfg.resolution, self.cfg.map_sigma)
                x = torch.cat([x, maps.to(x.dtype)], 1)
            if isinstance(block, nn.ModuleList):
                up, act = block
                x = act(up(x, z))
            else:
                x = block(x)
        return torch.sigmoid(x)

    def tiles(self, params: np.ndarray) -> list[np.ndarray]:
        """G's images of ``params`` (N, P) as BGR uint8 tiles (what the contact sheet shows)."""
        from ..tracking.overlay import to_bgr8

        with torch.no_grad():
            images = self(torch.as_tensor(np.asarray(params, np.float32)))
        return [to_bgr8(im) for im in images]


def build_generator(cfg: GeneratorConfig | None = None, layout: ParameterLayout = LAYOUT, rig=None) -> Generator:
    """A freshly initialised G for ``cfg`` (default: 128x128) over ``layout`` (and ``rig``, for
    landmark maps; default: the built-in rig)."""
    return Generator(cfg or GeneratorConfig(), layout, rig)


def count_parameters(module: nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def generator_meta(cfg: GeneratorConfig, layout: ParameterLayout = LAYOUT, rig=None) -> dict:
    """What a G checkpoint records about its inputs: layout version, channel names, the rig's
    stamp (identity and fingerprint, :func:`core.rig.identity.stamp`; none without ``rig``), config."""
    return {"layout_version": layout.version, "channels": list(layout.names),
            **(stamp(rig) if rig is not None else {}), "config": asdict(cfg)}


def check_meta(meta: dict, layout: ParameterLayout = LAYOUT, rig=None, where: str = "checkpoint") -> None:
    """Refuse a checkpoint made for another layout or rig, naming what differs."""
    if meta.get("layout_version") != layout.version:
        raise ValueError(f"{where}: layout version {meta.get('layout_version')!r}, "
                         f"this build uses {layout.version!r}")
    names = list(meta.get("channels", ()))
    if names != list(layout.names):
        if len(names) != len(layout):
            raise ValueError(f"{where}: {len(names)} channels, the layout has {len(layout)}")
        i = next(k for k, (a, b) in enumerate(zip(names, layout.names)) if a != b)
        raise ValueError(f"{where}: channel {i} is {names[i]!r}, the layout has {layout.names[i]!r}")
    if rig is not None:
        check_rig(meta, rig, where, "generator")


# --- checkpoints -------------------------------------------------------------------------------
def without_fingerprint(meta: dict) -> dict:
    """``meta`` less the rig's fingerprint: computed floats, compared under a tolerance by check_meta."""
    return {k: v for k, v in meta.items() if k != "rig_fingerprint"}


def read_generator_checkpoint(path) -> dict:
    return read_checkpoint(path, CHECKPOINT_FORMAT, "generator")


def save_generator(g, path, rig, layout: ParameterLayout = LAYOUT, extra: dict | None = None,
                   half: bool = False) -> Path:
    """G's weights alone (no optimiser state) in the checkpoint format :func:`load_generator`
    reads: what the project ships and what the image path loads. ``half``: store the floating
    weights as float16 (half the file; loaded back into float32)."""
    state = {k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu())
             for k, v in g.state_dict().items()}
    return save_checkpoint({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                            "meta": generator_meta(g.cfg, layout, rig), "model": state, **(extra or {})}, path)


def load_generator(path, layout: ParameterLayout = LAYOUT, rig=None):
    """(G on the CPU, checkpoint dict) from a training checkpoint or :func:`save_generator`'s
    file, checked against layout and rig (``rig``: the rig object, which a G with landmark maps
    evaluates; its identity and fingerprint are checked; default: the built-in rig)."""
    if rig is None:
        from ..rig.load import load_rig

        rig = load_rig(layout=layout)
    ckpt = read_generator_checkpoint(path)
    if not isinstance(ckpt.get("meta"), dict):
        raise CheckpointError(f"{path}: generator checkpoint without its 'meta' table")
    check_meta(ckpt["meta"], layout, rig, where=str(path))
    with reading(path, CheckpointError, "generator checkpoint"):
        g = build_generator(GeneratorConfig(**ckpt["meta"]["config"]), layout, rig)
        g.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ckpt["model"].items()})
    return g, ckpt
