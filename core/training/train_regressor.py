"""Unsupervised training of the regressor R on unlabeled faces (paper §2.5, §3.2).

    au2rig train-regressor FACES... -o RUN_DIR --generator G.pt --parser F_SEG.pt
                                   [--embedder auto|dlib|lightcnn|none] [--embedder-path P]
                                   [--val VAL.npz] [--steps N] [--batch B] [--lr LR]
                                   [--w-identity 0.1 --w-parameter 0.1 --w-loopback 0.1 --w-adversarial 0.1]
                                   [--export MODEL.onnx]

Inputs are unlabeled faces: folders of images, image files and videos (faces are detected and
five-point aligned once, cached in ``RUN_DIR/faces.npz``), or aligned-crops files made by
``au2rig faces`` (also from a pairs dataset's renders). Known parameters in a crops file
are never used for training; in the ``--val`` file they are used to report AU ICC(3,1) / MAE (FACS
0-5) and pose error. G and F_seg (and F_reg) are frozen; only R learns (``core.training.chain``).

``RUN_DIR/checkpoint.pt`` holds R, the optimiser, the step, the history, the RNG states and the
data order, so a killed run resumes exactly; ``RUN_DIR/val_grid.png`` shows validation faces
as rows of input | G's re-rendering of the estimate; ``history.json`` the validation figures.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..nets.checkpoints import read_checkpoint, save_checkpoint
from ..nets.regressor import Regressor, RegressorConfig, region_channels
from ..rig.layout import LAYOUT, ParameterLayout
from ..tracking.estimator import full_pose
from ..util.atomic import atomic_path, claim_run_folder
from .chain import TERMS, LossWeights, Objective, RenderChain
from .common import Order, end_of_step, refuse_other_config, to_tensor, write_grid

CHECKPOINT_FORMAT = "au2rig-regressor-training"
CHECKPOINT_VERSION = 1
EMBEDDERS = ("auto", "dlib", "lightcnn", "none")


@dataclass(frozen=True)
class RegressorTrainConfig:
    """Everything that decides the result of a run (a resumed run must use the same)."""

    regressor: RegressorConfig = field(default_factory=RegressorConfig)
    weights: LossWeights = field(default_factory=LossWeights)
    steps: int = 3000
    batch: int = 8
    lr: float = 3e-4
    validate_every: int = 250
    checkpoint_every: int = 250
    val_max: int = 256
    grid_rows: int = 8
    seed: int = 0
    embedder: str = "auto"

    def __post_init__(self):
        for name in ("steps", "batch", "validate_every", "checkpoint_every", "val_max", "grid_rows"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.embedder not in EMBEDDERS:
            raise ValueError(f"embedder must be one of {EMBEDDERS}, got {self.embedder!r}")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))


def config_from_dict(d: dict) -> RegressorTrainConfig:
    d = dict(d)
    d["regressor"] = RegressorConfig(**d["regressor"])
    d["weights"] = LossWeights(**d["weights"])
    return RegressorTrainConfig(**d)


def file_digest(path) -> str:
    """Short content hash of a weights file (recorded so a run is tied to its frozen networks)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


# --- the frozen networks --------------------------------------------------------------------
def load_chain(generator_path, parser_path, rig=None, layout: ParameterLayout = LAYOUT) -> RenderChain:
    """RenderChain of a trained G (a train-generator checkpoint, checked against layout and rig)
    and a face parser (the project's own or the public checkpoint)."""
    from ..alignment.crops import CROP_SIZE, EYE_DISTANCE
    from ..nets.face_parser import load_face_parser
    from ..nets.generator import load_generator
    from ..rig.load import load_rig

    rig = rig or load_rig(layout=layout)
    g, _ = load_generator(generator_path, layout, rig=rig)
    parser = load_face_parser(parser_path)
    meta = getattr(parser, "meta", None) or {}
    return RenderChain(g, parser, rig, layout, size=int(meta.get("crop_size", CROP_SIZE)),
                       eye_distance=float(meta.get("eye_distance", EYE_DISTANCE)))


