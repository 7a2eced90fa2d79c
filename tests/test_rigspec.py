"""A malformed rig spec fails with a message naming the file and the field at fault."""
import re

import pytest

from au2rig.core.rig import DEFAULT_RIG, RigSpecError
from au2rig.core.rig.layout import LAYOUT
from au2rig.core.rig.spec import build_rig

SPEC = DEFAULT_RIG.read_text()


def build_with(tmp_path, text):
    path = tmp_path / "broken.toml"
    path.write_text(text)
    return path, lambda: build_rig(path, LAYOUT)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.replace('jaw = { rot = [12, 0, 0] }', 'jawz = { rot = [12, 0, 0] }'),
     r"au\.AU26\.jawz: unknown bone 'jawz'"),
    (lambda s: re.sub(r'\[au\.AU26\]\n.*?(?=\n\[)', '', s, flags=re.S),
     r"au: missing table for channel 'AU26'"),
    (lambda s: s.replace('jaw = { rot = [12, 0, 0] }', 'jaw = { rot = [12, 0] }'),
     r"au\.AU26\.jaw\.rot: expected 3 finite numbers"),
    (lambda s: s.replace('jaw = { rot = [12, 0, 0] }', 'jaw = { spin = [12, 0, 0] }'),
     r"au\.AU26\.jaw\.spin: unknown offset kind"),
    (lambda s: s + '\n[au.AU99]\njaw = { rot = [1, 0, 0] }\n',
     r"au\.AU99: not a channel of the parameter layout"),
    (lambda s: s.replace('name = "chin"\nparent = "jaw"', 'name = "chin"\nparent = "jawbone"'),
     r"bone 'chin'\.parent: parent 'jawbone' is not defined before this bone"),
    (lambda s: s.replace('rotation_mode = "YXZ"', 'rotation_mode = "QUATERNION"'),
     r"bone 'head'\.rotation_mode: 'QUATERNION' is not one of"),
    (lambda s: s.replace('[identity.chin_width]\nat1', '[identity.chin_width]\nat2'),
     r"identity\.chin_width: missing field 'at1'"),
    (lambda s: s.replace('teeth = [0.85, 0.82, 0.72]', ''),
     r"region_colors: no color for region 'teeth'"),
    (lambda s: s.replace('lens_mm = 100.0', ''),
     r"camera: missing field 'lens_mm'"),
    (lambda s: s.replace('[camera]', '[camera\n'),
     r"not valid TOML"),
    (lambda s: s.replace('upper = "lid_upper.L"', 'upper = "lid_top.L"'),
     r"meet\[0\]\.upper: unknown bone 'lid_top.L'"),
    (lambda s: s.replace('closed = 46', 'closed = -46'),
     r"meet\[0\]\.closed: expected degrees between 0 and 180"),
])
def test_malformed_spec_names_file_and_field(tmp_path, edit, message):
    text = edit(SPEC)
    assert text != SPEC, "the edit did not apply"
    path, build = build_with(tmp_path, text)
    with pytest.raises(RigSpecError, match=re.escape(str(path)) + r".*" + message):
        build()


def test_missing_spec_file_is_named(tmp_path):
    with pytest.raises(RigSpecError, match=r"nothere\.toml: rig spec not found"):
        build_rig(tmp_path / "nothere.toml", LAYOUT)


def test_mirror_of_must_name_a_channel_with_its_own_table(tmp_path):
    text = SPEC.replace('[au.AU12_R]\nmirror_of = "AU12_L"', '[au.AU12_R]\nmirror_of = "AU43_R"')
    path, build = build_with(tmp_path, text)
    with pytest.raises(RigSpecError, match=r"au\.AU12_R\.mirror_of: 'AU43_R' is not a channel with its own table"):
        build()
