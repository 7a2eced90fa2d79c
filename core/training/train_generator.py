"""Training of the generator G (core/nets/generator.py) on a pairs dataset (core/datasets/pairs.py).

    au2rig train-generator PAIRS_DIR -o RUN_DIR [--steps N] [--batch B] [--lr LR]
                                   [--loss l1_ssim|vgg16 --vgg PATH] [--device cpu|cuda|auto]
                                   [--export G.onnx]

The train split trains G with Adam; every ``validate_every`` steps the held-out (val split)
L1 and PSNR (dB, images in [0, 1]) are printed and appended to the checkpoint's history, and a
grid (rows of val pairs: rendered | generated) is written atomically to ``RUN_DIR/val_grid.png``.

``RUN_DIR/checkpoint.pt`` (written atomically every ``checkpoint_every`` steps) holds the model,
the optimiser, the step, the history, the RNG states of torch and numpy and the data order
(the current epoch's permutation and the position in it), so a resumed run continues exactly
where it stopped: on CPU the weights and history equal those of an uninterrupted run bit for bit.

Refused, with the reason: a dataset of another parameter layout ("layout 1.0 vs 1.1") or of
another rig ("rig hash X vs Y"), and a checkpoint in RUN_DIR of another training configuration
or made for another layout / rig.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..datasets.pairs import PairsDataset, read_manifest
from ..nets.checkpoints import save_checkpoint
from ..nets.generator import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    GeneratorConfig,
    build_generator,
    check_meta,
    generator_meta,
    load_generator,
    read_generator_checkpoint,
    save_generator,
    without_fingerprint,
)
from ..nets.perceptual import ImageLoss
from ..rig.identity import check_rig
from ..rig.layout import LAYOUT, ParameterLayout
from ..util.atomic import atomic_path, claim_run_folder
from .common import Order, end_of_step, refuse_other_config, write_grid


@dataclass(frozen=True)
class GeneratorTrainConfig:
    """Everything that decides the result of a run (a resumed run must use the same)."""

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    steps: int = 20000
    batch: int = 16
    lr: float = 2e-4
    lr_final: float = 1.0  # learning rate at the last step, as a fraction of lr (cosine decay; 1 = constant)
    betas: tuple = (0.5, 0.999)
    loss: str = "l1_ssim"  # or "vgg16" (needs vgg)
    vgg: str | None = None  # torchvision-format VGG16 state dict, for loss "vgg16"
    validate_every: int = 500
    checkpoint_every: int = 1000
    val_max: int = 512  # held-out pairs used for L1 / PSNR (the first ones of the val split)
    grid_rows: int = 8  # val pairs shown in val_grid.png
    seed: int = 0
    region_weight: float = 0.0  # weight of an extra L1 on the small facial regions (FEATURE_REGIONS; needs masks)
    init: str | None = None  # start from this G checkpoint's weights (a new run; ignored when resuming)

    def __post_init__(self):
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        for name in ("steps", "batch", "validate_every", "checkpoint_every", "val_max", "grid_rows"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if not 0 < self.lr_final <= 1:
            raise ValueError(f"lr_final must be in (0, 1], got {self.lr_final!r}")
        if self.loss not in ImageLoss.MODES:
            raise ValueError(f"loss must be one of {ImageLoss.MODES}, got {self.loss!r}")
        if not self.region_weight >= 0:
            raise ValueError(f"region_weight must be >= 0, got {self.region_weight!r}")
        if self.loss == "vgg16" and not self.vgg:
            raise ValueError("loss 'vgg16' needs --vgg PATH (a torchvision-format VGG16 state dict)")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))


def learning_rate(cfg: GeneratorTrainConfig, step: int) -> float:
    """Learning rate of step ``step`` (0-based): cosine from ``lr`` down to ``lr * lr_final``."""
    t = min(step, cfg.steps) / cfg.steps
    return cfg.lr * (cfg.lr_final + (1.0 - cfg.lr_final) * 0.5 * (1.0 + np.cos(np.pi * t)))


def config_from_dict(d: dict) -> GeneratorTrainConfig:
    d = dict(d)
    d["generator"] = GeneratorConfig(**d["generator"])
    return GeneratorTrainConfig(**d)


# --- the dataset --------------------------------------------------------------------------
def check_dataset(folder, layout: ParameterLayout = LAYOUT, rig=None):
    """The dataset's manifest, after refusing one of another layout or rig (naming the values)."""
    m = read_manifest(folder)
    if m.layout_version != layout.version:
        raise ValueError(f"{folder}: pairs dataset of another parameter layout: "
                         f"layout {m.layout_version} vs {layout.version} (this build)")
    if list(m.channels) != list(layout.names):
        raise ValueError(f"{folder}: pairs dataset of another parameter layout: {len(m.channels)} channels "
                         f"vs {len(layout)} (layout {layout.version}), or the channels differ")
    if rig is not None:
        check_rig(m.rig_stamp(), rig, str(folder), "pairs dataset")
    if not m.complete:
        raise ValueError(f"{folder}: the pairs run has not finished (resume it first)")
    return m


