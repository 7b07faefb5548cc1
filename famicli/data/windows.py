"""Temporal windows: which frames support a key frame, and how windows are padded at a video's ends.

Positions are 0-based indices into a video's frame list (PoseTrack18 frame numbers; for PoseTrack17
subtract one). Two padding rules exist for supporting frames that would fall outside the video:

``"official"`` (default) reproduces the FAMI-Pose release (``PoseTrack_Alignment``, DISTANCE 3).
With offsets ``[-2, -1, +1, +2]`` and a 10-frame video written 1-based as MODEL.md does::

    key 1 -> [1, 1, 2, 3]    key 2 -> [1, 2, 3, 4]    key 3 -> [1, 2, 4, 5]
    key 9 -> [7, 8, 10, 10]  key 10 -> [8, 9, 10, 10]

i.e. on the previous side the frames that exist are listed first (farthest slot first) and the
remaining slots are filled with the key frame; on the next side the frames that exist come first and
the remaining slots repeat the nearest next frame (t+1), or the key frame when there is none.
For other offsets the same rule applies per side: existing frames fill the slots in order of the
sorted offsets, the missing slots take the key frame (previous side) or the nearest existing next
frame (next side).

``"clamp"`` clamps every ``t + offset`` into the video: key 1 -> [1, 1, 2, 3], key 2 -> [1, 1, 3, 4].
"""

from __future__ import annotations

from collections.abc import Sequence

from famicli.errors import ConfigError

PADDINGS = ("official", "clamp")


def support_positions(
    key: int, n_frames: int, offsets: Sequence[int] = (-2, -1, 1, 2), padding: str = "official"
) -> list[int]:
    """Frame positions of the supporting frames of key frame ``key``, in the order of ``offsets``.

    Args:
        key: 0-based position of the key frame, ``0 <= key < n_frames``.
        n_frames: frames in the video.
        offsets: supporting frames relative to the key frame, in model order (0 means the key frame).
        padding: ``"official"`` or ``"clamp"`` (see the module docstring).

    Raises:
        ConfigError: unknown padding or a key outside the video.
    """
    if padding not in PADDINGS:
        raise ConfigError(f"unknown window padding {padding!r}; choose from: {', '.join(PADDINGS)}")
    if not 0 <= key < n_frames:
        raise ConfigError(f"key frame {key} is outside a video of {n_frames} frames")
    if padding == "clamp":
        return [min(max(key + o, 0), n_frames - 1) for o in offsets]
    out = {}
    prev = sorted((o for o in offsets if o < 0), reverse=False)  # farthest first: [-2, -1]
    nxt = sorted(o for o in offsets if o > 0)  # nearest first: [1, 2]
    # Previous side: existing frames (the nearest ones) take the first slots, the key frame the rest.
    exist = [o for o in prev if key + o >= 0]
    for slot, o in enumerate(prev):
        out.setdefault(o, []).append(key + exist[slot] if slot < len(exist) else key)
    # Next side: existing frames first, then the nearest existing next frame (or the key frame).
    exist = [o for o in nxt if key + o < n_frames]
    pad = key + exist[0] if exist else key
    for slot, o in enumerate(nxt):
        out.setdefault(o, []).append(key + exist[slot] if slot < len(exist) else pad)
    # Repeated offsets take their slots in order; offset 0 is the key frame itself.
    taken: dict[int, int] = {}
    result = []
    for o in offsets:
        if o == 0:
            result.append(key)
            continue
        i = taken.get(o, 0)
        taken[o] = i + 1
        result.append(out[o][i])
    return result
