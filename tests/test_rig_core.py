"""The built-in rig evaluated by core (numpy and torch), without Blender."""
import conftest
import numpy as np
import pytest
import torch

from au2rig.core.rig import load_rig
from au2rig.core.rig.layout import LAYOUT

BROW_AUS = ("AU01_L", "AU01_R", "AU02_L", "AU02_R", "AU04")
EYE_AUS = ("AU05", "AU07", "AU43_L", "AU43_R")
MOUTH_AUS = ("AU10", "AU12_L", "AU12_R", "AU14", "AU15", "AU17", "AU18", "AU20", "AU22", "AU23", "AU24",
             "AU25", "AU26", "AU30_L", "AU30_R")
EYEBALL = ("sclera", "iris", "pupil")
STILL = {  # regions an AU must leave exactly where they are
    **{au: ("lips", "teeth", "mouth_interior") + EYEBALL for au in BROW_AUS},
    **{au: ("lips", "teeth", "mouth_interior", "brows") + EYEBALL for au in EYE_AUS},
    **{au: ("brows", "lashes", "hair") + EYEBALL for au in MOUTH_AUS},
    "AU06": ("brows", "teeth", "hair") + EYEBALL,
    "AU09": ("teeth", "mouth_interior", "hair") + EYEBALL,
}
MOVES = {**{au: "brows" for au in BROW_AUS}, **{au: "lids" for au in EYE_AUS},
         **{au: "lips" for au in MOUTH_AUS}, "AU06": "skin", "AU09": "nose"}


@pytest.fixture(scope="module")
def rig():
    return load_rig()


def random_params(n, seed=0):
    return conftest.random_params(LAYOUT, np.random.default_rng(seed), n)


def visible(rig, params):
    """Vertices of the selected brow style and everything that is not a brow."""
    brows = LAYOUT.group_slice("brow_style")
    style = int(np.argmax(params[brows]))
    keep = np.ones(len(rig.vertices), bool)
    keep[rig.face_vertices("brows")] = False
    names = LAYOUT.names[brows]
    for b, name in enumerate(rig.bone_names):
        if name.startswith(names[style] + "_"):
            keep[rig.weight_index[:, 0] == b] = True
    return keep


def test_mesh_size_regions_and_bones(rig):
    assert 5_000 <= len(rig.vertices) <= 25_000
    for region in rig.regions:
        assert (rig.face_regions == rig.regions.index(region)).any(), region
    for bone in ("root", "neck", "head", "jaw", "lid_upper.L", "lid_lower.R", "lip_corner.L", "brow_inner.R"):
        assert bone in rig.bone_index
    assert np.allclose(rig.weight_value.sum(1), 1)
    assert len(rig.landmark_vertices) == 68 and len(set(rig.landmark_vertices)) == 68


def _edge_use(faces):
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1)
    return np.unique(e, axis=0, return_counts=True)


def _edge_set(faces) -> set[tuple[int, int]]:
    return {(int(a), int(b)) for a, b in _edge_use(faces)[0]}


def test_the_skin_round_the_eyes_is_fine_and_closed(rig):
    """The lids' and the lash line's regions are decided per triangle: round the eyes the skin is
    split finer than the grid (its lash triangles under a millimetre), with no crack: every
    edge of the skin is shared by two triangles except along the eye openings, the mouth slit and
    the neck's open end, each of which is a closed loop."""
    skin_like = [rig.regions.index(r) for r in ("skin", "lids", "lashes", "nose", "lips", "hair")]
    faces = rig.faces[np.isin(rig.face_regions, skin_like)]
    edges, uses = _edge_use(faces)
    assert uses.max() == 2
    border = edges[uses == 1]
    degree = np.bincount(border.ravel(), minlength=len(rig.vertices))
    assert set(np.unique(degree[degree > 0])) == {2}, "an open border that is not a simple loop (a crack)"
    lash = rig.faces[rig.face_regions == rig.regions.index("lashes")]
    tri = rig.vertices[lash]
    longest = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2).max(1)
    assert np.median(longest) < 0.001, np.median(longest)  # metres; on the grid alone 2.8 mm


