"""The README's headline commands, run as commands (subprocesses, as a user types them)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from au2rig.core.datasets import pairs

ROOT = Path(__file__).resolve().parents[1]


def au2rig(*args, timeout=600, **kw):
    return subprocess.run([sys.executable, "-m", "au2rig.addon", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, **kw)


def test_render_pairs_then_verify_pairs(tmp_path):
    out = tmp_path / "pairs"
    r = au2rig("render-pairs", out, "--count", 12, "--size", 32, "--workers", 2, "--masks", "--chunk-size", 4)
    assert r.returncode == 0, r.stderr[-3000:]
    r = au2rig("verify-pairs", out)
    assert r.returncode == 0 and "no problems" in r.stdout, r.stdout + r.stderr[-2000:]
    assert np.load(out / "params.npy").shape[0] == 12
    (out / "images" / "000005.png").write_bytes(b"not a png")
    r = au2rig("verify-pairs", out)
    assert r.returncode == 1 and "000005.png" in r.stdout


@pytest.mark.slow
def test_a_killed_two_worker_render_resumes_and_verifies(tmp_path):
    """SIGKILL to the whole process group (the command and its two render workers) while chunks
    are being written: nothing runs clean-up. Run again: it resumes, and verify finds no problem."""
    out = tmp_path / "pairs"
    args = ["render-pairs", out, "--count", 96, "--size", 32, "--workers", 2, "--chunk-size", 4]
    proc = subprocess.Popen([sys.executable, "-m", "au2rig.addon", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            done = list((out / "chunks").glob("*.npz")) if (out / "chunks").is_dir() else []
            if len(done) >= 3:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be killed; make it longer"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    before = {p.name: p.stat().st_mtime_ns for p in (out / "chunks").glob("*.npz")}
    assert 0 < len(before) < 24
    assert not pairs.read_manifest(out).complete
    r = au2rig(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    # resumed, not restarted: the chunks finished before the kill were not rendered again
    assert {name: (out / "chunks" / name).stat().st_mtime_ns for name in before} == before
    r = au2rig("verify-pairs", out)
    assert r.returncode == 0 and "no problems" in r.stdout, r.stdout[-3000:]
    assert pairs.read_manifest(out).complete and np.load(out / "params.npy").shape[0] == 96


def test_contact_sheet_command(tmp_path):
    sheet = tmp_path / "sheet.png"
    r = au2rig("contact-sheet", "-o", sheet, "--size", 48, "--columns", 10)
    assert r.returncode == 0, r.stderr[-3000:]
    img = cv2.imread(str(sheet))
    assert img is not None and img.shape[1] >= 10 * 48
    assert img.std() > 10  # faces, not a blank sheet


def test_recovery_command(tmp_path):
    out = tmp_path / "recovery"
    r = au2rig("recovery", "-o", out, "--actors", 1, "--cycles-actors", 0, "--seconds", 1.2)
    assert r.returncode == 0, r.stderr[-3000:]
    text = (out / "recovery.txt").read_text()
    assert "AU12" in text and "AU12" in r.stdout  # the table, printed and written
