"""build_addon.py makes an extension whose vendored package imports, registers and adds the rig."""
import importlib
import sys
import tomllib
import zipfile

import bpy
import numpy as np
import pytest

import build_addon
from au2rig.core.animation.tracking_io import Tracking, write_csv
from au2rig.core.rig import load_rig
from au2rig.core.rig.layout import LAYOUT


@pytest.fixture(scope="module")
def extension(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist") / "au2rig.zip"
    build_addon.build(out)
    root = tmp_path_factory.mktemp("ext")
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        zf.extractall(root / "au2rig_ext")
    return out, names, root


def test_zip_holds_manifest_addon_core_and_rigs(extension):
    out, names, _ = extension
    manifest = tomllib.loads(zipfile.ZipFile(out).read("blender_manifest.toml").decode())
    assert manifest["type"] == "add-on" and manifest["blender_version_min"] == "4.2.0"
    for name in ("__init__.py", "operators.py", "panels.py", "properties.py", "rig_builder.py", "_core.py", "bake.py",
                 "animate.py", "core/rig/evaluate.py", "core/rig/layout.py", "core/animation/tracking_io.py",
                 "core/animation/filters.py", "core/animation/keyframes.py", "core/util/atomic.py",
                 "core/animation/retarget.py", "core/datasets/pairs.py", "rigs/bdfm.toml", "rigs/bdfm_mesh.py",
                 "rigs/maps/bdfm.json", "rigs/maps/arkit52.json", "rigs/maps/rigify_face.json"):
        assert name in names
    assert "__main__.py" not in names and "cli.py" not in names
    # by folder: no training code, no development tools, no tracker without the tracker's wheels
    assert not [n for n in names if n.startswith(("core/nets/", "core/training/", "tools/", "core/models/",
                                                   "core/tracking/", "core/evaluation/"))]
    assert b"from .core." in zipfile.ZipFile(out).read("_core.py")


def test_build_is_reproducible(extension, tmp_path):
    out, _, _ = extension
    again = build_addon.build(tmp_path / "again.zip")
    assert again.read_bytes() == out.read_bytes()


def test_vendored_extension_registers_adds_the_rig_and_unregisters(extension, tmp_path):
    _, _, root = extension
    sys.path.insert(0, str(root))
    try:
        ext = importlib.import_module("au2rig_ext")
        vendored = importlib.import_module("au2rig_ext.core.rig").load_rig()
        assert vendored.identity == load_rig().identity  # the same rig, loaded from inside the extension
        assert len(importlib.import_module("au2rig_ext.core.animation.retarget").load_builtin("arkit52").entries) == 45
        bpy.ops.wm.read_factory_settings(use_empty=True)
        ext.register()
        try:
            assert bpy.ops.au2rig.add_face_rig(name="Face") == {'FINISHED'}
            arm = bpy.data.objects["Face"]
            assert arm.type == 'ARMATURE' and all(n in arm for n in LAYOUT.names)
            assert np.isclose(arm["id_nose_length"], 0.5)
            n = 5  # the vendored tracking importer keys a CSV onto it
            params = np.tile(LAYOUT.neutral(), (n, 1))
            params[:, LAYOUT.index["AU26"]] = np.linspace(0, 1, n)
            csv = write_csv(Tracking(np.arange(n), np.arange(n) / 30, np.ones(n, bool), np.ones(n), params,
                                     np.zeros((n, 68, 2)), 30.0), tmp_path / "t.csv")
            assert bpy.ops.au2rig.import_tracking(filepath=str(csv)) == {'FINISHED'}
            bpy.context.scene.frame_set(3)
            assert np.isclose(arm["AU26"], 0.5)
        finally:
            ext.unregister()
        assert not hasattr(bpy.types, "AU2RIG_OT_add_face_rig")
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == "au2rig_ext" or m.startswith("au2rig_ext.")]:
            del sys.modules[name]


# --- installing through Blender's own extension install, into a fresh Blender user directory ---