# the rig's small facial regions: an expression lives in few pixels, which an image-wide loss
# barely sees; ``region_weight`` adds an L1 over these pixels alone (from the dataset's masks)
FEATURE_REGIONS = ("brows", "lids", "lashes", "sclera", "iris", "pupil", "nose", "lips", "mouth_interior", "teeth")


class _Images:
    """Batches of (params, images[, feature masks]) of one split, images (N, 3, R, R) float32 in
    [0, 1], masks (N, 1, R, R) float32, 1 on the pixels of FEATURE_REGIONS."""

    def __init__(self, ds: PairsDataset, resolution: int, threads: int = 4, masks: bool = False):
        self.ds, self.resolution = ds, int(resolution)
        self.pool = ThreadPoolExecutor(max_workers=threads)
        self.masks = masks
        if masks:
            if not ds.manifest.masks:
                raise ValueError(f"{ds.folder}: region_weight needs the dataset's masks (render it with --masks)")
            regions = list(ds.manifest.regions)
            self.feature_labels = np.array([regions.index(r) for r in FEATURE_REGIONS if r in regions])

    def _item(self, k: int):
        import cv2

        item = self.ds[int(k)]
        img, mask = item["image"], None
        if self.masks:
            mask = np.isin(item["mask"], self.feature_labels).astype(np.float32)
        if img.shape[0] != self.resolution or img.shape[1] != self.resolution:
            img = cv2.resize(img, (self.resolution, self.resolution), interpolation=cv2.INTER_AREA)
            if mask is not None:
                mask = cv2.resize(mask, (self.resolution, self.resolution), interpolation=cv2.INTER_AREA)
        return img, mask

    def batch(self, ks):
        items = list(self.pool.map(self._item, ks))
        params = np.stack([self.ds.params[self.ds.indices[int(k)]] for k in ks])
        x = torch.from_numpy(np.ascontiguousarray(np.stack([i[0] for i in items]).transpose(0, 3, 1, 2)))
        if not self.masks:
            return torch.from_numpy(params), x
        m = torch.from_numpy(np.stack([i[1] for i in items])[:, None])
        return torch.from_numpy(params), x, m

    def close(self) -> None:
        self.pool.shutdown()


# --- validation -----------------------------------------------------------------------------
def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images in [0, 1]."""
    mse = ((pred - target) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return 10.0 * torch.log10(1.0 / mse)


@torch.no_grad()
def evaluate(g, params: torch.Tensor, images: torch.Tensor, device, batch: int = 64):
    """(mean L1, mean PSNR dB, generated images on the CPU) over held-out pairs."""
    outs = []
    for i in range(0, len(params), batch):
        outs.append(g(params[i:i + batch].to(device)).float().cpu())
    gen = torch.cat(outs)
    return float((gen - images).abs().mean()), float(psnr(gen, images).mean()), gen


def feature_psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR (dB) over the pixels of ``mask`` (N, 1, R, R) alone, pooled over the images."""
    mse = (((pred - target) ** 2) * mask).sum() / (3 * mask.sum()).clamp_min(1)
    return float(10.0 * torch.log10(1.0 / mse.clamp_min(1e-10)))


# --- checkpoints -------------------------------------------------------------------------------
def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device must be cpu, cuda or auto, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA device is available (use cpu or auto)")
    return torch.device(device)


# --- training ------------------------------------------------------------------------------------
def train_generator(pairs_dir, out_dir, cfg: GeneratorTrainConfig | None = None, *, rig=None,
                    layout: ParameterLayout = LAYOUT, device: str = "cpu", log=print,
                    stop_after: int | None = None, progress: bool = True) -> Path:
    """Train G; returns ``out_dir/checkpoint.pt`` (resumed when present). ``rig``: the rig the
    dataset was rendered from (default: the built-in rig). ``stop_after``: end after that many
    steps of this call."""
    from tqdm import tqdm

    if rig is None:
        from ..rig.load import load_rig

        rig = load_rig(layout=layout)
    manifest = check_dataset(pairs_dir, layout, rig)
    cfg = cfg or GeneratorTrainConfig(generator=GeneratorConfig(resolution=manifest.resolution))
    dev = resolve_device(device)
    out_dir = Path(out_dir)
    held = claim_run_folder(out_dir)  # until this run returns: another run into it is refused
    ckpt_path = held.folder / "checkpoint.pt"
    meta = generator_meta(cfg.generator, layout, rig)
    meta["dataset"] = {"rig_identity": manifest.rig_identity, "resolution": manifest.resolution, "seed": manifest.seed,
                       "count": manifest.count}

    train_ds, val_ds = PairsDataset(pairs_dir, "train"), PairsDataset(pairs_dir, "val")
    if len(train_ds) == 0 or len(val_ds) == 0:
        raise ValueError(f"{pairs_dir}: needs pairs in both splits (train {len(train_ds)}, val {len(val_ds)})")
    res = cfg.generator.resolution
    train_src = _Images(train_ds, res, masks=cfg.region_weight > 0)
    val_src = _Images(val_ds, res, masks=bool(manifest.masks))
    val_params, val_images, *val_masks = val_src.batch(np.arange(min(len(val_ds), cfg.val_max)))
    val_src.close()

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        g = build_generator(cfg.generator, layout, rig)
    order = Order(len(train_ds), cfg.seed)
    step, history = 0, []
    ckpt = None
    if ckpt_path.is_file():
        ckpt = read_generator_checkpoint(ckpt_path)
        refuse_other_config(ckpt_path, ckpt["config"], cfg.to_dict())
        check_meta(ckpt["meta"], layout, rig, where=str(ckpt_path))
        if without_fingerprint(ckpt["meta"]) != without_fingerprint(meta):
            raise ValueError(f"{ckpt_path}: made on another dataset ({ckpt['meta'].get('dataset')} vs "
                             f"{meta['dataset']}); use another run folder or delete it")
        g.load_state_dict(ckpt["model"])
    elif cfg.init:
        start, _ = load_generator(cfg.init, layout, rig=rig)
        if start.cfg != cfg.generator:
            raise ValueError(f"{cfg.init}: a G of another shape ({start.cfg} vs {cfg.generator})")
        g.load_state_dict(start.state_dict())
        log(f"starting from the weights of {cfg.init}")
    g.to(dev).train()
    loss_fn = ImageLoss(cfg.loss, cfg.vgg).to(dev)
    opt = torch.optim.Adam(g.parameters(), lr=cfg.lr, betas=cfg.betas)
    if ckpt is not None:
        opt.load_state_dict(ckpt["optimizer"])
        order.load(ckpt["order"])
        torch.set_rng_state(ckpt["torch_rng"])
        np.random.set_state(ckpt["numpy_rng"])
        if dev.type == "cuda" and ckpt.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(ckpt["cuda_rng"], dev)
        step, history = ckpt["step"], ckpt["history"]
        log(f"resuming {ckpt_path} at step {step}")
    else:
        torch.manual_seed(cfg.seed)

    def save():
        save_checkpoint({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "meta": meta,
                            "config": cfg.to_dict(), "model": {k: v.cpu() for k, v in g.state_dict().items()},
                            "optimizer": opt.state_dict(), "step": step, "history": history,
                            "order": order.state(), "running_losses": list(running), "torch_rng": torch.get_rng_state(),
                            "numpy_rng": np.random.get_state(),
                            "cuda_rng": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None},
                           ckpt_path)

    def validate():
        l1, db, gen = evaluate(g, val_params, val_images, dev)
        entry = {"step": step, "train_loss": float(np.mean(running)), "val_l1": l1, "val_psnr": db}
        if val_masks:  # the face's small parts alone, where an expression shows
            entry["val_feature_psnr"] = feature_psnr(gen, val_images, val_masks[0])
        history.append(entry)
        running.clear()
        k = min(cfg.grid_rows, len(val_params))
        write_grid(out_dir / "val_grid.png", val_images[:k], gen[:k])
        with atomic_path(out_dir / "history.json") as tmp:
            tmp.write_text(json.dumps(history, indent=1) + "\n")
        log(f"step {step}: train loss {entry['train_loss']:.4f}, held-out L1 {l1:.4f}, PSNR {db:.2f} dB"
            + (f", on the facial regions {entry['val_feature_psnr']:.2f} dB" if val_masks else ""))
        g.train()

    bar = tqdm(total=cfg.steps, initial=step, desc="training G", unit="step", disable=not progress)
    done_here, running = 0, list(ckpt["running_losses"]) if ckpt is not None else []
    try:
        while step < cfg.steps:
            params, images, *masks = train_src.batch(order.take(cfg.batch))
            for group in opt.param_groups:
                group["lr"] = learning_rate(cfg, step)
            pred = g(params.to(dev))
            loss = loss_fn(pred, images.to(dev))
            if masks:
                m = masks[0].to(dev)
                loss = loss + cfg.region_weight * ((pred - images.to(dev)).abs() * m).sum() / (3 * m.sum()).clamp_min(1)
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
        train_src.close()
    return ckpt_path