def test_the_lips_outline_is_smooth_and_their_landmarks_lie_on_it(rig):
    """The lips' border with the skin runs along mesh edges that follow the lips' outline (no steps
    of the grid: on the grid alone its median turn was 80 degrees); it bends sharply only where it
    runs into the mouth line at the corners, and the lips' landmarks lie on it."""
    lip_edges = _edge_set(rig.faces[rig.face_regions == rig.regions.index("lips")])
    skin_edges = _edge_set(rig.faces[np.isin(rig.face_regions, [rig.regions.index("skin"), rig.regions.index("nose")])])
    border = lip_edges & skin_edges
    neighbours: dict[int, list[int]] = {}
    for a, b in border:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    lm = rig.landmark_vertices
    assert {int(lm[i]) for i in (49, 50, 51, 52, 53, 55, 56, 57, 58, 59)} <= set(neighbours)
    corners = rig.vertices[lm[[48, 54]]]
    turns = []
    for v, nb in neighbours.items():
        if len(nb) != 2:
            continue
        d1, d2 = (rig.vertices[v] - rig.vertices[nb[0]])[[0, 2]], (rig.vertices[nb[1]] - rig.vertices[v])[[0, 2]]
        turn = np.degrees(np.arccos(np.clip(d1 @ d2 / np.linalg.norm(d1) / np.linalg.norm(d2), -1, 1)))
        turns.append(turn)
        if turn > 30:
            assert np.linalg.norm(corners - rig.vertices[v], axis=1).min() < 0.005, (v, turn)
    assert np.median(turns) < 10, np.median(turns)


def test_a_wide_open_smile_opens_onto_the_mouth_cavity(rig):
    """The cavity's sides go with the lip corners: in a wide open smile the opening out to its
    corners shows the cavity (before, the corners moved past the cavity's rim and showed the inside
    of the head, lit like skin)."""
    p = LAYOUT.neutral()
    for name in ("AU12_L", "AU12_R", "AU20", "AU25", "AU26"):
        p[LAYOUT.index[name]] = 1.0
    v2 = rig.project(rig.skin(p)[0], 256)
    lm = v2[rig.landmark_vertices]
    tri = v2[rig.faces[rig.face_regions == rig.regions.index("mouth_interior")]]

    def covered(q):
        a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
        side = [(y[:, 0] - x[:, 0]) * (q[1] - x[:, 1]) - (y[:, 1] - x[:, 1]) * (q[0] - x[:, 0])
                for x, y in ((a, b), (b, c), (c, a))]
        return bool(((np.min(side, 0) >= 0) | (np.max(side, 0) <= 0)).any())

    centre = (lm[62] + lm[66]) / 2
    assert lm[66, 1] - lm[62, 1] > 15  # pixels: the mouth is open
    for corner in (60, 64):
        for f in (0.95, 0.8, 0.5):
            assert covered(f * lm[corner] + (1 - f) * centre), (corner, f)


def test_neutral_is_the_base_face(rig):
    n = LAYOUT.neutral()
    v = rig.skin(n)[0]
    keep = visible(rig, n)
    assert np.abs(v[keep] - rig.vertices[keep]).max() < 1e-12
    # the other brow styles are collapsed onto their hidden bones, inside the head
    hidden = ~keep
    assert hidden.sum() > 0
    assert np.linalg.norm(v[hidden] - rig.vertices[hidden], axis=1).min() > 1e-4