def open_embedder(kind: str, path=None, log=print):
    """F_reg for the identity loss, or None for kind "none"."""
    if kind == "none":
        return None
    from ..nets.face_id import open_face_embedder

    return open_face_embedder(kind, path)


def build_regressor(chain: RenderChain, cfg: RegressorConfig, layout: ParameterLayout = LAYOUT) -> Regressor:
    if cfg.crop_size != chain.size:
        raise ValueError(f"regressor made for {cfg.crop_size} px crops, the chain's are {chain.size} px")
    return Regressor(region_channels(chain.parser), cfg, layout)


# --- data ------------------------------------------------------------------------------------
def load_crops(paths, cache=None, size: int | None = None, eye_distance: float | None = None, log=print):
    """One FaceCrops of all inputs: crops files (.npz, ``au2rig faces``) as they are;
    images, folders of images and videos are detected and aligned (``core.datasets.faces.collect_faces``)
    once, into ``cache`` (reused when it exists). Errors name the file."""
    from ..alignment.crops import CROP_SIZE, EYE_DISTANCE
    from ..datasets.faces import FaceCrops, collect_faces

    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no face crops, images or videos given")
    parts = [FaceCrops.load(p) for p in paths if p.suffix == ".npz"]
    media = [p for p in paths if p.suffix != ".npz"]
    if media:
        if cache is not None and Path(cache).is_file():
            parts.append(FaceCrops.load(cache))
        else:
            found = collect_faces(media, size=size or CROP_SIZE, eye_distance=eye_distance or EYE_DISTANCE,
                                  labels=False)
            log(f"{len(found)} faces found in {', '.join(map(str, media))}")
            if cache is not None:
                found.save(cache)
            parts.append(found)
    sizes = {p.size for p in parts}
    if len(sizes) > 1 or (size and sizes != {size}):
        raise ValueError(f"crops of {sorted(sizes)} px in {', '.join(map(str, paths))}"
                         + (f"; the chain needs {size} px" if size else ""))
    return parts[0] if len(parts) == 1 else FaceCrops.concat(parts)


@torch.no_grad()
def predict_crops(objective: Objective, crops: np.ndarray, roll: np.ndarray, batch: int = 32,
                  layout: ParameterLayout = LAYOUT) -> np.ndarray:
    """R's parameters for crops (N, S, S, 3) uint8, roll put back in the image's frame."""
    objective.eval()
    out = [objective.predict(to_tensor(crops[i:i + batch])).numpy() for i in range(0, len(crops), batch)]
    return full_pose(np.concatenate(out) if out else np.zeros((0, len(layout))), roll, layout)


def validate(objective: Objective, val, max_n: int, layout: ParameterLayout = LAYOUT, batch: int = 32) -> dict:
    """Mean of each loss term on validation crops, and AU / pose accuracy when they carry params."""
    from ..evaluation.metrics import au_report

    n = min(len(val), max_n)
    objective.eval()
    sums = {}
    preds = []
    with torch.no_grad():
        for i in range(0, n, batch):
            x = to_tensor(val.crops[i:min(n, i + batch)])
            _, terms, y = objective(x)
            preds.append(y.numpy())
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.sum())
    out = {f"val_{k}": v / n for k, v in sums.items()}
    if val.params is not None:
        pred = full_pose(np.concatenate(preds), val.roll[:n], layout)
        rep = au_report(pred, val.params[:n], layout)
        out.update({"au_icc": rep["mean"]["icc"], "au_mae": rep["mean"]["mae"],
                    "pose_mae": rep["pose_mae_deg"]})
    return out


# --- checkpoints -------------------------------------------------------------------------------
def read_regressor_checkpoint(path) -> dict:
    return read_checkpoint(path, CHECKPOINT_FORMAT, "regressor")


