"""Synthetic phantom x-rays in each dataset's real on-disk layout (``xlm data synth``).

The phantoms are drawn, not simulated: signed-distance shapes (bone shafts, joint gaps,
cortical rims, lung fields, soft-tissue profiles) summed into an attenuation map, then
rendered with blur, a low-frequency texture and noise. Every landmark is a vertex,
tip, joint gap or centre of a drawn structure, so a network can learn it. Shapes vary
per image (proportions, spread, pose, contrast); the same seed gives the same bytes.

- head: lateral cephalogram facing right (cranium, frontal and nasal bone, sella,
  orbit, ear rod, maxilla and palate, incisors, mandible, cervical vertebrae, soft-tissue
  profile), 19 ISBI landmarks; 1935:2400 (W:H) like ISBI; the mm per pixel recorded in
  ``SYNTHETIC.json`` is ``0.1 * 1935 / W``.
- hand: PA left hand (radius, ulna, 7 carpals, metacarpals and phalanges with joint
  gaps, soft tissue), Payer's 37-landmark order (wrist, carpals, metacarpal bases, thumb,
  index, middle, ring, little finger joints and tips); portrait like the DHA.
- chest: PA chest (body, two lung fields, heart, spine, ribs, clavicles), Zhu's 6
  landmarks (each lung's apex, costophrenic and cardiophrenic angle); square.

All geometry is in pixels of the output image, pixel centres at integer coordinates.

**Why this file is long** (~750 lines): about 400 of its lines are the three anatomical
templates (``_head_phantom``, ``_hand_phantom``, ``_chest_phantom``), each a straight list of
drawn structures whose coordinates are the landmarks' definition; split further, a template
would no longer read as one anatomy. The drawing primitives (signed distances, ``Canvas``,
``render``) live in :mod:`xlm_core.datasets.drawing`; the rest here is poses and the writer of
each dataset's on-disk layout, kept beside the templates because the bytes it writes are
this file's contract (same seed, same bytes; :data:`GENERATOR_VERSION`). The loaders that
read those layouts live apart (``engine``, ``formats``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from xlm_core import XLMError
from xlm_core.datasets.check import SYNTHETIC_MARKER, read_synthetic_marker
from xlm_core.datasets.drawing import Canvas, render
from xlm_core.io import atomic_path, atomic_write_json, atomic_write_text

GENERATOR_VERSION = 1
ANATOMIES = ("head", "hand", "chest")
FORMATS = ("native", "labelme")
#: Default (W, H): head keeps ISBI's 1935:2400, hand a DHA-like portrait, chest square.
DEFAULT_SIZES_WH = {"head": (194, 240), "hand": (184, 256), "chest": (256, 256)}
N_LANDMARKS = {"head": 19, "hand": 37, "chest": 6}
#: LabelMe phantoms with several annotators: one folder per reader (``reader_a``, ``reader_b``, ...)
READERS = tuple(f"reader_{c}" for c in "abcd")
DESCRIPTOR_NAME = "dataset.yaml"
_LAYOUT_ENTRIES = ("RawImage", "AnnotationsByMD", "jpg", "mha", "all.csv", "pngs", "labels", "images",
                   *READERS, DESCRIPTOR_NAME)


# --------------------------------------------------------------------------- geometry helpers


def _rotation(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


@dataclass
class Pose:
    """A similarity transform about the image centre: ``p -> centre + scale * R (p - centre) + shift``.

    Attributes:
        centre: ``(2,)`` the image centre (x, y).
        rotation: ``(2, 2)`` rotation matrix.
        scale: isotropic scale.
        shift: ``(2,)`` translation in pixels.
    """

    centre: np.ndarray
    rotation: np.ndarray
    scale: float
    shift: np.ndarray

    def __call__(self, pts) -> np.ndarray:
        """Apply the transform.

        Args:
            pts: ``(..., 2)`` (x, y) pixels.

        Returns:
            ``(..., 2)`` float64 transformed points.
        """
        pts = np.asarray(pts, dtype=np.float64)
        return self.centre + self.scale * (pts - self.centre) @ self.rotation.T + self.shift

    def length(self, value: float) -> float:
        """A length under the transform.

        Args:
            value: a length in pixels.

        Returns:
            ``value * scale``.
        """
        return value * self.scale


def _pose(rng, width, height, max_deg, scale_range, shift_frac) -> Pose:
    return Pose(
        centre=np.array([width / 2.0, height / 2.0]),
        rotation=_rotation(math.radians(rng.uniform(-max_deg, max_deg))),
        scale=float(rng.uniform(*scale_range)),
        shift=rng.uniform(-shift_frac, shift_frac, size=2) * np.array([width, height]),
    )


def _curve(points, n: int = 8) -> np.ndarray:
    """Catmull-Rom spline through ``points`` (open), ``n`` samples per span, ends included."""
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) < 3:
        return pts
    padded = np.vstack([2 * pts[0] - pts[1], pts, 2 * pts[-1] - pts[-2]])
    out = []
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1 : i + 3]
        for t in np.linspace(0, 1, n, endpoint=False):
            t2, t3 = t * t, t * t * t
            out.append(
                0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
                       + (-p0 + 3 * p1 - 3 * p2 + p3) * t3)
            )
    out.append(pts[-1])
    return np.asarray(out)


def _inside(points: np.ndarray, width: int, height: int, margin: float) -> bool:
    return bool(
        (points[:, 0] >= margin).all() and (points[:, 0] <= width - 1 - margin).all()
        and (points[:, 1] >= margin).all() and (points[:, 1] <= height - 1 - margin).all()
    )


def _pick_pose(rng, width, height, landmarks_fn, **pose_args) -> Pose:
    """Draw poses until every landmark lies inside the image (a few tries, then no pose)."""
    for _ in range(20):
        pose = _pose(rng, width, height, **pose_args)
        if _inside(pose(landmarks_fn()), width, height, margin=2.0):
            return pose
    return Pose(np.array([width / 2.0, height / 2.0]), np.eye(2), 1.0, np.zeros(2))


# --------------------------------------------------------------------------- head


def _head_phantom(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """One lateral cephalogram phantom. Returns ``(image (H, W) uint8, landmarks (19, 2) (x, y))``."""
    size = np.array([width, height], dtype=np.float64)

    def P(u, v):  # normalised template -> pixels
        return np.array([u, v]) * size

    unit = width  # lengths in fractions of the width
    # ---- per-image proportions (template space)
    skull = rng.uniform(0.95, 1.05)
    face = rng.uniform(0.93, 1.07)  # lower-face height
    jaw = rng.uniform(-0.02, 0.02)  # mandibular prognathism (x shift)
    soft_t = rng.uniform(-0.008, 0.015)  # soft tissue thickness
    gonial = rng.uniform(-0.02, 0.02)

    def lower(u, v, mandible=False, soft=False):
        v2 = 0.60 + (v - 0.60) * face if v > 0.60 else v
        u2 = u + (jaw * (v - 0.60) / 0.35 if mandible and v > 0.60 else 0.0) + (soft_t if soft else 0.0)
        return P(u2, v2)

    jit = lambda: rng.normal(0, 0.004, size=2) * size
    cx, cy, rx, ry = 0.44, 0.33, 0.36 * skull, 0.28 * skull
    theta_n = math.asin(min(0.95, (0.42 - cy) / ry))
    centre = P(cx, cy)
    radii = np.array([rx * width, ry * height])
    arc = lambda t: centre + radii * np.array([math.cos(t), math.sin(t)])

    L = {}
    L["N"] = arc(theta_n)
    L["S"] = P(0.43, 0.41) + jit()
    L["Or"] = P(0.67, 0.52) + jit()
    L["Po"] = P(0.30, 0.50) + jit()
    L["ANS"] = lower(0.765, 0.645) + jit()
    L["PNS"] = lower(0.50, 0.635) + jit()
    L["A"] = lower(0.735, 0.685) + jit()
    L["UIT"] = lower(0.765, 0.780) + jit()
    L["LIT"] = L["UIT"] + np.array([-0.013, -0.010]) * size
    L["B"] = lower(0.725, 0.835, mandible=True) + jit()
    L["Pog"] = lower(0.742, 0.895, mandible=True) + jit()
    L["Gn"] = lower(0.727, 0.930, mandible=True) + jit()
    L["Me"] = lower(0.690, 0.945, mandible=True) + jit()
    L["Go"] = lower(0.37 + gonial, 0.76, mandible=False) + jit()
    L["Ar"] = P(0.355, 0.575) + jit()
    L["Sn"] = lower(0.80, 0.665, soft=True) + jit()
    L["UL"] = lower(0.83, 0.725, soft=True) + jit()
    L["LL"] = lower(0.815, 0.835, mandible=True, soft=True) + jit()
    L["sPog"] = lower(0.79, 0.925, mandible=True, soft=True) + jit()
    order = ["S", "N", "Or", "Po", "A", "B", "Pog", "Me", "Gn", "Go", "LIT", "UIT", "UL", "LL",
             "Sn", "sPog", "PNS", "ANS", "Ar"]
    landmarks_template = np.array([L[k] for k in order])

    pose = _pick_pose(rng, width, height, lambda: landmarks_template,
                      max_deg=6, scale_range=(0.92, 1.03), shift_frac=0.03)
    T = pose
    s = pose.scale
    cv = Canvas(width, height)

    # soft-tissue silhouette (head, face profile, neck)
    back = [arc_pt for arc_pt in (
        centre + (radii + 0.028 * unit) * np.array([math.cos(t), math.sin(t)])
        for t in np.linspace(-0.42, -math.pi - 0.62, 28)
    )]
    profile = [
        L["N"] + np.array([0.03, 0.0]) * size, lower(0.89, 0.585, soft=True), L["Sn"], L["UL"],
        lower(0.805, 0.78, mandible=True, soft=True), L["LL"], lower(0.785, 0.87, mandible=True, soft=True),
        L["sPog"], lower(0.72, 0.975, mandible=True, soft=True), lower(0.60, 0.975), P(0.57, 1.05),
        P(0.18, 1.05), P(0.15, 0.75),
    ]
    silhouette = np.vstack([np.array(back), np.array(profile[::-1])])
    cv.polygon(T(silhouette), 0.32, soft=True)

    # cranial vault: outer table from the nasion round the back, inner table, diploe
    t_vault = np.linspace(theta_n, -math.pi - 0.45, 60)
    outer = np.array([arc(t) for t in t_vault])
    cv.stroke(T(outer), s * 0.012 * unit, 0.45)
    inner = np.array([centre + (radii - 0.035 * unit) * np.array([math.cos(t), math.sin(t)])
                      for t in t_vault[4:]])
    cv.stroke(T(inner), s * 0.007 * unit, 0.3)
    cv.ellipse(T(centre), (s * (radii[0] - 0.02 * unit), s * (radii[1] - 0.02 * unit)), 0.08,
               angle=math.atan2(T.rotation[1, 0], T.rotation[0, 0]))
    # nasal bone from the nasion (a concave corner with the frontal bone)
    nasal_tip = L["N"] + np.array([0.05, 0.085]) * size
    cv.stroke(T([L["N"], nasal_tip]), s * 0.007 * unit, 0.4)
    # cranial base: a dense band from the occiput past articulare to the nasion
    base = np.array([P(0.17, 0.53), P(0.30, L["Ar"][1] / height), L["Ar"], P(0.45, 0.56),
                     P(0.58, 0.52), P(0.70, 0.47), L["N"] + np.array([-0.02, 0.01]) * size,
                     P(0.66, 0.43), P(0.50, 0.43), P(0.34, 0.47), P(0.20, 0.48)])
    cv.polygon(T(base), 0.22, rim=0.12)
    # sella turcica: a dark pit in a bright cup; the landmark is the pit's centre
    r_sella = 0.028 * unit
    cv.ellipse(T(L["S"]), (s * r_sella, s * r_sella), -0.2)
    cup = np.array([L["S"] + r_sella * 1.25 * np.array([math.cos(t), math.sin(t)])
                    for t in np.linspace(-0.3, math.pi + 0.3, 16)])
    cv.stroke(T(cup), s * 0.008 * unit, 0.45)
    cv.stroke(T([L["S"], L["N"] + np.array([-0.03, 0.005]) * size]), s * 0.005 * unit, 0.15)
    # orbit: a ring whose lowest point is orbitale
    r_orb = np.array([0.055 * unit, 0.045 * unit])
    cv.ring(T(L["Or"] - np.array([0.0, r_orb[1]])), s * r_orb, s * 0.009 * unit, 0.3,
            angle=math.atan2(T.rotation[1, 0], T.rotation[0, 0]))
    # ear rod: a bright ring whose top is porion
    r_ear = 0.024 * unit
    ear_c = L["Po"] + np.array([0.0, r_ear])
    cv.ellipse(T(ear_c), (s * r_ear, s * r_ear), -0.1)
    cv.ring(T(ear_c), (s * r_ear, s * r_ear), s * 0.01 * unit, 0.7)
    # maxilla with the palate from PNS to ANS (tips exactly at the landmarks)
    alveolar_up = lower(0.75, 0.745)
    maxilla = np.array([L["PNS"], lower(0.56, 0.605), lower(0.70, 0.605), L["ANS"], L["A"],
                        alveolar_up, lower(0.69, 0.755), lower(0.56, 0.715)])
    cv.polygon(T(maxilla), 0.2, rim=0.15)
    cv.stroke(T(_shorten(L["PNS"], L["ANS"], 0.009 * unit)), s * 0.009 * unit, 0.3)
    # teeth: molars along the occlusal plane, then the incisors ending at their tips
    for k in range(4):
        u = 0.56 + 0.035 * k
        tooth = np.array([lower(u, 0.735), lower(u + 0.03, 0.735), lower(u + 0.03, 0.80), lower(u, 0.80)])
        cv.polygon(T(tooth), 0.25, rim=0.15)
    r_inc = 0.013 * unit
    root_up = lower(0.705, 0.665)
    cv.stroke(T(_shorten(root_up, L["UIT"], r_inc, only_end=True)), s * r_inc, 0.45)
    root_low = lower(0.69, 0.87, mandible=True)
    cv.stroke(T(_shorten(root_low, L["LIT"], r_inc, only_end=True)), s * r_inc, 0.45)
    # mandible: ramus, angle (gonion), body, chin (B, pogonion, gnathion, menton)
    condyle = L["Ar"] + np.array([0.022, -0.022]) * size
    mandible = np.array([
        L["Ar"], L["Go"], lower(0.50, 0.865, mandible=True), L["Me"], L["Gn"], L["Pog"], L["B"],
        lower(0.748, 0.80, mandible=True), lower(0.69, 0.80, mandible=True),
        lower(0.60, 0.82, mandible=True), lower(0.50, 0.775, mandible=True), lower(0.47, 0.70),
        lower(0.475, 0.615), lower(0.43, 0.645), condyle + np.array([0.012, 0.01]) * size,
    ])
    cv.polygon(T(mandible), 0.22, rim=0.25, rim_px=max(1.2, 0.008 * unit))
    cv.ellipse(T(condyle), (s * 0.018 * unit, s * 0.018 * unit), 0.15)
    # cervical vertebrae behind the ramus
    for k in range(4):
        top = 0.66 + 0.09 * k
        vert = np.array([P(0.20, top), P(0.29, top + 0.005), P(0.29, top + 0.07), P(0.20, top + 0.065)])
        cv.polygon(T(vert), 0.18, rim=0.15)

    image = render(cv, rng, gain=rng.uniform(1.6, 2.2), blur_px=max(0.5, 0.004 * width),
                   noise=rng.uniform(0.01, 0.025), background=rng.uniform(0.03, 0.08))
    return image, T(landmarks_template)


def _shorten(a, b, by: float, only_end: bool = False):
    """Segment a-b pulled in by ``by`` at b (and at a unless ``only_end``): a stroke of radius
    ``by`` then ends exactly at the original points."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = (b - a) / max(float(np.hypot(*(b - a))), 1e-9)
    return np.array([a if only_end else a + d * by, b - d * by])


