"""Write the built-in retarget maps of ``rigs/maps/`` (a development tool, not in the extension).

    python -m au2rig.addon.tools.retarget_maps            # bdfm.json, arkit52.json
    python -m au2rig.addon.tools.retarget_maps --rigify   # also rigify_face.json (generates Blender's Rigify face rig)

The Rigify map is written in *face* terms (metres up / out / forward, degrees about world axes
of a character standing at the origin facing -Y, as Blender's human meta-rig does) and converted
to each control bone's rest axes from the generated rig, so the JSON holds what Blender keys.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from au2rig.core.animation.retarget import MAPS_DIR, Entry, RetargetMap, save_map
from au2rig.core.rig.layout import LAYOUT

# --- BDFM: identity onto the channel properties ----------------------------------------------


def bdfm_map() -> RetargetMap:
    return RetargetMap(
        "BDFM", "properties",
        tuple(Entry(n, {n: 1.0}) for n in LAYOUT.names),
        "Identity map onto the built-in face rig's channel properties (what the tracking importer "
        "keys): every layout channel onto the custom property of the same name.")


# --- ARKit 52 -----------------------------------------------------------------------------------

ARKIT_UNMAPPED = (  # no channel of the layout drives them
    "jawForward",  # AU29
    "mouthLeft", "mouthRight",  # whole mouth sideways: no AU in the layout
    "mouthRollLower", "mouthRollUpper",  # AU28 lip suck
    "cheekPuff",  # AU34
    "tongueOut",  # AU19
)


# ARKit's eyeLook* shapes at 1.0: the eye turned this far (degrees; ARKit does not say, these are
# about the range of a comfortable eye turn)
ARKIT_LOOK_DEGREES = {"gaze_yaw": 30.0, "gaze_pitch": 25.0}


def arkit_map() -> RetargetMap:
    e = []

    def add(name, terms, clamp=(0.0, 1.0)):
        e.append(Entry(name, terms, clamp=clamp))

    yaw, pitch = (1.0 / ARKIT_LOOK_DEGREES[c] for c in ("gaze_yaw", "gaze_pitch"))
    # looking toward the subject's left turns the left eye out and the right eye in
    add("eyeLookOutLeft", {"gaze_yaw": yaw})
    add("eyeLookInRight", {"gaze_yaw": yaw})
    add("eyeLookInLeft", {"gaze_yaw": -yaw})
    add("eyeLookOutRight", {"gaze_yaw": -yaw})
    for side in ("Left", "Right"):
        add(f"eyeLookUp{side}", {"gaze_pitch": pitch})
        add(f"eyeLookDown{side}", {"gaze_pitch": -pitch})

    for side, s in (("Left", "L"), ("Right", "R")):
        add(f"eyeBlink{side}", {f"AU43_{s}": 1.0})
        add(f"eyeWide{side}", {"AU05": 1.0})
        add(f"eyeSquint{side}", {"AU07": 1.0})
        add(f"cheekSquint{side}", {"AU06": 1.0})
        add(f"browOuterUp{side}", {f"AU02_{s}": 1.0})
        add(f"browDown{side}", {"AU04": 1.0})
        add(f"noseSneer{side}", {"AU09": 1.0})
        add(f"mouthUpperUp{side}", {"AU10": 1.0})
        add(f"mouthLowerDown{side}", {"AU25": 0.5})
        add(f"mouthSmile{side}", {f"AU12_{s}": 1.0})
        add(f"mouthDimple{side}", {"AU14": 1.0})
        add(f"mouthFrown{side}", {"AU15": 1.0})
        add(f"mouthStretch{side}", {"AU20": 1.0})
        add(f"mouthPress{side}", {"AU24": 1.0, "AU23": 0.5})
        add(f"jaw{side}", {f"AU30_{s}": 1.0})
    add("browInnerUp", {"AU01_L": 0.5, "AU01_R": 0.5})
    add("jawOpen", {"AU26": 1.0})
    add("mouthClose", {"AU26": 1.0, "AU25": -1.0})  # jaw dropped with the lips together
    add("mouthFunnel", {"AU22": 1.0})
    add("mouthPucker", {"AU18": 1.0})
    add("mouthShrugLower", {"AU17": 1.0})
    add("mouthShrugUpper", {"AU17": 0.5})
    return RetargetMap(
        "ARKit 52", "shape_keys", tuple(e),
        "Apple ARKit's 52 blendshape names (Faceit, VRoid, Character Creator, MetaHuman exports). "
        "ARKit's Left / Right are the face's own sides, as the layout's _L / _R: eyeBlinkLeft "
        "<- AU43_L. Values 0..1, clamped.", ARKIT_UNMAPPED)


# --- Rigify face -------------------------------------------------------------------------------
# face-space offsets at intensity 1: (x toward the subject's left, y backward, z up), metres;
# sides are written for .L and mirrored (x negated) for .R
MOVES = {  # channel -> [(bone, (dx, dy, dz))]
    "AU01": [("brow.T.{s}.003", (0.0, 0.0, 0.008)), ("brow.T.{s}.002", (0.0, 0.0, 0.004)),
             ("brow.B.{s}.004", (0.0, 0.0, 0.003))],
    "AU02": [("brow.T.{s}.001", (0.0, 0.0, 0.008)), ("brow.T.{s}.002", (0.0, 0.0, 0.005)),
             ("brow.T.{s}", (0.0, 0.0, 0.003)), ("brow.B.{s}.001", (0.0, 0.0, 0.002))],
    "AU04": [("brow.T.{s}.003", (-0.003, 0.0, -0.006)), ("brow.T.{s}.002", (-0.002, 0.0, -0.005)),
             ("brow.T.{s}.001", (0.0, 0.0, -0.003)), ("brow.B.{s}.004", (-0.002, 0.0, -0.003))],
    "AU05": [("lid.T.{s}.002", (0.0, 0.0, 0.003)), ("lid.T.{s}.001", (0.0, 0.0, 0.002)),
             ("lid.T.{s}.003", (0.0, 0.0, 0.002))],
    "AU06": [("cheek.T.{s}.001", (0.0, 0.0, 0.004)), ("lid.B.{s}.002", (0.0, 0.0, 0.002)),
             ("lid.B.{s}.001", (0.0, 0.0, 0.002)), ("lid.B.{s}.003", (0.0, 0.0, 0.002))],
    "AU07": [("lid.B.{s}.002", (0.0, 0.0, 0.003)), ("lid.T.{s}.002", (0.0, 0.0, -0.002))],
    "AU09": [("nose.{s}.001", (0.0, 0.0, 0.004)), ("brow.T.{s}.003", (0.0, 0.0, -0.002))],
    "AU10": [("lip.T.{s}.001", (0.0, 0.0, 0.004))],
    "AU12": [("lips.{s}", (0.010, 0.004, 0.008)), ("cheek.B.{s}.001", (0.002, 0.0, 0.004))],
    "AU14": [("lips.{s}", (0.002, 0.006, 0.0))],
    "AU15": [("lips.{s}", (0.0, 0.0, -0.007))],
    "AU18": [("lips.{s}", (-0.010, -0.004, 0.0)), ("lip.T.{s}.001", (-0.003, -0.004, 0.0)),
             ("lip.B.{s}.001", (-0.003, -0.004, 0.0))],
    "AU20": [("lips.{s}", (0.010, 0.0, -0.003))],
    "AU22": [("lips.{s}", (-0.005, -0.002, 0.0)), ("lip.T.{s}.001", (0.0, -0.005, 0.003)),
             ("lip.B.{s}.001", (0.0, -0.005, -0.003))],
    "AU23": [("lips.{s}", (-0.003, 0.0, 0.0)), ("lip.T.{s}.001", (0.0, 0.0, -0.001)),
             ("lip.B.{s}.001", (0.0, 0.0, 0.001))],
    "AU24": [("lip.T.{s}.001", (0.0, 0.0, -0.002)), ("lip.B.{s}.001", (0.0, 0.0, 0.002))],
    "AU25": [("lip.B.{s}.001", (0.0, 0.0, -0.003))],
    "AU43": [("lid.T.{s}.002", (0.0, 0.0, -0.016)), ("lid.T.{s}.001", (0.0, 0.0, -0.012)),
             ("lid.T.{s}.003", (0.0, 0.0, -0.009)), ("lid.B.{s}.002", (0.0, 0.0, 0.002))],
}
CENTER_MOVES = {
    "AU01": [], "AU09": [("nose.002", (0.0, 0.0, 0.002))],
    "AU10": [("lip.T", (0.0, 0.0, 0.004))],
    "AU17": [("chin", (0.0, -0.002, 0.005)), ("lip.B", (0.0, -0.002, 0.003))],
    "AU18": [("lip.T", (0.0, -0.006, 0.0)), ("lip.B", (0.0, -0.006, 0.0))],
    "AU22": [("lip.T", (0.0, -0.006, 0.003)), ("lip.B", (0.0, -0.006, -0.003))],
    "AU23": [("lip.T", (0.0, 0.0, -0.001)), ("lip.B", (0.0, 0.0, 0.001))],
    "AU24": [("lip.T", (0.0, 0.0, -0.003)), ("lip.B", (0.0, 0.0, 0.003))],
    "AU25": [("lip.T", (0.0, 0.0, 0.002)), ("lip.B", (0.0, 0.0, -0.004))],
}
# rotations: channel -> [(bone, world axis, degrees per unit)]; pose channels are per degree
TURNS = {
    "AU26": [("jaw_master", (1.0, 0.0, 0.0), 20.0)],
    "AU30_L": [("jaw_master", (0.0, 0.0, 1.0), 8.0)],
    "AU30_R": [("jaw_master", (0.0, 0.0, 1.0), -8.0)],
    "pose_yaw": [("neck", (0.0, 0.0, 1.0), 0.4), ("head", (0.0, 0.0, 1.0), 0.6)],
    "pose_pitch": [("neck", (1.0, 0.0, 0.0), -0.4), ("head", (1.0, 0.0, 0.0), -0.6)],
    "pose_roll": [("neck", (0.0, 1.0, 0.0), 0.4), ("head", (0.0, 1.0, 0.0), 0.6)],
}


def _channels(au: str, side: str) -> list[str]:
    return [f"{au}_{side}"] if f"{au}_{side}" in LAYOUT.index else [au]


def rigify_map(rest: dict[str, np.ndarray], eye_target_distance: float = 0.31) -> RetargetMap:
    """``rest``: control bone name -> 3x3 rest rotation (bone axes in armature space);
    ``eye_target_distance``: how far the eye target ("eyes") sits in front of the eyeballs (m)."""
    acc: dict[tuple[str, str, int], dict[str, float]] = {}

    def put(bone, prop, vec_world, channel):
        local = rest[bone].T @ np.asarray(vec_world, float)
        for i, v in enumerate(local):
            if abs(v) > 1e-7:
                terms = acc.setdefault((bone, prop, i), {})
                terms[channel] = round(terms.get(channel, 0.0) + float(v), 7)

    for au, moves in MOVES.items():
        for side, mirror in (("L", 1.0), ("R", -1.0)):
            for bone, (dx, dy, dz) in moves:
                for ch in _channels(au, side):
                    put(bone.format(s=side), "location", (mirror * dx, dy, dz), ch)
    for au, moves in CENTER_MOVES.items():
        for bone, off in moves:
            put(bone, "location", off, au)
    for ch, turns in TURNS.items():
        for bone, axis, deg in turns:
            put(bone, "rotation_euler", np.asarray(axis) * math.radians(deg), ch)
    # gaze: the eyes' common target moves across by distance x angle (the eyes turn by its
    # arctangent: within 3% of the angle up to 17 degrees, 9% at 30)
    per_degree = eye_target_distance * math.pi / 180.0
    put("eyes", "location", (per_degree, 0.0, 0.0), "gaze_yaw")
    put("eyes", "location", (0.0, 0.0, per_degree), "gaze_pitch")
    entries = tuple(Entry(b, {k: v for k, v in t.items() if v}, prop=p, index=i)
                    for (b, p, i), t in sorted(acc.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2]))
                    if any(t.values()))
    return RetargetMap(
        "Rigify face", "bones", entries,
        "The face of the rig Rigify generates from Blender's human meta-rig (Blender 4.x / 5.x): "
        "control bones (no DEF-/ORG-/MCH- prefix) moved in their rest axes, metres and radians; "
        "jaw_master turns for AU26 / AU30, neck + head for the pose (40 % / 60 %), the eye target "
        "('eyes') moved across for the gaze. Rotations are "
        "written as Euler XYZ and keyed as quaternions on Rigify's quaternion bones. .L = the "
        "subject's left, as the layout's _L.")


def generate_rigify_rig():
    """Blender's human meta-rig, generated by Rigify (needs bpy; ~10 s). Returns the rig object."""
    import addon_utils
    import bpy

    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    bpy.ops.pose.rigify_generate()
    return bpy.data.objects["rig"]


def rigify_rest(rig) -> dict[str, np.ndarray]:
    return {b.name: np.array(b.matrix_local.to_3x3()) for b in rig.data.bones}


def eye_target_distance(rig) -> float:
    """How far the eye targets sit in front of the eyeballs in a generated Rigify rig (m)."""
    bones = rig.data.bones
    return float(np.mean([abs(bones[f"eye.{s}"].head_local.y - bones[f"ORG-eye.{s}"].head_local.y) for s in "LR"]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rigify", action="store_true", help="also generate the Rigify face map (bpy)")
    ap.add_argument("-o", "--out", type=Path, default=MAPS_DIR)
    a = ap.parse_args(argv)
    save_map(bdfm_map(), a.out / "bdfm.json")
    save_map(arkit_map(), a.out / "arkit52.json")
    if a.rigify:
        import bpy

        bpy.ops.wm.read_factory_settings(use_empty=True)
        rig = generate_rigify_rig()
        save_map(rigify_map(rigify_rest(rig), eye_target_distance(rig)), a.out / "rigify_face.json")
    print(f"wrote maps to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
