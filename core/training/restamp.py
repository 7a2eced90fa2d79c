"""``au2rig restamp FILE...``: renew the rig stamp of models made for this very rig.

A model's stamp names the rig it was made for (:mod:`core.rig.identity`). The stamp changes
without the rig changing when the identity's inputs are edited in ways that compute the same
arrays (a comment in the mesh generator), or when a file carries the CPU-dependent hash of an
earlier au2rig. ``restamp`` writes the current identity and fingerprint into such a file, after
showing that its rig *is* the loaded one: its stored fingerprint agrees within tolerance, or its
earlier hash is this rig's. Anything else is refused: a model of another rig must be retrained.

A model of an earlier parameter layout whose channels this layout only extends (1.0 -> 1.1
appended the gaze) is widened in the same step, once its fingerprint agrees with this rig's with
the new channels held neutral: the landmark estimator outputs them at neutral (its last layer
gets zero rows; in ONNX a neutral column is appended to the output), G ignores them (its first
layer gets zero weights for them). So nothing shipped stops loading, and nothing it computed
changes; what the new channels need (the irises, renders of turned eyes) comes from elsewhere
until the model is retrained.

A landmark estimator is this rig's when the rig's landmarks are what it was trained on: they are
all it ever saw of the rig (its synthetic faces are the 68 points under random parameters), so a
rig that only looks different (colours, the regions of its mesh, its brows' geometry) keeps it;
the fingerprint's landmark part must agree. G, which draws the rig, needs the whole fingerprint.

Handles the landmark estimator (``.onnx`` and ``.pt``), G's weights and checkpoints, the
image-path ONNX model and pairs datasets (a folder: its manifest's stamp, when the stored
fingerprint agrees); writes atomically.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..nets.checkpoints import read_checkpoint, save_checkpoint
from ..rig.identity import (
    FINGERPRINT_TOL,
    RigMismatchError,
    fingerprint_difference,
    restamp_reason,
    stamp,
)
from ..rig.layout import EARLIER_LAYOUTS, LAYOUT, ParameterLayout
from ..util.atomic import atomic_path
from .train_landmarks import CHECKPOINT_FORMAT as LANDMARK_FORMAT

_OLD_KEYS = ("rig_hash",)


def added_channels(meta: dict, layout: ParameterLayout) -> list[str]:
    """Channels this layout appends to the model's (empty for a model of this layout); raises
    :class:`RigMismatchError` for a layout this one does not extend."""
    old, new = list(meta.get("channels", [])), list(layout.names)
    if meta.get("layout_version") == layout.version and old == new:
        return []
    n = EARLIER_LAYOUTS.get(meta.get("layout_version"))
    if n is not None and old == new[:n]:
        return new[n:]
    raise RigMismatchError(f"made for parameter layout {meta.get('layout_version')!r} ({len(old)} channels), "
                           f"this is {layout.version!r}; a model of another layout must be retrained, not re-stamped")


def _widen_reason(meta: dict, rig, added: list[str], where: str) -> str:
    """Why the model of the earlier layout is this rig's: its fingerprint agrees with the rig's
    with the ``added`` channels held neutral."""
    diff = fingerprint_difference(meta.get("rig_fingerprint"), rig, added)
    if not diff <= FINGERPRINT_TOL:
        raise RigMismatchError(f"{where}: made for layout {meta.get('layout_version')!r}; with "
                               f"{', '.join(added)} at neutral the rig {rig.name!r} does not compute what it "
                               f"did for this model (fingerprint off by {diff:.2g} of the head's height): retrain it")
    return (f"widened from layout {meta.get('layout_version')} to {rig.layout.version}: "
            f"{', '.join(added)} at neutral; fingerprint agrees")


def _renew(meta: dict, rig, layout: ParameterLayout, where: str, landmarks_only: bool = False,
           remedy: str = "retrain it") -> tuple[dict, str]:
    try:
        added = added_channels(meta, layout)
    except RigMismatchError as e:
        raise RigMismatchError(f"{where}: {e}") from None
    if added:
        why = _widen_reason(meta, rig, added, where)
        new = {k: v for k, v in meta.items() if k not in _OLD_KEYS}
        new.update({"layout_version": layout.version, "channels": list(layout.names)}, **stamp(rig))
        return new, why
    if meta.get("rig_identity") == rig.identity and "rig_hash" not in meta:
        why = restamp_reason(meta, rig)
        if why is None:
            raise RigMismatchError(f"{where}: stamped for rig identity {rig.identity} but its fingerprint "
                                   f"disagrees with the loaded rig's; {remedy}")
        return meta, "already current"
    why = restamp_reason(meta, rig)
    if why is None and landmarks_only and "rig_fingerprint" in meta:
        diff = fingerprint_difference(meta["rig_fingerprint"], rig, landmarks_only=True)
        if diff <= FINGERPRINT_TOL:
            why = (f"a landmark estimator: the rig's landmarks agree within {diff:.2g} of the head's height "
                   f"(the rest of the rig, which it never saw, changed)")
    if why is None:
        old = meta.get("rig_identity", meta.get("rig_hash"))
        raise RigMismatchError(f"{where}: made for another rig (stamp {old!r}); nothing shows it is rig "
                               f"{rig.name!r} ({rig.identity}): {remedy}")
    new = {k: v for k, v in meta.items() if k not in _OLD_KEYS}
    new.update(stamp(rig))
    return new, why


def restamp(path, rig, layout: ParameterLayout = LAYOUT) -> str:
    """Re-stamp the model at ``path`` for ``rig``; returns what showed it is that rig. Raises
    :class:`~core.rig.identity.RigMismatchError` (naming the file) when it cannot be shown."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx

        model = onnx.load(str(path))
        meta = {p.key: json.loads(p.value) for p in model.metadata_props}
        new, why = _renew(meta, rig, layout, str(path), landmarks_only=meta.get("kind", "landmarks") == "landmarks")
        if new is meta:
            return why
        added = added_channels(meta, layout)
        if added:
            _widen_onnx(model, meta, layout, str(path))
        del model.metadata_props[:]
        for key, value in new.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, json.dumps(value)
        with atomic_path(path) as tmp:
            onnx.save(model, str(tmp))
        return why
    if path.suffix == ".pt":
        ckpt = read_checkpoint(path, None, "model")
        nested = isinstance(ckpt.get("meta"), dict)
        meta = ckpt["meta"] if nested else ckpt
        new, why = _renew(meta, rig, layout, str(path), landmarks_only=meta.get("format") == LANDMARK_FORMAT)
        if new is meta:
            return why
        weights = ckpt["model"]
        if added_channels(meta, layout):
            weights = _widen_state(weights, len(meta["channels"]), layout, str(path))
        save_checkpoint(dict(ckpt, meta=new, model=weights) if nested else dict(new, model=weights), path)
        return why
    if path.is_dir() and (path / "manifest.json").is_file():
        return _restamp_pairs(path, rig, layout)
    raise ValueError(f"{path}: not a model file (.onnx or .pt) or a pairs dataset folder")


