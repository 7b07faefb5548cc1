"""SynthTrack's articulated figures: a moving 3-D stick body projected to 17 joints and drawable parts.

A figure is a small 3-D skeleton in body units (standing height = 1; X = the person's left,
Y = down, Z = forward) whose limb angles follow an action over time (``walk``, ``dance``, ``wave``,
``jacks``). It is turned by a yaw angle (0 faces the camera, +90 faces image-right), scaled to its
pixel height and placed with its feet on a ground line. Limbs are drawn far-side first as thick
capsules in clothing colours, so turning figures swap which side is in front, as real people do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ACTIONS = ("walk", "dance", "wave", "jacks")
SIDES = (1.0, -1.0)  # index 0 = left (+X), 1 = right (-X)
# Segment lengths and half-widths in body units.
UPPER_ARM, FOREARM, THIGH, SHIN = 0.17, 0.15, 0.245, 0.245
SHOULDER_HALF, HIP_HALF, TORSO, NECK, HEAD = 0.115, 0.075, 0.30, 0.05, 0.15
WIDTH = {"upper_arm": 0.062, "forearm": 0.05, "thigh": 0.088, "shin": 0.066, "foot": 0.045, "neck": 0.05}


@dataclass(frozen=True)
class FigureSpec:
    """Everything that fixes one person's appearance and motion in a video."""

    track_id: int  # identity within the video (1-based)
    height: float  # pixels from head top to ankles when standing straight
    ground: float  # world y (pixels) of the feet
    x0: float  # world x of the pelvis at frame 0
    vx: float  # horizontal speed, pixels per frame
    action: str  # one of ACTIONS
    yaw0: float  # degrees; 0 faces the camera, +90 faces image-right
    yaw_rate: float  # degrees per frame (turning)
    phase0: float  # radians
    freq: float  # motion cycles per frame
    amp: float  # motion amplitude factor
    wave_side: int  # 0: the left arm waves, 1: the right
    limbs: tuple[float, float, float, float]  # length factors of upper arm, forearm, thigh, shin
    colors: tuple[tuple[int, int, int], ...]  # shirt, sleeve, pants, skin, hair, shoes


@dataclass
class Figure:
    """One figure at one frame, in world pixels."""

    joints: np.ndarray  # (17, 2) COCO-order joints (ears included; the generator never labels them)
    parts: list  # (depth, kind, points (n, 2), half-width px, colour), drawn in list order
    head_box: np.ndarray  # (4,) x, y, w, h of the head ellipse
    extent: np.ndarray  # (4,) x1, y1, x2, y2 of everything drawn


def random_figure(
    rng: np.random.Generator, track_id: int, size: tuple[int, int], horizon: float, margin: float
) -> FigureSpec:
    """Draw a person: height 42-72 % of the frame (farther = smaller = higher), an action, colours."""
    width, height = size
    h = float(rng.uniform(0.42, 0.72)) * height
    ground = horizon + h * (0.98 * height - horizon) / (0.72 * height)
    action = ACTIONS[int(rng.integers(len(ACTIONS)))]
    freq = {"walk": (1 / 24, 1 / 12), "dance": (1 / 20, 1 / 10), "wave": (1 / 10, 1 / 6), "jacks": (1 / 16, 1 / 9)}
    f = float(rng.uniform(*freq[action]))
    if action == "walk":
        vx = float(rng.choice([-1, 1]) * h * 0.75 * f * rng.uniform(0.8, 1.2))
        x0 = float(rng.uniform(-0.1, 1.1) * width)
    else:
        vx = float(rng.uniform(-0.4, 0.4))
        x0 = float(rng.uniform(0.12, 0.88) * width)
    shirt, pants = rng.integers(20, 236, 3), rng.integers(15, 200, 3)
    skin = np.array([rng.uniform(90, 240), 0, 0])
    skin[1:] = skin[0] * rng.uniform(0.62, 0.8), skin[0] * rng.uniform(0.45, 0.65)
    sleeve = skin if rng.random() < 0.4 else shirt
    hair = rng.integers(10, 90, 3) if rng.random() < 0.8 else rng.integers(120, 220, 3)
    shoes = rng.integers(10, 80, 3)
    colors = tuple(tuple(int(v) for v in c) for c in (shirt, sleeve, pants, skin, hair, shoes))
    return FigureSpec(
        track_id=track_id,
        height=h,
        ground=ground + margin,
        x0=x0 + margin,
        vx=vx,
        action=action,
        yaw0=float(rng.uniform(-180, 180)),
        yaw_rate=float(rng.uniform(-6, 6) if action == "wave" else rng.uniform(-1.5, 1.5)),
        phase0=float(rng.uniform(0, 2 * math.pi)),
        freq=f,
        amp=float(rng.uniform(0.7, 1.25)),
        wave_side=int(rng.integers(2)),
        limbs=tuple(float(v) for v in rng.uniform(0.92, 1.08, 4)),
        colors=colors,
    )