PROBE_WHEEL = "au2rig_probe-1.0-py3-none-any.whl"
INSTALL_SCRIPT = r'''
import json, sys
import bpy
import addon_utils

zip_path = sys.argv[1]
out = {"user_extensions": bpy.utils.user_resource('EXTENSIONS')}
out["install"] = sorted(bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                                  enable_on_install=True))
out["enabled"] = "bl_ext.user_default.au2rig" in bpy.context.preferences.addons
mods = [sys.modules["bl_ext.user_default.au2rig." + m] for m in ("properties", "operators", "panels", "capture")]
names = sorted({n for mod in mods for n, c in vars(mod).items() if n.startswith("AU2RIG_")
                and isinstance(c, type) and issubclass(c, (bpy.types.Operator, bpy.types.Panel))})
out["capture_settings"] = hasattr(bpy.types.Scene, "au2rig_capture")
out["classes"] = names
out["registered"] = [n for n in names if hasattr(bpy.types, n)]
out["add_rig"] = sorted(bpy.ops.au2rig.add_face_rig(name="Face"))
out["rig_channels"] = "AU26" in bpy.data.objects["Face"]
try:
    __import__("bl_ext.user_default.au2rig.video", fromlist=["video"]).load_tracker()
    out["tracker"] = "loaded"
except ValueError as e:
    out["tracker"] = str(e)
try:
    import au2rig_probe
    out["probe"] = au2rig_probe.VALUE
    out["probe_file"] = au2rig_probe.__file__
except ImportError as e:
    out["probe"] = repr(e)

index = [r.module for r in bpy.context.preferences.extensions.repos].index("user_default")
out["uninstall"] = sorted(bpy.ops.extensions.package_uninstall(repo_index=index, pkg_id="au2rig"))
out["enabled_after"] = "bl_ext.user_default.au2rig" in bpy.context.preferences.addons
out["registered_after"] = [n for n in names if hasattr(bpy.types, n)]
out["still_loaded"] = addon_utils.check("bl_ext.user_default.au2rig")[1]
out["capture_settings_after"] = hasattr(bpy.types.Scene, "au2rig_capture")
print("RESULT " + json.dumps(out), flush=True)
import os
os._exit(0)  # bpy 4.2.0 crashes while the interpreter shuts down once a property had an update callback
'''


