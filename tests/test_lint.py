"""The lint configuration of pyproject.toml ([tool.ruff]): ruff when installed (the dev extra pins
it), pyflakes always; and every suppression names its rule and says why, on its line."""
import importlib.util
import re
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

SOURCES = ("addon", "core", "rigs", "tests", "build_addon.py")


def python_files():
    for name in SOURCES:
        path = ROOT / name
        yield from ([path] if path.is_file() else sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts))


def test_pyflakes_finds_nothing(capsys):
    from pyflakes import api

    warnings = sum(api.checkPath(str(path)) for path in python_files())
    assert warnings == 0, capsys.readouterr().out


def test_ruff_finds_nothing():
    if importlib.util.find_spec("ruff") is not None:
        cmd = [sys.executable, "-m", "ruff"]
    elif shutil.which("ruff"):
        cmd = [shutil.which("ruff")]
    else:
        pytest.skip("ruff is not installed (pip install -e '.[dev]' installs the pinned one)")
    run = subprocess.run(cmd + ["check", "--no-cache", *SOURCES], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


def test_every_suppression_names_its_rule_and_says_why():
    blanket = re.compile(r"#\s*(noqa|type:\s*ignore|ruff:\s*noqa)(?!:\s*[A-Z]+[0-9]+)", re.I)
    unexplained = re.compile(r"#\s*noqa:\s*[A-Z]+[0-9]+(,\s*[A-Z]+[0-9]+)*\s*$")
    for path in python_files():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            where = f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
            assert not blanket.search(line), f"a blanket suppression: {where}"
            assert not unexplained.search(line), f"a suppression without its reason: {where}"
