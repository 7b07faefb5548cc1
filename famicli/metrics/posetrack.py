"""The official PoseTrack metrics (poseval): per-joint AP, precision, recall and MOTA/MOTP.

Rules and quirks follow ``docs/evaluation.md`` (and ``shared/design/METRICS.md``) one by one;
every frame of every sequence is handled at once with numpy instead of frame by frame:

* cleaning: GT frames without persons are dropped with their prediction frames; keypoints
  inside ignore regions are removed and persons left without keypoints dropped (only in
  frames that have ignore regions, as poseval does);
* matching: head-normalized distances of all (prediction, GT) pairs of all frames, PCKh per
  pair, best GT per prediction, then best prediction per GT (ties: lowest index);
* AP: one (score, label) sample per predicted joint, sorted as poseval sorts them, VOC AP;
* MOT: one accumulator per (sequence, joint) fed with the matched distances (d <= 0.5), the
  last frame of each sequence left out, frames with GT but no prediction (or the reverse) fed
  as one miss and one false positive; counts from :mod:`famicli.metrics.tracking`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from famicli.formats.posetrack import JOINT_COLUMNS, Sequence
from famicli.metrics.tracking import TrackerInput, accumulate, accumulate_motmetrics

N_JOINTS = 15
DIST_THRESH = 0.5
# table columns -> poseval joint indices (Head = head_top, neck, nose)
GROUPS = {
    "Head": [14, 12, 13],
    "Shou": [8, 9],
    "Elb": [7, 10],
    "Wri": [6, 11],
    "Hip": [2, 3],
    "Knee": [1, 4],
    "Ankl": [0, 5],
}


@dataclass
class Persons:
    """Persons of the scored frames, all sequences, sorted by global frame (file order within)."""

    frame: np.ndarray  # (N,) global frame index
    track: np.ndarray  # (N,) track id
    xy: np.ndarray  # (N, 15, 2) joint coordinates, poseval order
    present: np.ndarray  # (N, 15) bool
    score: np.ndarray  # (N, 15) keypoint scores (predictions)
    head: np.ndarray  # (N,) head size (GT)

    def take(self, keep: np.ndarray) -> Persons:
        return Persons(*(a[keep] for a in (self.frame, self.track, self.xy, self.present, self.score, self.head)))


@dataclass
class Frames:
    """The scored frames: GT frames with at least one annotated person, in sequence order."""

    seq: np.ndarray  # (F,) sequence index
    pos: np.ndarray  # (F,) position among the scored frames of its sequence
    gt: Persons
    pred: Persons

    @property
    def n(self) -> int:
        return len(self.seq)


def _persons(seq: Sequence, lut: np.ndarray, offset: int) -> Persons:
    g = lut[seq.frame]
    keep = g >= 0
    cols = JOINT_COLUMNS
    box = seq.head[keep]
    head = 0.6 * np.sqrt((box[:, 2] - box[:, 0]) ** 2 + (box[:, 3] - box[:, 1]) ** 2)
    return Persons(
        g[keep] + offset,
        seq.track[keep],
        seq.kp[keep][:, cols, :2],
        seq.present[keep][:, cols],
        seq.scores[keep][:, cols],
        head,
    )


def _concat(parts: list[Persons]) -> Persons:
    return Persons(
        *(np.concatenate([getattr(p, k) for p in parts]) for k in ("frame", "track", "xy", "present", "score", "head"))
    )


def scored_frames(gt: Sequence) -> np.ndarray:
    """Frames poseval scores: those listing at least one GT person."""
    return np.flatnonzero(gt.n_rects > 0)


def build_frames(gts: list[Sequence], preds: list[Sequence]) -> Frames:
    """Clean and stack all sequences (cleaning rules 1-4)."""
    seq_ids, pos, gparts, pparts = [], [], [], []
    offset = 0
    ignore: dict[int, list[np.ndarray]] = {}
    for s, (gt, pr) in enumerate(zip(gts, preds)):
        kept = scored_frames(gt)
        lut = np.full(gt.n_frames, -1)
        lut[kept] = np.arange(len(kept))
        seq_ids.append(np.full(len(kept), s))
        pos.append(np.arange(len(kept)))
        gparts.append(_persons(gt, lut, offset))
        pparts.append(_persons(pr, lut, offset))
        for f, polys in gt.ignore.items():
            if lut[f] >= 0:
                ignore[int(lut[f]) + offset] = polys
        offset += len(kept)
    frames = Frames(np.concatenate(seq_ids), np.concatenate(pos), _concat(gparts), _concat(pparts))
    if ignore:
        frames.gt = _apply_ignore(frames.gt, ignore)
        frames.pred = _apply_ignore(frames.pred, ignore)
    return frames


def _apply_ignore(p: Persons, ignore: dict[int, list[np.ndarray]]) -> Persons:
    """Remove keypoints strictly inside ignore polygons; drop persons left without any."""
    import shapely

    keep = np.ones(len(p.frame), dtype=bool)
    for f, polys in ignore.items():
        rows = np.arange(*np.searchsorted(p.frame, [f, f + 1]))  # persons are sorted by frame
        if not len(rows):
            continue
        inside = np.zeros((len(rows), N_JOINTS), dtype=bool)
        x, y = p.xy[rows, :, 0], p.xy[rows, :, 1]
        for poly in polys:
            inside |= shapely.contains_xy(shapely.Polygon(poly), x, y)
        p.present[rows] &= ~inside
        keep[rows] = p.present[rows].any(1)
    return p.take(keep)


@dataclass
class Matching:
    """All (prediction, GT) pairs of the frames that have both, with poseval's assignment."""

    pair_pred: np.ndarray  # (P,) prediction row
    pair_gt: np.ndarray  # (P,) GT row
    dist: np.ndarray  # (P, 15) normalized distance (inf where a joint is missing on either side)
    match: np.ndarray  # (P, 15) bool: dist <= 0.5
    label: np.ndarray  # (Npred, 15) bool: the joint matches the prediction's assigned GT