def test_numpy_and_torch_agree_and_batch(rig):
    p = random_params(3, seed=1)
    vn = rig.skin(p)
    vt = rig.skin(torch.tensor(p)).numpy()
    assert vn.shape == (3, len(rig.vertices), 3)
    assert np.abs(vn - vt).max() < 1e-9 * rig.height
    assert np.allclose(rig.skin(p[1])[0], vn[1])
    lm = rig.landmarks_2d(p)
    assert lm.shape == (3, 68, 2)
    assert np.allclose(lm, rig.landmarks_2d(torch.tensor(p)).numpy())


@pytest.mark.parametrize("au", sorted(MOVES))
def test_each_au_moves_its_region_and_leaves_others_still(rig, au):
    n = LAYOUT.neutral()
    p = n.copy()
    p[LAYOUT.index[au]] = 1.0
    d = np.linalg.norm(rig.skin(p)[0] - rig.skin(n)[0], axis=1)
    own = rig.face_vertices(MOVES[au])
    assert d[own].max() > 1e-3, f"{au} barely moves {MOVES[au]}"
    for region in STILL[au]:
        assert d[rig.face_vertices(region)].max() < 1e-12, f"{au} moves {region}"
    side = LAYOUT.channels[LAYOUT.index[au]].side
    if side != "B" and not au.startswith("AU30"):  # one-sided AUs stay on their side (AU30 names a direction)
        x = rig.vertices[d > 1e-12, 0]
        assert (x * (1 if side == "L" else -1) >= -1e-9).all(), f"{au} moves the other side"


@pytest.mark.parametrize("left", [c.name for c in LAYOUT.au_channels if c.side == "L"])
def test_left_and_right_channels_mirror_each_other(rig, left):
    right = left[:-2] + "_R"
    n = LAYOUT.neutral()
    pl, pr = n.copy(), n.copy()
    pl[LAYOUT.index[left]] = pr[LAYOUT.index[right]] = 0.8
    vl, vr = rig.skin(pl)[0], rig.skin(pr)[0]
    m = rig.vertex_mirror
    assert (m >= 0).all()
    assert np.abs(vl[m] * [-1, 1, 1] - vr).max() < 1e-9 * rig.height


def test_pose_mirrors_and_moves_the_whole_head(rig):
    n = LAYOUT.neutral()
    p = n.copy()
    p[LAYOUT.index["pose_yaw"]] = 30
    q = n.copy()
    q[LAYOUT.index["pose_yaw"]] = -30
    vp, vq = rig.skin(p)[0], rig.skin(q)[0]
    assert np.abs(vp[rig.vertex_mirror] * [-1, 1, 1] - vq).max() < 1e-9 * rig.height
    # yaw + turns the face toward the subject's left (+x), the nose tip moves to +x
    tip = rig.landmark_vertices[30]
    assert vp[tip, 0] > rig.vertices[tip, 0] + 0.02


@pytest.mark.parametrize("channel, value", [("pose_roll", 30.0), ("pose_pitch", 30.0), ("pose_pitch", -30.0),
                                            ("pose_yaw", 45.0)])
def test_the_neck_bends_at_the_pose_limits_without_shearing(rig, channel, value):
    """The neck's skin follows the head over the whole neck, so no edge of it more than doubles or
    halves its length at the pose's limits (with the blend packed under the jaw, 2.8-3.0x); the
    68 points are the head's alone."""
    p = LAYOUT.neutral()
    p[LAYOUT.index[channel]] = value
    edges = _edge_use(rig.faces)[0]
    rest, posed = rig.vertices, rig.skin(p)[0]
    neck = (rest[edges, 2] < -0.10).all(1)
    stretch = (np.linalg.norm(posed[edges[:, 0]] - posed[edges[:, 1]], axis=1)
               / np.linalg.norm(rest[edges[:, 0]] - rest[edges[:, 1]], axis=1))[neck]
    assert neck.sum() > 1000
    assert 0.45 < stretch.min() and stretch.max() < 2.0, (stretch.min(), stretch.max())
    assert rig.dense_weights[rig.landmark_vertices, rig.bone_names.index("neck_skin")].max() == 0.0


