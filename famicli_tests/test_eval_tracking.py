"""famipose's vectorized MOT accumulators give motmetrics' (1.4.0) counts exactly."""

from __future__ import annotations

import numpy as np
import pytest

from famicli.formats.validate import Issues
from famicli.metrics import posetrack as pt
from famicli.metrics.scoring import load_posetrack
from famicli.metrics.tracking import (
    COUNTS,
    TrackerInput,
    accumulate,
    accumulate_motmetrics,
    expensive_edges,
)
from famicli_tests.conftest import shared_path

NAN = np.nan


def assert_same_counts(inp: TrackerInput) -> None:
    fast, ref = accumulate(inp), accumulate_motmetrics(inp)
    for key in COUNTS:
        if key == "sum_d":
            np.testing.assert_allclose(fast[key], ref[key], rtol=1e-12, atol=1e-12)
        else:
            np.testing.assert_array_equal(fast[key], ref[key], err_msg=key)


def random_chain(rng: np.random.Generator, n_frames: int) -> list[tuple]:
    """Objects and hypotheses that come and go, swap, tie and conflict."""
    n_obj, n_hyp = int(rng.integers(1, 7)), int(rng.integers(1, 9))
    level = rng.choice([0.1, 0.3, 0.5, 0.8])  # how often a pair may match
    frames = []
    for _ in range(n_frames):
        if rng.random() < 0.05:  # poseval's "GT but no prediction" frame
            frames.append(([0], [0], [[NAN]]))
            continue
        oids = rng.permutation(n_obj)[: rng.integers(0, n_obj + 1)]
        hids = rng.permutation(n_hyp)[: rng.integers(0, n_hyp + 1)] + 100
        if rng.random() < 0.5:  # ties: distances from a few values only
            d = rng.choice([0.1, 0.25, 0.4], size=(len(oids), len(hids)))
        else:
            d = rng.uniform(0, 0.5, size=(len(oids), len(hids)))
        d[rng.random(d.shape) > level] = NAN
        frames.append((oids.tolist(), hids.tolist(), d))
    return frames


@pytest.mark.parametrize("seed", range(6))
def test_random_sequences_match_motmetrics(seed):
    rng = np.random.default_rng(seed)
    chains = [random_chain(rng, int(rng.integers(1, 25))) for _ in range(40)]
    assert_same_counts(TrackerInput.from_updates(chains))


def test_hand_made_events():
    chains = [
        # keep a pairing; then a swap (2 switches + transfers); then an id comes back
        [
            ([1, 2], [10, 20], [[0.1, NAN], [NAN, 0.2]]),
            ([1, 2], [10, 20], [[NAN, 0.1], [0.3, NAN]]),
            ([1], [], np.zeros((1, 0))),
            ([1, 2], [10, 20], [[0.2, 0.2], [0.2, 0.2]]),
        ],
        # two objects claim the hypothesis they were both paired with (first one wins)
        [([1], [10], [[0.1]]), ([2], [10], [[0.1]]), ([1, 2], [10], [[0.2], [0.1]])],
        # a conflict needing the assignment solver: 3 × 3 with ties
        [
            ([1, 2, 3], [10, 20, 30], [[0.1, 0.1, NAN], [0.1, 0.1, 0.1], [NAN, 0.1, 0.1]]),
            ([1, 2, 3], [10, 20, 30], [[0.1, 0.1, 0.1], [0.1, 0.1, 0.1], [0.1, 0.1, 0.1]]),
        ],
        [],  # an accumulator that is never fed
    ]
    assert_same_counts(TrackerInput.from_updates(chains))


def test_known_counts():
    # frame 1: 1-10, 2-20; frame 2: swapped -> 2 switches, 2 transfers
    inp = TrackerInput.from_updates(
        [[([1, 2], [10, 20], [[0.1, NAN], [NAN, 0.2]]), ([1, 2], [10, 20], [[NAN, 0.1], [0.3, NAN]])]]
    )
    c = accumulate(inp)
    assert (c["num_objects"][0], c["num_detections"][0], c["num_switches"][0]) == (4, 4, 2)
    assert c["num_misses"][0] == c["num_false_positives"][0] == 0
    # D sums RAW rows (0.3 + 0.4), matches (0.3) and switch + transfer rows (2 × 0.4)
    assert c["sum_d"][0] == pytest.approx(1.8)


def test_expensive_edges_like_motmetrics():
    from motmetrics.lap import add_expensive_edges

    rng = np.random.default_rng(0)
    for _ in range(20):
        costs = rng.uniform(0, 1, (3, 4))
        costs[rng.random(costs.shape) < 0.4] = NAN
        np.testing.assert_array_equal(expensive_edges(costs), add_expensive_edges(costs))


CASES = ["basic", "noisy", "ignore_regions", "track_swaps", "sparse_labels"]


@pytest.mark.parametrize("case", CASES)
def test_reference_cases_same_counts_per_sequence_and_joint(case):
    folder = shared_path("poseval_reference", case)
    gts, preds = load_posetrack(folder / "gt", folder / "pred", Issues())
    frames = pt.build_frames(gts, preds)
    inp = pt.tracker_input(frames, pt.match_frames(frames), len(gts))
    assert_same_counts(inp)
