"""build_addon.py makes an extension whose vendored package imports, registers and adds the rig."""
import importlib
import sys
import tomllib
import zipfile

import bpy
import numpy as np
import pytest

import build_addon
from core.layout import LAYOUT
from core.rig import load_rig
from core.tracking_io import Tracking, write_csv


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
    for name in ("__init__.py", "rig_builder.py", "_core.py", "bake.py", "animate.py", "core/rig.py",
                 "core/layout.py", "core/tracking_io.py", "core/filters.py", "core/keyframes.py",
                 "core/atomic.py", "core/retarget.py", "rigs/bdfm.toml", "rigs/bdfm_mesh.py",
                 "rigs/maps/bdfm.json", "rigs/maps/arkit52.json", "rigs/maps/rigify_face.json"):
        assert name in names
    assert "__main__.py" not in names
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
        vendored = sys.modules["au2rig_ext.core.rig"].load_rig()
        assert vendored.hash == load_rig().hash  # the same rig, loaded from inside the extension
        assert len(sys.modules["au2rig_ext.core.retarget"].load_builtin("arkit52").entries) == 37
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
