"""Contact sheet: Workbench renders of the rig, one labelled tile per face, in one PNG.

Tiles: the neutral face (and a copy with the 68 landmarks projected by ``core``), every AU
channel at full intensity, random identities, every brow style and the pose extremes.

With a trained generator G (``--generator G.pt``) every tile is the render beside G's image of
the same parameters, at G's resolution: the picture that says whether G draws each expression.
The figure beside it (:func:`recognition`): per group of tiles (AUs, identities, brow styles,
poses), how many of G's changes from the neutral face point the way of the rig's own change of
the same tile rather than of another tile of the group (``core.evaluation.metrics.change_match``).

Beside real faces (``--beside PHOTO=AU6+AU12+AU25``, repeatable): each photo's face, cropped by
the tracker's face mesh, beside the rig performing the named AUs (full intensity unless
``AU12:0.6``), frontal and otherwise neutral: the picture that says whether the rig's FACS
deformations look like a real face's.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import bpy
import cv2
import numpy as np
from tqdm import tqdm

from . import rig_builder
from ._core import LAYOUT, parse_expression, quiet_fd, tracker

FONT = cv2.FONT_HERSHEY_SIMPLEX
N_IDENTITIES = 6
POSE_EXTREMES = (("pose_yaw", -45.0), ("pose_yaw", 45.0), ("pose_pitch", -30.0),
                 ("pose_pitch", 30.0), ("pose_roll", -30.0), ("pose_roll", 30.0))
GAZE_TURNS = (("gaze_yaw", -30.0), ("gaze_yaw", 30.0), ("gaze_pitch", -20.0), ("gaze_pitch", 20.0))


def sheet_entries(rig, seed: int = 0) -> list[tuple[str, str, np.ndarray]]:
    """(title, description, parameter vector) of every tile, in sheet order."""
    layout = rig.layout
    neutral = layout.neutral()

    def with_(**values):
        p = neutral.copy()
        for name, v in values.items():
            p[layout.index[name]] = v
        return p

    entries = [("neutral", "base face", neutral)]
    for ch in layout.au_channels:
        entries.append((ch.name, ch.description, with_(**{ch.name: ch.hi})))
    rng = np.random.default_rng(seed)
    ident, brows = layout.group_slice("identity"), layout.group_names("brow_style")
    for i in range(N_IDENTITIES):
        p = neutral.copy()
        p[ident] = rng.uniform(0.0, 1.0, ident.stop - ident.start)
        brow = brows[rng.integers(len(brows))]
        p[layout.group_slice("brow_style")] = [float(b == brow) for b in brows]
        entries.append((f"identity {i + 1} (seed {seed})", f"random sliders, {brow}", p))
    for brow in brows:
        p = with_(**{b: float(b == brow) for b in brows})
        entries.append((brow, layout.channels[layout.index[brow]].description, p))
    for name, value in POSE_EXTREMES + (GAZE_TURNS if "gaze_yaw" in layout.index else ()):
        entries.append((f"{name} {value:+g}", layout.channels[layout.index[name]].description,
                        with_(**{name: value})))
    return entries


def _quiet_stdout():
    """Silence Blender's C-level 'Saved: ...' lines (they would break the progress bar)."""
    return quiet_fd(1)


