"""Training of the project's own face parser F_seg (core/nets/face_parser.py) on aligned face crops.

    au2rig train-parser CROPS.npz [CROPS2.npz ...] -o RUN_DIR [--steps 3000] [--batch 16]
                                [--lr 1e-3] [--real-share 0.5] [--val-fraction 0.05] [--init 79999_iter.pth]
                                [--export core/models/face_parser.pt]

The inputs are face-crops files (core/datasets/faces.py, ``au2rig faces``) that carry 19-class
labels: rig renders, labelled from their region masks (they have known ``params``), and real
frames, labelled from detected landmarks (no ``params``). When both kinds are given, every
batch holds them in the proportion ``real_share`` (exactly, over the run). A held-out share
``val_fraction`` of each kind is never trained on.

Training: :class:`~core.nets.face_parser.FaceParser` with 19 classes (optionally starting from
public or project weights, ``init``), Adam, cross-entropy on the main head plus ``aux_weight``
times each auxiliary head, a cosine learning-rate decay to ``lr * lr_final``. Augmentation per
crop: a horizontal flip (half the time) that swaps the left / right classes (brows, eyes,
ears), a small similarity jitter (scale, rotation, shift; the same warp for image and labels,
nearest for the labels) and colour jitter (brightness, contrast, saturation, per-channel gain).

Every ``validate_every`` steps the held-out crops of each kind are parsed: pixel accuracy and
the mean IoU over the facial classes present (:data:`EVAL_CLASSES`) are printed and appended to
``RUN_DIR/history.json``; ``RUN_DIR/val_grid.png`` shows rows of crop | label | prediction.

``RUN_DIR/checkpoint.pt`` (atomic, every ``checkpoint_every`` steps) holds the model, the
optimiser, the step, the history, the RNG states and the data order, so a resumed run
continues exactly where it stopped (bit for bit on CPU). A checkpoint of another configuration
or of other crops is refused, naming what differs.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..datasets.faces import FaceCrops
from ..datasets.labels import CLASS_INDEX, CLASSES, colorize
from ..nets.checkpoints import read_checkpoint, save_checkpoint
from ..nets.face_parser import FaceParser
from ..util.atomic import atomic_path, claim_run_folder
from .common import Order, end_of_step, refuse_other_config

CHECKPOINT_FORMAT = "au2rig-parser-training"
CHECKPOINT_VERSION = 1
N_CLASSES = 19
# classes the mean IoU is taken over (when present in the ground truth)
EVAL_CLASSES = ("background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "mouth", "u_lip", "l_lip")
KINDS = ("rendered", "real")


def _flip_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint8)
    for a, b in (("l_brow", "r_brow"), ("l_eye", "r_eye"), ("l_ear", "r_ear")):
        table[CLASS_INDEX[a]], table[CLASS_INDEX[b]] = CLASS_INDEX[b], CLASS_INDEX[a]
    return table


FLIP_CLASSES = _flip_table()  # label -> label of the mirrored image


@dataclass(frozen=True)
class ParserTrainConfig:
    """Everything that decides the result of a run (a resumed run must use the same)."""

    crops: tuple = ()  # the face-crops files, resolved paths
    steps: int = 3000
    batch: int = 16
    lr: float = 1e-3
    lr_final: float = 0.1  # learning rate at the last step as a fraction of lr (cosine decay)
    betas: tuple = (0.9, 0.999)
    aux_weight: float = 0.5
    real_share: float = 0.5
    val_fraction: float = 0.05
    val_max: int = 256  # held-out crops of each kind used for validation
    validate_every: int = 250
    checkpoint_every: int = 250
    grid_rows: int = 8
    init: str | None = None  # face-parser weights to start from
    flip: bool = True
    jitter_scale: float = 0.05  # +- fraction
    jitter_angle: float = 5.0  # +- degrees
    jitter_shift: float = 4.0  # +- pixels
    jitter_color: float = 0.2  # brightness, contrast, saturation: +- fraction
    jitter_gain: float = 0.1  # per-channel gain: +- fraction
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "crops", tuple(str(c) for c in self.crops))
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        for name in ("steps", "batch", "validate_every", "checkpoint_every", "val_max", "grid_rows"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if not 0 < self.lr_final <= 1:
            raise ValueError(f"lr_final must be in (0, 1], got {self.lr_final!r}")
        if not 0 <= self.real_share <= 1:
            raise ValueError(f"real_share must be in [0, 1], got {self.real_share!r}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        for name in ("aux_weight", "jitter_scale", "jitter_angle", "jitter_shift", "jitter_color", "jitter_gain"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))


def learning_rate(cfg: ParserTrainConfig, step: int) -> float:
    t = min(step, cfg.steps) / cfg.steps
    return cfg.lr * (cfg.lr_final + (1.0 - cfg.lr_final) * 0.5 * (1.0 + np.cos(np.pi * t)))


# --- the crops ---------------------------------------------------------------------------------
@dataclass
class CropSet:
    """Crops of one kind: images (N, S, S, 3) uint8 RGB and labels (N, S, S) uint8."""

    kind: str
    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def take(self, idx) -> "CropSet":
        return CropSet(self.kind, self.images[idx], self.labels[idx])

    def checksum(self) -> str:
        c = zlib.crc32(np.ascontiguousarray(self.images).data)
        return f"{zlib.crc32(np.ascontiguousarray(self.labels).data, c):08x}"


def load_crops(paths) -> tuple[dict, dict]:
    """``({kind: CropSet}, info)`` from face-crops files; refuses (naming the file) one without
    labels, and files of differing crop size or eye distance."""
    parts: dict[str, list] = {k: [] for k in KINDS}
    size = eye = None
    files = []
    for path in paths:
        crops = FaceCrops.load(path)
        if crops.labels is None:
            raise ValueError(f"{path}: face crops without labels (made with --no-labels?); the parser "
                             f"trains on labelled crops")
        if size is None:
            size, eye, first = crops.size, crops.eye_distance, path
        elif (crops.size, crops.eye_distance) != (size, eye):
            raise ValueError(f"{path}: crops of {crops.size} px, eye distance {crops.eye_distance:g}, but "
                             f"{first} has {size} px, {eye:g}; make them alike (au2rig faces --size)")
        kind = "rendered" if crops.rendered else "real"
        parts[kind].append(crops)
        files.append({"path": str(path), "kind": kind, "count": len(crops)})
    if size is None:
        raise ValueError("no face-crops files given")
    if size % 32:
        raise ValueError(f"crop size {size} px is not a multiple of 32, which the parser needs")
    sets = {}
    for kind, items in parts.items():
        n = sum(len(c) for c in items)
        if n:
            sets[kind] = CropSet(kind, np.concatenate([c.crops for c in items]),
                                 np.concatenate([c.labels for c in items]))
    if not sets:
        raise ValueError(f"no crops in {', '.join(str(p) for p in paths)}")
    return sets, {"size": size, "eye_distance": eye, "files": files}


def split_crops(sets: dict, val_fraction: float, seed: int) -> tuple[dict, dict]:
    """``(train, val)`` per kind: a seeded random ``val_fraction`` of each kind is held out (at
    least one crop when the kind has two or more and the fraction is not 0)."""
    train, val = {}, {}
    for kind, s in sets.items():
        perm = np.random.default_rng([seed, KINDS.index(kind), 1]).permutation(len(s))
        n_val = int(round(val_fraction * len(s)))
        if val_fraction > 0 and len(s) >= 2:
            n_val = min(max(n_val, 1), len(s) - 1)
        if n_val:
            val[kind] = s.take(np.sort(perm[:n_val]))
        train[kind] = s.take(np.sort(perm[n_val:]))
    return train, val


def real_count(cfg: ParserTrainConfig, step: int) -> int:
    """Real crops in the batch of ``step`` when both kinds train: ``real_share`` exactly over the run."""
    share = cfg.real_share * cfg.batch
    return int(np.floor((step + 1) * share + 1e-9) - np.floor(step * share + 1e-9))


# --- augmentation ---------------------------------------------------------------------------------
def _cv_affine(m: np.ndarray) -> np.ndarray:
    """2x3 affine in continuous (corner-origin) coordinates -> cv2.warpAffine's matrix."""
    out = np.array(m, np.float64)
    out[:, 2] += out[:, :2] @ [0.5, 0.5] - 0.5
    return out


