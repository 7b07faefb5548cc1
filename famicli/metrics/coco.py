"""COCO keypoint AP/AR (OKS) on PoseTrack18 files: pycocotools ``COCOeval`` semantics, in numpy.

PoseTrack has no official OKS sigmas; like mmpose, famipose uses COCO's 17 sigmas in the same
slots (PoseTrack's head_bottom and head_top sit where COCO has the eyes, and the ears are never
annotated in PoseTrack, so they never count). Conversion, stated once:

* images: the GT frames marked labeled (or holding persons), in all sequences;
* GT persons: keypoints with v = 2 where given (poseval's rule: not x == y == v == 0), else 0;
  area = bbox w × h (the keypoints' extent if there is no bbox); persons without keypoints are
  ignored by COCOeval; ignore regions are not used;
* predictions: matched to GT frames by position in the file; score = the person's ``score``, else
  the mean of its keypoint scores; absent keypoints are (0, 0).

:func:`coco_datasets` writes this conversion out as COCO dicts for pycocotools. :func:`oks_stats`
evaluates it straight from the :class:`Sequence` arrays, the way ``COCOeval(iouType="keypoints")``
does (``evaluate``, ``accumulate``, ``summarize`` with the default keypoint ``Params``): per image,
detections sorted by score (stable) and cut to 20; OKS over the GT's visible keypoints, or the
distance to its box doubled when it has none; greedy matching per area range and threshold; the
precision/recall accumulation over all images. Sums are taken in numpy's own (pairwise) order, so
the numbers equal pycocotools' bit for bit; the tests compare both on every shared case.

Values are reported in percent, like the PoseTrack tables.
"""

from __future__ import annotations

import itertools

import numpy as np

from famicli.formats.posetrack import MIN_SCORE, Sequence
from famicli.keypoints import JOINT_NAMES, OKS_SIGMAS

STATS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
# pycocotools ``Params(iouType="keypoints")``, built the same way
IOU_THRS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)  # (T,)
REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)  # (R,)
AREA_RANGES = {"all": (0**2, 1e5**2), "medium": (32**2, 96**2), "large": (96**2, 1e5**2)}
MAX_DETS = 20  # detections per image
_CHUNK = 1 << 13  # detection-GT pairs per OKS block (cache-sized)


def coco_datasets(gts: list[Sequence], preds: list[Sequence]) -> tuple[dict, list[dict]]:
    """The COCO-format GT dataset and result list that ``COCOeval`` would be run on."""
    images, anns, results = [], [], []
    image_id = 0
    for gt, pr in zip(gts, preds):
        ids = np.full(gt.n_frames, -1)
        for f in np.flatnonzero(gt.labeled):
            image_id += 1
            ids[f] = image_id
            images.append({"id": image_id, "file_name": gt.frame_names[f]})
        for r in np.flatnonzero(ids[gt.frame] >= 0):
            kp = _keypoints(gt, r, visible=2)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": int(ids[gt.frame[r]]),
                    "category_id": 1,
                    "keypoints": kp,
                    "num_keypoints": int(gt.present[r].sum()),
                    "iscrowd": 0,
                    "area": _area(gt, r),
                    "bbox": _bbox(gt, r),
                }
            )
        if pr.n_frames != gt.n_frames:
            continue
        for r in np.flatnonzero(ids[pr.frame] >= 0):
            results.append(
                {
                    "image_id": int(ids[pr.frame[r]]),
                    "category_id": 1,
                    "keypoints": _keypoints(pr, r, visible=1),
                    "score": _score(pr, r),
                }
            )
    dataset = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "person", "keypoints": list(JOINT_NAMES)}],
    }
    return dataset, results


def _keypoints(seq: Sequence, r: int, visible: int) -> list[float]:
    kp = np.zeros((17, 3))
    pres = seq.present[r]
    kp[pres, :2] = seq.kp[r, pres, :2]
    kp[pres, 2] = visible
    return kp.reshape(-1).tolist()


def _bbox(seq: Sequence, r: int) -> list[float]:
    if np.isfinite(seq.bbox[r]).all():
        return seq.bbox[r].tolist()
    pts = seq.kp[r, seq.present[r], :2]
    if not len(pts):
        return [0.0, 0.0, 0.0, 0.0]
    lo, hi = pts.min(0), pts.max(0)
    return [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])]


def _area(seq: Sequence, r: int) -> float:
    _, _, w, h = _bbox(seq, r)
    return float(w * h)


