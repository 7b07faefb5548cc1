"""A model in the loop: predict every ground-truth person of a split, then score with ``famicli.evaluate``.

This is the validation ``famipose train`` runs after each epoch (and the protocol of the paper's
tables with ground-truth boxes): each annotated person on a labeled frame is cropped with its box
(no augmentation), FAMI-Pose predicts the key frame's heatmaps, the peaks are decoded back to the
image, and the predictions — with the ground truth's track ids, since the boxes are the ground
truth's — are written as PoseTrack files beside the ground truth's and scored.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from famicli.config import DataConfig
from famicli.errors import ConfigError
from famicli.inference.decode import decode_heatmaps
from famicli.inference.results import annolist_document, person_annotation, posetrack18_document
from famicli.io import write_json_atomic


@torch.no_grad()
def predict_gt_boxes(model, root, split: str, data_cfg: DataConfig, device="cpu", batch_size: int = 32,
                     workers: int = 0, heads: str = "final") -> tuple[list, dict[str, list[dict]]]:  # fmt: skip
    """Predict every labeled person of ``split`` from its ground-truth box.

    ``heads="backbone"`` scores the single-frame backbone's heatmaps (key frames only are read).

    Returns:
        The dataset's videos and, per video name, the predicted annotations (:func:`person_annotation`).
    """
    from torch.utils.data import DataLoader

    from famicli.data.posetrack import PoseTrackDataset
    from famicli.data.transforms import heatmap_to_image

    if heads not in ("final", "backbone"):
        raise ConfigError(f"unknown heads {heads!r}; choose from: final, backbone")
    cfg = model.cfg
    window_cfg = replace(data_cfg, offsets=()) if heads == "backbone" else data_cfg
    dataset = PoseTrackDataset(root, split, window_cfg, cfg.input_size, cfg.heatmap_size, train=False)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    was_training = model.training
    model.eval()
    device = torch.device(device)
    names = {int(iid): v.name for v in dataset.videos for iid in v.image_ids}
    preds: dict[str, list[dict]] = {v.name: [] for v in dataset.videos}
    try:
        for batch in loader:
            if heads == "backbone":
                heatmaps = model.backbone(batch["key"].to(device))[1]
            else:
                heatmaps = model(batch["key"].to(device), batch["support"].to(device)).heatmaps
            coords, scores = decode_heatmaps(heatmaps.float().cpu())
            meta = batch["meta"]
            xy = heatmap_to_image(coords, meta["center"], meta["scale"], cfg.heatmap_size, data_cfg.crop)
            for i in range(len(xy)):
                iid = int(meta["image_id"][i])
                preds[names[iid]].append(person_annotation(iid, int(meta["track_id"][i]), xy[i], scores[i]))
    finally:
        model.train(was_training)
    return dataset.videos, preds


def evaluate_with_gt_boxes(model, root, split: str = "val", data_cfg: DataConfig | None = None, device="cpu",
                           batch_size: int = 32, workers: int = 0, pred_dir: str | Path | None = None,
                           heads: str = "final") -> dict:  # fmt: skip
    """PoseTrack AP (and MOTA, COCO AP) of ``model`` on ``split`` with ground-truth boxes.

    Args:
        model: a :class:`famicli.models.famipose.FamiPose` (its mode is restored afterwards).
        root: dataset folder (``annotations/<split>/*.json`` and the frames).
        split: the split to score.
        data_cfg: window and crop settings (default: ``DataConfig()``).
        device: where the model runs.
        pred_dir: keep the prediction files there (default: a temporary folder, removed).
        heads: ``final`` scores FAMI-Pose's heatmaps, ``backbone`` the single-frame backbone's.

    Returns:
        ``famicli.evaluate(...).to_dict()`` without the per-joint tables: ``ap``, ``mota``,
        ``mot_totals``, ``coco`` and ``provenance``.
    """
    from famicli.metrics.scoring import evaluate

    data_cfg = data_cfg or DataConfig()
    videos, preds = predict_gt_boxes(model, root, split, data_cfg, device, batch_size, workers, heads)
    gt_dir = Path(root) / "annotations" / split
    with tempfile.TemporaryDirectory(prefix="famipose-val-") as tmp:
        out = Path(pred_dir) if pred_dir is not None else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        formats = set()
        for video in videos:
            doc, fmt = prediction_document(video, preds[video.name])
            formats.add(fmt)
            (out / video.path.name).write_text(json.dumps(doc))
        dataset = "posetrack17" if formats == {"posetrack17"} else "posetrack18"
        result = evaluate(gt_dir, out, dataset, order="sorted").to_dict()
    keep = ("ap", "mota", "mot_totals", "coco", "warnings", "provenance")
    return {k: result[k] for k in keep if k in result}


def prediction_document(video, annotations: list[dict]) -> tuple[dict, str]:
    """The prediction file of ``video`` (a :class:`famicli.data.posetrack.Video`) in its ground truth's
    format, with the ground truth's frames in file order; returns (document, "posetrack18" | "posetrack17")."""
    gt = json.loads(video.path.read_text())
    if "annolist" in gt:
        frames = [(f["image"][0] if isinstance(f["image"], list) else f["image"])["name"] for f in gt["annolist"]]
        return annolist_document(frames, annotations, video.image_ids), "posetrack17"
    return posetrack18_document(gt["images"], annotations), "posetrack18"


# Reference numbers printed beside a model's (PoseTrack val mAP, %); see docs/predict.md for sources.
REFERENCE_AP = {
    "posetrack18": {"FAMI-Pose W48 (paper, detected boxes)": 82.2, "HRNet-W48 (mmpose, GT boxes)": 84.6,
                    "HRNet-W48 (mmpose, detected boxes)": 77.8},
    "posetrack17": {"FAMI-Pose W48 (paper, detected boxes)": 84.8},
}


@torch.no_grad()
def evaluate_model(model, root, split: str = "val", *, boxes=None, box_threshold: float | None = None,
                   data_cfg: DataConfig | None = None, device="cpu", dtype: str = "fp32", flip: bool = False,
                   batch_size: int = 16, pred_dir=None, progress=None, mode: str = "exact",
                   chunk: int = 16, max_shift: float | None = None, share: str | None = None) -> dict | None:  # fmt: skip
    """Run the temporal predictor over every sequence of ``split`` and score FAMI-Pose and its backbone.

    Each sequence's frames (an image folder) stream through :func:`famicli.inference.stream.run`
    with ground-truth boxes (their track ids kept) or the boxes of a detections file (tracked with
    :class:`famicli.inference.track.GreedyTracker`); the final heatmaps and the backbone's heatmaps of
    the key frame are decoded into two prediction folders, each scored with :func:`famicli.evaluate`.

    Under ``torchrun`` each process takes whole sequences (rank r: sequences r, r + W, ...); rank 0
    gathers the predictions, writes and scores them; the other ranks return None.

    Args:
        model: a FAMI-Pose model.
        root: dataset folder (``annotations/<split>/*.json`` and the frames).
        boxes: None for ground-truth boxes, else a detections file (:class:`famicli.inference.detect.BoxFile`).
        box_threshold: minimum score of file boxes (default 0.2, the official evaluation's).
        device, dtype, flip, batch_size, mode, chunk, max_shift, share: as for :func:`famicli.predict_video` (``mode="fast"``:
            the cached streaming mode, ground-truth track ids or boxes tracked on IoU before the poses).
        pred_dir: keep the prediction files in ``pred_dir/famipose`` and ``pred_dir/backbone``.
        progress: called with (sequences done, sequences in all, sequence name).

    Returns:
        ``{"famipose": report, "backbone": report, "boxes", "reference", "sequences", "frames",
        "persons", "seconds"}`` where a report is ``famicli.evaluate(...).to_dict()``.
    """
    import time

    from famicli.engine import distributed
    from famicli.data.posetrack import read_sequence, sequence_files
    from famicli.data.video import ImageSequence
    from famicli.inference.detect import BoxFile, GroundTruthBoxes
    from famicli.inference.results import VideoPrediction
    from famicli.inference.predictor import PoseEstimator, PredictConfig
    from famicli.inference.stream import run
    from famicli.inference.track import GreedyTracker
    from famicli.runtime import resolve_dtype

    from famicli.inference.cached import MAX_SHIFT, SHARE

    max_shift = MAX_SHIFT if max_shift is None else max_shift
    share = SHARE if share is None else share
    PredictConfig(mode=mode, chunk=chunk, max_shift=max_shift, share=share).validate()  # bad options before anything starts
    t0 = time.perf_counter()
    device = torch.device(device)
    was_initialized = torch.distributed.is_available() and torch.distributed.is_initialized()
    info = distributed.setup(device)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)  # NCCL collectives run on the current device
    estimator = PoseEstimator(model.to(device), data_cfg or DataConfig(), device, resolve_dtype(dtype), flip,
                              fast_path=mode == "fast")  # fmt: skip
    box_file = None if boxes is None else BoxFile(boxes, 0.2 if box_threshold is None else box_threshold)
    files = sequence_files(root, split)
    mine = files[info.rank :: info.world_size]
    local: dict[str, tuple] = {}
    frames = persons = 0
    try:
        for i, path in enumerate(mine):
            video = read_sequence(path, root)
            source = ImageSequence(video.frames, name=video.name)
            if box_file is None:
                box_src = GroundTruthBoxes(video)
            else:
                box_src = box_file.for_video(video.name, len(video.frames), require=False)
            poses, _ = run(source, box_src, estimator, GreedyTracker(), batch_size=batch_size, skip_unneeded=True,
                           chunk=chunk if mode == "fast" else None, max_shift=max_shift, share=share)  # fmt: skip
            pred = VideoPrediction(video.name, [], poses, {}, image_ids=video.image_ids)
            doc, fmt = prediction_document(video, pred.annotations("famipose"))
            backbone, _ = prediction_document(video, pred.annotations("backbone"))
            local[path.name] = {"famipose": doc, "backbone": backbone, "format": fmt}
            frames, persons = frames + len(poses), persons + pred.persons
            if progress is not None:
                progress(i + 1, len(mine), video.name)
        gathered = [local]
        if info.enabled:
            gathered = [None] * info.world_size
            torch.distributed.all_gather_object(gathered, (local, frames, persons))
            frames, persons = sum(g[1] for g in gathered), sum(g[2] for g in gathered)
            gathered = [g[0] for g in gathered]
    finally:
        if not was_initialized:
            distributed.teardown(info)
    if not info.is_main:
        return None
    merged = {k: v for g in gathered for k, v in g.items()}
    reports = _score_folders(Path(root) / "annotations" / split, merged, pred_dir)
    box_info = ({"source": "ground truth", "path": str(Path(root) / "annotations" / split)} if box_file is None else
                {"source": "file", "path": str(box_file.path), "sha256": box_file.sha256,
                 "threshold": box_file.threshold})  # fmt: skip
    from famicli.data.synthtrack.generate import MARKER

    synthetic = (Path(root) / MARKER).is_file()  # SynthTrack: no published numbers to compare with
    reference = {} if synthetic else REFERENCE_AP.get(reports["famipose"]["dataset"], {})
    return {**reports, "boxes": box_info, "reference": reference, "sequences": len(files),
            "inference": {"mode": mode,
                          **({"share": share, "chunk": chunk, "max_shift": max_shift} if mode == "fast" else {})},
            "frames": frames, "persons": persons, "processes": info.world_size,
            "seconds": round(time.perf_counter() - t0, 3)}  # fmt: skip


def _score_folders(gt_dir: Path, merged: dict[str, dict], pred_dir) -> dict[str, dict]:
    """Write the ``famipose/`` and ``backbone/`` prediction folders and score each."""
    from famicli.metrics.scoring import evaluate

    formats = {m["format"] for m in merged.values()}
    dataset = "posetrack17" if formats == {"posetrack17"} else "posetrack18"
    with tempfile.TemporaryDirectory(prefix="famipose-eval-") as tmp:
        base = Path(pred_dir) if pred_dir is not None else Path(tmp)
        reports = {}
        for column in ("famipose", "backbone"):
            for name in sorted(merged):
                write_json_atomic(base / column / name, merged[name][column], indent=None)
            reports[column] = evaluate(gt_dir, base / column, dataset, order="sorted").to_dict()
    return reports