def _restamp_pairs(folder: Path, rig, layout: ParameterLayout) -> str:
    """Renew the rig stamp of a pairs dataset (its manifest) whose fingerprint shows it was
    rendered from this rig; the stamp of the mesh its images show (``render_identity``, LOD
    ``render_lod`` of the rig, which the code derives from the rig) is renewed with it. A dataset
    of an earlier layout is refused: its pairs never vary the channels added since."""
    from ..datasets.pairs import read_manifest, write_manifest
    from ..rig.load import lod_of

    m = read_manifest(folder)
    where = str(folder / "manifest.json")
    meta = {"layout_version": m.layout_version, "channels": list(m.channels), "rig_identity": m.rig_identity,
            "rig_fingerprint": list(m.rig_fingerprint)}
    try:
        added = added_channels(meta, layout)
    except RigMismatchError as e:
        raise RigMismatchError(f"{where}: {e}") from None
    if added:
        raise RigMismatchError(f"{where}: rendered for layout {m.layout_version!r}, before {', '.join(added)}; "
                               f"its pairs never vary them: render the dataset again")
    new, why = _renew(meta, rig, layout, where, remedy="render the dataset again")
    if new is meta:
        return why
    m.rig_identity, m.rig_fingerprint = rig.identity, list(rig.fingerprint)
    m.render_identity = lod_of(rig, int(m.render_lod)).identity
    write_manifest(folder, m)
    return why


