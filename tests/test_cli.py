"""The console script au2rig: one subcommand per task, each with --help; listing them loads
neither Blender nor torch nor the tracker."""
import json
import subprocess
import sys
import tomllib

import pytest
from conftest import ROOT

from addon.cli import COMMANDS, main

TASKS = ("track", "render-pairs", "verify-pairs", "train-landmarks", "train-generator", "train-regressor",
         "train-parser", "eval-landmarks", "eval-image", "eval-dataset", "bench", "demo", "contact-sheet", "recovery",
         "restamp", "faces", "fit")


def test_the_console_script_is_the_command_table():
    with open(ROOT / "pyproject.toml", "rb") as f:
        assert tomllib.load(f)["project"]["scripts"] == {"au2rig": "addon.cli:run"}
    assert set(TASKS) <= set(COMMANDS)


def test_help_lists_every_command_without_loading_blender_torch_or_the_tracker():
    probe = ("import json, sys, contextlib, io\n"
             "from addon.cli import run\n"
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
    for package in ("core", "addon"):
        r = subprocess.run([sys.executable, "-m", package, "--help"], capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 0 and "restamp" in r.stdout


def test_an_error_is_one_line_not_a_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "addon", "restamp", str(tmp_path / "missing.onnx")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr
