"""The landmark path's estimator: 68 detected landmarks -> the full parameter vector.

A small network (five-point alignment, then an MLP) trained in two stages:

1. **Synthetic**: random parameters (identity, brow style, sparse AUs, head pose) through
   the rig give exact 3-D landmarks; a random camera (distance, off-axis position) projects
   them and detector-like noise, per-face bias, jitter and occlusion are added. No rendering.
2. **Self-supervised** (:func:`adapt`) on landmarks detected in unlabeled real video:
   predicted parameters -> differentiable rig -> projected, aligned landmarks compared to
   the detected ones, plus the paper's parameter (sparsity) and loopback losses, with
   synthetic batches kept in the mix.

The network takes landmarks in image pixels: the alignment is part of the graph, so the
exported ONNX model needs nothing but the 68 points. Its output is the parameter vector in
the shared layout (brow style as probabilities), roll included: the alignment's rotation
plus the network's residual.

**The actor's reference frame.** From one frame, most AUs cannot be told apart from identity:
to first order, the landmark motion of AU5, 6, 7, 15, 18 or 20 lies inside the span of the
rig's 64 identity sliders and the head pose (measured on the built-in rig). A video, though,
shows one actor throughout. The network therefore takes a second, optional input: the
landmarks of a neutral frame of the same actor (any head pose), with a flag saying whether it
is given. Trained with the reference dropped at random, the same model works without one; the
tracker runs it once without, picks the actor's most relaxed frame (or the frame the user
names), and runs it again with that frame as reference. A detector's systematic errors are
shared by both frames, so the training noise adds the same per-point bias to both.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..alignment.align import five_points
from ..nets.checkpoints import CheckpointError, read_checkpoint, save_checkpoint
from ..nets.landmark_net import NetworkConfig, build_network, ensemble
from ..rig.evaluate import Rig
from ..rig.layout import LAYOUT, OPPOSED, ParameterLayout
from ..rig.load import load_rig
from ..tracking.estimator import check_compatible, model_fields
from ..util.atomic import atomic_path, claim_run_folder
from ..util.untrusted import reading

CHECKPOINT_FORMAT = "au2rig-landmark-estimator"
CHECKPOINT_VERSION = 1

# landmark groups of the iBUG 68 convention (for noise and occlusion)
JAW = tuple(range(0, 17))
OCCLUDERS = (tuple(range(0, 8)), tuple(range(9, 17)), tuple(range(48, 68)),
             tuple(range(17, 22)) + tuple(range(36, 42)), tuple(range(22, 27)) + tuple(range(42, 48)))


# --- configuration --------------------------------------------------------------------------
@dataclass(frozen=True)
class SamplingConfig:
    """How synthetic training faces are drawn."""
    yaw: float = 40.0          # pose limits in degrees (uniform in +-limit)
    pitch: float = 25.0
    roll: float = 25.0
    au_active: float = 0.3     # probability that an AU channel is active (value uniform 0..1)
    symmetric: float = 0.7     # probability that a split AU copies its left value to the right
    neutral_faces: float = 0.1  # share of faces with all AUs at zero
    no_reference: float = 0.3  # share of training faces shown without the actor's reference frame


@dataclass(frozen=True)
class NoiseConfig:
    """Detector-like corruption, in units of the inter-ocular distance."""
    jitter: float = 0.012      # per-point noise: sigma uniform in 0..jitter
    jaw_factor: float = 3.0    # the jaw line is noisier
    bias: float = 0.008        # per-face, per-point offset: sigma uniform in 0..bias
    occlusion: float = 0.05    # probability of one occluded group
    occluded_sigma: float = 0.06
    distance: tuple[float, float] = (0.7, 4.0)  # camera distance, as a factor of the rig's
    off_axis: float = 0.15     # lateral face position, as a tangent of the view angle


@dataclass(frozen=True)
class TrainConfig:
    samples: int = 200_000     # synthetic faces generated (3-D landmarks, cached)
    steps: int = 20_000
    batch: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    validate_every: int = 2_000
    checkpoint_every: int = 1_000
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)


def _config_from_dict(d: dict) -> TrainConfig:
    return TrainConfig(**{**d, "sampling": SamplingConfig(**d["sampling"]),
                          "noise": NoiseConfig(**{**d["noise"], "distance": tuple(d["noise"]["distance"])}),
                          "network": NetworkConfig(**d["network"])})


# --- sampling -------------------------------------------------------------------------------
def sample_synthetic_params(n: int, rng: np.random.Generator, cfg: SamplingConfig = SamplingConfig(),
                  layout: ParameterLayout = LAYOUT) -> np.ndarray:
    """(n, P) random parameter vectors: uniform identity, one brow style, sparse AUs, pose."""
    p = layout.neutral(n)
    p[:, layout.group_slice("pose")] = rng.uniform(-1, 1, (n, 3)) * [cfg.yaw, cfg.pitch, cfg.roll]
    ident = layout.group_slice("identity")
    p[:, ident] = rng.uniform(0, 1, (n, ident.stop - ident.start))
    brow = layout.group_slice("brow_style")
    p[:, brow] = 0.0
    p[np.arange(n), brow.start + rng.integers(0, brow.stop - brow.start, n)] = 1.0
    au = layout.group_slice("au")
    k = au.stop - au.start
    values = rng.uniform(0, 1, (n, k)) * (rng.uniform(0, 1, (n, k)) < cfg.au_active)
    values[rng.uniform(0, 1, n) < cfg.neutral_faces] = 0.0
    names = layout.group_names("au")
    opposed = {name for pair in OPPOSED for name in pair}
    copy = rng.uniform(0, 1, n) < cfg.symmetric
    for i, name in enumerate(names):
        if name.endswith("_R") and name[:-1] + "L" in names and name not in opposed:
            j = names.index(name[:-1] + "L")
            values[copy, i] = values[copy, j]
    for a, b in OPPOSED:  # at most one direction at a time
        i, j = names.index(a), names.index(b)
        drop = np.where(rng.uniform(0, 1, n) < 0.5, i, j)
        both = (values[:, i] > 0) & (values[:, j] > 0)
        values[both, drop[both]] = 0.0
    p[:, au] = values
    return p


def reference_params(params: np.ndarray, rng: np.random.Generator, cfg: SamplingConfig = SamplingConfig(),
                     layout: ParameterLayout = LAYOUT) -> np.ndarray:
    """The same actors (identity, brow style) with a neutral face at another random head pose."""
    ref = params.copy()
    ref[:, layout.group_slice("au")] = 0.0
    ref[:, layout.group_slice("pose")] = rng.uniform(-1, 1, (len(params), 3)) * [cfg.yaw, cfg.pitch, cfg.roll]
    return ref


def synthetic_landmarks_3d(rig: Rig, params: np.ndarray, chunk: int = 2048, progress=None) -> np.ndarray:
    """(n, 68, 3) float32 rig landmarks of ``params`` (numpy evaluator, in chunks)."""
    out = np.empty((len(params), 68, 3), np.float32)
    for start in range(0, len(params), chunk):
        out[start:start + chunk] = rig.landmarks_3d(params[start:start + chunk])
        if progress:
            progress(min(chunk, len(params) - start))
    return out


def camera_space(rig: Rig, points):
    """World points (..., 3) -> rig camera coordinates (x right, y up, z toward the viewer)."""
    cam = rig.camera
    loc = np.asarray(cam.location, float)
    if isinstance(points, np.ndarray):
        return (points - loc) @ np.asarray(cam.rotation)
    return (points - points.new_tensor(loc)) @ points.new_tensor(np.asarray(cam.rotation))


def random_projection(rig: Rig, points, generator, noise: NoiseConfig):
    """Project (N, 68, 3) torch points through a random camera: (N, 68, 2) image-like coords."""
    import torch

    n = points.shape[0]
    p = camera_space(rig, points)
    d0 = float(np.linalg.norm(np.subtract(rig.camera.look_at, rig.camera.location)))
    lo, hi = noise.distance
    scale = torch.exp(torch.empty(n, 1, device=points.device).uniform_(math.log(lo), math.log(hi), generator=generator))
    depth = -p[..., 2] + (scale - 1.0) * d0
    offset = torch.empty(n, 1, 2, device=points.device).uniform_(-noise.off_axis, noise.off_axis, generator=generator)
    xy = p[..., :2] + offset * depth[..., None]
    uv = xy / depth[..., None]
    return torch.stack([uv[..., 0], -uv[..., 1]], -1) * 1000.0


def corrupt(landmarks, generator, noise: NoiseConfig, reference=None):
    """Detector-like noise on (N, 68, 2) torch landmarks (in place of a real detector's errors).
    With ``reference`` (the same actors' neutral frames) both get the same per-point bias;
    returns ``(landmarks, reference)`` then."""
    import torch

    if reference is not None:
        n = landmarks.shape[0]
        both = corrupt(torch.cat([landmarks, reference]), generator,
                       NoiseConfig(**{**asdict(noise), "bias": 0.0}))
        five = five_points(landmarks)
        iod = (five[:, 1] - five[:, 0]).norm(dim=-1)[:, None, None]
        bias = torch.randn(n, 68, 2, generator=generator) * (torch.rand(n, 1, 1, generator=generator) * noise.bias)
        return both[:n] + bias * iod, both[n:] + bias * iod
    n = landmarks.shape[0]
    five = five_points(landmarks)
    iod = (five[:, 1] - five[:, 0]).norm(dim=-1)[:, None, None]

    def u(*shape):
        return torch.rand(*shape, generator=generator, device=landmarks.device)

    def g(*shape):
        return torch.randn(*shape, generator=generator, device=landmarks.device)

    point_scale = torch.ones(68, 1, device=landmarks.device)
    point_scale[list(JAW)] = noise.jaw_factor
    out = landmarks + g(n, 68, 2) * (u(n, 1, 1) * noise.jitter) * point_scale * iod
    out = out + g(n, 68, 2) * (u(n, 1, 1) * noise.bias) * iod
    occluded = u(n) < noise.occlusion
    if occluded.any():
        group = torch.randint(0, len(OCCLUDERS), (n,), generator=generator, device=landmarks.device)
        mask = torch.zeros(n, 68, 1, device=landmarks.device)
        for k, members in enumerate(OCCLUDERS):
            rows = torch.nonzero(occluded & (group == k)).flatten()
            if len(rows):
                mask[rows[:, None], torch.tensor(members)[None, :]] = 1.0
        out = out + mask * g(n, 68, 2) * noise.occluded_sigma * iod
    return out


def _torch():
    import torch

    return torch


def parameter_loss_terms(pred, target, layout: ParameterLayout = LAYOUT):
    """Supervised loss pieces: pose L1 (per 10 degrees), AU and identity squared error, brow style NLL.

    Squared error, not L1, for the sparse AUs: with most targets at zero, L1's optimum for an
    ambiguous face is exactly zero and the channel dies."""
    torch = _torch()
    g = {name: layout.group_slice(name) for name in ("pose", "au", "identity", "brow_style")}
    return {"pose": (pred[:, g["pose"]] - target[:, g["pose"]]).abs().mean() / 10.0,
            "au": (pred[:, g["au"]] - target[:, g["au"]]).square().mean(),
            "identity": (pred[:, g["identity"]] - target[:, g["identity"]]).square().mean(),
            "brow": -(target[:, g["brow_style"]] * torch.log(pred[:, g["brow_style"]] + 1e-6)).sum(1).mean()}


SUPERVISED_WEIGHTS = {"pose": 1.0, "au": 10.0, "identity": 1.0, "brow": 0.05}


# --- checkpoints ----------------------------------------------------------------------------
def save_weights(net, path, cfg: TrainConfig, layout: ParameterLayout = LAYOUT, rig: Rig | None = None,
                 extra: dict | None = None) -> Path:
    """A small checkpoint of the weights alone (no optimiser state), loadable by :func:`load_checkpoint`."""
    rig = rig or load_rig()
    save_checkpoint({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **model_fields(layout, rig),
                        "config": asdict(cfg), "model": net.state_dict(), **(extra or {})}, Path(path))
    return Path(path)


def load_checkpoint(path, layout: ParameterLayout = LAYOUT, rig: Rig | None = None):
    """(network, checkpoint dict) from a training checkpoint, checked against layout and rig."""
    path = Path(path)
    ckpt = read_checkpoint(path, CHECKPOINT_FORMAT, "landmark-estimator")
    check_compatible(ckpt, str(path), layout, rig)
    with reading(path, CheckpointError, "landmark-estimator checkpoint"):
        cfg = _config_from_dict(ckpt["config"])
        net = build_network(cfg.network, layout, rig)
        missing, unexpected = net.load_state_dict(ckpt["model"], strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit the network (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return net, ckpt


# --- training -------------------------------------------------------------------------------
def synthetic_set(cfg: TrainConfig, rig: Rig, cache: Path | None, layout: ParameterLayout = LAYOUT,
                  progress=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parameters, 3-D landmarks and the actors' neutral reference landmarks of the synthetic
    training faces (deterministic for the seed; cached in ``cache`` so resuming does not rebuild them)."""
    key = json.dumps({"samples": cfg.samples, "seed": cfg.seed, "sampling": asdict(cfg.sampling),
                      "rig_identity": rig.identity, "layout": layout.version, "reference": 1}, sort_keys=True)
    if cache is not None and cache.is_file():
        with np.load(cache) as data:
            if str(data["key"]) == key:
                return data["params"], data["points"], data["reference"]
    rng = np.random.default_rng(cfg.seed)
    params = sample_synthetic_params(cfg.samples, rng, cfg.sampling, layout)
    ref = reference_params(params, rng, cfg.sampling, layout)
    points = synthetic_landmarks_3d(rig, params, progress=progress)
    reference = synthetic_landmarks_3d(rig, ref)
    if cache is not None:
        with atomic_path(cache) as tmp:
            np.savez(tmp, key=key, params=params.astype(np.float32), points=points, reference=reference)
    return params.astype(np.float32), points, reference


def heldout_set(n: int = 2000, seed: int = 12345, rig: Rig | None = None, layout: ParameterLayout = LAYOUT,
                yaw: float = 30.0, pitch: float = 20.0, roll: float = 20.0, jitter: float = 0.0,
                resolution: int | None = None):
    """Held-out evaluation faces: new seed, random identity and pose (yaw +-30, pitch +-20, roll +-20
    degrees by default), landmarks through the rig's own camera, optional Gaussian jitter (in
    inter-ocular units). Each face comes with its actor's neutral frame at another random pose
    within the same limits (what the tracker's calibration provides). Returns
    ``(params, landmarks_px, reference_px)``."""
    rig = rig or load_rig()
    rng = np.random.default_rng(seed)
    sampling = SamplingConfig(yaw=yaw, pitch=pitch, roll=roll)
    params = sample_synthetic_params(n, rng, sampling, layout)
    ref = reference_params(params, rng, sampling, layout)
    out = []
    for p in (params, ref):
        lm = rig.landmarks_2d(p, resolution)
        if jitter:
            five = five_points(lm)
            iod = np.linalg.norm(five[:, 1] - five[:, 0], axis=-1)[:, None, None]
            lm = lm + rng.normal(0, jitter, lm.shape) * iod
        out.append(lm)
    return params, out[0], out[1]


def predict_torch(net, landmarks: np.ndarray, reference: np.ndarray | None = None, batch: int = 4096) -> np.ndarray:
    torch = _torch()
    net.eval()
    out = []

    def t(a):
        return torch.as_tensor(a, dtype=torch.float32)

    with torch.no_grad():
        for s in range(0, len(landmarks), batch):
            ref = None if reference is None else t(reference[s:s + batch])
            out.append(net(t(landmarks[s:s + batch]), ref).numpy())
    return np.concatenate(out).astype(np.float64)


def train(out_dir, cfg: TrainConfig = TrainConfig(), rig: Rig | None = None, layout: ParameterLayout = LAYOUT,
          log=print, stop_after: int | None = None, progress: bool = True) -> Path:
    """Synthetic training. Writes ``out_dir/checkpoint.pt`` (resumed when present and matching the
    configuration) every ``checkpoint_every`` steps; returns the checkpoint path.

    ``stop_after`` ends the run after that many steps of this call (an interruption, for tests)."""
    torch = _torch()
    from tqdm import tqdm

    rig = rig or load_rig()
    out_dir = Path(out_dir)
    held = claim_run_folder(out_dir)  # until this run returns: another run into it is refused
    ckpt_path = held.folder / "checkpoint.pt"
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        net = build_network(cfg.network, layout, rig)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(cfg.seed)
    step, history = 0, []
    if ckpt_path.is_file():
        net, ckpt = load_checkpoint(ckpt_path, layout, rig)
        # through the config class, so that a checkpoint from before a field was added (at its default) resumes
        if json.loads(json.dumps(asdict(_config_from_dict(ckpt["config"])))) != json.loads(json.dumps(asdict(cfg))):
            raise ValueError(f"{ckpt_path}: a checkpoint of a different training configuration is in the way; "
                             f"use another output folder or delete it")
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.05)
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        gen.set_state(ckpt["generator"])
        step, history = ckpt["step"], ckpt["history"]
        log(f"resuming {ckpt_path} at step {step}")

    bar = tqdm(total=cfg.samples, desc="synthetic faces", unit="face", disable=not progress, leave=False)
    params, points, reference = synthetic_set(cfg, rig, out_dir / "synthetic.npz", layout,
                                              progress=lambda k: bar.update(k / 2))
    bar.close()
    val_params, val_lm, val_ref = heldout_set(1000, seed=cfg.seed + 1, rig=rig, layout=layout, jitter=0.01)
    params_t, points_t, reference_t = map(torch.from_numpy, (params, points, reference))

    def save():
        save_checkpoint({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                            **model_fields(layout, rig), "config": asdict(cfg), "model": net.state_dict(),
                            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                            "generator": gen.get_state(), "step": step, "history": history}, ckpt_path)

    bar = tqdm(total=cfg.steps, initial=step, desc="training", unit="step", disable=not progress)
    done_here = 0
    net.train()
    while step < cfg.steps:
        idx = torch.randint(0, len(params_t), (cfg.batch,), generator=gen)
        lm, ref, has_ref = synthetic_batch(rig, points_t[idx], reference_t[idx], gen, cfg)
        terms = parameter_loss_terms(net(lm, ref, has_ref, clamp=False), params_t[idx], layout)
        loss = sum(SUPERVISED_WEIGHTS[k] * v for k, v in terms.items())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        done_here += 1
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}", au=f"{terms['au'].item():.4f}",
                            pose=f"{terms['pose'].item() * 10:.2f}deg")
        if step % cfg.validate_every == 0 or step == cfg.steps:
            summary = evaluate(lambda a, r=None: predict_torch(net, a, r), val_params, val_lm, layout, val_ref)
            history.append({"step": step, **summary})
            log(f"step {step}: held-out AU MAE {summary['au_mae']:.3f} (FACS 0-5), ICC {summary['au_icc']:.3f}, "
                f"pose MAE {summary['pose_mae']:.2f} deg")
            net.train()
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save()
        if stop_after is not None and done_here >= stop_after:
            save()
            break
    bar.close()
    return ckpt_path


