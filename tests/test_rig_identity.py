"""A rig's identity is the same on every CPU, thread count and process, and changes with its inputs.

The CPU settings imitate other machines with ``NPY_DISABLE_CPU_FEATURES`` (numpy takes another
SIMD path, which changes the last bits of computed floats); thread counts go through
``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS``. Each setting runs in its own process.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from au2rig.core.rig import load_rig
from au2rig.core.rig.identity import FINGERPRINT_TOL, RigMismatchError, check_rig, legacy_hash, stamp
from au2rig.core.rig.layout import LAYOUT

ROOT = Path(__file__).resolve().parent.parent
CPU_SETTINGS = {
    "all features": "",
    "no AVX-512": "AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL",
    "no AVX-512, AVX2 or FMA3": "AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX2 FMA3",
}
SETTINGS = [(cpu, threads) for cpu in CPU_SETTINGS for threads in (1, 2)]

PROBE = """
import json
from au2rig.core.rig import load_rig
from au2rig.core.rig.identity import legacy_hash
rig, lod = load_rig(), load_rig(lod=1)
print(json.dumps({"identity": rig.identity, "lod1": lod.identity, "legacy": legacy_hash(rig),
                  "fingerprint": rig.fingerprint}))
"""


def _env(cpu: str, threads: int, **extra) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), **extra)
    env.pop("NPY_DISABLE_CPU_FEATURES", None)
    if CPU_SETTINGS[cpu]:
        env["NPY_DISABLE_CPU_FEATURES"] = CPU_SETTINGS[cpu]
    return env


def _run(args, env, cwd=ROOT, timeout=600):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def probes():
    out = {}
    for cpu, threads in SETTINGS:
        r = _run(["-c", PROBE], _env(cpu, threads))
        assert r.returncode == 0, f"{cpu}, {threads} threads: {r.stderr[-2000:]}"
        out[(cpu, threads)] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def test_one_identity_under_every_cpu_and_thread_setting(probes, rig):
    ids = {k: (v["identity"], v["lod1"]) for k, v in probes.items()}
    assert set(ids.values()) == {(rig.identity, load_rig(lod=1).identity)}, ids
    # the computed numbers agree within the stated tolerance (never asked to agree bit for bit)
    for k, v in probes.items():
        diff = np.abs(np.subtract(v["fingerprint"], rig.fingerprint)).max() / rig.height
        assert diff <= FINGERPRINT_TOL, (k, diff)


def test_the_old_raw_bytes_hash_does_depend_on_the_setting(probes):
    """What the identity replaces: the same rig hashed from its computed arrays. Unless some
    setting here changes it, this machine cannot show the problem the identity solves."""
    legacy = {k: v["legacy"] for k, v in probes.items()}
    if len(set(legacy.values())) == 1:
        pytest.skip(f"on this CPU every setting gives the same raw-bytes hash {set(legacy.values())}: "
                    f"numpy takes one SIMD path for the rig's arrays here")
    assert len(set(legacy.values())) > 1


@pytest.mark.parametrize("cpu,threads", SETTINGS)
def test_track_loads_the_shipped_model_under_the_setting(cpu, threads, short_clip, tmp_path):
    out = tmp_path / "t.csv"
    r = _run(["-m", "au2rig.core", "track", str(short_clip), "-o", str(out), "--quiet"], _env(cpu, threads))
    assert r.returncode == 0, r.stderr[-2000:]
    for suffix in (".csv", ".json", ".npz"):
        assert out.with_suffix(suffix).stat().st_size > 0
    rows = out.read_text().splitlines()
    assert len(rows) == 9 and "AU12_r" in rows[0]


# --- each input changes the identity, and the shipped model is refused -----------------------------
EDITS = {
    "a spec value": ("rigs/bdfm.toml", "\nlens_mm = 100.0\n", "\nlens_mm = 100.5\n"),
    "the mesh generator's source": ("rigs/bdfm_mesh.py", "\nimport math\n", "\nimport math  # edited\n"),
    "the rig assembly's source": ("core/rig/spec.py", "\nimport importlib\n", "\nimport importlib  # edited\n"),
    "a LOD factor": ("core/rig/evaluate.py", "LOD_FACTORS = (1, 2, 3)", "LOD_FACTORS = (1, 2, 4)"),
}

REFUSE = """
from au2rig.core.rig import load_rig
from au2rig.core.tracking.estimator import OnnxEstimator
rig = load_rig()
print(rig.identity)
try:
    OnnxEstimator(rig=rig)
except ValueError as e:
    print(e)
"""


def _copy_project(root):
    """core and rigs as the package au2rig under ``root``, which PYTHONPATH puts before the
    checkout's editable install."""
    for folder in ("core", "rigs"):
        shutil.copytree(ROOT / folder, root / "au2rig" / folder, ignore=shutil.ignore_patterns("__pycache__"))


