"""A run folder is trained into by one run at a time; a killed run's hold goes with it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from au2rig.core.util.atomic import RunFolderBusy, claim_run_folder

HOLD = """
import sys, time
from au2rig.core.util.atomic import claim_run_folder
hold = claim_run_folder(sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""


def _holder(folder):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_into_a_held_folder_is_refused_and_a_killed_runs_hold_goes_with_it(tmp_path):
    folder = tmp_path / "run"
    proc = _holder(folder)
    try:
        with pytest.raises(RunFolderBusy, match=rf"{folder}: another run \(process {proc.pid}\) is training"):
            claim_run_folder(folder)
        # the trainers claim their folder before any work: the command says so and stops
        out = subprocess.run([sys.executable, "-m", "au2rig.core", "train-landmarks", "-o", str(folder),
                              "--members", "1", "--steps", "1"], capture_output=True, text=True, timeout=300)
        assert out.returncode != 0 and f"{folder}: another run (process {proc.pid})" in out.stderr, out.stderr
        assert not (folder / "checkpoint.pt").exists()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    held = claim_run_folder(folder)  # killed: the system let go of its lock
    assert (folder / "run.lock").read_text() == str(os.getpid())
    held.close()


def test_a_run_holds_its_folder_until_it_lets_go(tmp_path):
    held = claim_run_folder(tmp_path / "run")
    proc = subprocess.run([sys.executable, "-c", HOLD.replace("time.sleep(120)", ""), str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "another run" in proc.stderr
    held.close()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", HOLD.replace("time.sleep(120)", ""), str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "held", (proc.stderr, time.perf_counter() - start)
