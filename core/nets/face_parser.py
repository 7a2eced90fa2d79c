"""F_seg, the face-parsing feature extractor of the image path (paper §2.3, Eq. 4-5).

The network is BiSeNet with a ResNet18 context path and 19 CelebAMask-HQ classes, laid out so
that ``state_dict()`` has exactly the keys and shapes of the public "face-parsing.PyTorch"
checkpoint (``79999_iter.pth``, a plain state dict): ``cp.resnet.*`` (ResNet18 without fc),
``cp.arm16`` / ``cp.arm32`` (attention refinement), ``cp.conv_head32`` / ``cp.conv_head16`` /
``cp.conv_avg``, ``ffm`` (feature fusion) and the heads ``conv_out`` / ``conv_out16`` /
``conv_out32``. There is no separate spatial path: the ResNet's 1/8 feature (layer2) takes its
place. Images go in as RGB in [0, 1], (N, 3, H, W) with H and W multiples of 32; the ImageNet
normalisation is done inside (non-persistent buffers, so not in the state dict).

Eq. 4, ``f_gb, T = F_seg(I)``, is :meth:`FaceParser.features`:

* ``f_gb``: the feature fusion module's output (N, 256, H/8, W/8);
* ``T``: five region features (Eq. 5) ``T_i = beta_i * A_i(I) * C_i(I)``, where ``C_i`` is the
  output of one of the last three ResNet stages (layer2 1/8, layer3 1/16, layer4 1/32), and
  ``A_i`` the summed softmax probability of the region's classes (main head), average-pooled to
  that stage's size. Eyes and brows use layer2, nose and mouth layer3, the face silhouette
  layer4 (:data:`REGIONS`). The facial content loss (Eq. 8) is :func:`representation_distance`.

Checkpoints: :func:`load_face_parser` reads the public state dict (also under "state_dict" or
with a "module." prefix) or the project's own files written by :func:`save_face_parser`
({"format": "au2rig-face-parser", "version": 1, "state_dict", "meta"}); keys and shapes are
checked strictly, BatchNorm ``num_batches_tracked`` counters may be absent.

Labels for training F_seg without the public weights (``core/datasets/labels.py``):
:func:`rig_mask_to_classes` turns a rig render's region mask into the 19 classes,
:func:`landmark_mask` draws approximate labels from 68 landmarks of a real frame;
:func:`colorize` paints labels for pictures.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..datasets.labels import CLASSES

FORMAT = "au2rig-face-parser"
FORMAT_VERSION = 1


# Eq. 5: region name -> (ResNet stage of C_i, classes summed into A_i)
REGIONS = {
    "eyes": ("layer2", (4, 5)),
    "brows": ("layer2", (2, 3)),
    "nose": ("layer3", (10,)),
    "mouth": ("layer3", (11, 12, 13)),
    "face": ("layer4", tuple(range(1, 14))),
}
STAGES = {"layer2": 8, "layer3": 16, "layer4": 32}  # stage -> stride
STAGE_CHANNELS = {"layer2": 128, "layer3": 256, "layer4": 512}  # stage -> channels of C_i
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


# --- network -------------------------------------------------------------------------------
class ConvBNReLU(nn.Module):
    def __init__(self, cin, cout, k=3, stride=1, pad=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, pad, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x if self.downsample is None else self.downsample(x)
        return F.relu(out + short)


class ResNet18(nn.Module):
    """ResNet18 without the classifier; returns the layer2, layer3, layer4 outputs (1/8, 1/16, 1/32)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512))

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        feat8 = self.layer2(self.layer1(x))
        feat16 = self.layer3(feat8)
        feat32 = self.layer4(feat16)
        return feat8, feat16, feat32


def _gap(x):
    return x.mean(dim=(2, 3), keepdim=True)