def train_members(out_dir, cfg: TrainConfig = TrainConfig(), members: int = 1, rig: Rig | None = None,
                  layout: ParameterLayout = LAYOUT, log=print, progress: bool = True):
    """``members`` networks trained by :func:`train` with seeds ``cfg.seed``, ``cfg.seed + 1``, ...
    (each in ``out_dir/seed<N>``, resumed there; a single one in ``out_dir`` itself), returned as
    ``(network, config)``: the one network, or their :func:`~core.nets.landmark_net.ensemble`
    with a config that says how many it holds (what :func:`load_checkpoint` rebuilds)."""
    if members < 1:
        raise ValueError(f"members must be 1 or more, got {members}")
    out_dir = Path(out_dir)
    nets = []
    for k in range(members):
        member = replace(cfg, seed=cfg.seed + k)
        run = out_dir if members == 1 else out_dir / f"seed{member.seed}"
        if members > 1:
            log(f"member {k + 1} of {members}: seed {member.seed} in {run}")
        nets.append(load_checkpoint(train(run, member, rig, layout, log, progress=progress), layout, rig)[0])
    if members == 1:
        return nets[0], cfg
    return ensemble(nets), replace(cfg, network=replace(cfg.network, members=members))


def synthetic_batch(rig: Rig, points, reference, generator, cfg: TrainConfig):
    """One training batch: projected, corrupted landmarks, the actors' reference frames through
    the same camera, and the flag that drops the reference for a share of the faces."""
    torch = _torch()
    n = points.shape[0]
    both = random_projection(rig, torch.cat([points, reference], 1), generator, cfg.noise)
    lm, ref = corrupt(both[:, :68], generator, cfg.noise, reference=both[:, 68:])
    has_ref = (torch.rand(n, 1, generator=generator) >= cfg.sampling.no_reference).to(lm.dtype)
    return lm, ref, has_ref