def _offsets(frame: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    start = np.searchsorted(frame, np.arange(n))
    count = np.bincount(frame, minlength=n)
    return start, count


PAIR_BLOCK = 1 << 15  # (prediction, GT) pairs matched at once: the temporaries stay in the CPU caches


def match_frames(fr: Frames) -> Matching:
    """poseval's ``assignGTmulti`` for all frames at once (in blocks of whole frames)."""
    gt, pr = fr.gt, fr.pred
    g_start, g_cnt = _offsets(gt.frame, fr.n)
    p_start, p_cnt = _offsets(pr.frame, fr.n)
    sizes = g_cnt * p_cnt
    ends = np.cumsum(sizes)
    n_pairs = int(ends[-1]) if fr.n else 0
    m = Matching(
        np.empty(n_pairs, dtype=np.intp),  # filled block by block
        np.empty(n_pairs, dtype=np.intp),
        np.empty((n_pairs, N_JOINTS)),
        np.empty((n_pairs, N_JOINTS), dtype=bool),
        np.zeros(pr.present.shape, dtype=bool),
    )
    n_gt_joints = gt.present.sum(1)  # (N,) joints of each GT person
    f0 = 0
    while f0 < fr.n:
        # whole frames up to PAIR_BLOCK pairs (at least one frame)
        f1 = min(fr.n, max(f0 + 1, int(np.searchsorted(ends, (ends[f0 - 1] if f0 else 0) + PAIR_BLOCK, "right"))))
        _match_block(fr, f0, f1, g_start, g_cnt, p_start, sizes, n_gt_joints, m, int(ends[f0 - 1]) if f0 else 0)
        f0 = f1
    return m


def _match_block(fr: Frames, f0: int, f1: int, g_start, g_cnt, p_start, sizes, n_gt_joints, m: Matching, at: int):
    """The pairs of frames f0..f1-1, written into ``m`` from pair ``at`` on (and their ``label`` rows)."""
    gt, pr = fr.gt, fr.pred
    block = sizes[f0:f1]
    f = np.repeat(np.arange(f0, f1), block)
    k = np.arange(len(f)) - np.repeat(np.cumsum(block) - block, block)
    pg = g_cnt[f]
    p_row = p_start[f] + k // np.maximum(pg, 1)  # pairs ordered by (frame, prediction, GT)
    g_row = g_start[f] + k % np.maximum(pg, 1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # 1e300 px: inf, no match, as poseval
        diff = pr.xy[p_row] - gt.xy[g_row]
        dist = np.sqrt(diff[..., 0] ** 2 + diff[..., 1] ** 2) / gt.head[g_row, None]
    both = pr.present[p_row] & gt.present[g_row]
    dist = np.where(both, dist, np.inf)
    match = dist <= DIST_THRESH
    n_joints = n_gt_joints[g_row]
    pck = match.sum(1).astype(float)
    pck = np.where(n_joints > 0, pck / np.maximum(n_joints, 1), pck)
    if len(f):
        # each prediction keeps its best GT (first maximum) ...
        seg = np.flatnonzero(np.r_[True, p_row[1:] != p_row[:-1]])
        best = _first_max(pck, seg)
        keep = np.zeros(len(f), dtype=bool)
        keep[best] = True
        pck2 = np.where(keep, pck, 0.0)
        # ... then each GT takes the prediction with the highest remaining value
        by_gt = np.lexsort((p_row, g_row))
        seg_g = np.flatnonzero(np.r_[True, g_row[by_gt][1:] != g_row[by_gt][:-1]])
        win = by_gt[_first_max(pck2[by_gt], seg_g)]
        win = win[pck2[win] > 0]
        m.label[p_row[win]] = match[win]
    sl = slice(at, at + len(f))
    m.pair_pred[sl], m.pair_gt[sl], m.dist[sl], m.match[sl] = p_row, g_row, dist, match


def _first_max(values: np.ndarray, seg_starts: np.ndarray) -> np.ndarray:
    """Index of the first maximum of each contiguous segment."""
    seg_max = np.maximum.reduceat(values, seg_starts)
    seg_id = np.repeat(np.arange(len(seg_starts)), np.diff(np.r_[seg_starts, len(values)]))
    is_max = values == seg_max[seg_id]
    idx = np.where(is_max, np.arange(len(values)), len(values))
    return np.minimum.reduceat(idx, seg_starts)


def average_precision(fr: Frames, m: Matching, pred_mask=None, gt_mask=None) -> dict:
    """Per-joint AP, precision and recall (+ the mean over joints as the 16th value), in %."""
    pr, gt = fr.pred, fr.gt
    present = pr.present if pred_mask is None else pr.present & pred_mask[:, None]
    gt_present = gt.present if gt_mask is None else gt.present & gt_mask[:, None]
    ap, pre, rec = np.zeros(N_JOINTS + 1), np.zeros(N_JOINTS + 1), np.zeros(N_JOINTS + 1)
    for j in range(N_JOINTS):
        rows = np.flatnonzero(present[:, j])
        if not len(rows):
            continue
        scores = pr.score[rows, j]
        labels = m.label[rows, j]
        n_pos = float(gt_present[:, j].sum())
        order = np.asarray(scores).argsort()[::-1]  # poseval's sort, ties included
        tp = np.cumsum(labels[order])
        with np.errstate(divide="ignore", invalid="ignore"):
            recall = tp / n_pos
        precision = tp / np.arange(1, len(order) + 1)
        ap[j] = _voc_ap(recall, precision) * 100
        pre[j] = precision[-1] * 100
        rec[j] = recall[-1] * 100
    for a in (ap, pre, rec):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all NaN -> NaN
            a[N_JOINTS] = np.nanmean(a[:N_JOINTS])
    return {"ap": ap, "precision": pre, "recall": rec}


def order_sensitive_ties(fr: Frames, m: Matching) -> int:
    """Groups of equal scores (per joint) that mix labels and sequences: where AP depends on
    the order of the sequences, as it does in poseval."""
    pr = fr.pred
    n = 0
    for j in range(N_JOINTS):
        rows = np.flatnonzero(pr.present[:, j])
        if len(rows) < 2:
            continue
        o = np.argsort(pr.score[rows, j], kind="stable")
        s, lab, seq = pr.score[rows[o], j], m.label[rows[o], j], fr.seq[pr.frame[rows[o]]]
        start = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        mixed = (np.maximum.reduceat(lab, start) != np.minimum.reduceat(lab, start)) & (
            np.maximum.reduceat(seq, start) != np.minimum.reduceat(seq, start)
        )
        n += int(mixed.sum())
    return n


def _voc_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    """VOC AP: precision envelope integrated over the all-points recall steps."""
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[i] - mrec[i - 1]) * mpre[i]))