def make_probe_wheel(folder):
    """A minimal valid wheel of a dummy package ``au2rig_probe`` (one module)."""
    import base64
    import hashlib

    files = {"au2rig_probe/__init__.py": b"VALUE = 42\n",
             "au2rig_probe-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: au2rig_probe\nVersion: 1.0\n",
             "au2rig_probe-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: au2rig-test\n"
                                                 b"Root-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
                     f"{len(data)}\n" for name, data in files.items())
    files["au2rig_probe-1.0.dist-info/RECORD"] = (record + "au2rig_probe-1.0.dist-info/RECORD,,\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / PROBE_WHEEL, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return folder / PROBE_WHEEL


def host_platform():
    import platform

    machine = platform.machine().lower()
    arch = "arm64" if machine in ("arm64", "aarch64") else "x64"
    return {"linux": "linux", "win32": "windows", "darwin": "macos"}[sys.platform] + "-" + arch


def install_in_fresh_blender(zip_path, user_dir):
    """Install ``zip_path`` with Blender's extension install into ``user_dir`` (a fresh Blender user
    directory, BLENDER_USER_RESOURCES, set before bpy starts), exercise it, uninstall it."""
    import json
    import os
    import subprocess

    env = dict(os.environ, BLENDER_USER_RESOURCES=str(user_dir))
    for var in ("BLENDER_USER_CONFIG", "BLENDER_USER_SCRIPTS", "BLENDER_USER_EXTENSIONS", "PYTHONPATH"):
        env.pop(var, None)
    run = subprocess.run([sys.executable, "-c", INSTALL_SCRIPT, str(zip_path)], env=env, cwd=user_dir,
                         capture_output=True, text=True, timeout=120)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def check_installed_and_uninstalled(result, user_dir):
    assert result["user_extensions"].startswith(str(user_dir))  # the fresh user directory, not ~/.config
    assert result["install"] == ["FINISHED"] and result["enabled"]
    assert {"AU2RIG_OT_add_face_rig", "AU2RIG_OT_import_tracking", "AU2RIG_OT_animate_from_video",
            "AU2RIG_OT_render_pairs", "AU2RIG_PT_channels", "AU2RIG_PT_capture",
            "AU2RIG_OT_capture_track"} <= set(result["classes"])
    assert result["registered"] == result["classes"] and result["capture_settings"]
    assert result["add_rig"] == ["FINISHED"] and result["rig_channels"]
    assert result["uninstall"] == ["FINISHED"] and not result["enabled_after"]
    assert result["registered_after"] == [] and not result["still_loaded"] and not result["capture_settings_after"]
    assert not (user_dir / "extensions" / "user_default" / "au2rig").exists()


def test_blender_installs_enables_and_uninstalls_the_extension(extension, tmp_path):
    out, _, _ = extension
    result = install_in_fresh_blender(out, tmp_path)
    check_installed_and_uninstalled(result, tmp_path)
    assert result["probe"].startswith("ModuleNotFoundError")  # the default build bundles no wheels
    assert result["tracker"].startswith("tracking needs onnxruntime, opencv and mediapipe")  # nor the tracker
    assert "--wheels" in result["tracker"]


def test_bundled_wheels_are_listed_and_installed_by_blender(tmp_path):
    make_probe_wheel(tmp_path / "wheels")
    platform = host_platform()
    out = build_addon.build(tmp_path / "au2rig_wheels.zip", [platform], wheel_dir=tmp_path / "wheels")
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
    assert manifest["platforms"] == [platform] and manifest["wheels"] == [f"./wheels/{PROBE_WHEEL}"]
    assert f"wheels/{PROBE_WHEEL}" in names
    for name in build_addon.core_files(tracker=True):  # the tracker's modules and model come with the wheels
        assert f"core/{name}" in names
    user = tmp_path / "user"
    user.mkdir()
    result = install_in_fresh_blender(out, user)
    check_installed_and_uninstalled(result, user)
    assert result["probe"] == 42, result["probe"]  # Blender installed the manifest's wheel
    assert result["probe_file"].startswith(str(user))  # into the fresh user directory's site-packages


def test_unknown_platform_and_wheel_dir_without_platform_are_build_errors(tmp_path):
    with pytest.raises(build_addon.BuildError, match="unknown platform 'amiga'"):
        build_addon.build(tmp_path / "x.zip", ["amiga"])
    with pytest.raises(build_addon.BuildError, match="--wheel-dir needs --wheels"):
        build_addon.build(tmp_path / "x.zip", wheel_dir=tmp_path)
    assert not (tmp_path / "x.zip").exists()


def test_a_missing_wheel_names_the_package_and_platform(tmp_path, monkeypatch):
    import subprocess
    import types

    calls = []

    def fake_pip(cmd, **kw):  # no network: pip finds nothing
        calls.append(cmd)
        return types.SimpleNamespace(returncode=1, stderr="ERROR: No matching distribution found for x\n")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    with pytest.raises(build_addon.BuildError, match=r"no wheel of onnxruntime==1\.20\.1 for windows-x64"):
        build_addon.download_wheels("windows-x64", cache=tmp_path)
    assert "--only-binary=:all:" in calls[0] and "win_amd64" in calls[0] and "--no-deps" in calls[0]


def test_vendored_modules_import_only_each_other_at_module_level():
    """Every module the extension vendors finds the core modules it imports at load time in the
    bundle too, and none imports torch (tests/test_architecture.py checks function level too)."""
    import ast

    bundled = {n for n in build_addon.core_files(tracker=True) if n.endswith(".py")}
    for name in sorted(bundled):
        tree = ast.parse((build_addon.ROOT / "core" / name).read_text())
        package = name.split("/")[:-1]
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[:len(package) - (node.level - 1)]
                module = base + (node.module.split(".") if node.module else [])
                targets = ["/".join(module)] if node.module else ["/".join(module + [a.name]) for a in node.names]
                for t in targets:
                    assert f"{t}.py" in bundled or f"{t}/__init__.py" in bundled, \
                        f"core/{name} imports core/{t} at module level, which is not bundled"
            if isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and node.level == 0):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                assert not any(m.split(".")[0] == "torch" for m in mods), f"core/{name} imports torch at load time"