def _score(seq: Sequence, r: int) -> float:
    if np.isfinite(seq.person_score[r]):
        return float(seq.person_score[r])
    s = seq.scores[r, seq.present[r]]
    s = s[s != MIN_SCORE]
    return float(s.mean()) if len(s) else 0.0


def coco_keypoint_ap(gts: list[Sequence], preds: list[Sequence]) -> dict:
    """COCO keypoint AP/AR (``COCOeval(iouType="keypoints")`` stats) in percent, with the sigmas.

    Keys: :data:`STATS` (None where COCOeval has -1), ``sigmas``, ``note``, ``images``,
    ``gt_persons``, ``pred_persons``.
    """
    g, d, n_images = _persons(gts, preds)
    out: dict = {k: None for k in STATS}
    if len(g["image"]) and len(d["image"]):
        out = {k: (float(v) * 100 if v >= 0 else None) for k, v in zip(STATS, _evaluate(g, d))}
    out["sigmas"] = dict(zip(JOINT_NAMES, OKS_SIGMAS))
    out["note"] = (
        "pycocotools COCOeval (OKS) with COCO's 17 sigmas; PoseTrack ears are never annotated; values in percent"
    )
    out["images"] = n_images
    out["gt_persons"] = len(g["image"])
    out["pred_persons"] = len(d["image"])
    return out


def oks_stats(gts: list[Sequence], preds: list[Sequence]) -> np.ndarray:
    """The 10 ``COCOeval.stats`` of the keypoint evaluation (fractions, -1 where undefined).

    Returns:
        (10,) float64 in :data:`STATS` order; all -1 when there is no GT person or no prediction.
    """
    g, d, _ = _persons(gts, preds)
    if not (len(g["image"]) and len(d["image"])):
        return -np.ones(len(STATS))
    return _evaluate(g, d)


def _persons(gts: list[Sequence], preds: list[Sequence]) -> tuple[dict, dict, int]:
    """GT persons and predictions of the COCO conversion as flat arrays (G GT rows, D predictions).

    GT: ``image`` (G,), ``x``/``y`` (K, G) (0 where absent), ``present`` (K, G), ``box`` (4, G),
    ``area`` (G,), ``extent`` (4 x (G,): x0, x1, y0, y1 of the present keypoints). Predictions:
    ``image`` (D,), ``x``/``y`` (K, D), ``area`` (D,) (of all K points, as ``loadRes`` computes
    it), ``score`` (D,), ``extent``. Rows in COCO list order; K = 17.
    """
    g_parts, d_parts, n_images = [], [], 0
    for gt, pr in zip(gts, preds):
        ids = np.full(gt.n_frames, -1)
        lab = np.flatnonzero(gt.labeled)
        ids[lab] = n_images + np.arange(len(lab))
        n_images += len(lab)
        rows = np.flatnonzero(ids[gt.frame] >= 0)
        g_parts.append((ids[gt.frame[rows]], gt.kp[rows], gt.present[rows], gt.bbox[rows]))
        if pr.n_frames == gt.n_frames:
            rows = np.flatnonzero(ids[pr.frame] >= 0)
            d_parts.append((ids[pr.frame[rows]], pr.kp[rows], pr.present[rows], pr.scores[rows], pr.person_score[rows]))
    if not g_parts:
        return {"image": np.zeros(0, int)}, {"image": np.zeros(0, int)}, 0
    image, kp, present, bbox = (np.concatenate(p) for p in zip(*g_parts))
    x, y, present = _coordinates(kp, present)  # (K, G) each
    # bbox, else the extent of the given keypoints, else zeros (_bbox)
    x0, x1, y0, y1 = extent = _extent(x, y, present)
    box = np.where(present.any(0), np.stack([x0, y0, x1 - x0, y1 - y0]), 0.0)  # (4, G)
    box = np.where(np.isfinite(bbox).all(1), bbox.T, box)
    g = {"image": image, "x": x, "y": y, "present": present, "box": box, "area": box[2] * box[3], "extent": extent}
    if not d_parts:
        return g, {"image": np.zeros(0, int)}, n_images
    image, kp, present, scores, pscore = (np.concatenate(p) for p in zip(*d_parts))
    x, y, present = _coordinates(kp, present)  # (K, D) each
    score = pscore.copy()
    todo = np.flatnonzero(~np.isfinite(pscore))  # no person score: the mean of its keypoint scores
    given = present[:, todo] & (scores[todo].T != MIN_SCORE)  # (K, len(todo))
    n = given.sum(0)
    mean = _pairwise_sum(_gather(scores[todo].T, _compact_src(given)), n) / np.maximum(n, 1)
    score[todo] = np.where(n > 0, mean, 0.0)
    with np.errstate(over="ignore"):  # 1e300 px keypoints: an infinite area, as pycocotools' loadRes gets
        area = (x.max(0) - x.min(0)) * (y.max(0) - y.min(0))
    d = {
        "image": image,
        "x": x,
        "y": y,
        "area": area,
        "score": score,
        "extent": _extent(x, y, present),
    }
    return g, d, n_images


