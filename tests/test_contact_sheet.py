"""The contact sheet with a generator: render | G tiles and the recognition figures."""
from __future__ import annotations

import cv2
import numpy as np
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
