#!/usr/bin/env python3
"""Build the installable Blender extension zip (Blender 4.2 LTS and later).

    python build_addon.py [-o dist/au2rig-<version>.zip] [--wheels linux-x64[,windows-x64,...]]
                          [--wheel-dir DIR]

The zip holds ``blender_manifest.toml``, the add-on modules of ``addon/`` (not its command line
nor ``addon/tools/``), the subpackages of ``core`` that run without torch (CORE_RUNTIME, by
folder) vendored as the subpackage ``core`` (``addon/_core.py`` is rewritten to import it
relatively), and ``rigs/``. The default build needs only numpy, which Blender ships.

``--wheels PLATFORMS`` also makes video tracking work inside Blender: it vendors the tracker's
subpackages of core (TRACKER_RUNTIME, with its ONNX model) and bundles, under ``wheels/``, the wheels of onnxruntime,
OpenCV, MediaPipe and what they import (never numpy, never torch), listed in the manifest with
``platforms``: Blender installs them when it installs the extension. The wheels are fetched at
build time with ``pip download`` into ``build/wheels/<platform>/`` (reused when present);
``--wheel-dir DIR`` bundles the wheels of DIR (or of ``DIR/<platform>/``) instead, offline.
Standard library only (plus pip when wheels are downloaded).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# what the extension ships of core, by folder: the subpackages that run without torch; never
# nets/ and training/ (torch), nor the command line (cli.py, __main__.py)
CORE_RUNTIME = ("util", "rig", "alignment", "animation", "datasets")
CORE_MODULES = ("__init__.py",)
# what the tracker adds (bundled only with --wheels: it needs the wheels): its subpackages and data
TRACKER_RUNTIME = ("tracking", "evaluation")
TRACKER_DATA = ("data/mediapipe68.json", "data/detector_response.json", "models/landmarks.onnx")
# the wheels the tracker imports at run time: never numpy (Blender ships it), never torch
TRACKER_WHEELS = ("onnxruntime==1.20.1", "opencv-python-headless==4.11.0.86", "mediapipe==0.10.21",
                  "absl-py==2.5.1", "attrs==26.1.0", "flatbuffers==25.12.19", "protobuf==4.25.5",
                  "matplotlib==3.11.2", "contourpy==1.3.3", "cycler==0.12.1", "fonttools==4.68.0",
                  "kiwisolver==1.5.1", "pillow==13.0.0", "pyparsing==3.3.3", "python-dateutil==4.0.0",
                  "packaging==26.3", "tqdm==4.67.1")
# Blender's platform names -> the pip platform tags its Python 3.11 accepts (pip adds older
# manylinux / macOS versions of each itself)
PLATFORMS = {"linux-x64": ("manylinux_2_28_x86_64", "manylinux2014_x86_64"),
             "windows-x64": ("win_amd64",),
             "macos-arm64": ("macosx_14_0_arm64",),
             "macos-x64": ("macosx_14_0_x86_64",)}
WHEEL_CACHE = ROOT / "build" / "wheels"
# the add-on's command line; its development tools live in addon/tools/, which is not shipped
ADDON_EXCLUDE = ("__main__.py", "cli.py")
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


class BuildError(Exception):
    """The extension cannot be built as asked (a wheel missing for a platform, a bad option)."""


def normalized(name: str) -> str:
    """A distribution name as wheel file names spell it, lower case (``python-dateutil`` -> ``python_dateutil``)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def wheel_for(requirement: str, folder: Path) -> Path | None:
    """The wheel of ``name==version`` in ``folder``, or None."""
    name, version = requirement.split("==")
    for path in sorted(folder.glob("*.whl")):
        parts = path.name.split("-")
        if len(parts) >= 5 and normalized(parts[0]) == normalized(name) and parts[1] == version:
            return path
    return None


def download_wheels(platform: str, cache: Path = WHEEL_CACHE) -> list[Path]:
    """The tracker's wheels for ``platform`` (a key of PLATFORMS), downloaded with pip into
    ``cache/<platform>/`` unless already there; BuildError names a package pip has no wheel for."""
    if platform not in PLATFORMS:
        raise BuildError(f"unknown platform {platform!r}: expected one of {', '.join(PLATFORMS)}")
    folder = cache / platform
    folder.mkdir(parents=True, exist_ok=True)
    missing = [r for r in TRACKER_WHEELS if wheel_for(r, folder) is None]
    if missing:
        cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps",
               "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", "--abi", "abi3",
               "--abi", "none", "--dest", str(folder), "--disable-pip-version-check", "--quiet"]
        for tag in PLATFORMS[platform]:
            cmd += ["--platform", tag]
        for requirement in missing:
            run = subprocess.run(cmd + [requirement], capture_output=True, text=True)
            if run.returncode != 0 or wheel_for(requirement, folder) is None:
                detail = (run.stderr.strip().splitlines() or ["pip found nothing"])[-1]
                raise BuildError(f"no wheel of {requirement} for {platform} (Python 3.11): {detail}")
    return [wheel_for(r, folder) for r in TRACKER_WHEELS]