def _coordinates(kp: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, ...]:
    """(N, K, 3) keypoints, (N, K) presence -> x, y (0 where absent) and presence, (K, N) each."""
    present = np.ascontiguousarray(present.T)  # (N, K) -> (K, N)
    return np.where(present, kp[:, :, 0].T, 0.0), np.where(present, kp[:, :, 1].T, 0.0), present


def _extent(x: np.ndarray, y: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, ...]:
    """x0, x1, y0, y1 (N,) of the kept points of (K, N) x, y; inf/-inf where none is kept."""
    return (
        np.where(keep, x, np.inf).min(0),
        np.where(keep, x, -np.inf).max(0),
        np.where(keep, y, np.inf).min(0),
        np.where(keep, y, -np.inf).max(0),
    )


def _compact_src(keep: np.ndarray) -> np.ndarray:
    """(K, P) row of ``keep``'s column that lands in each slot when compacted; K (zeros) below."""
    K, P = keep.shape
    src = np.full((K, P), K)
    rows, cols = np.nonzero(keep)
    src[(np.cumsum(keep, axis=0) - 1)[rows, cols], cols] = rows
    return src


def _gather(values: np.ndarray, src: np.ndarray) -> np.ndarray:
    """(K, P) ``values[src[k, p], p]``, with row K read as zeros."""
    return np.take_along_axis(np.concatenate([values, np.zeros((1, values.shape[1]))]), src, axis=0)