def evaluate(predict, params: np.ndarray, landmarks: np.ndarray, layout: ParameterLayout = LAYOUT,
             reference: np.ndarray | None = None) -> dict:
    """Mean AU MAE / ICC(3,1) on the FACS 0-5 scale and pose MAE (degrees) on a labelled set,
    with ``predict(landmarks, reference)``."""
    from ..evaluation.metrics import au_report

    report = au_report(predict(landmarks, reference), params, layout)
    return {"au_mae": float(report["mean"]["mae"]), "au_icc": float(report["mean"]["icc"]),
            "pose_mae": float(np.mean(list(report["pose_mae_deg"].values())))}


# --- ONNX -----------------------------------------------------------------------------------
def relaxed_weights(net, layout: ParameterLayout = LAYOUT, rig: Rig | None = None, n: int = 2000) -> list[float]:
    """Per AU channel, how far the model sees it from a single frame (no reference): Pearson r
    on held-out rig faces, to the 4th power. The tracker ranks frames by these weighted AU values
    to find the actor's most relaxed frame before it has a reference."""
    from ..evaluation.metrics import pearson

    params, lm, _ = heldout_set(n, seed=4242, rig=rig, layout=layout)
    au = layout.group_slice("au")
    r = np.nan_to_num(pearson(predict_torch(net, lm)[:, au], params[:, au]), nan=0.0)
    return [round(float(v), 4) for v in np.clip(r, 0.0, 1.0) ** 4]


