"""Image losses for training the generator G.

Two modes of :class:`ImageLoss` (``pred`` and ``target`` are (N, 3, H, W) RGB in [0, 1]):

``"l1_ssim"`` (default, needs no pretrained weights)::

    L = l1_weight * mean_{s=0,1,2} L1(pool_s(pred), pool_s(target))  +  ssim_weight * (1 - SSIM(pred, target))

  ``pool_s`` is 2x2 average pooling applied ``s`` times (full, 1/2 and 1/4 resolution), L1 the
  mean absolute difference; SSIM uses an 11-tap Gaussian window (sigma 1.5, shrunk to the image
  for inputs under 11 pixels), C1 = 0.01^2, C2 = 0.03^2 (data range 1), valid positions only,
  averaged over pixels, channels and the batch. Defaults: ``l1_weight = 1.0``,
  ``ssim_weight = 0.5``.

``"vgg16"`` (the paper's L_app + lambda * L_per; needs torchvision-format ImageNet VGG16 weights)::

    L = l1_weight * L1(pred, target)  +  perceptual_weight * perceptual_loss(F(pred), F(target))

  ``F`` = :class:`VGG16Features` (relu2_2, relu3_3, relu4_3, frozen), ``perceptual_loss`` the
  mean over the three layers of the mean squared feature difference ("l2", default) or of the
  mean absolute one ("l1"). Default ``perceptual_weight = 0.05`` (untuned: the paper does not
  give its lambda).

Nothing here downloads: :func:`load_vgg16` reads a state dict the user brings (the keys of
torchvision's ``vgg16().state_dict()``; ``classifier.*`` keys are ignored).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision's vgg16 "features": channels per conv, "M" = max-pool (indices 0..30)
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
# index in ``features`` of the ReLU whose output is returned, by name
VGG16_TAPS = {"relu2_2": 8, "relu3_3": 15, "relu4_3": 22}


class VGGWeightsError(ValueError):
    """A VGG16 state dict that does not fit the network."""


def _vgg16_trunk() -> nn.Sequential:
    layers: list[nn.Module] = []
    cin = 3
    for v in VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(cin, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            cin = v
    return nn.Sequential(*layers)


class VGG16Features(nn.Module):
    """The VGG16 convolutional trunk (13 convs, 2-2-3-3-3, ReLU, max-pool) as ``self.features``
    with torchvision's indices, so its state dict keys are torchvision's ``features.*``.

    ``forward(x)``: x (N, 3, H, W) RGB in [0, 1], normalised with the ImageNet mean / std
    inside; returns ``[relu2_2, relu3_3, relu4_3]``. The conv5 block is kept for the key layout
    but not evaluated.
    """

    def __init__(self):
        super().__init__()
        self.features = _vgg16_trunk()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self._last = max(VGG16_TAPS.values())
        self._taps = set(VGG16_TAPS.values())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            if i > self._last:
                break
            x = layer(x)
            if i in self._taps:
                out.append(x)
        return out


def expected_vgg16_shapes() -> dict[str, tuple[int, ...]]:
    """``features.*`` key -> shape, as torchvision's vgg16 has them."""
    return {k: tuple(v.shape) for k, v in VGG16Features().features.state_dict(prefix="features.").items()}


def check_vgg16_state(state: dict, where: str = "VGG16 weights") -> dict:
    """The ``features.*`` part of ``state``; refuses missing, unexpected or misshapen keys by name."""
    if not isinstance(state, dict):
        raise VGGWeightsError(f"{where}: expected a state dict, got {type(state).__name__}")
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    expected = expected_vgg16_shapes()
    for key in state:
        if key.startswith("classifier."):
            continue
        if key not in expected:
            raise VGGWeightsError(f"{where}: unexpected key {key!r} (not a torchvision vgg16 key)")
    for key, shape in expected.items():
        if key not in state:
            raise VGGWeightsError(f"{where}: missing key {key!r}")
        got = tuple(state[key].shape)
        if got != shape:
            raise VGGWeightsError(f"{where}: {key}: expected {shape}, got {got}")
    return {k: state[k] for k in expected}


def load_vgg16(path) -> VGG16Features:
    """Frozen :class:`VGG16Features` (eval mode, no gradients to its weights) from a
    torchvision-format ImageNet state dict saved with ``torch.save``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no VGG16 weights there (torchvision vgg16 state dict, "
                                f"e.g. vgg16-397923af.pth; nothing is downloaded)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = VGG16Features()
    net.load_state_dict(check_vgg16_state(state, str(path)))
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def perceptual_loss(features_a, features_b, kind: str = "l2") -> torch.Tensor:
    """Mean over the layers of the mean squared ("l2") or absolute ("l1") feature difference."""
    if len(features_a) != len(features_b) or not features_a:
        raise ValueError(f"feature lists differ in length: {len(features_a)} vs {len(features_b)}")
    if kind not in ("l1", "l2"):
        raise ValueError(f"kind must be 'l1' or 'l2', got {kind!r}")
    fn = F.mse_loss if kind == "l2" else F.l1_loss
    return sum(fn(a, b) for a, b in zip(features_a, features_b)) / len(features_a)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5,
         data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM of two (N, C, H, W) batches (Gaussian window, valid positions only)."""
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"ssim needs two (N, C, H, W) tensors of one shape, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    c = a.shape[1]
    size = min(window, a.shape[2], a.shape[3])
    size -= 1 - size % 2  # odd
    w = gaussian_window(size, sigma).to(a).expand(c, 1, size, size)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def filt(x):
        return F.conv2d(x, w, groups=c)

    mu_a, mu_b = filt(a), filt(b)
    saa = filt(a * a) - mu_a ** 2
    sbb = filt(b * b) - mu_b ** 2
    sab = filt(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))
    return s.mean()


def multiscale_l1(a: torch.Tensor, b: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """Mean of the L1 distances at full, 1/2, 1/4 ... resolution (2x2 average pooling)."""
    total = a.new_zeros(())
    for s in range(scales):
        if s:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        total = total + F.l1_loss(a, b)
    return total / scales


class ImageLoss(nn.Module):
    """Loss between G's image and the rendered one; see the module docstring for both modes."""

    MODES = ("l1_ssim", "vgg16")

    def __init__(self, mode: str = "l1_ssim", vgg_path=None, *, l1_weight: float = 1.0,
                 ssim_weight: float = 0.5, perceptual_weight: float = 0.05, perceptual_kind: str = "l2",
                 scales: int = 3):
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        self.l1_weight, self.ssim_weight = l1_weight, ssim_weight
        self.perceptual_weight, self.perceptual_kind, self.scales = perceptual_weight, perceptual_kind, scales
        self.vgg = None
        if mode == "vgg16":
            if vgg_path is None:
                raise ValueError("mode 'vgg16' needs vgg_path: a torchvision-format VGG16 state dict")
            self.vgg = load_vgg16(vgg_path)

    def components(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """The terms and their weighted ``total``."""
        if self.mode == "l1_ssim":
            l1 = multiscale_l1(pred, target, self.scales)
            s = ssim(pred, target)
            total = self.l1_weight * l1 + self.ssim_weight * (1 - s)
            return {"total": total, "l1": l1, "ssim": s}
        l1 = F.l1_loss(pred, target)
        with torch.no_grad():
            ft = self.vgg(target)
        per = perceptual_loss(self.vgg(pred), ft, self.perceptual_kind)
        return {"total": self.l1_weight * l1 + self.perceptual_weight * per, "l1": l1, "perceptual": per}

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.components(pred, target)["total"]
