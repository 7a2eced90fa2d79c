"""The console script au2rig: one subcommand per task, each with --help; listing them loads
neither Blender nor torch nor the tracker."""
import json
import subprocess
import sys
import tomllib

import pytest
from conftest import ROOT

from au2rig.addon.cli import COMMANDS, main

TASKS = ("track", "render-pairs", "verify-pairs", "train-landmarks", "train-generator", "train-regressor",
         "train-parser", "eval-landmarks", "eval-image", "eval-dataset", "bench", "demo", "contact-sheet", "recovery",
         "restamp", "faces", "fit", "livelink")


def test_the_console_script_is_the_command_table():
    with open(ROOT / "pyproject.toml", "rb") as f:
        assert tomllib.load(f)["project"]["scripts"] == {"au2rig": "au2rig.addon.cli:run"}
    assert set(TASKS) <= set(COMMANDS)


def test_help_lists_every_command_without_loading_blender_torch_or_the_tracker():
    probe = ("import json, sys, contextlib, io\n"
             "from au2rig.addon.cli import run\n"
             "out = io.StringIO()\n"
             "with contextlib.redirect_stdout(out):\n"
             "    try:\n"
             "        run(['--help'])\n"
             "    except SystemExit as e:\n"
             "        code = e.code\n"
             "heavy = [m for m in ('bpy', 'torch', 'cv2', 'onnxruntime', 'mediapipe') if m in sys.modules]\n"
             "print(json.dumps({'code': code, 'help': out.getvalue(), 'heavy': heavy}))\n")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["code"] == 0 and result["heavy"] == []
    for name in COMMANDS:
        assert name in result["help"]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_python_m_core_and_addon_stay_aliases():
    for package in ("au2rig.core", "au2rig.addon"):
        r = subprocess.run([sys.executable, "-m", package, "--help"], capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 0 and "restamp" in r.stdout


def test_an_error_is_one_line_not_a_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "au2rig.addon", "restamp", str(tmp_path / "missing.onnx")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr


def test_the_installed_project_is_one_package_au2rig(tmp_path):
    """``pip install .`` places what the wheel holds: the package ``au2rig`` (core, addon, rigs and
    their data inside), no generic top-level name. Imported from the unpacked wheel alone (no
    checkout, no editable install), it loads the built-in rig, its shipped model and the command line."""
    import shutil
    import sysconfig
    import zipfile

    source = tmp_path / "source"  # setuptools builds inside the source tree: a copy keeps the checkout clean
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("core", "addon", "rigs"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "--disable-pip-version-check", "-w", str(tmp_path / "dist"), str(source)],
                           capture_output=True, text=True, cwd=tmp_path)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel, = (tmp_path / "dist").glob("au2rig-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        z.extractall(tmp_path / "site")
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"au2rig"}
    folders = {p.parent.relative_to(ROOT).as_posix() for package in ("core", "addon", "rigs")
               for p in (ROOT / package).rglob("__init__.py") if "__pycache__" not in p.parts}
    for folder in folders:
        assert f"au2rig/{folder}/__init__.py" in names, f"{folder} is not installed (pyproject.toml's packages)"
    for data in ("core/models/landmarks.onnx", "core/data/mediapipe68.json", "core/data/detector_response.json",
                 "rigs/bdfm.toml",
                 "rigs/maps/arkit52.json"):
        assert f"au2rig/{data}" in names
    metadata = (tmp_path / "site" / next(n for n in names if n.endswith(".dist-info/METADATA"))).read_text()
    assert "License-Expression: GPL-3.0-or-later" in metadata
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "au2rig = au2rig.addon.cli:run" in (tmp_path / "site" / entry).read_text()
    # -S: no .pth files, so neither the checkout's editable install nor the checkout itself is seen
    probe = ("import sys, json, importlib.util\n"
             f"sys.path[:0] = [{str(tmp_path / 'site')!r}]\n"
             f"sys.path.append({sysconfig.get_paths()['purelib']!r})\n"
             "from au2rig.core.rig import load_rig\n"
             "from au2rig.core.tracking.estimator import DEFAULT_ONNX\n"
             "import au2rig.addon.cli, au2rig.core\n"
             "print(json.dumps({'rig': load_rig().identity, 'file': au2rig.core.__file__, "
             "'model': DEFAULT_ONNX.is_file(), "
             "'generic': [n for n in ('core', 'addon', 'rigs') if importlib.util.find_spec(n)]}))\n")
    r = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    from au2rig.core.rig import load_rig

    assert got["rig"] == load_rig().identity and got["model"] and got["generic"] == []
    assert got["file"].startswith(str(tmp_path / "site"))