def load_trained(path, chain: RenderChain | None = None, layout: ParameterLayout = LAYOUT):
    """(Objective with the trained R, checkpoint) from a train-regressor checkpoint; the frozen
    networks are reloaded from the paths it records unless ``chain`` is given."""
    ckpt = read_regressor_checkpoint(path)
    cfg = config_from_dict(ckpt["config"])
    chain = chain or load_chain(ckpt["meta"]["generator"]["path"], ckpt["meta"]["parser"]["path"], layout=layout)
    r = build_regressor(chain, cfg.regressor, layout)
    r.load_state_dict(ckpt["model"])
    obj = Objective(chain, r, None, LossWeights(**{**cfg.weights.to_dict(), "identity": 0.0}), layout)
    return obj.eval(), ckpt


# --- training ----------------------------------------------------------------------------------
def train_regressor(crops_paths, out_dir, generator_path, parser_path, cfg: RegressorTrainConfig | None = None, *,
                    val_path=None, embedder_path=None, layout: ParameterLayout = LAYOUT, log=print,
                    stop_after: int | None = None, progress: bool = True, chain: RenderChain | None = None) -> Path:
    """Train R; returns ``out_dir/checkpoint.pt`` (resumed when present)."""
    from tqdm import tqdm

    chain = chain or load_chain(generator_path, parser_path, layout=layout)
    cfg = cfg or RegressorTrainConfig(regressor=RegressorConfig(crop_size=chain.size))
    out_dir = Path(out_dir)
    held = claim_run_folder(out_dir)  # until this run returns: another run into it is refused
    ckpt_path = held.folder / "checkpoint.pt"
    embedder = None
    if cfg.weights.identity > 0:
        embedder = open_embedder(cfg.embedder, embedder_path)
        if embedder is None:
            raise ValueError("embedder 'none' with an identity weight > 0: set --w-identity 0 to train without it")
    elif cfg.embedder != "none":
        log("identity loss off (weight 0): no face embedder used")
    train = load_crops(crops_paths, out_dir / "faces.npz", chain.size, chain.eye_distance, log)
    val = (load_crops([val_path], out_dir / "val_faces.npz", chain.size, chain.eye_distance, log) if val_path
           else train.subset(np.arange(min(len(train), cfg.val_max))))
    if len(train) < cfg.batch:
        raise ValueError(f"{len(train)} training crops, fewer than one batch of {cfg.batch}")
    meta = {"layout_version": layout.version, "channels": list(layout.names), "rig_identity": chain.rig.identity,
            "generator": {"path": str(Path(generator_path).resolve()), "digest": file_digest(generator_path)},
            "parser": {"path": str(Path(parser_path).resolve()), "digest": file_digest(parser_path)},
            "embedder": getattr(embedder, "name", None), "crop_size": chain.size, "eye_distance": chain.eye_distance,
            "train_crops": [str(p) for p in crops_paths], "train_count": len(train)}

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        r = build_regressor(chain, cfg.regressor, layout)
    objective = Objective(chain, r, embedder, cfg.weights, layout)
    order = Order(len(train), cfg.seed)
    opt = torch.optim.Adam(r.parameters(), lr=cfg.lr)
    step, history, ckpt = 0, [], None
    if ckpt_path.is_file():
        ckpt = read_regressor_checkpoint(ckpt_path)
        refuse_other_config(ckpt_path, ckpt["config"], cfg.to_dict())
        for key in ("layout_version", "channels", "rig_identity", "generator", "parser", "train_count"):
            if ckpt["meta"].get(key) != meta[key]:
                raise ValueError(f"{ckpt_path}: made with another {key.replace('_', ' ')} "
                                 f"({ckpt['meta'].get(key)!r} vs {meta[key]!r}); use another run folder or delete it")
        r.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        order.load(ckpt["order"])
        torch.set_rng_state(ckpt["torch_rng"])
        step, history = ckpt["step"], ckpt["history"]
        log(f"resuming {ckpt_path} at step {step}")
    else:
        torch.manual_seed(cfg.seed)

    def save():
        save_checkpoint({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "meta": meta,
                         "config": cfg.to_dict(), "model": r.state_dict(), "optimizer": opt.state_dict(),
                         "step": step, "history": history, "order": order.state(), "running": running,
                         "torch_rng": torch.get_rng_state()}, ckpt_path)

    def validate_now():
        entry = {"step": step, **{f"train_{k}": float(np.mean(v)) for k, v in running.items()},
                 **validate(objective, val, cfg.val_max, layout)}
        running.clear()
        history.append(entry)
        write_fit_grid(out_dir / "val_grid.png", objective, val, cfg.grid_rows)
        with atomic_path(out_dir / "history.json") as tmp:
            tmp.write_text(json.dumps(history, indent=1) + "\n")
        log(summary(entry))

    running = dict(ckpt["running"]) if ckpt is not None else {}
    bar = tqdm(total=cfg.steps, initial=step, desc="training R", unit="step", disable=not progress)
    done_here = 0
    try:
        while step < cfg.steps:
            objective.train()
            x = to_tensor(train.crops[order.take(cfg.batch)])
            total, terms, _ = objective(x)
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            step += 1
            done_here += 1
            for k, v in terms.items():
                running.setdefault(k, []).append(float(v.detach().mean()))
            running.setdefault("total", []).append(float(total.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{float(total.detach()):.4f}")
            if end_of_step(step, cfg.steps, cfg.validate_every, cfg.checkpoint_every, validate_now, save,
                           done_here, stop_after):
                break
    finally:
        bar.close()
    return ckpt_path


def summary(entry: dict) -> str:
    parts = [f"step {entry['step']}: train loss {entry.get('train_total', float('nan')):.4f}"]
    parts += [f"{k} {entry['val_' + k]:.4f}" for k in TERMS if "val_" + k in entry]
    if "au_icc" in entry:
        pose = entry["pose_mae"]
        parts.append(f"AU ICC {entry['au_icc']:.3f} MAE {entry['au_mae']:.3f}, pose MAE yaw {pose['yaw']:.1f} "
                     f"pitch {pose['pitch']:.1f} roll {pose['roll']:.1f} deg")
    return ", ".join(parts)


@torch.no_grad()
def write_fit_grid(path, objective: Objective, val, rows: int) -> Path:
    """PNG: rows of validation faces, input crop | G's re-rendering of R's estimate (aligned)."""
    objective.eval()
    x = to_tensor(val.crops[:rows])
    fit = objective.chain.generate(objective.predict(x))
    return write_grid(path, x, fit.clamp(0, 1))


def main(args) -> int:
    """``au2rig train-regressor`` (arguments parsed in core/__main__.py)."""
    torch.set_num_threads(args.threads)
    weights = LossWeights(identity=args.w_identity, parameter=args.w_parameter, loopback=args.w_loopback,
                          adversarial=args.w_adversarial)
    chain = load_chain(args.generator, args.parser)
    cfg = RegressorTrainConfig(regressor=RegressorConfig(crop_size=chain.size), weights=weights, steps=args.steps,
                               batch=args.batch, lr=args.lr,
                               validate_every=args.validate_every, checkpoint_every=args.checkpoint_every,
                               seed=args.seed, embedder=args.embedder)
    ckpt = train_regressor(args.crops, args.output, args.generator, args.parser, cfg, val_path=args.val,
                           embedder_path=args.embedder_path, log=lambda s: print(s, file=sys.stderr),
                           progress=not args.quiet, chain=chain)
    if args.export:
        from .image_estimator import export_image_estimator

        objective, state = load_trained(ckpt)
        path, diff = export_image_estimator(objective, args.export, extra={
            "trained": {"steps": state["step"], "history": state["history"][-1:],
                        "command": "au2rig " + " ".join(sys.argv[1:])}})
        print(f"exported {path} (ONNX Runtime vs torch: max difference {diff:.2g})", file=sys.stderr)
    return 0