@pytest.fixture(scope="module")
def copy_root(tmp_path_factory):
    """The project's code, rigs and shipped models in a scratch folder (edited per test)."""
    return tmp_path_factory.mktemp("project")


@pytest.mark.parametrize("what", EDITS)
def test_each_input_changes_the_identity_and_the_model_is_refused(what, copy_root, rig):
    root = copy_root / what.replace(" ", "_").replace("'", "")
    _copy_project(root)
    path, old, new = EDITS[what]
    text = (root / "au2rig" / path).read_text()
    assert text.count(old) >= 1, (path, old)
    (root / "au2rig" / path).write_text(text.replace(old, new, 1))
    r = _run(["-c", REFUSE], dict(os.environ, PYTHONPATH=str(root)), cwd=root)
    assert r.returncode == 0, r.stderr[-2000:]
    identity, *message = r.stdout.strip().splitlines()
    assert identity != rig.identity
    message = "\n".join(message)
    assert "landmarks.onnx" in message and "made for rig 'bdfm'" in message, message
    assert rig.identity in message and identity in message, message


def test_an_unedited_copy_keeps_the_identity(copy_root, rig):
    root = copy_root / "unedited"
    _copy_project(root)
    text = (root / "au2rig/rigs/bdfm_mesh.py").read_bytes()
    (root / "au2rig/rigs/bdfm_mesh.py").write_bytes(text.replace(b"\n", b"\r\n"))  # a Windows checkout
    r = _run(["-c", REFUSE], dict(os.environ, PYTHONPATH=str(root)), cwd=root)
    assert r.returncode == 0 and r.stdout.strip() == rig.identity, r.stdout + r.stderr[-2000:]


# --- the fingerprint beside the identity ------------------------------------------------------------
def test_a_stamp_with_a_fingerprint_off_by_more_than_the_tolerance_is_refused(rig):
    good = stamp(rig)
    check_rig(good, rig, "m.onnx")
    fp = np.array(good["rig_fingerprint"])
    nudged = fp.copy()
    nudged[2:] *= 1 + 1e-12  # another CPU's last bits (the first two are the vertex and face counts)
    check_rig(dict(good, rig_fingerprint=list(nudged)), rig, "m.onnx")
    moved = fp.copy()
    moved[10] += 1e-4 * rig.height  # one landmark moved by a tenth of a millimetre
    with pytest.raises(RigMismatchError, match="m.onnx: .* evaluates differently here"):
        check_rig(dict(good, rig_fingerprint=list(moved)), rig, "m.onnx")
    with pytest.raises(RigMismatchError, match="m.onnx: model made for rig 'bdfm' with identity 'x'"):
        check_rig(dict(good, rig_identity="x"), rig, "m.onnx")


def test_restamp_renews_a_legacy_stamp_of_this_rig_and_refuses_another(rig, synthetic_rig, tmp_path):
    import torch

    from au2rig.core.training.restamp import restamp
    from au2rig.core.training.train_landmarks import load_checkpoint

    ckpt = torch.load(ROOT / "core/models/landmarks.pt", map_location="cpu", weights_only=True)
    legacy = {k: v for k, v in ckpt.items() if k not in ("rig_identity", "rig_fingerprint")}
    path = tmp_path / "old.pt"
    torch.save(dict(legacy, rig_hash=legacy_hash(rig)), path)
    with pytest.raises(ValueError, match="earlier au2rig"):
        load_checkpoint(path)
    assert "this rig's on this machine" in restamp(path, rig)
    load_checkpoint(path)
    assert "already current" in restamp(path, rig)

    torch.save(dict(legacy, rig_hash="0123456789abcdef"), path)
    with pytest.raises(RigMismatchError, match="old.pt: made for another rig .* retrain"):
        restamp(path, rig)
    torch.save(dict(ckpt, **stamp(synthetic_rig)), path)  # made for another rig, with its fingerprint
    with pytest.raises(RigMismatchError, match="retrain"):
        restamp(path, rig)


STAMP_AND_RESTAMP = """
import json, sys
import onnx
from au2rig.core.cli import main
from au2rig.core.rig import load_rig
from au2rig.core.rig.identity import legacy_hash
source, path = sys.argv[1:]
model = onnx.load(source)
meta = {p.key: json.loads(p.value) for p in model.metadata_props}
del model.metadata_props[:]
for key, value in dict({k: v for k, v in meta.items() if not k.startswith("rig_")},
                       rig_hash=legacy_hash(load_rig())).items():
    e = model.metadata_props.add()
    e.key, e.value = key, json.dumps(value)
onnx.save(model, path)
sys.exit(main(["restamp", path]))
"""


