"""``python -m au2rig.addon <command>``: the same as the console script ``au2rig`` (see addon/cli.py)."""
import sys

from .cli import run

if __name__ == "__main__":
    sys.exit(run())