def _widen_state(state: dict, old: int, layout: ParameterLayout, where: str) -> dict:
    """A landmark estimator's or G's weights for ``layout``, which appends channels to the ``old``
    count: the estimator's last layer (``head``) gets zero rows, so the new outputs are its
    neutral (0 before the output's own mapping: the gaze's scale); G's first layer gets zero
    input weights for them and its input normalisation the layout's ranges."""
    import torch

    n = len(layout)
    out = dict(state)
    heads = [k[:-len("weight")] for k in state if k == "head.weight" or
             (k.startswith("members.") and k.endswith(".head.weight"))]  # an estimator, or each of an ensemble's
    for head in heads:
        w, b = state[head + "weight"], state[head + "bias"]
        if w.shape[0] != old:
            raise RigMismatchError(f"{where}: its last layer has {w.shape[0]} outputs, its metadata {old} channels")
        out[head + "weight"] = torch.cat([w, w.new_zeros(n - old, w.shape[1])])
        out[head + "bias"] = torch.cat([b, b.new_zeros(n - old)])
    if heads:
        return out
    if "blocks.0.0.weight" in state and "lo" in state:  # G
        w = state["blocks.0.0.weight"]  # (inputs: the parameters, then any landmark maps; out, k, k)
        if w.shape[0] < old or state["lo"].shape[1] != old:
            raise RigMismatchError(f"{where}: its first layer does not take {old} parameters")
        out["blocks.0.0.weight"] = torch.cat([w[:old], w.new_zeros(n - old, *w.shape[1:]), w[old:]])
        lo = np.asarray(layout.lo[old:], np.float32)
        span = np.asarray(layout.hi[old:], np.float32) - lo
        span[span == 0] = 1.0
        out["lo"] = torch.cat([state["lo"], torch.from_numpy(lo).view(1, -1, 1, 1)], 1)
        out["inv_span"] = torch.cat([state["inv_span"], torch.from_numpy(1.0 / span).view(1, -1, 1, 1)], 1)
        return out
    raise RigMismatchError(f"{where}: not a landmark estimator nor G; it cannot be widened")


def _widen_onnx(model, meta: dict, layout: ParameterLayout, where: str) -> None:
    """Append the new channels' neutral values to the landmark estimator's output ``params``."""
    from onnx import TensorProto, helper

    if meta.get("kind", "landmarks") != "landmarks":
        raise RigMismatchError(f"{where}: a {meta.get('kind')!r} model of an earlier layout must be retrained")
    graph = model.graph
    if [o.name for o in graph.output] != ["params"]:
        raise RigMismatchError(f"{where}: the estimator's output is not 'params'")
    old = len(meta["channels"])
    for node in graph.node:
        node.input[:] = ["params_earlier" if i == "params" else i for i in node.input]
        node.output[:] = ["params_earlier" if o == "params" else o for o in node.output]
    neutral = np.asarray(layout.neutral()[old:], np.float32)
    graph.initializer.append(helper.make_tensor("added_neutral", TensorProto.FLOAT, [1, len(neutral)], neutral))
    graph.initializer.append(helper.make_tensor("added_zero", TensorProto.FLOAT, [1, 1], [0.0]))
    graph.node.extend([  # (N, 1) zeros shaped like the batch, + the neutral row -> (N, added)
        helper.make_node("Slice", ["params_earlier", "slice_start", "slice_end", "slice_axis"], ["first_column"]),
        helper.make_node("Mul", ["first_column", "added_zero"], ["batch_zeros"]),
        helper.make_node("Add", ["batch_zeros", "added_neutral"], ["added_values"]),
        helper.make_node("Concat", ["params_earlier", "added_values"], ["params"], axis=1)])
    for name, value in (("slice_start", 0), ("slice_end", 1), ("slice_axis", 1)):
        graph.initializer.append(helper.make_tensor(name, TensorProto.INT64, [1], [value]))
    dim = graph.output[0].type.tensor_type.shape.dim
    if len(dim) == 2:
        dim[1].Clear()
        dim[1].dim_value = len(layout)


def main(args) -> int:
    """``au2rig restamp`` (arguments parsed in core/__main__.py)."""
    import sys

    from ..rig.load import load_rig

    rig = load_rig(args.rig)
    failed = 0
    for p in args.files:
        try:
            why = restamp(p, rig)
        except (ValueError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
            continue
        print(f"{p}: rig {rig.name!r} identity {rig.identity} ({why})")
    return 1 if failed else 0