def tracker_input(fr: Frames, m: Matching, n_seqs: int) -> TrackerInput:
    """One accumulator per (sequence, joint): chain = seq * 15 + joint, steps = scored frames
    of the sequence except its last, in order."""
    last = np.r_[fr.seq[1:] != fr.seq[:-1], True][: fr.n]
    fed = ~last
    n_fed = np.bincount(fr.seq[fed], minlength=n_seqs)
    base = np.r_[0, np.cumsum(N_JOINTS * n_fed)[:-1]]
    n_steps = int(N_JOINTS * n_fed.sum())
    j = np.arange(N_JOINTS)

    def step_of(frame, joint):
        s = fr.seq[frame]
        return base[s] + joint * n_fed[s] + fr.pos[frame]

    lengths = np.repeat(n_fed, N_JOINTS)  # steps per chain
    step_chain = np.repeat(np.arange(n_seqs * N_JOINTS), lengths)
    step_t = np.arange(n_steps) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    g_cnt = np.bincount(fr.gt.frame, minlength=fr.n)
    p_cnt = np.bincount(fr.pred.frame, minlength=fr.n)
    quirk = fed & ((g_cnt == 0) | (p_cnt == 0))
    normal = fed & ~quirk
    qf = np.flatnonzero(quirk)
    q_steps = step_of(np.repeat(qf, N_JOINTS), np.tile(j, len(qf)))

    def members(p: Persons):
        """(step, id, row) of every present joint of every person in a normal frame."""
        ok = p.present & normal[p.frame][:, None]
        # row = rank among the persons of the frame that have this joint
        start = np.searchsorted(p.frame, p.frame)
        cum = np.cumsum(p.present, axis=0) - p.present
        rank = cum - cum[start]
        rr, jj = np.nonzero(ok)
        return step_of(p.frame[rr], jj), p.track[rr], rank[rr, jj], rank

    o_step, o_id, o_row, g_rank = members(fr.gt)
    h_step, h_id, h_col, p_rank = members(fr.pred)
    o_step, o_id, o_row = _sorted(
        np.r_[o_step, q_steps], np.r_[o_id, np.zeros(len(q_steps), int)], np.r_[o_row, np.zeros(len(q_steps), int)]
    )
    h_step, h_id, h_col = _sorted(
        np.r_[h_step, q_steps], np.r_[h_id, np.zeros(len(q_steps), int)], np.r_[h_col, np.zeros(len(q_steps), int)]
    )
    pair_frame = fr.gt.frame[m.pair_gt]
    pp, jj = np.nonzero(m.match & fed[pair_frame][:, None])
    pg, ppred = m.pair_gt[pp], m.pair_pred[pp]
    pstep = step_of(pair_frame[pp], jj)
    prow, pcol = g_rank[pg, jj], p_rank[ppred, jj]
    key = (pstep * (prow.max(initial=0) + 1) + prow) * (pcol.max(initial=0) + 1) + pcol
    o = np.argsort(key)
    return TrackerInput(
        n_seqs * N_JOINTS,
        step_chain,
        step_t,
        o_step,
        o_id.astype(np.int64),
        h_step,
        h_id.astype(np.int64),
        pstep[o],
        prow[o],
        pcol[o],
        m.dist[pp, jj][o],
    )


