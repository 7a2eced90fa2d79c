#!/usr/bin/env python3
"""Build the installable Blender extension zip (Blender 4.2 LTS and later).

    python build_addon.py [-o dist/au2rig-<version>.zip]

The zip holds ``blender_manifest.toml``, the add-on modules of ``addon/``, the runtime part of
``core`` vendored as the subpackage ``core`` (``addon/_core.py`` is rewritten to import it
relatively), and ``rigs/``. Nothing is pip-installed inside Blender; the runtime needs only numpy,
which Blender ships. Standard library only.
"""
from __future__ import annotations

import argparse
import os
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CORE_RUNTIME = ("__init__.py", "layout.py", "rig.py", "rigspec.py", "performance.py", "pairs.py", "skinning.py",
                "atomic.py", "filters.py", "keyframes.py", "tracking_io.py", "quiet.py",
                "retarget.py")
# the repository's command line and development tools, not part of the extension
ADDON_EXCLUDE = ("__main__.py", "bench.py", "retarget_maps.py", "rigify_sheet.py")
MANIFEST = """\
schema_version = "1.0.0"
id = "au2rig"
version = "{version}"
name = "au2rig"
tagline = "Facial Action Units and head pose onto face rigs"
maintainer = "au2rig developers"
type = "add-on"
blender_version_min = "4.2.0"
license = ["SPDX:GPL-3.0-or-later"]
tags = ["Animation", "Rigging"]
"""


def project_version() -> str:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["version"]


def extension_files() -> dict[str, bytes]:
    """Archive name -> content of every file the extension holds."""
    files = {"blender_manifest.toml": MANIFEST.format(version=project_version()).encode()}
    for path in sorted((ROOT / "addon").glob("*.py")):
        if path.name in ADDON_EXCLUDE:
            continue
        text = path.read_text()
        if path.name == "_core.py":
            text = text.replace("from core.", "from .core.").replace("from core import", "from .core import")
            if "from .core." not in text:
                raise RuntimeError("addon/_core.py no longer imports core; update build_addon.py")
        files[path.name] = text.encode()
    for name in CORE_RUNTIME:
        files[f"core/{name}"] = (ROOT / "core" / name).read_bytes()
    for path in sorted((ROOT / "rigs").rglob("*")):
        if path.is_file() and path.suffix in (".py", ".toml", ".json") and "__pycache__" not in path.parts:
            files[f"rigs/{path.relative_to(ROOT / 'rigs').as_posix()}"] = path.read_bytes()
    return files


def build(output: Path) -> Path:
    """Write the zip to a temporary name, then move it into place (no half-written zip)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.partial")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in extension_files().items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))  # reproducible archive
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    os.replace(tmp, output)
    return output


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="zip to write (default dist/au2rig-<version>.zip)")
    args = parser.parse_args(argv)
    out = build(args.output or ROOT / "dist" / f"au2rig-{project_version()}.zip")
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
