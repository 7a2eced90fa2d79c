"""The contact sheet with a generator: render | G tiles and the recognition figures."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from au2rig.addon.contact_sheet import render_contact_sheet, sheet_entries, tile_groups
from au2rig.core.nets.generator import GeneratorConfig, build_generator


def test_sheet_with_a_generator_shows_render_beside_g_and_scores_each_group(tmp_path, rig):
    torch.manual_seed(0)
    g = build_generator(GeneratorConfig(resolution=64, base_width=2, max_width=16), rig=rig)
    report: dict = {}
    sheet = render_contact_sheet(rig, tmp_path / "sheet.png", size=256, columns=6, progress=False,
                                 generator=g, report=report)
    entries = sheet_entries(rig)
    groups = tile_groups(entries)
    assert sorted(i for idx in groups.values() for i in idx) == list(range(1, len(entries)))
    assert len(groups["AUs"]) == len(rig.layout.au_channels) and len(groups["poses"]) == 6
    assert [entries[i][0] for i in groups["gaze"]] == ["gaze_yaw -30", "gaze_yaw +30", "gaze_pitch -20",
                                                       "gaze_pitch +20"]
    # tiles are 64 px render | 64 px G (size follows G), one per entry, no landmark tile
    rows = -(-len(entries) // 6)
    assert sheet.shape[1] == 6 * (128 + 4) + 4 and sheet.shape[0] > rows * 64
    assert cv2.imread(str(tmp_path / "sheet.png")) is not None
    for name, idx in groups.items():
        m = report[name]
        assert m["count"] == len(idx) and 0 <= m["recognised"] <= len(idx) and np.isfinite(m["cosine"])
        assert len(m["missed"]) == len(idx) - m["recognised"]


def test_recognition_counts_a_perfect_generator_and_catches_a_confused_one(rig):
    """A G that draws every tile as the renderer does is recognised on every tile; one that draws
    each tile as its neighbour in the group is recognised on none of them; one that draws the
    neutral face everywhere is recognised on none."""
    from au2rig.addon.contact_sheet import recognition

    entries = sheet_entries(rig)
    rng = np.random.default_rng(0)
    renders = [rng.integers(0, 256, (8, 8, 3)).astype(np.uint8) for _ in entries]
    perfect = recognition(entries, renders, renders)
    groups = tile_groups(entries)
    for name, idx in groups.items():
        assert perfect[name]["recognised"] == len(idx) and not perfect[name]["missed"], name
    confused = list(renders)
    for idx in groups.values():
        if len(idx) > 1:
            for a, b in zip(idx, idx[1:] + idx[:1]):
                confused[a] = renders[b]
    mixed = recognition(entries, renders, confused)
    for name, idx in groups.items():
        if len(idx) > 1:
            assert mixed[name]["recognised"] == 0 and len(mixed[name]["missed"]) == len(idx), name
    flat = recognition(entries, renders, [renders[0]] * len(renders))
    assert all(flat[name]["recognised"] == 0 for name, idx in groups.items() if idx and idx != [0])


def test_beside_puts_a_photo_s_face_next_to_the_rig_performing_the_named_aus(tmp_path, rig):
    """``contact-sheet --beside PHOTO=AUS``: the photo's face (here the rig's own smiling render,
    which the face mesh finds) cropped beside the rig rendered with those AUs; the rig's half is the
    same render as the AU's own tile; a photo without a face and an unknown AU are named."""
    from au2rig.addon.cli import main
    from au2rig.addon.contact_sheet import render_tile, setup_scene
    from au2rig.core.animation.keyframes import parse_expression

    smile = parse_expression("AU12+AU25")
    scene, arm = setup_scene(rig, 256)
    photo = tmp_path / "smile.png"
    render_tile(scene, arm, smile, photo)
    out = tmp_path / "beside.png"
    assert main(["contact-sheet", "-o", str(out), "--size", "128", "--beside", f"{photo}=AU12+AU25"]) == 0
    sheet = cv2.imread(str(out))
    assert sheet is not None and sheet.shape[1] == 2 * 128 + 8  # one tile: face | rig, 4 px gaps
    face, rendered = sheet[4:132, 4:132].astype(float), sheet[4:132, 132:260].astype(float)
    assert face.std() > 10 and rendered.std() > 10
    assert np.abs(rendered - render_tile(*setup_scene(rig, 128), smile, tmp_path / "own.png")).mean() < 1.0
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    with pytest.raises(ValueError, match="blank.png: no face found"):
        main(["contact-sheet", "-o", str(out), "--beside", f"{blank}=AU12"])
    with pytest.raises(ValueError, match="unknown AU 'AU99'"):
        main(["contact-sheet", "-o", str(out), "--beside", f"{photo}=AU12+AU99"])


def test_parse_expression_sets_the_named_aus_and_names_what_is_wrong():
    from au2rig.core.animation.keyframes import parse_expression
    from au2rig.core.rig.layout import LAYOUT

    p = parse_expression("AU6 + AU12:0.6")
    assert p[LAYOUT.index["AU06"]] == 1.0
    assert p[LAYOUT.index["AU12_L"]] == p[LAYOUT.index["AU12_R"]] == 0.6
    changed = {LAYOUT.names[k] for k in np.flatnonzero(p != LAYOUT.neutral())}
    assert changed == {"AU06", "AU12_L", "AU12_R"}
    for bad, message in (("", "name at least one AU"), ("AU12:1.5", "within 0..1"), ("AU12:x", "not a number"),
                         ("pose_yaw", "not an AU channel"), ("AU77", "unknown AU")):
        with pytest.raises(ValueError, match=message):
            parse_expression(bad)