def _sorted(step, ids, row):
    """The three arrays in (step, row) order."""
    o = np.argsort(step * (int(row.max(initial=0)) + 1) + row, kind="stable")  # = np.lexsort((row, step))
    return step[o], ids[o], row[o]


def mot_metrics(counts: dict[str, np.ndarray], per_sequence: bool = False) -> dict:
    """MOTA, MOTP, precision, recall per joint (+ mean) from per-(seq, joint) counts, in %."""
    c = {k: v.reshape(-1, N_JOINTS).astype(float) for k, v in counts.items()}
    if not per_sequence:
        c = {k: v.sum(0, keepdims=True) for k, v in c.items()}
    obj = np.where(c["num_objects"] > 0, c["num_objects"], np.nan)
    fp, det, s = c["num_false_positives"], c["num_detections"], c["sum_d"]
    with np.errstate(divide="ignore", invalid="ignore"):
        mota = 100 * (1.0 - (c["num_misses"] + c["num_switches"] + fp) / obj)
        motp = np.where(det == 0, 0.0, 100 * (1.0 - s / np.where(det == 0, 1, det)))
        total = np.where(fp + det > 0, fp + det, np.nan)
        pre = 100 * det / total
        rec = 100 * det / obj
    out = {}
    for name, v in (("mota", mota), ("motp", motp), ("precision", pre), ("recall", rec)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN
            mean = np.nanmean(v, axis=1, keepdims=True)
        out[name] = np.concatenate([v, mean], axis=1)
    return {k: (v if per_sequence else v[0]) for k, v in out.items()}


def track_counts(fr: Frames, m: Matching, n_seqs: int, tracker: str = "famipose") -> dict:
    """Per-(sequence, joint) accumulator counts with the chosen tracker implementation."""
    inp = tracker_input(fr, m, n_seqs)
    if tracker == "motmetrics":
        return accumulate_motmetrics(inp)
    return accumulate(inp)


def table(values: np.ndarray) -> dict[str, float]:
    """poseval's table row: group means (Head, Shou, ..., Ankl) and the 16th value (Total)."""
    row = {k: float(np.mean(values[idx])) for k, idx in GROUPS.items()}
    row["Total"] = float(values[N_JOINTS])
    return row