# --- export --------------------------------------------------------------------------------------
def export_generator_onnx(g, path, layout: ParameterLayout = LAYOUT, rig=None,
                          extra: dict | None = None, check_n: int = 4, tol: float = 1e-4) -> tuple[Path, float]:
    """Write G as ONNX (input ``params`` (N, P), output ``image`` (N, 3, R, R)) with metadata
    (kind "generator", layout, channels, the rig's stamp, config), atomically; check ONNX Runtime against
    torch on random inputs. Returns (path, max abs difference); raises if it exceeds ``tol``."""
    from .onnx_export import export_checked

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(layout.lo, layout.hi, (check_n, len(layout))).astype(np.float32))
    meta = {"kind": "generator", **generator_meta(g.cfg, layout, rig), **(extra or {})}
    return export_checked(g, (x,), path, ("params",), ("image",), meta, tol)


def main(args) -> int:
    """``au2rig train-generator`` (arguments parsed in core/__main__.py)."""
    import sys

    torch.set_num_threads(args.threads)
    manifest = read_manifest(args.pairs)
    gcfg = GeneratorConfig(resolution=args.resolution or manifest.resolution, base_width=args.base_width,
                           max_width=args.max_width, landmark_maps=args.landmark_maps,
                           iris_maps=args.landmark_maps and args.iris_maps, norm=args.norm)
    cfg = GeneratorTrainConfig(generator=gcfg, steps=args.steps, batch=args.batch, lr=args.lr,
                               lr_final=args.lr_final, loss=args.loss, region_weight=args.region_weight,
                               init=str(Path(args.init).resolve()) if args.init else None,
                               vgg=str(Path(args.vgg).resolve()) if args.vgg else None,
                               validate_every=args.validate_every, checkpoint_every=args.checkpoint_every,
                               seed=args.seed)
    from ..rig.load import load_rig

    rig = load_rig(args.rig)
    ckpt = train_generator(args.pairs, args.output, cfg, rig=rig, device=args.device,
                           log=lambda s: print(s, file=sys.stderr), progress=not args.quiet)
    if args.export or args.save_weights:
        g, state = load_generator(ckpt, rig=rig)
        trained = {"steps": state["step"], "history": state["history"][-1:],
                   "command": "au2rig " + " ".join(sys.argv[1:])}
    if args.export:
        path, diff = export_generator_onnx(g, args.export, rig=rig, extra={"trained": trained})
        print(f"exported {path} (ONNX Runtime vs torch: max difference {diff:.2g})", file=sys.stderr)
    if args.save_weights:
        path = save_generator(g, args.save_weights, rig, extra={"trained": trained}, half=True)
        print(f"saved {path} (weights only, float16)", file=sys.stderr)
    return 0