def _affected_landmarks(rig, channel_cols):
    """Landmarks the rig says a channel moves: weighted to a bone its tables touch, or below one."""
    touched = np.zeros(len(rig.bone_names), bool)
    for c in channel_cols:
        touched |= np.abs(rig.basis[c]).sum(1) > 0
    for b, p in enumerate(rig.bone_parents):  # parents come first, so one pass propagates down
        if p >= 0 and touched[p]:
            touched[b] = True
    w = rig.dense_weights[rig.landmark_vertices]
    return (w[:, touched] > 0).any(1)


def test_landmark_gradients_follow_the_rig(rig):
    p = torch.tensor(random_params(1, seed=3)[0], requires_grad=True)
    lm = rig.landmarks_2d(p)[0]
    jac = torch.autograd.functional.jacobian(lambda x: rig.landmarks_2d(x)[0], p)  # (68, 2, P)
    assert torch.isfinite(lm).all() and torch.isfinite(jac).all()
    moved = (jac.abs().sum(1) > 0).numpy()  # (68, P)
    cols = {n: [i for i, c in enumerate(rig.coefficient_names) if c.split("@")[0] == n] for n in LAYOUT.names}
    for group in ("pose", "au", "identity"):
        sl = LAYOUT.group_slice(group)
        assert moved[:, sl].any(0).sum() > 0.8 * (sl.stop - sl.start), group
    for i, name in enumerate(LAYOUT.names):
        expected = _affected_landmarks(rig, cols[name])
        assert not (moved[:, i] & ~expected).any(), f"{name}: gradient on landmarks the rig does not move"
    # and the gradients are the derivatives of the numpy rig (central differences)
    x = p.detach().numpy()
    eps = np.where(LAYOUT.hi - LAYOUT.lo > 10, 1e-3, 1e-5)
    step = np.eye(len(x)) * eps
    fd = (rig.landmarks_2d(x + step) - rig.landmarks_2d(x - step)) / (2 * eps[:, None, None])  # (P, 68, 2)
    assert np.abs(fd.transpose(1, 2, 0) - jac.numpy()).max() < 1e-3  # pixels per unit


def _lid_turns(rig, params):
    """(N, 2, 2): the upper and lower lids' turn about x (+ down), left eye then right."""
    names = [("lid_upper.L", "lid_lower.L"), ("lid_upper.R", "lid_lower.R")]
    idx = [[rig.bone_names.index(b) for b in pair] for pair in names]
    return rig.bone_locals(params)[:, idx, 3]


def test_lids_meet_and_stop_where_they_touch(rig):
    """An eye closed (AU43) and tightened (AU7, AU6) while looking down would turn the lids past
    each other; they stop where they touch, each giving back its share, in numpy and in torch
    alike, and one AU alone turns them as its table says."""
    closed = {m.closed for m in rig.meets}
    assert len(rig.meets) == 2 and closed == {46.0}
    p = np.repeat(LAYOUT.neutral()[None], 4, 0)
    names = LAYOUT.names
    for row, values in enumerate([dict(AU43_L=1, AU43_R=1), dict(AU07=1, AU06=1),
                                  dict(AU43_L=1, AU43_R=1, AU07=1, AU06=1, gaze_pitch=-20),
                                  dict(AU43_L=0.6, AU43_R=0.6, AU07=1, AU06=0.4)]):
        for k, v in values.items():
            p[row, names.index(k)] = v
    turns = _lid_turns(rig, p)
    np.testing.assert_allclose(turns[0], [[46, 0], [46, 0]], atol=1e-9)  # AU43 alone: its table
    np.testing.assert_allclose(turns[1], [[8, -25], [8, -25]], atol=1e-9)  # AU7 + AU6: theirs
    gap = turns[2:, :, 0] - turns[2:, :, 1]
    np.testing.assert_allclose(gap, 46, atol=1e-9)  # the tables would make 54 + 25 and 35.6 + 19
    up, low = 0.6 * 46 + 8, -(15 + 4)  # the shares: each lid gives back in proportion to its turn
    e = up - low - 46
    np.testing.assert_allclose(turns[3, 0], [up - e * up / (up - low), low + e * -low / (up - low)], atol=1e-9)
    np.testing.assert_allclose(_lid_turns(rig, torch.tensor(p)).numpy(), turns, atol=1e-9)
    # the landmarks' lids touch instead of crossing: the left eye's opening is the closed eye's
    opening = lambda q: (rig.landmarks_2d(q)[:, [47, 46], 1] - rig.landmarks_2d(q)[:, [43, 44], 1]).min(1)
    assert opening(p[2:3])[0] > opening(p[0:1])[0] - 0.5, (opening(p[2:3]), opening(p[0:1]))