def export_onnx(net, path, layout: ParameterLayout = LAYOUT, rig: Rig | None = None, extra: dict | None = None) -> Path:
    """Write the network as ONNX (inputs ``landmarks`` and ``reference`` (N, 68, 2) pixels and
    ``has_reference`` (N, 1); output ``params`` (N, P)), with the layout and rig it was made for
    in the model's metadata; atomic, and only when ONNX Runtime agrees with torch."""
    torch = _torch()
    from .onnx_export import export_checked

    rig = rig or load_rig()
    net = net.eval()
    lm = torch.tensor(rig.landmarks_2d(layout.neutral(2)), dtype=torch.float32)
    flag = torch.ones(2, 1)

    class Exported(torch.nn.Module):  # the inference signature, clamped outputs
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, landmarks, reference, has_reference):
            return self.net(landmarks, reference, has_reference, clamp=True)

    meta = {"kind": "landmarks", **model_fields(layout, rig),
            "relaxed_weights": relaxed_weights(net, layout, rig), **(extra or {})}
    # the check compares 1e-3 degrees of pose; the AU outputs agree far closer
    return export_checked(Exported(), (lm, lm * 1.01, flag), path, ("landmarks", "reference", "has_reference"),
                          ("params",), meta, tol=1e-3)[0]