def _pairwise_sum(v: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Per column, ``np.sum`` of its first ``n`` entries (the rest are 0), in numpy's order.

    numpy adds fewer than 8 numbers one by one, else in 8 running sums (a block of 8 at a time) that
    are then added as a tree, the remainder one by one. v: (K, P) with K <= 128; n: (P,).
    """
    assert len(v) <= 128
    seq = np.full(v.shape[1], -0.0)
    for row in v:
        seq = seq + row
    r = v[:8].copy()  # (8, P)
    two = n >= 16
    if len(v) > 8:
        r[:, two] += v[8:16, two]
    res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    for i in range(8, len(v)):
        res = res + (np.where(two, 0.0, v[i]) if i < 16 else v[i])
    return np.where(n < 8, seq, res)


def _evaluate(g: dict, d: dict) -> np.ndarray:
    """``COCOeval`` evaluate, accumulate and summarize on :func:`_persons`' arrays: (10,) stats."""
    n_img = int(max(g["image"].max(), d["image"].max())) + 1
    # detections per image, best score first (stable in list order), at most MAX_DETS
    order = np.lexsort((-d["score"], d["image"]))
    img = d["image"][order]
    start = np.searchsorted(img, np.arange(n_img))
    rank = np.arange(len(img)) - start[img]
    det = order[rank < MAX_DETS]  # (Dc,) rows in (image, rank) order = COCOeval's concatenation
    rank = rank[rank < MAX_DETS]
    pd, pg, oks = _candidates(g, d, det)
    areas = list(AREA_RANGES.values())
    ignore = ~g["present"].any(0)  # num_keypoints == 0
    g_ig = np.stack([ignore | (g["area"] < lo) | (g["area"] > hi) for lo, hi in areas])  # (A, G)
    d_out = np.stack([(d["area"][det] < lo) | (d["area"][det] > hi) for lo, hi in areas])  # (A, Dc)
    matched, d_ig = _match(pd, pg, oks, rank, g_ig, len(det))  # (A, T, Dc) each
    d_ig |= ~matched & d_out[:, None]
    scores = d["score"][det]
    inds = np.argsort(-scores, kind="mergesort")
    T, R, A = len(IOU_THRS), len(REC_THRS), len(areas)
    precision, recall = -np.ones((A, T, R)), -np.ones((A, T))
    for a in range(A):
        npig = np.count_nonzero(~g_ig[a])
        if npig == 0:
            continue
        tps = (matched[a] & ~d_ig[a])[:, inds]  # (T, Dc)
        fps = (~matched[a] & ~d_ig[a])[:, inds]
        tp_sum = np.cumsum(tps, axis=1, dtype=np.int32).astype(float)  # counts, as pycocotools
        fp_sum = np.cumsum(fps, axis=1, dtype=np.int32).astype(float)
        nd = tp_sum.shape[1]
        rc = tp_sum / npig
        pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
        pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # precision made monotone
        recall[a] = rc[:, -1] if nd else 0
        for t in range(T):
            at = np.searchsorted(rc[t], REC_THRS, side="left")
            precision[a, t] = np.where(at < nd, pr[t, np.minimum(at, nd - 1)] if nd else 0.0, 0.0)
    return _summarize(precision, recall)


def _candidates(g: dict, d: dict, det: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OKS of the kept detections with the GTs of their image (``computeOks``) where it can match.

    Returns (P,) position in ``det``, (P,) GT row and (P,) OKS of the pairs with OKS >= the lowest
    threshold, sorted by detection then GT. Pairs that a box bound puts clearly below it are not
    computed; the others get a plain sum first, and numpy's summation order where it is close.
    """
    n_img = int(max(g["image"].max(), d["image"].max())) + 1
    g_order = np.argsort(g["image"], kind="stable")
    g_count = np.bincount(g["image"], minlength=n_img)
    g_start = np.cumsum(g_count) - g_count
    per_det = g_count[d["image"][det]]
    pd = np.repeat(np.arange(len(det)), per_det)
    first = np.repeat(np.cumsum(per_det) - per_det, per_det)
    pg = g_order[np.repeat(g_start[d["image"][det]], per_det) + np.arange(len(pd)) - first]
    may = _may_match(g, d, det[pd], pg)
    pd, pg = pd[may], pg[may]
    vis = g["present"]  # (K, G)
    k1 = vis.sum(0)
    used = vis | (k1 == 0)  # the visible keypoints, or all when there is none
    src, n = _compact_src(used), used.sum(0)
    lowest = min(IOU_THRS[0], 1 - 1e-10)
    parts = []
    for s in range(0, len(pd), _CHUNK):
        i, j = det[pd[s : s + _CHUNK]], pg[s : s + _CHUNK]
        terms = _oks_terms(g, d, i, j, k1[j] == 0)  # (K, P)
        rough = np.where(used[:, j], terms, 0.0).sum(0) / n[j]  # within 1e-14 of the OKS
        near = np.flatnonzero(rough >= lowest - 1e-9)
        jn = j[near]
        oks = _pairwise_sum(_gather(terms[:, near], src[:, jn]), n[jn]) / n[jn]
        good = oks >= lowest
        parts.append((s + near[good], oks[good]))
    at, oks = (np.concatenate(p) for p in zip(*parts)) if parts else (np.zeros(0, int), np.zeros(0))
    return pd[at], pg[at], oks


def _oks_terms(g: dict, d: dict, i: np.ndarray, j: np.ndarray, box: np.ndarray) -> np.ndarray:
    """``computeOks``' exp(-e) per keypoint for detections i and GTs j (P,): (K, P).

    Distances to the GT keypoints, or where ``box`` (P,) (no visible keypoint) to the GT box
    extended by its size on each side; e = d^2 / (2 sigma)^2 / (area + eps) / 2, in that order.
    """
    xd, yd = np.take(d["x"], i, axis=1), np.take(d["y"], i, axis=1)  # (K, P)
    dx, dy = xd - np.take(g["x"], j, axis=1), yd - np.take(g["y"], j, axis=1)
    box = np.flatnonzero(box)
    x0, y0, w, h = g["box"][:, j[box]]
    if len(box):
        xd, yd = xd[:, box], yd[:, box]
        dx[:, box] = np.maximum(0, (x0 - w) - xd) + np.maximum(0, xd - (x0 + w * 2))
        dy[:, box] = np.maximum(0, (y0 - h) - yd) + np.maximum(0, yd - (y0 + h * 2))
    var = ((np.array(OKS_SIGMAS) * 2) ** 2)[:, None]  # (K, 1)
    with np.errstate(all="ignore"):
        return np.exp(-((dx**2 + dy**2) / var / (g["area"][j] + np.spacing(1)) / 2))


def _may_match(g: dict, d: dict, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """False for detection-GT pairs whose OKS is surely below 0.5: (P,) rows i, j -> (P,) bool.

    Every visible GT keypoint lies in the box of the visible ones; the detection's keypoint at it
    lies in the box of its given keypoints or at (0, 0). Each OKS term is exp(-e) with e at least
    the squared gap / (2 * area * the largest variance); when that bound exceeds 1 for every term,
    OKS < exp(-1) < 0.5 whatever the rounding. GTs without a visible keypoint are always kept.
    """
    gx0, gx1, gy0, gy1 = g["extent"]
    with np.errstate(invalid="ignore"):
        # (G,) the squared gap at which e = 1 for the largest sigma
        reach2 = 2 * (2 * max(OKS_SIGMAS)) ** 2 * (g["area"] + np.spacing(1))
        origin2 = np.maximum(0, gx0) ** 2 + np.maximum(0, gy0) ** 2  # to (0, 0)
        reach2 = np.where((reach2 > 0) & (origin2 > reach2) & g["present"].any(0), reach2, np.inf)
        gap_x = np.maximum(np.maximum(gx0[j] - d["extent"][1][i], d["extent"][0][i] - gx1[j]), 0)
        gap_y = np.maximum(np.maximum(gy0[j] - d["extent"][3][i], d["extent"][2][i] - gy1[j]), 0)
        return ~(gap_x * gap_x + gap_y * gap_y > reach2[j])


def _match(pd, pg, oks, rank, g_ig, n_det) -> tuple[np.ndarray, np.ndarray]:
    """``evaluateImg``'s greedy matching for every area range and threshold at once.

    Each detection, in score order per image, takes the unmatched GT of highest OKS >= the
    threshold, the last one on a tie, a regular GT before an ignored one. Pairs: (P,) detection
    (position, ``rank`` (Dc,) in its image), GT and OKS, sorted by detection then GT; g_ig (A, G).
    Returns matched and ignored (A, T, Dc) for the detections.
    """
    A, T = len(g_ig), len(IOU_THRS)
    thr = np.minimum(IOU_THRS, 1 - 1e-10)[None, :, None]  # (1, T, 1)
    matched = np.zeros((A, T, n_det), bool)
    d_ig = np.zeros((A, T, n_det), bool)
    # a detection with one candidate GT that no other detection can take matches it alone
    alone = (np.bincount(pd, minlength=n_det)[pd] == 1) & (np.bincount(pg)[pg] == 1)
    hit = oks[alone] >= thr  # (1, T, S)
    matched[:, :, pd[alone]] = hit
    d_ig[:, :, pd[alone]] = hit & g_ig[:, None, pg[alone]]
    pd, pg, oks = pd[~alone], pg[~alone], oks[~alone]
    # the rest in rank order: preference of each pair within its detection, per area range
    pref = np.empty((A, len(pd)), np.intp)
    for a in range(A):
        pref[a, np.lexsort((oks, ~g_ig[a, pg], pd))] = np.arange(len(pd))  # then GT order
    by_pref = np.argsort(pref, axis=1)  # (A, P): pair at each preference position
    g_used = np.zeros((A, T, g_ig.shape[1]), bool)
    order = np.argsort(rank[pd], kind="stable")
    bounds = np.searchsorted(rank[pd][order], np.arange(MAX_DETS + 1))
    for lo, hi in itertools.pairwise(bounds):
        sel = order[lo:hi]  # the pairs of the detections of this rank, by detection
        if not len(sel):
            continue
        p_det, p_gt = pd[sel], pg[sel]
        starts = np.flatnonzero(np.r_[True, p_det[1:] != p_det[:-1]])
        ok = (oks[sel] >= thr) & ~g_used[:, :, p_gt]  # (A, T, S)
        # (A, T, S) -> (A, T, Ds): the preferred pair that can match, per detection
        best = np.maximum.reduceat(np.where(ok, pref[:, None, sel], -1), starts, axis=2)
        a_i, t_i, k_i = np.nonzero(best >= 0)
        win_gt = pg[by_pref[a_i, best[a_i, t_i, k_i]]]
        dets = p_det[starts][k_i]
        g_used[a_i, t_i, win_gt] = True
        matched[a_i, t_i, dets] = True
        d_ig[a_i, t_i, dets] = g_ig[a_i, win_gt]
    return matched, d_ig


def _summarize(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """``COCOeval.summarize`` for keypoints: precision (A, T, R), recall (A, T) -> (10,) stats."""
    names = list(AREA_RANGES)
    rows = ("all", None), ("all", 0.5), ("all", 0.75), ("medium", None), ("large", None)

    def mean(s):
        s = s[s > -1]
        return np.mean(s) if len(s) else -1

    stats = []
    for values in (precision, recall):
        for area, thr in rows:
            s = values[names.index(area)]
            if thr is not None:
                s = s[np.where(thr == IOU_THRS)[0]]
            stats.append(mean(s))
    return np.array(stats, dtype=float)