def test_wrong_parameter_length_is_refused(rig):
    with pytest.raises(ValueError, match=rf"expected length {len(LAYOUT)} \(layout .*\), got length 7"):
        rig.skin(np.zeros(7))
    with pytest.raises(ValueError, match=rf"expected length {len(LAYOUT)}"):
        rig.landmarks_2d(torch.zeros(2, 7))


def test_landmarks_project_inside_the_image_on_the_face(rig):
    lm = rig.landmarks_2d(LAYOUT.neutral())[0]
    res = rig.camera.resolution
    assert (lm > 0.05 * res).all() and (lm < 0.95 * res).all()
    # iBUG order: the subject's right side (image left) first; the chin in the middle
    assert lm[0, 0] < lm[8, 0] < lm[16, 0]
    assert lm[36, 0] < lm[39, 0] < lm[42, 0] < lm[45, 0]
    assert lm[19, 1] < lm[37, 1] < lm[30, 1] < lm[51, 1] < lm[57, 1] < lm[8, 1]


def test_rig_identity_is_the_hash_of_its_inputs(rig):
    """The identity is recomputed here from the spec and sources alone (no array is involved);
    tests/test_rig_identity.py checks it across CPU and thread settings."""
    from au2rig.core.rig import DEFAULT_RIG, LOD_FACTORS
    from au2rig.core.rig import spec as rigspec
    from au2rig.core.rig.identity import rig_identity, source_text
    from au2rig.rigs import bdfm_mesh

    sources = {"rigs/bdfm_mesh.py": source_text(bdfm_mesh.__file__), "core/rigspec.py": source_text(rigspec.__file__)}
    spec = rigspec.read_spec(DEFAULT_RIG)
    assert rig.identity == rig_identity(spec, sources, rig.layout, 0, LOD_FACTORS)
    assert load_rig(lod=1).identity == rig_identity(spec, sources, rig.layout, 1, LOD_FACTORS) != rig.identity
    assert len(rig.identity) == 16 and int(rig.identity, 16) >= 0


def test_euler_quaternions_rotate_as_the_euler_matrices_and_stay_continuous():
    from au2rig.core.rig.evaluate import euler_matrix, euler_quaternions

    rng = np.random.default_rng(0)
    angles = np.cumsum(rng.normal(0, 0.3, (300, 3)), 0)  # a path that wraps around several times
    angles[40] = np.nan
    for order in ("XYZ", "ZYX", "YXZ", "XZY", "YZX", "ZXY"):
        q = euler_quaternions(angles, order)
        ok = np.isfinite(angles).all(1)
        assert np.isnan(q[~ok]).all() and np.allclose(np.linalg.norm(q[ok], axis=1), 1.0)
        w, x, y, z = q[ok].T
        m = np.stack([np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
                      np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
                      np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)], -2)
        np.testing.assert_allclose(m, euler_matrix(angles[ok], order), atol=1e-12)
        assert ((q[ok][1:] * q[ok][:-1]).sum(1) >= 0).all()  # the short way between keys