# --------------------------------------------------------------------------- hand

# (metacarpal base (x, y) in units of H, direction degrees from vertical towards the
#  thumb, bone lengths metacarpal/proximal/middle/distal, bone radius) from thumb to little
_FINGERS = {
    "index": ((0.425, 0.640), 7.0, (0.190, 0.110, 0.066, 0.050), 0.0105),
    "middle": ((0.370, 0.636), 0.0, (0.200, 0.120, 0.075, 0.055), 0.011),
    "ring": ((0.318, 0.645), -6.0, (0.182, 0.107, 0.070, 0.050), 0.0103),
    "little": ((0.270, 0.658), -13.0, (0.160, 0.086, 0.052, 0.046), 0.0092),
}
_THUMB = ((0.50, 0.668), 38.0, (0.12, 0.085, 0.062), 0.0125)


def _hand_phantom(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """One PA left-hand phantom. Returns ``(image (H, W) uint8, landmarks (37, 2) (x, y))``."""
    H = float(height)
    offset = np.array([width / 2.0 - 0.37 * H, 0.0])

    def P(x, y):  # template (units of H, hand centred) -> pixels
        return np.array([x, y]) * H + offset

    length = rng.uniform(0.92, 1.06)
    spread = rng.uniform(0.6, 1.5)
    breadth = rng.uniform(0.93, 1.07)

    def Q(x, y):  # proportions applied about the wrist
        return P(0.37 + (x - 0.37) * breadth, y)

    jit = lambda s=0.003: rng.normal(0, s, size=2) * H
    L: dict[int, np.ndarray] = {}
    # forearm bones: ulna (1 side corner, 2 styloid tip, 3 radial corner), radius (4, 5, 6)
    L[1], L[2], L[3] = Q(0.235, 0.838) + jit(), Q(0.255, 0.803) + jit(), Q(0.322, 0.830) + jit()
    L[4], L[6], L[5] = Q(0.378, 0.820) + jit(), Q(0.500, 0.785) + jit(), Q(0.528, 0.836) + jit()
    # carpal centres: proximal row 7-9, distal row 10-13
    carpals = {7: (0.292, 0.765, 0.026, 0.022), 8: (0.358, 0.772, 0.029, 0.025),
               9: (0.440, 0.752, 0.036, 0.022), 10: (0.300, 0.700, 0.027, 0.029),
               11: (0.364, 0.702, 0.027, 0.034), 12: (0.424, 0.687, 0.022, 0.022),
               13: (0.472, 0.703, 0.025, 0.023)}
    for k, (x, y, _, _) in carpals.items():
        L[k] = Q(x, y) + jit(0.002)
    # metacarpal bases 14-18 (little .. thumb) then the joints and tips
    chains: list[tuple[list[np.ndarray], float]] = []
    base_ids = {"little": 14, "ring": 15, "middle": 16, "index": 17}
    first_ids = {"index": 22, "middle": 26, "ring": 30, "little": 34}
    for name, (base, angle, lengths, radius) in _FINGERS.items():
        start = Q(*base) + jit(0.002)
        L[base_ids[name]] = start
        direction = math.radians(angle * spread + rng.normal(0, 2.0))
        joints = [start]
        finger_len = length * rng.uniform(0.97, 1.03)
        for k, bone_len in enumerate(lengths):
            if k > 0:
                direction += math.radians(rng.normal(0, 3.0)) + math.radians(angle * 0.15 * spread)
            step = bone_len * finger_len * H
            joints.append(joints[-1] + step * np.array([math.sin(direction), -math.cos(direction)]))
        for k in range(4):
            L[first_ids[name] + k] = joints[k + 1]
        chains.append((joints, radius * H))
    t_base, t_angle, t_lengths, t_radius = _THUMB
    start = Q(*t_base) + jit(0.002)
    L[18] = start
    direction = math.radians(t_angle + rng.normal(0, 6.0))
    joints = [start]
    for k, bone_len in enumerate(t_lengths):
        if k > 0:
            direction += math.radians(rng.normal(-4.0, 4.0))
        step = bone_len * length * H
        joints.append(joints[-1] + step * np.array([math.sin(direction), -math.cos(direction)]))
    L[19], L[20], L[21] = joints[1], joints[2], joints[3]
    chains.append((joints, t_radius * H))
    landmarks_template = np.array([L[k] for k in range(1, 38)])

    T = _pick_pose(rng, width, height, lambda: landmarks_template,
                   max_deg=8, scale_range=(0.9, 1.02), shift_frac=0.025)
    s = T.scale
    cv = Canvas(width, height)
    gap = 0.011 * H * s

    # soft tissue: forearm, palm, fingers (union)
    web = lambda a, b: (L[a] + L[b]) / 2 + np.array([0.0, 0.035]) * H
    palm = np.array([Q(0.215, 1.05), Q(0.215, 0.86), Q(0.225, 0.74), L[34] + np.array([-0.028, 0.01]) * H,
                     web(34, 30), web(30, 26), web(26, 22), L[22] + np.array([0.028, 0.0]) * H,
                     L[19] + np.array([0.03, 0.02]) * H, Q(0.545, 0.76), Q(0.55, 0.86), Q(0.53, 1.05)])
    cv.polygon(T(palm), 0.3, soft=True)
    for joints, radius in chains:
        tip = joints[-1] + 0.018 * H * (joints[-1] - joints[-2]) / np.hypot(*(joints[-1] - joints[-2]))
        cv.stroke(T(np.vstack([joints[1:], tip[None]])), s * (radius + 0.013 * H), 0.3, soft=True)
    thumb_joints = chains[-1][0]
    cv.stroke(T([thumb_joints[0], thumb_joints[1]]), s * 0.035 * H, 0.3, soft=True)

    # radius and ulna: shafts into the distal ends, corners at the landmarks
    ulna = np.array([Q(0.25, 1.06), Q(0.245, 0.90), L[1], L[2], Q(0.285, 0.822), L[3],
                     Q(0.30, 0.90), Q(0.295, 1.06)])
    radius_bone = np.array([Q(0.40, 1.06), Q(0.395, 0.90), L[4], Q(0.44, 0.80), L[6], L[5],
                            Q(0.49, 0.90), Q(0.48, 1.06)])
    for shape in (ulna, radius_bone):
        cv.polygon(T(shape), 0.35, rim=0.3, rim_px=max(1.0, 0.006 * H * s))
    # carpals
    # carpals: projected thickness peaks at the centre (a dense core and a central dot),
    # so the centre landmark is a local feature, not a flat interior
    for k, (_, _, rx, ry) in carpals.items():
        tilt = math.atan2(T.rotation[1, 0], T.rotation[0, 0])
        radii = np.array([s * rx * H * breadth, s * ry * H])
        cv.ellipse(T(L[k]), radii, 0.3, angle=tilt, rim=0.25, rim_px=max(1.0, 0.005 * H * s))
        cv.ellipse(T(L[k]), radii * 0.45, 0.14, angle=tilt)
        dot = max(1.1, 0.004 * H * s)
        cv.ellipse(T(L[k]), (dot, dot), 0.2)
    # fingers: bones between joints with a dark joint gap centred on each landmark
    for joints, radius in chains:
        pts = T(np.asarray(joints))
        for k in range(len(pts) - 1):
            a, b = pts[k], pts[k + 1]
            d = (b - a) / max(float(np.hypot(*(b - a))), 1e-9)
            start = a + d * (gap / 2 if k > 0 else 0.0)  # metacarpal base: tip at the landmark
            end = b - d * (gap / 2) if k < len(pts) - 2 else b  # distal phalanx: tip at the landmark
            r = s * radius * (1.0 if k == 0 else 0.95 ** k)
            cv.bone(start, end, r, 1.4, 0.35, 0.3, rim_px=max(1.0, 0.35 * r))

    image = render(cv, rng, gain=rng.uniform(1.5, 2.1), blur_px=max(0.5, 0.0025 * height),
                   noise=rng.uniform(0.01, 0.025), background=rng.uniform(0.02, 0.07))
    return image, T(landmarks_template)


# --------------------------------------------------------------------------- chest


def _chest_phantom(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """One PA chest phantom. Returns ``(image (H, W) uint8, landmarks (6, 2) (x, y))``."""
    size = np.array([width, height], dtype=np.float64)

    def P(u, v):
        return np.array([u, v]) * size

    lung_w = rng.uniform(0.92, 1.08)
    lung_h = rng.uniform(0.9, 1.1)
    dia_r, dia_l = rng.uniform(-0.03, 0.03, size=2)
    heart = rng.uniform(0.9, 1.15)
    shift = rng.uniform(-0.02, 0.02)

    def R(u, v, side, dia=0.0):  # lung template point: width about the midline, height from the apex
        u2 = 0.5 + shift + (u - 0.5) * lung_w
        v2 = 0.14 + (v - 0.14) * lung_h + (dia if v > 0.55 else 0.0)
        return P(u2, v2)

    jit = lambda: rng.normal(0, 0.004, size=2) * size
    L1 = R(0.36, 0.14, 0) + jit()  # right lung apex (image left)
    L2 = R(0.14, 0.79, 0, dia_r) + jit()  # right costophrenic angle
    L3 = R(0.42 - 0.02 * (heart - 1), 0.645, 0, dia_r) + jit()  # right cardiophrenic angle
    L4 = R(0.64, 0.135, 1) + jit()
    L5 = R(0.88, 0.78, 1, dia_l) + jit()
    L6 = R(0.74 + 0.05 * (heart - 1), 0.70, 1, dia_l) + jit()
    landmarks_template = np.array([L1, L2, L3, L4, L5, L6])

    T = _pick_pose(rng, width, height, lambda: landmarks_template,
                   max_deg=5, scale_range=(0.92, 1.03), shift_frac=0.025)
    s = T.scale
    cv = Canvas(width, height)

    # body and shoulders, neck
    body = np.array([P(0.02, 0.16), P(0.16, 0.09), P(0.38, 0.04), P(0.40, -0.05), P(0.60, -0.05),
                     P(0.62, 0.04), P(0.84, 0.09), P(0.98, 0.16), P(1.02, 1.05), P(-0.02, 1.05)])
    cv.polygon(T(body), 0.55, soft=True)
    # lungs (air): lateral wall, costophrenic corner, diaphragm dome, cardiophrenic corner, mediastinum
    right = np.vstack([
        _curve([L1, R(0.25, 0.19, 0), R(0.17, 0.33, 0), R(0.13, 0.55, 0), R(0.13, 0.70, 0, dia_r), L2]),
        _curve([L2, R(0.22, 0.70, 0, dia_r), R(0.32, 0.65, 0, dia_r), L3])[1:],
        _curve([L3, R(0.43, 0.50, 0), R(0.42, 0.33, 0), R(0.40, 0.20, 0), L1])[1:-1],
    ])
    left = np.vstack([
        _curve([L4, R(0.75, 0.18, 1), R(0.83, 0.33, 1), R(0.87, 0.55, 1), R(0.875, 0.69, 1, dia_l), L5]),
        _curve([L5, R(0.81, 0.715, 1, dia_l), R(0.765, 0.695, 1, dia_l), L6])[1:],
        _curve([L6, R(0.64, 0.58, 1), R(0.585, 0.42, 1), R(0.585, 0.28, 1), R(0.60, 0.19, 1), L4])[1:-1],
    ])
    for lung in (right, left):
        cv.polygon(T(lung), -0.38)
    # heart shadow between the lungs, spine
    cv.ellipse(T(P(0.55 + shift, 0.60)), (s * 0.16 * heart * width, s * 0.12 * heart * height), 0.2,
               angle=math.atan2(T.rotation[1, 0], T.rotation[0, 0]) + 0.3)
    for k in range(16):
        v = 0.03 + 0.062 * k
        cv.polygon(T([P(0.47 + shift, v), P(0.53 + shift, v), P(0.53 + shift, v + 0.052),
                      P(0.47 + shift, v + 0.052)]), 0.07, rim=0.06)
    # posterior ribs (both sides), then the clavicles
    for side in (-1, 1):
        for k in range(9):
            v0 = 0.14 + 0.066 * k
            ctrl = [(0.5 + side * 0.03, v0), (0.5 + side * 0.20, v0 - 0.05),
                    (0.5 + side * 0.36, v0 + 0.02), (0.5 + side * 0.40, v0 + 0.10)]
            pts = _curve([R(u, v, 0) for u, v in ctrl], n=6)
            cv.stroke(T(pts), s * 0.0075 * height, 0.09, rim=0.06)
        clav = _curve([P(0.5 + side * 0.06, 0.15), P(0.5 + side * 0.20, 0.12), P(0.5 + side * 0.40, 0.095)])
        cv.stroke(T(clav), s * 0.011 * height, 0.22, rim=0.1)

    image = render(cv, rng, gain=rng.uniform(1.6, 2.2), blur_px=max(0.6, 0.003 * height),
                   noise=rng.uniform(0.01, 0.025), background=rng.uniform(0.02, 0.06))
    return image, T(landmarks_template)


PHANTOMS = {"head": _head_phantom, "hand": _hand_phantom, "chest": _chest_phantom}


def draw_phantom(anatomy: str, index: int, seed: int, size_wh: tuple[int, int] | None = None):
    """One image of a phantom set and its landmarks.

    Each image has its own random stream (seed, index), so image k is the same whatever n.

    Args:
        anatomy: ``"head"``, ``"hand"`` or ``"chest"``.
        index: the image's index in the set.
        seed: the set's seed.
        size_wh: ``(W, H)`` in pixels (at least 32 each); None: :data:`DEFAULT_SIZES_WH`.

    Returns:
        ``(image, landmarks)``: ``(H, W)`` uint8 and ``(L, 2)`` float64 (x, y) pixels.

    Raises:
        XLMError: for an unknown anatomy or a size under 32x32.
    """
    if anatomy not in PHANTOMS:
        raise XLMError(f"unknown anatomy {anatomy!r}; choose one of {ANATOMIES}")
    width, height = size_wh or DEFAULT_SIZES_WH[anatomy]
    if width < 32 or height < 32:
        raise XLMError(f"phantom size must be at least 32x32 pixels, got {width}x{height}")
    rng = np.random.default_rng([int(seed), int(index), ANATOMIES.index(anatomy)])
    image, landmarks = PHANTOMS[anatomy](rng, int(width), int(height))
    return image, np.asarray(landmarks, dtype=np.float64)


# --------------------------------------------------------------------------- writing


def _save_image(image: np.ndarray, path: Path, fmt: str) -> None:
    options = {"quality": 95} if fmt == "JPEG" else {}
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format=fmt, **options)


def _prepare_out(out: Path) -> None:
    """Refuse to write into a folder holding anything but an earlier phantom set; clear that one."""
    if out.exists() and not out.is_dir():
        raise XLMError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if read_synthetic_marker(out) is None:
            raise XLMError(
                f"{out} is not empty and holds no {SYNTHETIC_MARKER}: refusing to write phantoms "
                "into what may be a real dataset; choose an empty or new folder"
            )
        for entry in _LAYOUT_ENTRIES:
            target = out / entry
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _fmt(value: float) -> str:
    return f"{value:.2f}"


def write_phantoms(
    anatomy: str,
    out: str | os.PathLike,
    n: int = 20,
    seed: int = 0,
    size_wh: tuple[int, int] | None = None,
    fmt: str = "native",
    annotators: int = 1,
) -> Path:
    """Write ``n`` phantom images of ``anatomy`` with their landmarks under ``out``.

    ``fmt="native"`` writes the real dataset's layout (head: ``RawImage/{TrainingData,
    Test1Data}/NNN.bmp`` + ``AnnotationsByMD/400_{senior,junior}/NNN.txt``, junior = senior
    plus a small random offset; hand: ``jpg/NNNN.jpg`` + ``all.csv``; chest:
    ``pngs/CHNCXR_NNNN_0.png`` + ``labels/CHNCXR_NNNN_0.txt`` ratios); ``fmt="labelme"``
    writes ``images/ID.png`` + ``images/ID.json`` (LabelMe points ``L1``..``Ln``) and a
    descriptor ``dataset.yaml`` beside them. Always writes ``SYNTHETIC.json``. Every file is
    written atomically; same arguments, same bytes. An existing earlier phantom set in ``out``
    is replaced.

    Args:
        anatomy: ``"head"``, ``"hand"`` or ``"chest"``.
        out: the folder to write (new, empty, or an earlier phantom set).
        n: number of images (>= 1); the head keeps ISBI's 150:250 train:test ratio.
        seed: the set's seed.
        size_wh: ``(W, H)`` in pixels; None: :data:`DEFAULT_SIZES_WH`.
        fmt: ``"native"`` or ``"labelme"``.
        annotators: 1..4; with ``k > 1`` (labelme only) the points go to ``reader_a/ID.json``,
            ``reader_b/ID.json``, ..., reader a = the drawn landmarks, the others = those plus
            small random offsets (sd 0.4 % of the width).

    Returns:
        ``out`` as a ``Path``.

    Raises:
        XLMError: for an unknown anatomy or format, ``n < 1``, annotators out of range or with
            the native format, or an ``out`` that is a file or a non-empty folder without
            ``SYNTHETIC.json``.
    """
    if anatomy not in ANATOMIES:
        raise XLMError(f"unknown anatomy {anatomy!r}; choose one of {ANATOMIES}")
    if fmt not in FORMATS:
        raise XLMError(f"unknown phantom format {fmt!r}; choose one of {FORMATS}")
    if int(n) < 1:
        raise XLMError(f"number of phantom images must be at least 1, got {n}")
    if not 1 <= int(annotators) <= len(READERS):
        raise XLMError(f"annotators must lie in 1..{len(READERS)}, got {annotators}")
    if int(annotators) > 1 and fmt != "labelme":
        raise XLMError("several annotators are written in the labelme format only (native head has two)")
    n = int(n)
    annotators = int(annotators)
    width, height = size_wh or DEFAULT_SIZES_WH[anatomy]
    out = Path(out)
    _prepare_out(out)

    ids = _ids(anatomy, n)
    noise_rng = np.random.default_rng([int(seed), 7919])  # annotator offsets, ISBI class labels
    csv_rows: list[str] = []
    n_train_head = max(1, min(n - 1, round(n * 150 / 400))) if n > 1 else 1
    for index, image_id in enumerate(ids):
        image, landmarks = draw_phantom(anatomy, index, seed, (width, height))
        if fmt == "labelme":
            if annotators == 1:
                _write_labelme(out / "images", image_id, image, landmarks)
                continue
            _save_image(image, out / "images" / f"{image_id}.png", "PNG")
            for k, reader in enumerate(READERS[:annotators]):
                offset = 0.0 if k == 0 else noise_rng.normal(0, 0.004 * width, size=landmarks.shape)
                points = np.clip(landmarks + offset, 0.0, [width - 1, height - 1])
                _write_labelme(out / reader, image_id, image, points, image_path=f"../images/{image_id}.png",
                               save_image=False)
            continue
        if anatomy == "head":
            part = "TrainingData" if index < n_train_head else "Test1Data"
            _save_image(image, out / "RawImage" / part / f"{image_id}.bmp", "BMP")
            junior = landmarks + noise_rng.normal(0, 0.004 * width, size=landmarks.shape)
            labels = noise_rng.integers(1, 4, size=8)
            for who, pts in (("senior", landmarks), ("junior", junior)):
                lines = [f"{_fmt(x)},{_fmt(y)}" for x, y in pts] + [str(v) for v in labels]
                atomic_write_text(out / "AnnotationsByMD" / f"400_{who}" / f"{image_id}.txt",
                                  "\n".join(lines) + "\n")
        elif anatomy == "hand":
            _save_image(image, out / "jpg" / f"{image_id}.jpg", "JPEG")
            csv_rows.append(",".join([image_id] + [_fmt(v) for v in landmarks.reshape(-1)]))
        else:
            _save_image(image, out / "pngs" / f"{image_id}.png", "PNG")
            ratios = landmarks / np.array([width, height], dtype=np.float64)
            lines = ["6"] + [f"{x:.6f} {y:.6f}" for x, y in ratios]
            atomic_write_text(out / "labels" / f"{image_id}.txt", "\n".join(lines) + "\n")
    if csv_rows:
        atomic_write_text(out / "all.csv", "\n".join(csv_rows) + "\n")

    marker = {
        "anatomy": anatomy,
        "n": n,
        "seed": int(seed),
        "generator": "xlm_core.datasets.synth",
        "generator_version": GENERATOR_VERSION,
        "format": fmt,
        "size_wh": [int(width), int(height)],
        "n_landmarks": N_LANDMARKS[anatomy],
        "note": "phantom images drawn by a program; not real x-rays, no accuracy claim",
    }
    if anatomy == "head":
        marker["mm_per_px"] = round(0.1 * 1935 / width, 6)
    if fmt == "labelme":
        marker["annotators"] = annotators
        atomic_write_text(out / DESCRIPTOR_NAME, phantom_descriptor(anatomy, annotators, width))
    atomic_write_json(out / SYNTHETIC_MARKER, marker)
    return out


def phantom_descriptor(anatomy: str, annotators: int, width: int) -> str:
    """The ``dataset.yaml`` of a LabelMe phantom set (the built-in dataset's rules, LabelMe files).

    Args:
        anatomy: ``"head"``, ``"hand"`` or ``"chest"``.
        annotators: number of annotator folders (1: the points beside the images).
        width: the phantoms' width in pixels (sets the head's mm per pixel).

    Returns:
        The YAML text.
    """
    from xlm_core.datasets.descriptor import builtin_descriptor

    builtin = builtin_descriptor(anatomy)
    sources = ["images/{id}.json"] if annotators == 1 else [f"{r}/{{id}}.json" for r in READERS[:annotators]]
    if builtin.spacing.pair is not None:
        a, b = builtin.spacing.pair
        spacing = f"{{pair: [{a + 1}, {b + 1}], width_mm: {builtin.spacing.width_mm:g}}}"
    elif builtin.spacing.mm_per_px is not None:
        spacing = f"{round(0.1 * 1935 / width, 6)}  # mm per pixel: the phantom's drawing scale"
    else:
        spacing = "null  # errors in pixels"
    lines = [
        f"# {anatomy} phantoms in LabelMe format, written by xlm data synth (not real x-rays)",
        f"name: {anatomy}_labelme",
        "images: images/*.png",
        "annotations:",
        "  format: labelme",
        "  sources:",
        *[f'    - "{src}"' for src in sources],
        f"landmarks: {N_LANDMARKS[anatomy]}",
        f"spacing_mm: {spacing}",
        "split: {train: 0.8}",
        f"thresholds: [{', '.join(f'{t:g}' for t in builtin.thresholds)}]",
        f"train_size: [{builtin.train_size[0]}, {builtin.train_size[1]}]",
        f"test_size: [{builtin.test_size[0]}, {builtin.test_size[1]}]",
    ]
    return "\n".join(lines) + "\n"


def _ids(anatomy: str, n: int) -> list[str]:
    if anatomy == "head":
        digits = max(3, len(str(n)))
        return [f"{i:0{digits}d}" for i in range(1, n + 1)]
    if anatomy == "hand":
        return [str(1001 + i) for i in range(n)]
    digits = max(4, len(str(n)))
    return [f"CHNCXR_{i:0{digits}d}_0" for i in range(1, n + 1)]


def _write_labelme(folder: Path, image_id: str, image: np.ndarray, landmarks: np.ndarray,
                   image_path: str | None = None, save_image: bool = True) -> None:
    if save_image:
        _save_image(image, folder / f"{image_id}.png", "PNG")
    doc = {
        "version": "5.0.1",
        "flags": {},
        "shapes": [
            {"label": f"L{k + 1}", "points": [[round(float(x), 2), round(float(y), 2)]],
             "group_id": None, "shape_type": "point", "flags": {}}
            for k, (x, y) in enumerate(landmarks)
        ],
        "imagePath": image_path or f"{image_id}.png",
        "imageData": None,
        "imageHeight": int(image.shape[0]),
        "imageWidth": int(image.shape[1]),
    }
    atomic_write_text(folder / f"{image_id}.json", json.dumps(doc, indent=2) + "\n")