def augment(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator, cfg: ParserTrainConfig,
            flip: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One augmented crop: (S, S, 3) uint8 RGB + (S, S) labels -> (S, S, 3) float32 in [0, 1] and
    (S, S) uint8. Draws the same count of numbers from ``rng`` every time; ``flip`` forces
    (True / False) the mirror, else it happens with probability 1/2 when ``cfg.flip``."""
    import cv2

    s = image.shape[0]
    u = rng.uniform(-1.0, 1.0, 10)
    coin = rng.random()
    flipped = (cfg.flip and coin < 0.5) if flip is None else bool(flip)
    scale = 1.0 + cfg.jitter_scale * u[0]
    angle = np.deg2rad(cfg.jitter_angle * u[1])
    shift = cfg.jitter_shift * u[2:4]
    c, sn = scale * np.cos(angle), scale * np.sin(angle)
    a = np.array([[c, -sn], [sn, c]])
    if flipped:
        a = a @ np.diag([-1.0, 1.0])
    centre = np.array([s / 2.0, s / 2.0])
    m = np.concatenate([a, (centre + shift - a @ centre)[:, None]], axis=1)
    out = image
    lab = labels
    if flipped or np.abs(m - [[1, 0, 0], [0, 1, 0]]).max() > 0:
        cvm = _cv_affine(m)
        out = cv2.warpAffine(image, cvm, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        lab = cv2.warpAffine(labels, cvm, (s, s), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    if flipped:
        lab = FLIP_CLASSES[lab]
    x = out.astype(np.float32) * np.float32(1.0 / 255.0)
    brightness, contrast, saturation = 1.0 + cfg.jitter_color * u[4:7]
    gain = (1.0 + cfg.jitter_gain * u[7:10]).astype(np.float32)
    if cfg.jitter_color or cfg.jitter_gain:
        grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
        x = x * np.float32(brightness)
        grey = grey * np.float32(brightness)
        mean = np.float32(grey.mean())
        x = (x - mean) * np.float32(contrast) + mean
        grey = (grey - mean) * np.float32(contrast) + mean
        x = grey[..., None] + (x - grey[..., None]) * np.float32(saturation)
        x = np.clip(x * gain, 0.0, 1.0)
    return np.ascontiguousarray(x), np.ascontiguousarray(lab)


def _to_tensor(images, labels=None):
    x = torch.from_numpy(np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2)))
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    return x if labels is None else (x, torch.from_numpy(np.stack(labels).astype(np.int64)))


# --- evaluation -------------------------------------------------------------------------------------
@torch.no_grad()
def predict(parser: FaceParser, images: np.ndarray, batch: int = 32, device="cpu") -> np.ndarray:
    """Labels (N, S, S) uint8 of crops (N, S, S, 3) uint8 RGB, the parser in eval mode."""
    was = parser.training
    parser.eval()
    out = []
    try:
        for i in range(0, len(images), batch):
            x = _to_tensor(images[i:i + batch]).to(device)
            out.append(parser(x).argmax(1).to(torch.uint8).cpu().numpy())
    finally:
        parser.train(was)
    return np.concatenate(out) if out else np.zeros((0,) + images.shape[1:3], np.uint8)


def scores(labels: np.ndarray, predicted: np.ndarray, n_classes: int = N_CLASSES) -> dict:
    """Pixel accuracy, IoU per class (those in the ground truth or predicted) and the mean IoU
    over the :data:`EVAL_CLASSES` present in the ground truth."""
    gt = np.asarray(labels, np.int64).reshape(-1)
    pr = np.asarray(predicted, np.int64).reshape(-1)
    cm = np.bincount(gt * n_classes + pr, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    inter = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - inter
    iou = {CLASSES[c]: float(inter[c] / union[c]) for c in range(n_classes) if union[c] > 0}
    present = [name for name in EVAL_CLASSES if cm[CLASS_INDEX[name]].sum() > 0]
    return {"count": int(len(np.asarray(labels))), "pixel_accuracy": float(inter.sum() / max(cm.sum(), 1)),
            "miou": float(np.mean([iou[n] for n in present])) if present else float("nan"),
            "miou_classes": present, "iou": iou}


def evaluate_parser(parser: FaceParser, crops, batch: int = 32, device="cpu") -> dict:
    """Pixel accuracy, per-class IoU and mIoU of ``parser`` on labelled crops: a
    :class:`~core.datasets.faces.FaceCrops` (or its file) or a pair (images (N, S, S, 3) uint8, labels)."""
    if isinstance(crops, (str, Path)):
        crops = FaceCrops.load(crops)
    if isinstance(crops, FaceCrops):
        if crops.labels is None:
            raise ValueError("these face crops have no labels to evaluate against")
        images, labels = crops.crops, crops.labels
    elif isinstance(crops, CropSet):
        images, labels = crops.images, crops.labels
    else:
        images, labels = crops
    return scores(labels, predict(parser, np.asarray(images), batch, device))


def format_scores(name: str, s: dict) -> str:
    return f"{name} acc {s['pixel_accuracy']:.3f} mIoU {s['miou']:.3f}"


def write_label_grid(path, images: np.ndarray, labels: np.ndarray, predicted: np.ndarray, gap: int = 2) -> Path:
    """PNG: one row per crop, crop | label | prediction (colorized); written atomically."""
    from ..tracking.overlay import tile_grid, write_image

    rows = [[images[i], colorize(labels[i]), colorize(predicted[i])] for i in range(len(images))]
    return write_image(path, tile_grid(rows, gap)[:, :, ::-1])


# --- training ---------------------------------------------------------------------------------------
def _read_checkpoint(path) -> dict:
    return read_checkpoint(path, CHECKPOINT_FORMAT, "face-parser training")


def load_trained_parser(path) -> tuple[FaceParser, dict]:
    """(parser in eval mode on the CPU, checkpoint dict) from a training checkpoint."""
    ckpt = _read_checkpoint(path)
    model = FaceParser(N_CLASSES)
    model.load_state_dict(ckpt["model"])
    model.meta = dict(ckpt["meta"])
    return model.eval(), ckpt


def _device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA device is available (use cpu or auto)")
    return torch.device(device)


def train_parser(crops, out_dir, cfg: ParserTrainConfig | None = None, *, device: str = "cpu", log=print,
                 stop_after: int | None = None, progress: bool = True) -> Path:
    """Train F_seg on face-crops files ``crops``; returns ``out_dir/checkpoint.pt`` (resumed when
    present). ``cfg.crops`` is set from ``crops``. ``stop_after``: end after that many steps of this call."""
    from tqdm import tqdm

    from ..nets.face_parser import load_face_parser

    paths = [str(Path(p).resolve()) for p in crops]
    cfg = ParserTrainConfig(**{**(cfg or ParserTrainConfig()).to_dict(), "crops": tuple(paths)})
    sets, info = load_crops(paths)
    train, val = split_crops(sets, cfg.val_fraction, cfg.seed)
    meta = {"size": info["size"], "eye_distance": info["eye_distance"], "n_classes": N_CLASSES,
            "data": {k: {"count": len(s), "checksum": s.checksum(), "train": len(train[k]),
                         "val": len(val[k]) if k in val else 0} for k, s in sets.items()}}
    dev = _device(device)
    out_dir = Path(out_dir)
    held = claim_run_folder(out_dir)  # until this run returns: another run into it is refused
    ckpt_path = held.folder / "checkpoint.pt"

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = FaceParser(N_CLASSES)
    ckpt = None
    if ckpt_path.is_file():
        ckpt = _read_checkpoint(ckpt_path)
        refuse_other_config(ckpt_path, ckpt["config"], cfg.to_dict())
        if ckpt["meta"] != meta:
            diff = sorted(k for k in meta if ckpt["meta"].get(k) != meta[k])
            raise ValueError(f"{ckpt_path}: made on other crops ({', '.join(diff)} differ: "
                             f"{ {k: ckpt['meta'].get(k) for k in diff} } vs { {k: meta[k] for k in diff} }); "
                             f"use another run folder or delete it")
        model.load_state_dict(ckpt["model"])
    elif cfg.init:
        start = load_face_parser(cfg.init)
        if start.n_classes != N_CLASSES:
            raise ValueError(f"{cfg.init}: a parser of {start.n_classes} classes, this trains {N_CLASSES}")
        model.load_state_dict(start.state_dict())
    model.to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas)
    kinds = [k for k in KINDS if k in train and len(train[k])]
    orders = {k: Order(len(train[k]), [cfg.seed, KINDS.index(k), 2]) for k in kinds}
    aug_rng = np.random.default_rng([cfg.seed, 3])
    step, history, running = 0, [], []
    if ckpt is not None:
        opt.load_state_dict(ckpt["optimizer"])
        for k in kinds:
            orders[k].load(ckpt["order"][k])
        aug_rng.bit_generator.state = ckpt["augment_rng"]
        torch.set_rng_state(ckpt["torch_rng"])
        np.random.set_state(ckpt["numpy_rng"])
        if dev.type == "cuda" and ckpt.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(ckpt["cuda_rng"], dev)
        step, history, running = ckpt["step"], ckpt["history"], list(ckpt["running_losses"])
        log(f"resuming {ckpt_path} at step {step}")
    else:
        torch.manual_seed(cfg.seed)

    val_sets = {k: v.take(slice(0, cfg.val_max)) for k, v in val.items()}

    def save():
        save_checkpoint({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "meta": meta,
                         "config": cfg.to_dict(), "model": {k: v.cpu() for k, v in model.state_dict().items()},
                         "optimizer": opt.state_dict(), "step": step, "history": history,
                         "order": {k: o.state() for k, o in orders.items()},
                         "augment_rng": aug_rng.bit_generator.state, "running_losses": list(running),
                         "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(),
                         "cuda_rng": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None}, ckpt_path)

    def validate():
        entry = {"step": step, "train_loss": float(np.mean(running)) if running else float("nan"),
                 "lr": learning_rate(cfg, step)}
        rows, parts = [], []
        per_kind = max(1, cfg.grid_rows // max(len(val_sets), 1))
        for kind, vs in val_sets.items():
            pred = predict(model, vs.images, device=dev)
            entry[kind] = scores(vs.labels, pred)
            parts.append(format_scores(kind, entry[kind]))
            k = min(per_kind, len(vs))
            rows.append((vs.images[:k], vs.labels[:k], pred[:k]))
        history.append(entry)
        if rows:
            write_label_grid(out_dir / "val_grid.png", *(np.concatenate(r) for r in zip(*rows)))
        with atomic_path(out_dir / "history.json") as tmp:
            tmp.write_text(json.dumps(history, indent=1) + "\n")
        log(f"step {step}: train loss {entry['train_loss']:.4f}" + "".join(f", {p}" for p in parts))
        running.clear()

    bar = tqdm(total=cfg.steps, initial=step, desc="training F_seg", unit="step", disable=not progress)
    done_here = 0
    try:
        while step < cfg.steps:
            counts = {kinds[0]: cfg.batch} if len(kinds) == 1 else {"real": real_count(cfg, step)}
            if len(kinds) == 2:
                counts["rendered"] = cfg.batch - counts["real"]
            images, labels = [], []
            for kind in kinds:
                for i in orders[kind].take(counts[kind]):
                    x, y = augment(train[kind].images[i], train[kind].labels[i], aug_rng, cfg)
                    images.append(x)
                    labels.append(y)
            x, y = _to_tensor(images, labels)
            x, y = x.to(dev), y.to(dev)
            for group in opt.param_groups:
                group["lr"] = learning_rate(cfg, step)
            main, aux16, aux32 = model.forward_train(x)
            loss = F.cross_entropy(main, y) + cfg.aux_weight * (F.cross_entropy(aux16, y) + F.cross_entropy(aux32, y))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            done_here += 1
            running.append(loss.item())
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{running[-1]:.4f}")
            if end_of_step(step, cfg.steps, cfg.validate_every, cfg.checkpoint_every, validate, save, done_here,
                           stop_after):
                break
    finally:
        bar.close()
    return ckpt_path


def export_parser(model: FaceParser, path, ckpt: dict, command: str | None = None) -> Path:
    """Write the trained parser with :func:`core.nets.face_parser.save_face_parser` and its meta."""
    from ..nets.face_parser import save_face_parser

    meta = ckpt["meta"]
    trained = {"steps": ckpt["step"], "history": ckpt["history"][-2:], "crops": list(ckpt["config"]["crops"]),
               "config": ckpt["config"]}
    if command:
        trained["command"] = command
    return save_face_parser(model, path, {"input_size": meta["size"], "crop_size": meta["size"],
                                          "eye_distance": meta["eye_distance"], "classes": list(CLASSES),
                                          "trained": trained})


def main(args) -> int:
    """``au2rig train-parser`` (arguments parsed in core/__main__.py)."""
    import sys

    import cv2

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    cfg = ParserTrainConfig(steps=args.steps, batch=args.batch, lr=args.lr, real_share=args.real_share,
                            val_fraction=args.val_fraction, validate_every=args.validate_every,
                            checkpoint_every=args.checkpoint_every,
                            init=str(Path(args.init).resolve()) if args.init else None, seed=args.seed)
    from tqdm import tqdm

    ckpt_path = train_parser(args.crops, args.output, cfg, device=getattr(args, "device", "cpu"),
                             log=lambda s: tqdm.write(s, file=sys.stderr), progress=not args.quiet)
    if args.export:
        model, ckpt = load_trained_parser(ckpt_path)
        path = export_parser(model, args.export, ckpt, "au2rig " + " ".join(sys.argv[1:]))
        print(f"exported {path}", file=sys.stderr)
    return 0
