"""The contact sheet with a generator: render | G tiles and the recognition figures."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from addon.contact_sheet import render_contact_sheet, sheet_entries, tile_groups
from core.nets.generator import GeneratorConfig, build_generator


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
    # tiles are 64 px render | 64 px G (size follows G), one per entry, no landmark tile
    rows = -(-len(entries) // 6)
    assert sheet.shape[1] == 6 * (128 + 4) + 4 and sheet.shape[0] > rows * 64
    assert cv2.imread(str(tmp_path / "sheet.png")) is not None
    for name, idx in groups.items():
        m = report[name]
        assert m["count"] == len(idx) and 0 <= m["recognised"] <= len(idx) and np.isfinite(m["cosine"])
        assert len(m["missed"]) == len(idx) - m["recognised"]
