"""``python -m au2rig.core <command>``: the core commands of ``au2rig`` (see core/cli.py)."""
import sys

from .cli import main, run

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(run())
