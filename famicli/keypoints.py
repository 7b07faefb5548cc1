"""The keypoint schemas, in one place: names, left/right pairs, limbs, OKS sigmas and poseval's order.

famipose's models output 17 heatmaps in the COCO keypoint order. Which 17 keypoints they are travels
with the checkpoint (``ModelConfig.schema``, :data:`SCHEMAS`):

* ``posetrack``: PoseTrack18's names (FAMI-Pose, DCPose, famipose-trained models): channels 1 and 2
  are ``head_bottom`` and ``head_top``;
* ``coco``: COCO's (pose-HRNet COCO checkpoints): channels 1 and 2 are the eyes.

Every module that needs a joint's name, its mirror image, the skeleton or the OKS sigma imports it
from here; the module-level names (``JOINT_NAMES``, ``FLIP_PAIRS``, ``LIMBS``) are PoseTrack's, the
schema of every file famipose reads and scores.

No torch or numpy import: the CLI reads these to validate options.
"""

from __future__ import annotations

from dataclasses import dataclass

# The 17 keypoints of PoseTrack18 files and of the model's heatmaps, in file (COCO) order.
# PoseTrack never annotates the ears; they are kept so that indices match COCO's.
JOINT_NAMES = (
    "nose",
    "head_bottom",
    "head_top",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
NUM_JOINTS = len(JOINT_NAMES)
NEVER_LABELED = (3, 4)  # the ears: PoseTrack annotates neither

# Left/right pairs (ears, shoulders, elbows, wrists, hips, knees, ankles): a horizontal flip swaps them.
FLIP_PAIRS = ((3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))

# COCO's skeleton (0-based): the limbs of a COCO-schema overlay. PoseTrack18 files list it too (1-based,
# SKELETON), though its head limbs join the eyes and ears, which PoseTrack does not have.
COCO_LIMBS = (
    (15, 13),
    (13, 11),
    (16, 14),
    (14, 12),
    (11, 12),
    (5, 11),
    (6, 12),
    (5, 6),
    (5, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (1, 2),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
)
# The same limbs 1-based, as a COCO/PoseTrack ``categories[0].skeleton`` lists them.
SKELETON = tuple((a + 1, b + 1) for a, b in COCO_LIMBS)

# The limbs drawn on a PoseTrack-schema overlay: COCO's body, and the head as PoseTrack labels it
# (head_top - nose - head_bottom, head_bottom to each shoulder; the ears are never labelled).
LIMBS = (*COCO_LIMBS[:12], (2, 0), (0, 1), (1, 5), (1, 6))

# COCO's per-keypoint OKS sigmas. PoseTrack has none of its own; like mmpose, famipose uses COCO's
# for OKS (COCO AP and the tracker's pose similarity).
OKS_SIGMAS = (
    0.026,
    0.025,
    0.025,
    0.035,
    0.035,
    0.079,
    0.079,
    0.072,
    0.072,
    0.062,
    0.062,
    0.107,
    0.107,
    0.087,
    0.087,
    0.089,
    0.089,
)

# poseval's internal order of its 15 scored joints ("neck" is head_bottom); PoseTrack17 files (MPII
# ``annolist``) number their points 0-14 in this order.
POSEVAL_JOINTS = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "neck",
    "nose",
    "head_top",
)
# For each poseval joint (= PoseTrack17 point id), its column among the 17 JOINT_NAMES.
POSEVAL_COLUMNS = tuple(JOINT_NAMES.index("head_bottom" if n == "neck" else n) for n in POSEVAL_JOINTS)


# COCO's 17 keypoints (pose-HRNet COCO checkpoints): PoseTrack's, with the eyes at 1 and 2.
COCO_NAMES = ("nose", "left_eye", "right_eye", *JOINT_NAMES[3:])


@dataclass(frozen=True)
class Schema:
    """What a model's 17 heatmaps are.

    Attributes:
        name: ``posetrack`` or ``coco``.
        names: the 17 names in channel order.
        flip_pairs: channels a horizontal flip swaps (COCO's eyes too).
        limbs: joints joined on overlays.
        posetrack: per PoseTrack18 keypoint (:data:`JOINT_NAMES`), the channel that gives it, -1 for none:
            a COCO model has no ``head_bottom`` or ``head_top``.
    """

    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    limbs: tuple[tuple[int, int], ...]
    posetrack: tuple[int, ...]

    @property
    def missing_in_posetrack(self) -> tuple[str, ...]:
        """PoseTrack18 keypoints this schema does not give (written absent: ``0, 0, 0``)."""
        return tuple(n for n, c in zip(JOINT_NAMES, self.posetrack, strict=True) if c < 0)


SCHEMAS = {
    "posetrack": Schema("posetrack", JOINT_NAMES, FLIP_PAIRS, LIMBS, tuple(range(NUM_JOINTS))),
    "coco": Schema(
        "coco",
        COCO_NAMES,
        ((1, 2), *FLIP_PAIRS),
        COCO_LIMBS,
        tuple(COCO_NAMES.index(n) if n in COCO_NAMES else -1 for n in JOINT_NAMES),
    ),
}


def get_schema(name: str) -> Schema:
    """The :class:`Schema` called ``name``.

    Raises:
        ConfigError: unknown name, with the choices.
    """
    from famicli.errors import ConfigError

    if name not in SCHEMAS:
        raise ConfigError(f"unknown keypoint schema {name!r}; choose from: {', '.join(SCHEMAS)}")
    return SCHEMAS[name]


def joint_index(name: str) -> int:
    """The heatmap channel of joint ``name``.

    Raises:
        ConfigError: unknown name, with the valid choices.
    """
    from famicli.errors import ConfigError

    if name not in JOINT_NAMES:
        raise ConfigError(f"unknown joint {name!r}; choose from: {', '.join(JOINT_NAMES)}")
    return JOINT_NAMES.index(name)