def given_wheels(platform: str, wheel_dir: Path) -> list[Path]:
    """The wheels of ``wheel_dir/<platform>/`` if that folder exists, else of ``wheel_dir``."""
    folder = wheel_dir / platform if (wheel_dir / platform).is_dir() else wheel_dir
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        raise BuildError(f"no wheels for {platform} in {folder}")
    absent = [r for r in TRACKER_WHEELS if wheel_for(r, folder) is None]
    if absent:
        print(f"warning: {folder} lacks {', '.join(absent)}: tracking may not work on {platform}",
              file=sys.stderr)
    return wheels


def collect_wheels(platforms, wheel_dir: Path | None = None) -> list[Path]:
    """Every wheel to bundle for ``platforms`` (one list, without duplicates: pure-Python wheels
    serve every platform)."""
    wheels: dict[str, Path] = {}
    for platform in platforms:
        if platform not in PLATFORMS:
            raise BuildError(f"unknown platform {platform!r}: expected one of {', '.join(PLATFORMS)}")
        found = given_wheels(platform, wheel_dir) if wheel_dir else download_wheels(platform)
        for path in found:
            wheels.setdefault(path.name, path)
    return [wheels[name] for name in sorted(wheels)]


def manifest(platforms=(), wheels=()) -> str:
    text = MANIFEST.format(version=project_version())
    if platforms:
        text += "platforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]\n"
    if wheels:
        text += "wheels = [\n" + "".join(f'  "./wheels/{w.name}",\n' for w in wheels) + "]\n"
    return text


def core_files(tracker: bool = False) -> list[str]:
    """The files of ``core`` the extension holds, relative to ``core/``: its top ``__init__.py``
    and every module of the CORE_RUNTIME subpackages; with ``tracker`` also the TRACKER_RUNTIME
    subpackages and TRACKER_DATA."""
    names = list(CORE_MODULES)
    for package in CORE_RUNTIME + (TRACKER_RUNTIME if tracker else ()):
        names += [p.relative_to(ROOT / "core").as_posix() for p in sorted((ROOT / "core" / package).rglob("*.py"))
                  if "__pycache__" not in p.parts]
    return names + (list(TRACKER_DATA) if tracker else [])


def extension_files(platforms=(), wheels=()) -> dict[str, bytes]:
    """Archive name -> content of every file the extension holds; with ``wheels`` (paths) also the
    tracker's core modules and the wheels under ``wheels/``."""
    files = {"blender_manifest.toml": manifest(platforms, wheels).encode()}
    for path in sorted((ROOT / "addon").glob("*.py")):  # the add-on's top folder, not addon/tools/
        if path.name in ADDON_EXCLUDE:
            continue
        text = path.read_text()
        if path.name == "_core.py":
            text = text.replace("from au2rig.core", "from .core")  # the package's name -> the vendored folder
            if "from .core." not in text or "from au2rig." in text:
                raise RuntimeError("addon/_core.py no longer imports core; update build_addon.py")
        files[path.name] = text.encode()
    for name in core_files(tracker=bool(wheels)):
        files[f"core/{name}"] = (ROOT / "core" / name).read_bytes()
    for path in sorted((ROOT / "rigs").rglob("*")):
        if path.is_file() and path.suffix in (".py", ".toml", ".json") and "__pycache__" not in path.parts:
            files[f"rigs/{path.relative_to(ROOT / 'rigs').as_posix()}"] = path.read_bytes()
    for path in wheels:
        files[f"wheels/{path.name}"] = path.read_bytes()
    return files


def build(output: Path, platforms=(), wheel_dir: Path | None = None) -> Path:
    """Write the zip to a temporary name, then move it into place (no half-written zip).
    ``platforms`` (keys of PLATFORMS): bundle the tracker and its wheels for them, downloaded or
    taken from ``wheel_dir``."""
    platforms = list(dict.fromkeys(platforms))
    if wheel_dir and not platforms:
        raise BuildError("--wheel-dir needs --wheels PLATFORM[,PLATFORM...]")
    wheels = collect_wheels(platforms, wheel_dir) if platforms else []
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.partial")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in extension_files(platforms, wheels).items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))  # reproducible archive
            # wheels and the model are compressed already
            info.compress_type = zipfile.ZIP_STORED if name.endswith((".whl", ".onnx")) else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    os.replace(tmp, output)
    return output


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="zip to write (default dist/au2rig-<version>.zip)")
    parser.add_argument("--wheels", default="", metavar="PLATFORM[,PLATFORM...]",
                        help=f"bundle the tracker and its wheels for these platforms ({', '.join(PLATFORMS)})")
    parser.add_argument("--wheel-dir", type=Path, default=None,
                        help="bundle the wheels of this folder (or of its <platform>/ subfolders) "
                             "instead of downloading them")
    args = parser.parse_args(argv)
    platforms = [p.strip() for p in args.wheels.split(",") if p.strip()]
    try:
        out = build(args.output or ROOT / "dist" / f"au2rig-{project_version()}.zip", platforms, args.wheel_dir)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
