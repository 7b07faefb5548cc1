"""Supporting-frame windows: the official padding at a video's ends, and clamping."""

from __future__ import annotations

import pytest

from famicli.data.windows import support_positions
from famicli.errors import ConfigError

# MODEL.md's examples for a 10-frame PoseTrack17 video, 1-indexed.
OFFICIAL_1_BASED = {
    1: [1, 1, 2, 3],
    2: [1, 2, 3, 4],
    3: [1, 2, 4, 5],
    5: [3, 4, 6, 7],
    9: [7, 8, 10, 10],
    10: [8, 9, 10, 10],
}


@pytest.mark.parametrize("key", sorted(OFFICIAL_1_BASED))
def test_official_padding_matches_the_release(key):
    got = [p + 1 for p in support_positions(key - 1, 10)]
    assert got == OFFICIAL_1_BASED[key]


def test_official_padding_is_the_default_and_zero_based_for_posetrack18():
    assert support_positions(0, 10) == [0, 0, 1, 2]
    assert support_positions(9, 10) == [7, 8, 9, 9]
    assert support_positions(4, 10, (-2, -1, 1, 2), "official") == [2, 3, 5, 6]


def test_clamp_padding():
    assert [p + 1 for p in support_positions(0, 10, padding="clamp")] == [1, 1, 2, 3]
    assert [p + 1 for p in support_positions(1, 10, padding="clamp")] == [1, 1, 3, 4]
    assert [p + 1 for p in support_positions(8, 10, padding="clamp")] == [7, 8, 10, 10]
    assert [p + 1 for p in support_positions(9, 10, padding="clamp")] == [8, 9, 10, 10]


def test_other_offsets_follow_the_same_rule_and_stay_inside():
    # previous side: existing frames first, key frame after; next side: nearest existing next frame
    assert support_positions(2, 10, (-4, -2, 2, 4)) == [0, 2, 4, 6]
    assert support_positions(8, 10, (-4, -2, 2, 4)) == [4, 6, 8, 8]
    assert support_positions(7, 10, (-4, -2, 2, 4)) == [3, 5, 9, 9]
    assert support_positions(3, 5, (-1, 0, 1)) == [2, 3, 4]
    for n in (1, 2, 3, 7):
        for key in range(n):
            for padding in ("official", "clamp"):
                got = support_positions(key, n, (-3, -2, -1, 1, 2, 3), padding)
                assert all(0 <= p < n for p in got)


def test_single_frame_video_repeats_the_key_frame():
    assert support_positions(0, 1) == [0, 0, 0, 0]


def test_bad_padding_and_key_are_config_errors():
    with pytest.raises(ConfigError, match=r"^unknown window padding 'wrap'; choose from: official, clamp$"):
        support_positions(0, 10, padding="wrap")
    with pytest.raises(ConfigError, match=r"^key frame 10 is outside a video of 10 frames$"):
        support_positions(10, 10)