def test_restamp_command_on_an_onnx_model(rig, tmp_path):
    """A model with the earlier au2rig's stamp of this rig, as this machine computes it, is
    re-stamped by the command. The earlier stamp is a hash of raw bytes, whose last bits differ
    between CPUs, thread settings and even a process's state (which libraries loaded first), so it
    is computed in the process that runs the command."""
    path = tmp_path / "m.onnx"
    r = _run(["-c", STAMP_AND_RESTAMP, str(ROOT / "core/models/landmarks.onnx"), str(path)], dict(os.environ))
    assert r.returncode == 0 and rig.identity in r.stdout and "earlier rig hash" in r.stdout, r.stderr
    from au2rig.core.tracking.estimator import OnnxEstimator

    assert OnnxEstimator(path).meta["rig_identity"] == rig.identity
    assert "rig_hash" not in OnnxEstimator(path).meta
    assert len(OnnxEstimator(path).meta["rig_fingerprint"]) == len(rig.fingerprint)
    assert LAYOUT.version == OnnxEstimator(path).meta["layout_version"]


def test_restamp_keeps_a_landmark_estimator_when_only_the_rigs_look_changed(rig, tmp_path):
    """A rig that looks different (its regions' colours and extents, its brows) but whose landmarks
    are the same keeps its landmark estimator, which never saw anything else of it; G, which draws
    the rig, does not pass, and neither does an estimator of moved landmarks."""
    import torch

    from au2rig.core.training.restamp import restamp
    from au2rig.core.training.train_landmarks import load_checkpoint

    fp = np.array(rig.fingerprint)
    looks = fp.copy()
    looks[2 + 68 * 3 * 3:] += 1e-3 * rig.height  # every region's centroid moved; the landmarks not
    moved = fp.copy()
    moved[10] += 1e-4 * rig.height  # a landmark moved
    ckpt = torch.load(ROOT / "core/models/landmarks.pt", map_location="cpu", weights_only=True)
    path = tmp_path / "est.pt"
    torch.save(dict(ckpt, rig_identity="0123456789abcdef", rig_fingerprint=looks.tolist()), path)
    with pytest.raises(ValueError, match="est.pt: .*restamp"):
        load_checkpoint(path)
    assert "landmarks agree" in restamp(path, rig)
    load_checkpoint(path)
    torch.save(dict(ckpt, rig_identity="0123456789abcdef", rig_fingerprint=moved.tolist()), path)
    with pytest.raises(RigMismatchError, match="retrain"):
        restamp(path, rig)
    g = torch.load(ROOT / "core/models/generator.pt", map_location="cpu", weights_only=True)
    meta = g["meta"] if isinstance(g.get("meta"), dict) else g
    meta = dict(meta, rig_identity="0123456789abcdef", rig_fingerprint=looks.tolist())
    gpath = tmp_path / "g.pt"
    torch.save(dict(g, meta=meta) if isinstance(g.get("meta"), dict) else dict(g, **meta), gpath)
    with pytest.raises(RigMismatchError, match="retrain"):
        restamp(gpath, rig)


def test_restamp_renews_a_pairs_datasets_stamp_and_refuses_another_rigs(rig, tmp_path):
    """A dataset rendered from this rig under an earlier stamp (the stamp's inputs edited, what
    they compute the same) is renewed, manifest and the stamp of the mesh its images show; one whose
    fingerprint disagrees, or of an earlier layout, is refused, and the manifest is left as it was."""
    from au2rig.core.datasets.pairs import Manifest, read_manifest, write_manifest
    from au2rig.core.rig.load import lod_of
    from au2rig.core.training.restamp import restamp

    m = Manifest.for_rig(rig, resolution=64, engine="workbench", seed=0, count=16, render_rig=lod_of(rig, 1))
    m.rig_identity, m.render_identity = "0123456789abcdef", "fedcba9876543210"
    write_manifest(tmp_path, m, durable=False)
    assert "fingerprint within" in restamp(tmp_path, rig)
    again = read_manifest(tmp_path)
    assert (again.rig_identity, again.render_identity) == (rig.identity, lod_of(rig, 1).identity)
    assert "already current" in restamp(tmp_path, rig)

    moved = np.array(rig.fingerprint)
    moved[10] += 1e-3 * rig.height
    m.rig_fingerprint = moved.tolist()
    write_manifest(tmp_path, m, durable=False)
    before = (tmp_path / "manifest.json").read_bytes()
    with pytest.raises(RigMismatchError, match="manifest.json: made for another rig .* render the dataset again"):
        restamp(tmp_path, rig)
    assert (tmp_path / "manifest.json").read_bytes() == before
    m.rig_fingerprint = list(rig.fingerprint)
    m.layout_version, m.channels = "1.0", list(LAYOUT.names)[:-2]
    write_manifest(tmp_path, m, durable=False)
    with pytest.raises(RigMismatchError, match="render the dataset again"):
        restamp(tmp_path, rig)
