"""The one model-in-the-loop evaluator: predict every sequence of a split, then score with ``famicli.evaluate``.

``famipose eval --weights`` and the validation ``famipose train`` runs after each epoch both go through
:func:`evaluate_model`: each sequence's frames stream through the temporal predictor
(:func:`famicli.inference.stream.run`) with ground-truth boxes (their track ids kept) or the boxes of a
detections file; FAMI-Pose's heatmaps and its backbone's heatmaps of each key frame are decoded into
two prediction folders in the ground truth's format, and each is scored. Training's validation
(:func:`validate`) is the same call with ground-truth boxes in exact mode, reporting one of the two.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from famicli.config import DataConfig
from famicli.errors import ConfigError
from famicli.io import write_json_atomic

HEADS = ("famipose", "backbone")  # the two prediction folders: FAMI-Pose's heatmaps, the backbone's


def validate(
    model,
    root,
    data_cfg: DataConfig | None = None,
    device="cpu",
    *,
    split: str = "val",
    heads: str = "famipose",
    batch_size: int = 32,
    pred_dir=None,
) -> dict:
    """PoseTrack AP (and MOTA, COCO AP) of ``model`` on ``split`` with ground-truth boxes, in this process.

    Args:
        model: a :class:`famicli.models.famipose.FamiPose` (put in eval mode; set it back to train yourself).
        root: dataset folder (``annotations/<split>/*.json`` and the frames).
        data_cfg: window and crop settings (default: ``DataConfig()``).
        device: where the model runs.
        split: the split to score.
        heads: ``famipose`` scores FAMI-Pose's heatmaps, ``backbone`` the single-frame backbone's.
        batch_size: persons per forward pass.
        pred_dir: keep the prediction files in ``pred_dir/famipose`` and ``pred_dir/backbone``.

    Returns:
        ``famicli.evaluate(...).to_dict()`` of ``heads`` without the per-joint tables: ``ap``, ``mota``,
        ``mot_totals``, ``coco``, ``warnings`` and ``provenance``.
    """
    from famicli.inference.predictor import PredictConfig

    if heads not in HEADS:
        raise ConfigError(f"unknown heads {heads!r}; choose from: {', '.join(HEADS)}")
    # the backbone alone (train --single-frame) runs as predict --heads backbone: one crop per person
    cfg = PredictConfig(device=str(device), batch_size=batch_size, heads="backbone" if heads == "backbone" else "fami")
    result = evaluate_model(model, root, cfg, split=split, data_cfg=data_cfg, pred_dir=pred_dir, shard=False)
    keep = ("ap", "mota", "mot_totals", "coco", "warnings", "provenance")
    return {k: result[heads][k] for k in keep if k in result[heads]}


def prediction_document(video, annotations: list[dict]) -> tuple[dict, str]:
    """The prediction file of ``video`` (a :class:`famicli.data.posetrack.Video`) in its ground truth's
    format, with the ground truth's frames in file order; returns (document, "posetrack18" | "posetrack17")."""
    from famicli.inference.results import annolist_document, posetrack18_document

    seq = video.sequence
    if seq.file_format == "posetrack17":
        return annolist_document(seq.frame_names, annotations, seq.image_ids), "posetrack17"
    return posetrack18_document(seq.images, annotations), "posetrack18"


# Reference numbers printed beside a model's (PoseTrack val mAP, %); see docs/predict.md for sources.
REFERENCE_AP = {
    "posetrack18": {
        "FAMI-Pose W48 (paper, detected boxes)": 82.2,
        "HRNet-W48 (mmpose, GT boxes)": 84.6,
        "HRNet-W48 (mmpose, detected boxes)": 77.8,
    },
    "posetrack17": {"FAMI-Pose W48 (paper, detected boxes)": 84.8},
}


@torch.no_grad()
def evaluate_model(
    model,
    root,
    cfg=None,
    *,
    split: str = "val",
    data_cfg: DataConfig | None = None,
    pred_dir=None,
    progress=None,
    shard: bool = True,
    notes=None,
) -> dict | None:
    """Run the temporal predictor over every sequence of ``split`` and score FAMI-Pose and its backbone.

    Each sequence's frames (an image folder) stream through :func:`famicli.inference.stream.run`
    with ground-truth boxes (their track ids kept) or the boxes of a detections file (tracked with
    :class:`famicli.inference.track.GreedyTracker`); the final heatmaps and the backbone's heatmaps of
    the key frame are decoded into two prediction folders, each scored with :func:`famicli.evaluate`.

    Under ``torchrun`` (and ``shard``) each process takes whole sequences (rank r: sequences r, r + W, ...);
    rank 0 gathers the predictions, writes and scores them; the other ranks return None.

    Args:
        model: a FAMI-Pose model.
        root: dataset folder (``annotations/<split>/*.json`` and the frames).
        cfg: a :class:`famicli.inference.predictor.PredictConfig`, as for :func:`famicli.predict_video`:
            ``boxes`` None for ground-truth boxes, else a detections file
            (:class:`famicli.inference.detect.BoxFile`, ``box_threshold`` default 0.2, the official
            evaluation's); ``mode="fast"``: the cached streaming mode, ground-truth track ids or boxes
            tracked on IoU before the poses. Default: ``PredictConfig()``.
        split: the split to score.
        data_cfg: window and crop settings (default: ``DataConfig()``).
        pred_dir: keep the prediction files in ``pred_dir/famipose`` and ``pred_dir/backbone``.
        progress: called with (sequences done, sequences in all, sequence name).
        shard: split the sequences across ``torchrun`` processes; False evaluates everything in this
            process (training's validation runs on rank 0 alone).
        notes: called with each line worth showing (the checkpoint chose the heads; PoseTrack keypoints a
            COCO model does not give), as in :func:`famicli.predict_video`.

    With ``cfg.heads`` (or the checkpoint: :func:`famicli.inference.predictor.resolve_heads`) ``backbone``,
    only the single-frame HRNet runs, one crop per person, and only the ``backbone`` folder is scored.

    Returns:
        ``{"famipose": report, "backbone": report, "heads", "boxes", "reference", "sequences", "frames",
        "persons", "seconds"}`` where a report is ``famicli.evaluate(...).to_dict()`` (no ``famipose``
        with the backbone alone).
    """
    import time

    from famicli.data.posetrack import read_sequence
    from famicli.data.video import ImageSequence
    from famicli.engine import distributed
    from famicli.formats.layout import sequence_files
    from famicli.inference.detect import BoxFile, GroundTruthBoxes
    from famicli.inference.predictor import PoseEstimator, PredictConfig, resolve_heads
    from famicli.inference.results import VideoPrediction
    from famicli.inference.stream import run
    from famicli.inference.track import GreedyTracker
    from famicli.runtime import resolve_device

    cfg = cfg or PredictConfig()  # validated when made: bad options fail before anything starts
    t0 = time.perf_counter()
    device = resolve_device(cfg.device) if isinstance(cfg.device, str) else torch.device(cfg.device)
    was_initialized = torch.distributed.is_available() and torch.distributed.is_initialized()
    info = distributed.setup(device) if shard else distributed.DistInfo()
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)  # NCCL collectives run on the current device
    heads, note = resolve_heads(model, cfg.heads)
    estimator = PoseEstimator.from_config(model, cfg, device, data_cfg, heads)
    columns = ("backbone",) if heads == "backbone" else ("famipose", "backbone")
    say = notes or (lambda line: None)
    if note and info.is_main:
        say(note)
    if estimator.schema.missing_in_posetrack and info.is_main:
        say(
            f"Note: {estimator.schema.name} keypoints: no {' or '.join(estimator.schema.missing_in_posetrack)} "
            "(scored as missing: their AP is 0)"
        )
    box_file = (
        None if cfg.boxes is None else BoxFile(cfg.boxes, 0.2 if cfg.box_threshold is None else cfg.box_threshold)
    )
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
            poses, _ = run(source, box_src, estimator, GreedyTracker(), cfg, skip_unneeded=True)
            pred = VideoPrediction(video.name, [], poses, {}, image_ids=video.image_ids, schema=estimator.schema)
            docs = {column: prediction_document(video, pred.annotations(column)) for column in columns}
            local[path.name] = {column: doc for column, (doc, _) in docs.items()}
            local[path.name]["format"] = docs["backbone"][1]
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
        if shard and not was_initialized:
            distributed.teardown(info)
    if not info.is_main:
        return None
    merged = {k: v for g in gathered for k, v in g.items()}
    reports = _score_folders(Path(root) / "annotations" / split, merged, pred_dir, columns)
    box_info = (
        {"source": "ground truth", "path": str(Path(root) / "annotations" / split)}
        if box_file is None
        else {"source": "file", "path": str(box_file.path), "sha256": box_file.sha256, "threshold": box_file.threshold}
    )
    from famicli.data.synthtrack.generate import MARKER

    synthetic = (Path(root) / MARKER).is_file()  # SynthTrack: no published numbers to compare with
    reference = {} if synthetic else REFERENCE_AP.get(reports["backbone"]["dataset"], {})
    return {
        **reports,
        "heads": heads,
        "schema": estimator.schema.name,
        "boxes": box_info,
        "reference": reference,
        "sequences": len(files),
        "inference": {
            "mode": cfg.mode,
            **(
                {"share": cfg.share, "chunk": cfg.chunk, "max_shift": cfg.max_shift}
                if cfg.mode == "fast" and heads == "fami"
                else {}
            ),
        },
        "frames": frames,
        "persons": persons,
        "processes": info.world_size,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _score_folders(
    gt_dir: Path, merged: dict[str, dict], pred_dir, columns: tuple[str, ...] = ("famipose", "backbone")
) -> dict[str, dict]:
    """Write the ``famipose/`` and ``backbone/`` prediction folders (those of ``columns``) and score each."""
    from famicli.metrics.scoring import evaluate

    formats = {m["format"] for m in merged.values()}
    dataset = "posetrack17" if formats == {"posetrack17"} else "posetrack18"
    with tempfile.TemporaryDirectory(prefix="famipose-eval-") as tmp:
        base = Path(pred_dir) if pred_dir is not None else Path(tmp)
        reports = {}
        for column in columns:
            for name in sorted(merged):
                write_json_atomic(base / column / name, merged[name][column], indent=None)
            reports[column] = evaluate(gt_dir, base / column, dataset, order="sorted").to_dict()
    return reports