def _angles(spec: FigureSpec, t: int) -> dict:
    """Limb angles in degrees for frame ``t``: (left, right) pairs and scalars."""
    p = spec.phase0 + 2 * math.pi * spec.freq * t
    a, s = spec.amp, math.sin(p)
    z = dict(
        arm_abd=[10.0, 10.0],
        arm_flex=[0.0, 0.0],
        elbow_abd=[0.0, 0.0],
        elbow_flex=[15.0, 15.0],
        leg_abd=[4.0, 4.0],
        leg_flex=[0.0, 0.0],
        knee=[5.0, 5.0],
        lean=3.0,
        roll=0.0,
        hop=0.0,
        yaw=spec.yaw0 + spec.yaw_rate * t,
    )
    if spec.action == "walk":
        z["leg_flex"] = [25 * a * s, -25 * a * s]
        z["knee"] = [5 + 30 * a * (1 + math.sin(p + 2.0)) / 2, 5 + 30 * a * (1 + math.sin(p + math.pi + 2.0)) / 2]
        z["arm_flex"] = [-22 * a * s, 22 * a * s]
        z["elbow_flex"] = [15 + 15 * a * (1 - s) / 2, 15 + 15 * a * (1 + s) / 2]
        z["lean"] = 6.0
        z["yaw"] = math.copysign(90.0, spec.vx) + 0.15 * spec.yaw0  # facing the walking direction, +-27
    elif spec.action == "dance":
        z["arm_abd"] = [45 + 55 * a * s, 45 + 55 * a * math.sin(p + 2.2)]
        z["arm_flex"] = [20 * math.sin(p / 2), 20 * math.cos(p / 2)]
        z["elbow_flex"] = [40 + 35 * math.sin(2 * p), 40 + 35 * math.cos(2 * p)]
        z["knee"] = [15 + 25 * a * (1 + math.sin(2 * p)) / 2] * 2
        z["leg_abd"], z["leg_flex"] = [8.0, 8.0], [10 * s, -10 * s]
        z["roll"], z["yaw"] = 10 * a * s, z["yaw"] + 50 * math.sin(p / 2)
    elif spec.action == "wave":
        w = spec.wave_side
        z["arm_abd"][w], z["arm_flex"][w] = 140 + 15 * s, 10.0
        z["elbow_abd"][w], z["elbow_flex"][w] = 30 * a * math.sin(2 * p), 10.0
        z["arm_flex"][1 - w] = 8 * s
    else:  # jacks
        o = (1 + s) / 2
        z["arm_abd"] = [min(170.0, 15 + 140 * o * a)] * 2
        z["elbow_flex"] = [10.0, 10.0]
        z["leg_abd"] = [4 + 18 * o * a] * 2
        z["knee"] = [10 + 15 * (1 - o)] * 2
        z["hop"] = 0.05 * o
    return z


def _dir(abd: float, flex: float, side: float) -> np.ndarray:
    """Unit limb direction: abduction in the frontal plane, flexion forward (degrees)."""
    ab, fl = math.radians(abd), math.radians(flex)
    return np.array([side * math.sin(ab), math.cos(ab) * math.cos(fl), math.cos(ab) * math.sin(fl)])