class AttentionRefinementModule(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = ConvBNReLU(cin, cout, 3, 1, 1)
        self.conv_atten = nn.Conv2d(cout, cout, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(cout)
        self.sigmoid_atten = nn.Sigmoid()

    def forward(self, x):
        feat = self.conv(x)
        return feat * self.sigmoid_atten(self.bn_atten(self.conv_atten(_gap(feat))))


class ContextPath(nn.Module):
    def __init__(self):
        super().__init__()
        self.resnet = ResNet18()
        self.arm16 = AttentionRefinementModule(256, 128)
        self.arm32 = AttentionRefinementModule(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128, 3, 1, 1)
        self.conv_head16 = ConvBNReLU(128, 128, 3, 1, 1)
        self.conv_avg = ConvBNReLU(512, 128, 1, 1, 0)

    def forward(self, x):
        """(feat8, feat16_up, feat32_up, (layer2, layer3, layer4 outputs))."""
        feat8, feat16, feat32 = self.resnet(x)
        avg = self.conv_avg(_gap(feat32))  # (N,128,1,1), broadcast = nearest upsampling
        feat32_sum = self.arm32(feat32) + avg
        feat32_up = self.conv_head32(F.interpolate(feat32_sum, size=feat16.shape[2:], mode="nearest"))
        feat16_sum = self.arm16(feat16) + feat32_up
        feat16_up = self.conv_head16(F.interpolate(feat16_sum, size=feat8.shape[2:], mode="nearest"))
        return feat8, feat16_up, feat32_up, (feat8, feat16, feat32)


class FeatureFusionModule(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.convblk = ConvBNReLU(cin, cout, 1, 1, 0)
        self.conv1 = nn.Conv2d(cout, cout // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(cout // 4, cout, 1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, fsp, fcp):
        feat = self.convblk(torch.cat([fsp, fcp], dim=1))
        atten = self.sigmoid(self.conv2(F.relu(self.conv1(_gap(feat)))))
        return feat * atten + feat


class BiSeNetOutput(nn.Module):
    def __init__(self, cin, mid, n_classes):
        super().__init__()
        self.conv = ConvBNReLU(cin, mid, 3, 1, 1)
        self.conv_out = nn.Conv2d(mid, n_classes, 1, bias=False)

    def forward(self, x):
        return self.conv_out(self.conv(x))


class ParserOutput(NamedTuple):
    """:meth:`FaceParser.features`: main-head logits (N, C, H, W), ``f_gb`` (N, 256, H/8, W/8)
    and ``regions``: name -> T_i (N, C_stage, h_stage, w_stage), in :data:`REGIONS` order."""

    logits: torch.Tensor
    f_gb: torch.Tensor
    regions: dict


def region_attention(probs: torch.Tensor, classes, stride: int) -> torch.Tensor:
    """A_i: the summed probabilities of ``classes``, average-pooled by ``stride`` to the stage's
    size: (N, 1, H / stride, W / stride), values in [0, 1]."""
    a = probs[:, list(classes)].sum(dim=1, keepdim=True)
    return a if stride == 1 else F.avg_pool2d(a, stride)


class FaceParser(nn.Module):
    """BiSeNet face parser (public face-parsing state-dict layout) and the paper's F_seg.

    ``betas``: per-region weight beta_i of Eq. 5 (name -> float, default 1.0 each).
    Input: RGB in [0, 1], (N, 3, H, W), H and W multiples of 32.
    """

    def __init__(self, n_classes: int = 19, betas: dict | None = None):
        super().__init__()
        unknown = sorted(set(betas or {}) - set(REGIONS))
        if unknown:
            raise ValueError(f"unknown region(s) {unknown} in betas; regions are {list(REGIONS)}")
        if n_classes < 14:
            raise ValueError(f"n_classes must be at least 14 (the region classes), got {n_classes}")
        self.n_classes = int(n_classes)
        self.betas = {name: float((betas or {}).get(name, 1.0)) for name in REGIONS}
        self.cp = ContextPath()
        self.ffm = FeatureFusionModule(256, 256)
        self.conv_out = BiSeNetOutput(256, 256, n_classes)
        self.conv_out16 = BiSeNetOutput(128, 64, n_classes)
        self.conv_out32 = BiSeNetOutput(128, 64, n_classes)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)
        self.meta: dict = {}

    def _run(self, images):
        if not torch.jit.is_tracing():
            if images.dim() != 4 or images.shape[1] != 3:
                raise ValueError(f"images must be (N, 3, H, W) RGB, got {tuple(images.shape)}")
            if images.shape[2] % 32 or images.shape[3] % 32:
                raise ValueError(f"image size {images.shape[2]}x{images.shape[3]} is not a multiple of 32")
        x = (images - self.mean) / self.std
        feat8, feat16_up, feat32_up, stages = self.cp(x)
        f_gb = self.ffm(feat8, feat16_up)
        logits = F.interpolate(self.conv_out(f_gb), size=images.shape[2:], mode="bilinear", align_corners=True)
        return logits, f_gb, feat16_up, feat32_up, stages

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Main-head logits (N, n_classes, H, W)."""
        return self._run(images)[0]

    def forward_train(self, images: torch.Tensor):
        """(main, aux16, aux32) logits at the input size, for training the parser."""
        logits, _, feat16_up, feat32_up, _ = self._run(images)
        size = logits.shape[2:]
        aux = [F.interpolate(head(f), size=size, mode="bilinear", align_corners=True)
               for head, f in ((self.conv_out16, feat16_up), (self.conv_out32, feat32_up))]
        return logits, aux[0], aux[1]

    def features(self, images: torch.Tensor) -> ParserOutput:
        """Eq. 4: logits, f_gb and the region features T_i = beta_i A_i C_i (Eq. 5)."""
        logits, f_gb, _, _, stages = self._run(images)
        probs = torch.softmax(logits, dim=1)
        by_stage = dict(zip(STAGES, stages))
        regions = {}
        for name, (stage, classes) in REGIONS.items():
            a = region_attention(probs, classes, STAGES[stage])
            regions[name] = self.betas[name] * a * by_stage[stage]
        return ParserOutput(logits, f_gb, regions)

    @torch.no_grad()
    def parse(self, images: torch.Tensor) -> torch.Tensor:
        """Labels (N, H, W) int64: the argmax class of every pixel."""
        return self.forward(images).argmax(dim=1)


class ParserFeatures(nn.Module):
    """``features`` as a flat tuple (for ONNX): logits, f_gb, then T_i in :attr:`output_names` order."""

    output_names = ("logits", "f_gb") + tuple(f"T_{name}" for name in REGIONS)

    def __init__(self, parser: FaceParser):
        super().__init__()
        self.parser = parser

    def forward(self, images):
        out = self.parser.features(images)
        return (out.logits, out.f_gb) + tuple(out.regions[name] for name in REGIONS)


def representation_distance(a, b, weights: dict | None = None) -> torch.Tensor:
    """Facial content loss (Eq. 8), ||T_a - T_b||_1 per sample, shape (N,).

    ``a``, ``b``: :class:`ParserOutput` or dicts name -> T_i. Each region contributes the mean
    absolute difference of its T_i over channels and pixels (so the three stage sizes weigh
    alike), times ``weights[name]`` (default 1); the terms are summed over the regions.
    """
    ra = a.regions if isinstance(a, ParserOutput) else a
    rb = b.regions if isinstance(b, ParserOutput) else b
    if set(ra) != set(rb):
        raise ValueError(f"region sets differ: {sorted(ra)} vs {sorted(rb)}")
    total = 0.0
    for name in ra:
        w = 1.0 if weights is None else float(weights.get(name, 1.0))
        total = total + w * (ra[name] - rb[name]).abs().flatten(1).mean(dim=1)
    return total


# --- checkpoints ---------------------------------------------------------------------------
def _is_counter(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def load_face_parser(path, n_classes: int = 19, betas: dict | None = None) -> FaceParser:
    """A :class:`FaceParser` in eval mode from the public face-parsing state dict (plain, under
    "state_dict", optionally with a "module." prefix) or a checkpoint of :func:`save_face_parser`.

    Raises FileNotFoundError for a missing file and ValueError, naming the file and the key,
    for a missing or unexpected key or a wrong shape.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no face-parser checkpoint at {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing
        raise ValueError(f"{path}: not a readable torch checkpoint ({exc})") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state dict, found {type(obj).__name__}")
    meta = {}
    if obj.get("format") == FORMAT:
        if obj.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path}: face-parser checkpoint version {obj.get('version')!r}, "
                             f"this code reads version {FORMAT_VERSION}")
        meta = dict(obj.get("meta") or {})
        n_classes = int(meta.get("n_classes", n_classes))
        obj = obj.get("state_dict")
    elif isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: no state dict inside")
    state = {(k[len("module."):] if isinstance(k, str) and k.startswith("module.") else k): v
             for k, v in obj.items()}
    model = FaceParser(n_classes, betas)
    want = model.state_dict()
    for key, value in state.items():
        if key not in want:
            raise ValueError(f"{path}: unexpected key {key!r} (not a face-parsing BiSeNet state dict)")
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{path}: key {key!r} holds a {type(value).__name__}, not a tensor")
        if tuple(value.shape) != tuple(want[key].shape):
            raise ValueError(f"{path}: key {key!r} has shape {tuple(value.shape)}, "
                             f"expected {tuple(want[key].shape)}")
    for key in want:
        if key not in state:
            if not _is_counter(key):
                raise ValueError(f"{path}: missing key {key!r} (not a face-parsing BiSeNet state dict)")
            state[key] = want[key]
    model.load_state_dict(state, strict=True)
    model.meta = meta
    return model.eval()


def save_face_parser(model: FaceParser, path, meta: dict | None = None) -> Path:
    """Write the project's checkpoint: {"format", "version", "state_dict", "meta"}; ``meta`` (plain
    JSON-like values: input size, training info, ...) gets ``n_classes`` and ``classes`` added."""
    from .checkpoints import save_checkpoint

    try:
        meta = json.loads(json.dumps(dict(meta or {})))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"face-parser meta must hold plain JSON values ({exc})") from exc
    meta.update(n_classes=model.n_classes, classes=list(CLASSES[:model.n_classes]))
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return save_checkpoint({"format": FORMAT, "version": FORMAT_VERSION, "state_dict": state,
                            "meta": meta}, path)