TRACK_SCRIPT = r'''
import importlib, json, sys
sys.modules["torch"] = None  # Blender's Python has no torch: any import of it fails here
import bpy
import numpy as np

zip_path, clip, out_path = sys.argv[1:4]
assert bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                enable_on_install=True) == {"FINISHED"}
core = importlib.import_module("bl_ext.user_default.au2rig._core")
track = core.tracker()[0]
t = track.track_video(clip, track.TrackConfig(), progress=False)
np.save(out_path, t.params)
print("RESULT " + json.dumps({"module": track.__name__, "gaze": t.meta["calibration"]["gaze"],
                              "range": t.meta["calibration"]["motion_range"]["range"],
                              "torch": sys.modules.get("torch") is not None}), flush=True)
import os
os._exit(0)  # bpy 4.2.0 crashes while the interpreter shuts down once a property had an update callback
'''


def test_the_extension_tracks_a_clip_as_the_command_line_does(short_clip, tmp_path):
    """The extension with the tracker (its vendored core, no torch) tracks a clip inside Blender:
    the same parameters as `au2rig track`, gaze, lids and the actor's fitted range of motion
    included, within 1e-6."""
    import json
    import os
    import subprocess

    from au2rig.core.animation.tracking_io import read_tracking

    pytest.importorskip("mediapipe", reason="this Python has no tracker packages (the Blender 4.2 run installs "
                                            "only what the Blender-side tests need; the 5.0 run tracks)")
    make_probe_wheel(tmp_path / "wheels")  # the real wheels' packages are the test's own site-packages
    out = build_addon.build(tmp_path / "au2rig_tracker.zip", [host_platform()], wheel_dir=tmp_path / "wheels")
    user = tmp_path / "user"
    user.mkdir()
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(user))
    env.pop("PYTHONPATH", None)
    run = subprocess.run([sys.executable, "-c", TRACK_SCRIPT, str(out), str(short_clip), str(tmp_path / "ext.npy")],
                         env=env, cwd=user, capture_output=True, text=True, timeout=300)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["module"].startswith("bl_ext.user_default.au2rig.core.") and not result["torch"]
    assert result["gaze"] == "irises"
    cli = subprocess.run([sys.executable, "-m", "au2rig.core", "track", str(short_clip), "-o",
                          str(tmp_path / "cli.npz"), "--quiet"], capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-3000:]
    cli_tracking = read_tracking(tmp_path / "cli.npz")
    ours = cli_tracking.params
    fitted = cli_tracking.meta["calibration"]["motion_range"]["range"]
    assert result["range"].keys() == fitted.keys()
    np.testing.assert_allclose(list(result["range"].values()), list(fitted.values()), rtol=0, atol=1e-6)
    ext = np.load(tmp_path / "ext.npy")
    assert ext.shape == ours.shape and np.isfinite(ext).all()
    np.testing.assert_allclose(ext, ours, rtol=0, atol=1e-6)


def test_the_licence_is_one_in_the_manifest_the_package_and_license():
    with open(build_addon.ROOT / "pyproject.toml", "rb") as f:
        declared = tomllib.load(f)["project"]["license"]
    manifest = tomllib.loads(build_addon.manifest(()))
    assert declared == "GPL-3.0-or-later" and manifest["license"] == [f"SPDX:{declared}"]
    text = (build_addon.ROOT / "LICENSE").read_text()
    assert "GNU GENERAL PUBLIC LICENSE" in text and "Version 3, 29 June 2007" in text