def pose(spec: FigureSpec, t: int) -> Figure:
    """The figure at frame ``t`` in world pixels, with its parts sorted far to near."""
    z = _angles(spec, t)
    lean, roll = math.radians(z["lean"]), math.radians(z["roll"])
    up = np.array([math.sin(roll), -math.cos(roll) * math.cos(lean), math.sin(lean)])
    up /= np.linalg.norm(up)
    lat = np.array([math.cos(roll), math.sin(roll), 0.0])
    fwd = np.array([0.0, 0.0, 1.0])
    ua, fa, th, sh = spec.limbs
    j = np.zeros((17, 3))  # body units, pelvis at the origin
    shoulder_mid = TORSO * up
    j[1] = shoulder_mid + NECK * up  # head_bottom
    j[2] = j[1] + HEAD * up  # head_top
    head_c = (j[1] + j[2]) / 2
    j[0] = head_c - 0.01 * up + 0.065 * fwd  # nose
    for i, side in enumerate(SIDES):
        j[3 + i] = head_c + side * 0.06 * lat  # ears
        j[5 + i] = shoulder_mid + side * SHOULDER_HALF * lat
        j[7 + i] = j[5 + i] + UPPER_ARM * ua * _dir(z["arm_abd"][i], z["arm_flex"][i], side)
        j[9 + i] = j[7 + i] + FOREARM * fa * _dir(
            z["arm_abd"][i] + z["elbow_abd"][i], z["arm_flex"][i] + z["elbow_flex"][i], side
        )
        j[11 + i] = np.array([side * HIP_HALF, 0.0, 0.0])
        j[13 + i] = j[11 + i] + THIGH * th * _dir(z["leg_abd"][i], z["leg_flex"][i], side)
        j[15 + i] = j[13 + i] + SHIN * sh * _dir(z["leg_abd"][i], z["leg_flex"][i] - z["knee"][i], side)
    feet = [j[15 + i] + 0.07 * np.array([0.0, 0.3, 1.0]) for i in range(2)]
    eyes = [head_c + 0.055 * fwd + side * 0.025 * lat + 0.005 * up for side in SIDES]
    yaw = math.radians(z["yaw"])
    cy, sy = math.cos(yaw), math.sin(yaw)
    h = spec.height
    base_y = spec.ground - h * (max(j[15, 1], j[16, 1]) + 0.03 + z["hop"])
    base_x = spec.x0 + spec.vx * t

    def proj(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = np.atleast_2d(p)  # (n, 3)
        x = p[:, 0] * cy + p[:, 2] * sy
        depth = -p[:, 0] * sy + p[:, 2] * cy
        return np.stack([base_x + h * x, base_y + h * p[:, 1]], axis=1), depth  # (n, 2), (n,)

    xy, depth = proj(j)
    shirt, sleeve, pants, skin, hair, shoes = spec.colors
    parts = []

    def capsule(a: int | np.ndarray, b: int | np.ndarray, width: float, color, bias: float = 0.02) -> None:
        pa, da = (xy[a], depth[a]) if isinstance(a, int) else (lambda r: (r[0][0], r[1][0]))(proj(a))
        pb, db = (xy[b], depth[b]) if isinstance(b, int) else (lambda r: (r[0][0], r[1][0]))(proj(b))
        d = (da + db) / 2 + bias
        shade = 0.82 if d < -0.03 else 1.0
        parts.append((d, "capsule", np.stack([pa, pb]), width * h / 2, tuple(int(c * shade) for c in color)))

    for i in range(2):
        capsule(11 + i, 13 + i, WIDTH["thigh"], pants)
        capsule(13 + i, 15 + i, WIDTH["shin"], pants)
        capsule(15 + i, feet[i], WIDTH["foot"], shoes)
        capsule(5 + i, 7 + i, WIDTH["upper_arm"], sleeve if sleeve != skin else shirt, 0.03)
        capsule(7 + i, 9 + i, WIDTH["forearm"], sleeve, 0.03)
        capsule(9 + i, j[9 + i] + 0.03 * (j[9 + i] - j[7 + i]) / FOREARM, 0.055, skin, 0.03)
    corners = [j[5 + i] + side * 0.02 * lat + dz * fwd for i, side in enumerate(SIDES) for dz in (-0.06, 0.06)]
    corners += [j[11 + i] + side * 0.02 * lat + dz * fwd for i, side in enumerate(SIDES) for dz in (-0.055, 0.055)]
    torso_xy, _ = proj(np.array(corners))
    parts.append((0.0, "poly", _hull(torso_xy), 0.0, shirt))
    capsule(1, (j[5] + j[6]) / 2, WIDTH["neck"], skin, 0.0)
    head_xy, _ = proj(head_c)
    ry = HEAD / 2 * h
    rx = 0.06 * h
    head_box = np.array([head_xy[0, 0] - rx, head_xy[0, 1] - ry, 2 * rx, 2 * ry])
    face = math.cos(yaw)  # > 0: the face is toward the camera
    eyes_xy = proj(np.array(eyes))[0] if face > 0.2 else np.zeros((0, 2))
    parts.append((0.05 + max(0.0, depth[0]), "head", np.vstack([head_xy, eyes_xy]), rx, (skin, hair, face)))
    parts.sort(key=lambda part: part[0])
    pts = np.vstack(
        [np.vstack([p[2] - p[3], p[2] + p[3]]) for p in parts if p[1] == "capsule"]
        + [torso_xy, head_box[None, :2], head_box[None, :2] + head_box[None, 2:]]
    )
    extent = np.concatenate([pts.min(axis=0), pts.max(axis=0)])
    return Figure(xy, parts, head_box, extent)


def _hull(points: np.ndarray) -> np.ndarray:
    """Convex hull (monotone chain) of 2-D points (n, 2) -> (m, 2)."""
    pts = sorted(map(tuple, points))

    def half(seq):
        out = []
        for p in seq:
            while (
                len(out) >= 2
                and ((out[-1][0] - out[-2][0]) * (p[1] - out[-2][1]) - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0]))
                <= 0
            ):
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(reversed(pts))
    return np.array(lower[:-1] + upper[:-1])


