"""The bench command: table formatting, failing rows, charts, and a tiny run of the whole command."""
import json
import re
import subprocess
import sys

import numpy as np
from conftest import ROOT

from au2rig.addon.tools.bench import (
    GENERATOR_PT,
    HEADERS,
    ROW_NAMES,
    Row,
    Unavailable,
    bar_chart,
    format_markdown,
    format_table,
    run_row,
    unavailable_text,
)


def _rows():
    return [Row("1 tracker speed", "tracker 120 frames/s end to end", "bare backend 150 frames/s", "0.80x", 3.2),
            Row("6 image path", "not available (image path not built)", ok=False)]


def test_text_table_has_header_rule_and_every_row():
    text = format_table(_rows())
    lines = text.splitlines()
    assert lines[0].split()[:1] == ["row"] and all(h.split()[0] in lines[0] for h in HEADERS)
    assert set(lines[1]) <= {"-", " "}
    assert "tracker 120 frames/s end to end" in text and "0.80x" in text and "3.2 s" in text
    assert "not available (image path not built)" in text


def test_text_table_wraps_long_cells_within_their_column():
    long = "word " * 40
    text = format_table([Row("r", long.strip(), "c", "x", 1.0)])
    body = [line for line in text.splitlines()[2:]]
    assert len(body) > 2  # wrapped onto continuation lines
    col = text.splitlines()[0].index("figure")
    assert all(line[:col].strip() in ("", "r") for line in body)  # continuation lines leave the name column empty


def test_markdown_table_escapes_pipes_and_links_charts():
    rows = _rows() + [Row("x", "a | b", "", "")]
    md = format_markdown(rows, "bench", notes=["preset tiny"], charts=[("AU curves", "au_curves.png")])
    assert md.startswith("# bench\n")
    assert "- preset tiny" in md
    assert "| " + " | ".join(HEADERS) + " |" in md
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(rows)
    assert all(len(re.split(r"(?<!\\)\|", line)) == len(HEADERS) + 2 for line in table)
    assert "a \\| b" in md
    assert "![AU curves](au_curves.png)" in md


def test_a_row_that_raises_becomes_not_available_with_its_reason():
    def boom(p, state):
        raise RuntimeError("renderer exploded\nsecond line")

    logged = []
    row = run_row("2 rig render speed", boom, {}, {}, log=logged.append)
    assert row.name == "2 rig render speed" and not row.ok
    assert row.figure == "not available: RuntimeError: renderer exploded"
    assert np.isfinite(row.seconds) and logged and "renderer exploded" in logged[0]
    assert "not available: RuntimeError: renderer exploded" in format_table([row])


def test_a_missing_part_says_so_without_a_traceback():
    def missing(p, state):
        raise Unavailable("image path not built")

    logged = []
    row = run_row("6 image path", missing, {}, {}, log=logged.append)
    assert row.figure == "not available (image path not built)" and not logged
    assert unavailable_text(ValueError()) == "not available: ValueError"


def test_a_row_that_works_keeps_its_figures():
    row = run_row("3 bake speed", lambda p, state: Row("", "0.3 s", "25 s", "80x"), {}, {})
    assert (row.name, row.figure, row.comparison, row.ratio, row.ok) == ("3 bake speed", "0.3 s", "25 s", "80x", True)


def test_bar_chart_draws_a_png(tmp_path):
    import cv2

    codes = [1, 2, 12]
    rep = {"codes": codes, "mean": {"icc": 0.5, "mae": 0.4},
           "per_au": {f"AU{c:02d}": {"icc": v, "mae": 0.3 * i, "pearson": 0.0}
                      for i, (c, v) in enumerate(zip(codes, (0.9, -0.1, float("nan"))))}}
    path = bar_chart(tmp_path / "bars.png", "title", codes, {"a": rep, "b": rep})
    img = cv2.imread(str(path))
    assert img is not None and img.shape[1] >= 900 and (img < 250).any()


def test_bench_command_tiny_writes_every_row(tmp_path):
    out = tmp_path / "bench"
    checkout_bench = ROOT / "out" / "bench"

    def listing():  # what a user's own `make bench` left in the checkout, if anything
        if not checkout_bench.exists():
            return None
        return sorted((str(p), p.stat().st_mtime_ns) for p in checkout_bench.rglob("*"))

    before = listing()
    args = ["bench", "--preset", "tiny", "-o", str(out), "--quiet"]
    done = subprocess.run([sys.executable, "-m", "au2rig.addon", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    md = (out / "BENCH.md").read_text()
    for name in ROW_NAMES:
        assert f"| {name} |" in md, name
        assert name.split(",")[0] in done.stdout
    data = json.loads((out / "bench.json").read_text())
    assert [r["name"] for r in data["rows"]] == list(ROW_NAMES)
    # every row measures something: the tracker tracks a clip (the demo's, rendered into the bench's
    # folder on a fresh machine), and the image path's row the shipped G
    by_name = {r["name"]: r for r in data["rows"]}
    cycles = "5b recovery, Cycles"
    assert by_name[cycles]["figure"] == "not available (preset has no cycles actor)"  # the tiny preset's choice
    for name in ROW_NAMES:
        if name != cycles:
            assert by_name[name]["ok"] and "not available" not in by_name[name]["figure"], (name, by_name[name])
    assert GENERATOR_PT.is_file() and "images/s" in by_name["6 image path"]["figure"]
    assert "frames/s" in by_name[ROW_NAMES[0]]["figure"]
    assert listing() == before  # nothing written into the checkout
    for png in ("estimator_per_au.png", "recovery_per_au.png", "au_curves.png"):
        assert (out / png).is_file() and f"({png})" in md
