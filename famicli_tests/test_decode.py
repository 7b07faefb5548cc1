"""Heatmap decoding: argmax, quarter-pixel refinement, the official edge and non-positive rules."""

from __future__ import annotations

import torch

from famicli.inference.decode import decode_heatmaps


def test_peak_and_quarter_offset():
    hm = torch.zeros(1, 3, 8, 10)
    hm[0, 0, 4, 5] = 1.0  # isolated peak: no refinement
    hm[0, 1, 3, 6], hm[0, 1, 3, 7], hm[0, 1, 2, 6] = 1.0, 0.5, 0.2  # right and up neighbours larger
    hm[0, 2, 0, 0] = -1.0
    hm[0, 2] -= 2.0  # all negative: official places the joint at (0, 0)
    coords, scores = decode_heatmaps(hm)
    assert coords[0, 0].tolist() == [5.0, 4.0]
    assert coords[0, 1].tolist() == [6.25, 2.75]
    assert coords[0, 2].tolist() == [0.0, 0.0]
    assert scores[0].tolist() == [1.0, 1.0, -2.0]


def test_no_refinement_at_the_border():
    hm = torch.zeros(1, 1, 8, 10)
    hm[0, 0, 1, 5], hm[0, 0, 1, 6] = 1.0, 0.5  # y == 1 is not strictly inside
    coords, _ = decode_heatmaps(hm)
    assert coords[0, 0].tolist() == [5.0, 1.0]