def draw(rgb, mask, fig: Figure, mask_value: int, offset: tuple[float, float]) -> None:
    """Draw ``fig`` on PIL ImageDraw objects ``rgb`` and ``mask`` (``mask`` gets ``mask_value``).

    ``offset`` (camera position) is subtracted from world coordinates.
    """
    o = np.asarray(offset, dtype=float)
    for _, kind, pts, r, color in fig.parts:
        pts = pts - o
        if kind == "capsule":
            (x0, y0), (x1, y1) = pts
            for d, fill in ((rgb, color), (mask, mask_value)):
                d.line([(x0, y0), (x1, y1)], fill=fill, width=max(1, int(round(2 * r))))
                d.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=fill)
                d.ellipse([x1 - r, y1 - r, x1 + r, y1 + r], fill=fill)
        elif kind == "poly":
            flat = [tuple(p) for p in pts]
            rgb.polygon(flat, fill=color)
            mask.polygon(flat, fill=mask_value)
        else:  # head: ellipse, hair on top (all of it from behind), eyes when facing the camera
            skin, hair, face = color
            (cx, cy), eyes = pts[0], pts[1:]
            ry = (fig.head_box[3]) / 2
            box = [cx - r, cy - ry, cx + r, cy + ry]
            rgb.ellipse(box, fill=skin)
            mask.ellipse(box, fill=mask_value)
            if face < 0:
                rgb.ellipse(box, fill=hair)
            else:
                rgb.chord(box, 200, 340, fill=hair)
                for ex, ey in eyes:
                    rgb.ellipse([ex - 1.2, ey - 1.2, ex + 1.2, ey + 1.2], fill=(30, 25, 25))
