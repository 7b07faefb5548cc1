"""CLEAR-MOT counts exactly as ``motmetrics.MOTAccumulator`` (1.4.0) produces them, but fast.

poseval feeds one accumulator per (sequence, joint) frame by frame and reads back, per
accumulator: misses, switches, false positives, objects, detections (matches + switches) and
``events['D'].sum()``. That last sum runs over *every* event row, so it also counts the RAW rows
(every finite distance offered) and the TRANSFER / ASCEND / MIGRATE rows, not only the matches.

:func:`accumulate` reproduces those numbers for many independent accumulators ("chains") at
once: all chains advance one frame per numpy step. Per frame it does what ``update`` does:

1. an object keeps the hypothesis it was last paired with if that one is present at a finite
   distance (objects in order; a hypothesis goes to the first object claiming it);
2. the rest is solved as a linear sum assignment with NaN = cannot pair. Where the remaining
   finite pairs already form a matching, that matching is the solution (any optimal assignment
   of motmetrics' expensive-edge problem contains all of them); otherwise the exact motmetrics
   problem (same matrix, same expensive edges) goes to scipy, motmetrics' solver here;
3. a new pairing of an object paired before with another hypothesis is a SWITCH.

:func:`accumulate_motmetrics` feeds the same input to motmetrics itself; the tests check both
agree on the reference cases and on random sequences.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COUNTS = ("num_misses", "num_switches", "num_false_positives", "num_objects", "num_detections", "sum_d")


@dataclass
class TrackerInput:
    """Frames of many accumulators, flattened. Steps are sorted by (chain, t).

    A step is one ``update`` call: chain ``step_chain[s]``, frame position ``step_t[s]``.
    Objects/hypotheses are listed in update order (row/col = position in that step's list);
    pairs are the finite entries of the distance matrix (everything else is NaN).
    """

    n_chains: int
    step_chain: np.ndarray  # (S,) int
    step_t: np.ndarray  # (S,) int
    obj_step: np.ndarray  # (No,) int, sorted; rows 0..n-1 within a step
    obj_id: np.ndarray  # (No,) int64
    hyp_step: np.ndarray  # (Nh,) int, sorted
    hyp_id: np.ndarray  # (Nh,) int64
    pair_step: np.ndarray  # (Np,) int, sorted by step then row then col
    pair_row: np.ndarray  # (Np,) int
    pair_col: np.ndarray  # (Np,) int
    pair_d: np.ndarray  # (Np,) float, finite

    @classmethod
    def from_updates(cls, chains: list[list[tuple]]) -> TrackerInput:
        """Build from plain ``update`` arguments: ``chains[c] = [(oids, hids, dists), ...]``."""
        cols: dict[str, list] = {k: [] for k in ("sc", "st", "os", "oi", "hs", "hi", "ps", "pr", "pc", "pd")}
        s = 0
        for c, frames in enumerate(chains):
            for t, (oids, hids, dists) in enumerate(frames):
                d = np.asarray(dists, dtype=float).reshape(len(oids), len(hids))
                r, k = np.nonzero(np.isfinite(d))
                for key, values in (
                    ("sc", [c]),
                    ("st", [t]),
                    ("os", [s] * len(oids)),
                    ("oi", oids),
                    ("hs", [s] * len(hids)),
                    ("hi", hids),
                    ("ps", [s] * len(r)),
                    ("pr", r),
                    ("pc", k),
                    ("pd", d[r, k]),
                ):
                    cols[key].extend(values)
                s += 1
        a = {
            k: np.asarray(v, dtype=float if k == "pd" else np.int64 if k in ("oi", "hi") else np.intp)
            for k, v in cols.items()
        }
        return cls(
            len(chains), a["sc"], a["st"], a["os"], a["oi"], a["hs"], a["hi"], a["ps"], a["pr"], a["pc"], a["pd"]
        )


def _starts(sorted_keys: np.ndarray, n: int) -> np.ndarray:
    """Offsets of each key 0..n-1 in a sorted key array (length n + 1)."""
    return np.searchsorted(sorted_keys, np.arange(n + 1))


def _slots(chain: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense index of each (chain, id) pair."""
    if len(ids) == 0:
        return np.zeros(0, dtype=np.intp), 0
    lo, span = int(ids.min()), int(ids.max()) - int(ids.min()) + 1
    if span * (int(chain.max()) + 1) < 2**62:
        key = chain.astype(np.int64) * span + (ids - lo)
        _, inv = np.unique(key, return_inverse=True)
    else:  # huge ids: compare rows instead
        _, inv = np.unique(np.stack([chain, ids], 1), axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    return inv, int(inv.max()) + 1


def expensive_edges(costs: np.ndarray) -> np.ndarray:
    """motmetrics' ``add_expensive_edges``: NaN/inf become a cost no optimum would choose."""
    valid = np.isfinite(costs)
    if valid.all():
        return costs.copy()
    if not valid.any():
        return np.zeros_like(costs)
    c = np.abs(costs[valid]).max() + 1
    return np.where(valid, costs, 2 * min(costs.shape) * c + 1)


def _solve(n_rows: int, n_cols: int, rows, cols, d) -> list[tuple[int, int]]:
    """motmetrics' scipy solver on an n_rows × n_cols matrix with the given finite entries."""
    from scipy.optimize import linear_sum_assignment

    costs = np.full((n_rows, n_cols), np.nan)
    costs[rows, cols] = d
    r, c = linear_sum_assignment(expensive_edges(costs))
    return [(i, j) for i, j in zip(r, c) if np.isfinite(costs[i, j])]


def accumulate(inp: TrackerInput) -> dict[str, np.ndarray]:
    """Counts per chain, as motmetrics computes them; each value is an (n_chains,) array."""
    n = inp.n_chains
    chain_of = inp.step_chain
    objects = np.bincount(chain_of[inp.obj_step], minlength=n)
    hyps = np.bincount(chain_of[inp.hyp_step], minlength=n)
    pchain = chain_of[inp.pair_step]
    sum_d = np.bincount(pchain, weights=inp.pair_d, minlength=n)  # RAW rows
    det = np.zeros(n, dtype=np.int64)
    switches = np.zeros(n, dtype=np.int64)
    if len(inp.pair_step):
        # ids of each pair's object and hypothesis, as dense per-chain slots
        obj_start = _starts(inp.obj_step, len(chain_of))
        hyp_start = _starts(inp.hyp_step, len(chain_of))
        o_id = inp.obj_id[obj_start[inp.pair_step] + inp.pair_row]
        h_id = inp.hyp_id[hyp_start[inp.pair_step] + inp.pair_col]
        o_all, n_o = _slots(pchain, o_id)
        h_all, n_h = _slots(pchain, h_id)
        m = np.full(n_o, -1)  # object -> hypothesis it is paired with (motmetrics' m)
        res = np.full(n_h, -1)  # hypothesis -> object last paired in step 2 (res_m)
        matched_o = np.zeros(n_o, dtype=bool)  # last_match keys
        matched_h = np.zeros(n_h, dtype=bool)  # hypHistory keys
        row_t = np.full(n_o, -1)
        col_t = np.full(n_h, -1)
        t_of = inp.step_t[inp.pair_step]
        order = np.argsort(t_of, kind="stable")  # frame by frame, all chains at once
        bounds = _starts(t_of[order], int(t_of.max()) + 1 if len(t_of) else 0)
        for t in range(len(bounds) - 1):
            idx = order[bounds[t] : bounds[t + 1]]
            o, h, d = o_all[idx], h_all[idx], inp.pair_d[idx]
            # 1. keep previous pairings still possible; first object (lowest row) wins
            cand = np.flatnonzero(m[o] == h)
            if len(cand):
                _, first = np.unique(h[cand], return_index=True)
                keep = cand[first]
                row_t[o[keep]] = t
                col_t[h[keep]] = t
                matched_o[o[keep]] = True
                matched_h[h[keep]] = True
                np.add.at(det, pchain[idx[keep]], 1)
                np.add.at(sum_d, pchain[idx[keep]], d[keep])
            # 2. assignment on what is left
            rest = np.flatnonzero((row_t[o] != t) & (col_t[h] != t))
            if not len(rest):
                continue
            chosen = _assign(inp, idx, rest, o, h, obj_start, hyp_start)
            o2, h2, d2, c2 = o[chosen], h[chosen], d[chosen], pchain[idx[chosen]]
            prev = m[o2]
            switch = (prev >= 0) & (prev != h2)
            ascend = switch & ~matched_h[h2]
            transfer = (res[h2] >= 0) & (res[h2] != o2)
            migrate = transfer & ~matched_o[o2]
            extra = 1 + ascend + transfer + migrate  # event rows carrying this distance
            np.add.at(det, c2, 1)
            np.add.at(switches, c2, switch.astype(np.int64))
            np.add.at(sum_d, c2, d2 * extra)
            m[o2] = h2
            res[h2] = o2
            matched_o[o2] = True
            matched_h[h2] = True
    return {
        "num_misses": objects - det,
        "num_switches": switches,
        "num_false_positives": hyps - det,
        "num_objects": objects,
        "num_detections": det,
        "sum_d": sum_d,
    }


def _assign(inp: TrackerInput, idx, rest, o, h, obj_start, hyp_start) -> np.ndarray:
    """Pairs chosen by the assignment step among the remaining pairs ``rest`` of this frame."""
    ro, rh = o[rest], h[rest]
    multi = _repeated(ro) | _repeated(rh)
    if not multi.any():
        return rest  # the finite pairs already form a matching: all are chosen
    steps = inp.pair_step[idx[rest]]
    hard = np.isin(steps, np.unique(steps[multi]))
    chosen = [rest[~hard]]
    for s in np.unique(steps[hard]):
        sel = rest[steps == s]
        rows, cols = inp.pair_row[idx[sel]], inp.pair_col[idx[sel]]
        n_rows = int(obj_start[s + 1] - obj_start[s])
        n_cols = int(hyp_start[s + 1] - hyp_start[s])
        pick = _solve(n_rows, n_cols, rows, cols, inp.pair_d[idx[sel]])
        where = {(int(r), int(c)): k for k, r, c in zip(sel, rows, cols)}
        chosen.append(np.array([where[p] for p in pick], dtype=np.intp))
    return np.concatenate(chosen)


def _repeated(x: np.ndarray) -> np.ndarray:
    """True where the value occurs more than once in ``x``."""
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    return counts[inv.reshape(-1)] > 1


def accumulate_motmetrics(inp: TrackerInput) -> dict[str, np.ndarray]:
    """The same counts from ``motmetrics.MOTAccumulator`` itself (slow; for checking)."""
    import motmetrics as mm

    names = ["num_misses", "num_switches", "num_false_positives", "num_objects", "num_detections"]
    out = {k: np.zeros(inp.n_chains, dtype=np.int64) for k in names}
    out["sum_d"] = np.zeros(inp.n_chains)
    obj_start = _starts(inp.obj_step, len(inp.step_chain))
    hyp_start = _starts(inp.hyp_step, len(inp.step_chain))
    pair_start = _starts(inp.pair_step, len(inp.step_chain))
    mh = mm.metrics.create()
    chain_start = _starts(inp.step_chain, inp.n_chains)
    for c in range(inp.n_chains):
        acc = mm.MOTAccumulator(auto_id=True)
        for s in range(chain_start[c], chain_start[c + 1]):
            oids = inp.obj_id[obj_start[s] : obj_start[s + 1]]
            hids = inp.hyp_id[hyp_start[s] : hyp_start[s + 1]]
            dist = np.full((len(oids), len(hids)), np.nan)
            p = slice(pair_start[s], pair_start[s + 1])
            dist[inp.pair_row[p], inp.pair_col[p]] = inp.pair_d[p]
            acc.update(oids.tolist(), hids.tolist(), dist)
        if chain_start[c + 1] == chain_start[c]:
            continue
        summary = mh.compute(acc, metrics=names, return_dataframe=False, name="acc")
        for k in names:
            out[k][c] = summary[k]
        s = acc.events["D"].sum()
        out["sum_d"][c] = 0.0 if np.isnan(s) else s
    return out
