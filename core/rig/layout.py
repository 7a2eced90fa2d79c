"""The parameter layout: one vector describes a face on the rig, everywhere.

Groups, in order (the rooms that use it: core/README.md):

=============  ====  ======================  =======  ================================
group          size  range                   neutral  meaning
=============  ====  ======================  =======  ================================
pose           3     degrees, per channel     0        yaw, pitch, roll of the head
au             26    0..1  (x5 = FACS 0..5)   0        Action Unit intensities
identity       64    0..1                     0.5      face-creation sliders
brow_style     6     {0, 1}, one-hot          style 0  discrete brow geometry
gaze           2     degrees, per channel     0        yaw, pitch of both eyes in the head
=============  ====  ======================  =======  ================================

Sign conventions of the pose (subject's point of view, degrees):
yaw + turns the face toward the subject's left (image right), pitch + lifts
the chin, roll + tilts the head toward the subject's left shoulder. The gaze
follows the same signs: yaw + looks toward the subject's left, pitch + up.

Version 1.1 appended the gaze group; everything before it is as in 1.0.

Values outside a channel's range are clamped by :func:`ParameterLayout.clamp`
(documented policy for all consumers); :func:`ParameterLayout.check` refuses
wrong lengths and non-finite values, naming the index and channel, and with
``strict=True`` also refuses out-of-range values.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

LAYOUT_VERSION = "1.1"
# earlier layout versions, by how many of this layout's first channels they had: files and models
# of those read on (the channels added since come in at neutral)
EARLIER_LAYOUTS = {"1.0": 99}
FACS_SCALE = 5.0  # AU intensity 1.0 == FACS intensity 5 (level E)
# channels that move the same parts in opposite directions (the jaw to the subject's left or
# right): both at once cancel out, so a natural expression has at most one of each pair active
OPPOSED = (("AU30_L", "AU30_R"),)

GROUPS = ("pose", "au", "identity", "brow_style", "gaze")


@dataclass(frozen=True)
class Channel:
    """One entry of the parameter vector."""

    name: str
    group: str
    lo: float
    hi: float
    neutral: float
    description: str
    facs: int | None = None  # FACS code for AU channels
    side: str = "B"  # "L", "R" (subject's left / right) or "B" (both)
    eval_as: tuple[int, ...] = ()  # evaluation-set AU codes this channel reports into


# --- pose -----------------------------------------------------------------
POSE = (
    Channel("pose_yaw", "pose", -45.0, 45.0, 0.0, "head yaw, + toward the subject's left"),
    Channel("pose_pitch", "pose", -30.0, 30.0, 0.0, "head pitch, + chin up"),
    Channel("pose_roll", "pose", -30.0, 30.0, 0.0, "head roll, + toward the subject's left shoulder"),
)


# --- action units -----------------------------------------------------------
def _au(code: int, side: str, description: str, eval_as: tuple[int, ...] | None = None) -> Channel:
    suffix = "" if side == "B" else f"_{side}"
    return Channel(f"AU{code:02d}{suffix}", "au", 0.0, 1.0, 0.0, description, code, side,
                   (code,) if eval_as is None else eval_as)


AUS = (
    _au(1, "L", "inner brow raiser"),
    _au(1, "R", "inner brow raiser"),
    _au(2, "L", "outer brow raiser"),
    _au(2, "R", "outer brow raiser"),
    _au(4, "B", "brow lowerer"),
    _au(5, "B", "upper lid raiser"),
    _au(6, "B", "cheek raiser"),
    _au(7, "B", "lid tightener"),
    _au(9, "B", "nose wrinkler"),
    _au(10, "B", "upper lip raiser"),
    _au(12, "L", "lip corner puller"),
    _au(12, "R", "lip corner puller"),
    _au(14, "B", "dimpler"),
    _au(15, "B", "lip corner depressor"),
    _au(17, "B", "chin raiser"),
    _au(18, "B", "lip pucker"),
    _au(20, "B", "lip stretcher"),
    _au(22, "B", "lip funneler"),
    _au(23, "B", "lip tightener"),
    _au(24, "B", "lip pressor"),
    _au(25, "B", "lips part"),
    _au(26, "B", "jaw drop"),
    _au(30, "L", "jaw sideways (AD30), toward the subject's left"),
    _au(30, "R", "jaw sideways (AD30), toward the subject's right"),
    # Eyes closed; OpenFace's AU45 (blink) is the same movement over a short time,
    # so these channels also report as AU45.
    _au(43, "L", "eyes closed / blink", (43, 45)),
    _au(43, "R", "eyes closed / blink", (43, 45)),
)


# --- identity (face creation sliders) ----------------------------------------------
IDENTITY_SLIDERS = (
    # face shape
    ("face_width", "width of temples, cheekbones and jaw together"),
    ("face_length", "chin and jaw height together"),
    ("forehead_height", "height of the forehead"),
    ("forehead_slope", "forehead forward or back"),
    ("temple_width", "width at the temples"),
    ("cheekbone_width", "width at the cheekbones"),
    ("cheekbone_height", "height of the cheekbones"),
    ("cheekbone_depth", "cheekbones forward or back"),
    ("cheek_fullness", "fullness of the cheeks"),
    ("cheek_height", "height of the cheek mass"),
    ("jaw_width", "width at the jaw angles"),
    ("jaw_angle_height", "height of the jaw angles"),
    ("jaw_depth", "jaw angles forward or back"),
    ("jaw_protrusion", "whole lower jaw forward or back"),
    ("chin_height", "height of the chin"),
    ("chin_protrusion", "chin forward or back"),
    ("chin_width", "width of the chin"),
    ("chin_offset", "chin toward the subject's left or right"),
    # brows
    ("brow_height", "height of both brows"),
    ("brow_spacing", "distance between the inner brows"),
    ("brow_inner_height", "height of the inner brow ends"),
    ("brow_outer_height", "height of the outer brow ends"),
    ("brow_depth", "brows forward or back"),
    ("brow_length", "reach of the outer brow ends"),
    ("brow_thickness", "vertical thickness of the brows"),
    ("brow_tilt", "in-plane tilt of the brows"),
    ("brow_asymmetry", "left brow up and right brow down, or the reverse"),
    # eyes
    ("eye_spacing", "distance between the eyes"),
    ("eye_height", "height of the eyes"),
    ("eye_depth", "eyes set forward or deep"),
    ("eye_size", "overall size of the eyes"),
    ("eye_width", "horizontal size of the eye openings"),
    ("eye_tilt", "canthal tilt of the eye openings"),
    ("eye_asymmetry", "left eye up and right eye down, or the reverse"),
    ("upper_lid_rest", "resting position of the upper lids"),
    ("lower_lid_rest", "resting position of the lower lids"),
    ("eye_openness", "vertical size of the eye openings"),
    # nose
    ("nose_length", "tip of the nose up or down"),
    ("nose_protrusion", "tip of the nose forward or back"),
    ("nose_tip_size", "size of the nose tip"),
    ("nose_tip_tilt", "nose tip turned up or down"),
    ("nose_width", "width at the nostrils"),
    ("nostril_height", "height of the nostril wings"),
    ("nostril_flare", "size of the nostril wings"),
    ("nose_bridge_height", "bridge of the nose forward or back"),
    ("nose_bridge_width", "width of the nose bridge"),
    ("nose_height", "whole nose up or down"),
    ("nose_deviation", "nose tip toward the subject's left or right"),
    # mouth
    ("mouth_width", "width of the mouth"),
    ("mouth_height", "height of the mouth"),
    ("mouth_depth", "mouth forward or back"),
    ("upper_lip_thickness", "thickness of the upper lip"),
    ("lower_lip_thickness", "thickness of the lower lip"),
    ("upper_lip_protrusion", "upper lip forward or back"),
    ("lower_lip_protrusion", "lower lip forward or back"),
    ("mouth_corner_height", "resting height of the lip corners"),
    ("upper_lip_bow", "height of the upper lip's bow"),
    ("lip_fullness", "depth of both lips"),
    ("mouth_asymmetry", "left lip corner up and right down, or the reverse"),
    # ears and neck
    ("ear_size", "size of the ears"),
    ("ear_height", "height of the ears"),
    ("ear_protrusion", "ears flared out or flat"),
    ("ear_depth", "ears forward or back"),
    ("neck_width", "width of the neck"),
)

IDENTITY = tuple(Channel(f"id_{name}", "identity", 0.0, 1.0, 0.5, desc)
                 for name, desc in IDENTITY_SLIDERS)

BROW_STYLE_NAMES = ("straight", "arched", "thick", "thin", "angled", "bushy")
BROW_STYLES = tuple(Channel(f"brow_{name}", "brow_style", 0.0, 1.0, 1.0 if i == 0 else 0.0,
                            f"brow style {i}: {name}")
                    for i, name in enumerate(BROW_STYLE_NAMES))


# --- gaze ------------------------------------------------------------------------------------
GAZE = (
    Channel("gaze_yaw", "gaze", -35.0, 35.0, 0.0, "eyes' yaw in the head, + toward the subject's left"),
    Channel("gaze_pitch", "gaze", -25.0, 25.0, 0.0, "eyes' pitch in the head, + up"),
)


class ParameterLayout:
    """Names, ranges and neutral values of every channel of the parameter vector."""

    version = LAYOUT_VERSION

    def __init__(self, channels: tuple[Channel, ...]):
        self.channels = channels
        names = [c.name for c in channels]
        if len(set(names)) != len(names):
            raise ValueError("parameter layout has duplicate channel names")
        self.index = {c.name: i for i, c in enumerate(channels)}

    def __len__(self) -> int:
        return len(self.channels)

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.channels)

    def group_slice(self, group: str) -> slice:
        idx = [i for i, c in enumerate(self.channels) if c.group == group]
        if not idx:
            raise KeyError(f"no parameter group {group!r}; groups are {GROUPS}")
        return slice(idx[0], idx[-1] + 1)

    def group_names(self, group: str) -> tuple[str, ...]:
        return self.names[self.group_slice(group)]

    @cached_property
    def lo(self) -> np.ndarray:
        return np.array([c.lo for c in self.channels])

    @cached_property
    def hi(self) -> np.ndarray:
        return np.array([c.hi for c in self.channels])

    def neutral(self, batch: int | None = None) -> np.ndarray:
        """The base face: frontal, zero AUs, identity 0.5, brow style 0."""
        v = np.array([c.neutral for c in self.channels])
        return v if batch is None else np.tile(v, (batch, 1))

    def check(self, params, *, strict: bool = False, what: str = "parameter vector") -> np.ndarray:
        """Return ``params`` as float64 array of shape (..., len(layout)); refuse bad input.

        Wrong length or non-finite entries raise ``ValueError`` naming the index and channel.
        With ``strict`` values outside a channel's range are refused too; otherwise they pass
        through unchanged (use :meth:`clamp` for the documented clamping policy).
        """
        x = np.asarray(params, dtype=np.float64)
        if x.ndim == 0 or x.shape[-1] != len(self):
            got = "a scalar" if x.ndim == 0 else f"length {x.shape[-1]}"
            raise ValueError(f"{what}: expected length {len(self)} (layout {self.version}), got {got}")
        bad = ~np.isfinite(x)
        if bad.any():
            i = int(np.argwhere(bad)[0][-1])
            raise ValueError(f"{what}: index {i} ({self.names[i]}) is not finite")
        if strict:
            out = (x < self.lo - 1e-9) | (x > self.hi + 1e-9)
            if out.any():
                pos = np.argwhere(out)[0]
                i = int(pos[-1])
                raise ValueError(f"{what}: index {i} ({self.names[i]}) = {x[tuple(pos)]:g} "
                                 f"outside [{self.lo[i]:g}, {self.hi[i]:g}]")
        return x

    def clamp(self, params) -> np.ndarray:
        """Check, then clamp every channel into its range (the documented policy)."""
        return np.clip(self.check(params), self.lo, self.hi)

    # --- AU reporting ------------------------------------------------------------
    @cached_property
    def au_channels(self) -> tuple[Channel, ...]:
        return self.channels[self.group_slice("au")]

    def eval_codes(self) -> tuple[int, ...]:
        """Every FACS code the AU channels report into, sorted."""
        return tuple(sorted({code for c in self.au_channels for code in c.eval_as}))

    def eval_matrix(self, codes=None) -> np.ndarray:
        """(len(codes), n_au) matrix averaging AU channels into evaluation AUs.

        Left/right splits report as the mean of both sides; AU43 also reports as AU45.
        Multiply by :data:`FACS_SCALE` for the FACS 0..5 scale.
        """
        codes = self.eval_codes() if codes is None else tuple(codes)
        m = np.zeros((len(codes), len(self.au_channels)))
        for r, code in enumerate(codes):
            cols = [j for j, c in enumerate(self.au_channels) if code in c.eval_as]
            if not cols:
                raise KeyError(f"AU{code:02d} is not covered by the layout's AU channels")
            m[r, cols] = 1.0 / len(cols)
        return m

    def to_facs(self, params) -> dict[int, np.ndarray]:
        """FACS 0..5 intensities per evaluation AU code from parameter vector(s)."""
        x = self.check(params)
        au = x[..., self.group_slice("au")]
        vals = au @ self.eval_matrix().T * FACS_SCALE
        return {code: vals[..., i] for i, code in enumerate(self.eval_codes())}

    def describe(self) -> dict:
        """JSON-ready description, stored in datasets and model files."""
        return {"version": self.version,
                "channels": [{"name": c.name, "group": c.group, "lo": c.lo, "hi": c.hi,
                              "neutral": c.neutral, "facs": c.facs, "side": c.side}
                             for c in self.channels]}


LAYOUT = ParameterLayout(POSE + AUS + IDENTITY + BROW_STYLES + GAZE)