def setup_scene(rig, size: int):
    """Empty factory scene with the rig, its camera and lights, Workbench at ``size`` px."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    arm_obj, mesh_obj = rig_builder.build_rig(rig)
    rig_builder.setup_camera_and_lights(rig, scene, resolution=size)
    rig_builder.setup_workbench(scene)
    return scene, arm_obj


def render_tile(scene, arm_obj, params, path: Path) -> np.ndarray:
    """Render ``params`` to ``path`` and return the BGR image."""
    rig_builder.set_params(arm_obj, params)
    return render_image(scene, path)


def render_image(scene, path: Path) -> np.ndarray:
    """Render the scene as it stands to ``path`` and return the BGR image."""
    scene.render.filepath = str(path)
    with _quiet_stdout():
        bpy.ops.render.render(write_still=True)
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise RuntimeError(f"render produced no readable image at {path}")
    return img


def draw_landmarks(img: np.ndarray, points: np.ndarray, color=(0, 255, 0)) -> np.ndarray:
    """Dots at pixel coordinates (x right, y down, (0, 0) the image's top-left corner)."""
    out = img.copy()
    radius = max(1, img.shape[0] // 150)
    for x, y in points:  # pixel i covers [i, i + 1): its center is i + 0.5
        center = (int(round((x - 0.5) * 16)), int(round((y - 0.5) * 16)))
        cv2.circle(out, center, radius * 16, color, -1, cv2.LINE_AA, shift=4)
    return out


def _fit(text: str, width: int, scale: float) -> str:
    if cv2.getTextSize(text, FONT, scale, 1)[0][0] <= width:
        return text
    while text and cv2.getTextSize(text + "...", FONT, scale, 1)[0][0] > width:
        text = text[:-1]
    return text + "..."


def labelled(img: np.ndarray, title: str, description: str) -> np.ndarray:
    """The tile with a two-line label strip underneath."""
    size = img.shape[1]
    scale = 0.4 * size / 256
    line = int(round(18 * size / 256))
    strip = np.full((2 * line + line // 2, size, 3), 30, np.uint8)
    for i, (text, color) in enumerate(((title, (255, 255, 255)), (description, (180, 180, 180)))):
        cv2.putText(strip, _fit(text, size - 8, scale), (4, line * (i + 1)), FONT, scale, color, 1,
                    cv2.LINE_AA)
    return np.vstack([img, strip])


def compose(tiles: list[np.ndarray], columns: int, gap: int = 4) -> np.ndarray:
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * (h + gap) + gap, columns * (w + gap) + gap, 3), 15, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        y, x = gap + r * (h + gap), gap + c * (w + gap)
        sheet[y:y + h, x:x + w] = tile
    return sheet


def tile_groups(entries) -> dict[str, list[int]]:
    """Indices of :func:`sheet_entries` by group: AUs, identities, brow styles, poses, gaze."""
    groups: dict[str, list[int]] = {"AUs": [], "identities": [], "brow styles": [], "poses": [], "gaze": []}
    for i, (title, _, _) in enumerate(entries[1:], 1):
        key = ("AUs" if title.startswith("AU") else "identities" if title.startswith("identity")
               else "brow styles" if title.startswith("brow") else "gaze" if title.startswith("gaze")
               else "poses")
        groups[key].append(i)
    return groups


def recognition(entries, renders, fakes) -> dict[str, dict]:
    """Per group of tiles, :func:`core.evaluation.metrics.change_match` of G's images against the renders
    (both as changes from the neutral tile, entry 0)."""
    from ._core import tracker

    change_match = tracker()[1].change_match
    r = np.stack(renders).astype(np.float32) / 255
    g = np.stack(fakes).astype(np.float32) / 255
    out = {}
    for name, idx in tile_groups(entries).items():
        if idx:
            m = change_match(g[idx] - g[0], r[idx] - r[0])
            m["missed"] = [f"{entries[i][0]} (like {entries[idx[b]][0]})" if idx[b] != i else
                           f"{entries[i][0]} (no change the rig's way)"
                           for k, (i, b) in enumerate(zip(idx, m["best"])) if not m["hit"][k]]
            out[name] = m
    return out


def render_contact_sheet(rig, output, size: int = 256, columns: int = 8, seed: int = 0,
                         progress: bool = True, generator=None, report: dict | None = None) -> np.ndarray:
    """Render every tile of :func:`sheet_entries`, write the sheet PNG to ``output``, return it.
    ``generator``: a G (``core.nets.generator``) of this rig; each tile then shows render | G at G's
    resolution (``size`` is ignored), and ``report`` (a dict, if given) receives
    :func:`recognition`'s figures."""
    entries = sheet_entries(rig, seed)
    if generator is not None:
        size = generator.cfg.resolution
        fakes = generator.eval().tiles(np.stack([p for _, _, p in entries]))
    scene, arm_obj = setup_scene(rig, size)
    tiles, renders = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (title, description, params) in enumerate(
                tqdm(entries, desc="rendering", unit="tile", file=sys.stderr, disable=not progress)):
            img = render_tile(scene, arm_obj, params, Path(tmp) / f"tile{i:03d}.png")
            if generator is not None:
                renders.append(img)
                tiles.append(labelled(np.hstack([img, fakes[i]]), title, "render | G"))
                continue
            tiles.append(labelled(img, title, description))
            if i == 0:  # the neutral face again, with core's projected landmarks on it
                points = rig.landmarks_2d(params, size)[0]
                tiles.append(labelled(draw_landmarks(img, points), "neutral + landmarks",
                                      "68 iBUG points projected by core"))
    if generator is not None and report is not None:
        report.update(recognition(entries, renders, fakes))
    sheet = compose(tiles, columns)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(output), sheet):
        raise OSError(f"could not write {output}")
    return sheet


def face_crop(image: np.ndarray, size: int, backend, source: str = "image") -> np.ndarray:
    """The face in ``image`` (BGR), found by the landmark ``backend``, as a ``size`` px square
    framed like the rig's tiles: centred on its 68 points, 1.9 times their larger extent (grey past
    the image's edge). A photo without a face raises ``ValueError`` naming ``source``."""
    faces = backend.detect(image)
    if not faces:
        raise ValueError(f"{source}: no face found")
    points = np.asarray(faces[0].landmarks, float)
    lo, hi = points.min(0), points.max(0)
    centre, half = (lo + hi) / 2, 0.95 * float((hi - lo).max())
    x0, y0 = np.round(centre - half).astype(int)
    side = max(2, int(round(2 * half)))
    pad = side
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(128, 128, 128))
    crop = padded[y0 + pad:y0 + pad + side, x0 + pad:x0 + pad + side]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def render_beside(rig, items, output, size: int = 256, columns: int = 2, progress: bool = True) -> np.ndarray:
    """For each ``(photo path, expression)`` of ``items`` (expression as :func:`parse_expression`
    reads it), a tile of the photo's face | the rig performing it; written to ``output`` (PNG)
    and returned. Every photo and expression is checked before anything renders."""
    track, _, _ = tracker()
    prepared = []
    with track.open_backend("mediapipe", video=False, max_faces=1, lids=False) as backend:
        for path, expression in items:
            image = cv2.imread(str(path))
            if image is None:
                raise ValueError(f"{path}: not an image OpenCV can read")
            prepared.append((Path(path), expression, face_crop(image, size, backend, str(path)),
                             parse_expression(expression)))
    scene, arm_obj = setup_scene(rig, size)
    tiles = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (path, expression, face, params) in enumerate(
                tqdm(prepared, desc="rendering", unit="tile", file=sys.stderr, disable=not progress)):
            img = render_tile(scene, arm_obj, params, Path(tmp) / f"tile{i:03d}.png")
            named = (f"AU{LAYOUT.channels[k].facs}" + (f":{params[k]:g}" if params[k] < 1 else "")
                     for k in np.flatnonzero(params != LAYOUT.neutral()))
            set_aus = "+".join(dict.fromkeys(named))
            tiles.append(labelled(np.hstack([face, img]), f"{path.name} | rig", set_aus))
    sheet = compose(tiles, min(columns, len(tiles)))
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(output), sheet):
        raise OSError(f"could not write {output}")
    return sheet
