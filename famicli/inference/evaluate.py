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
from pathlib import Path

import torch

from famicli.config import DataConfig
from famicli.inference.decode import decode_heatmaps
from famicli.inference.export import annolist_document, person_annotation, posetrack18_document


@torch.no_grad()
def predict_gt_boxes(model, root, split: str, data_cfg: DataConfig, device="cpu", batch_size: int = 32,
                     workers: int = 0) -> tuple[list, dict[str, list[dict]]]:  # fmt: skip
    """Predict every labeled person of ``split`` from its ground-truth box.

    Returns:
        The dataset's videos and, per video name, the predicted annotations (:func:`person_annotation`).
    """
    from torch.utils.data import DataLoader

    from famicli.data.posetrack import PoseTrackDataset
    from famicli.data.transforms import heatmap_to_image

    cfg = model.cfg
    dataset = PoseTrackDataset(root, split, data_cfg, cfg.input_size, cfg.heatmap_size, train=False)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    was_training = model.training
    model.eval()
    device = torch.device(device)
    names = {int(iid): v.name for v in dataset.videos for iid in v.image_ids}
    preds: dict[str, list[dict]] = {v.name: [] for v in dataset.videos}
    try:
        for batch in loader:
            out = model(batch["key"].to(device), batch["support"].to(device))
            coords, scores = decode_heatmaps(out.heatmaps.float().cpu())
            meta = batch["meta"]
            xy = heatmap_to_image(coords, meta["center"], meta["scale"], cfg.heatmap_size, data_cfg.crop)
            for i in range(len(xy)):
                iid = int(meta["image_id"][i])
                preds[names[iid]].append(person_annotation(iid, int(meta["track_id"][i]), xy[i], scores[i]))
    finally:
        model.train(was_training)
    return dataset.videos, preds


def evaluate_with_gt_boxes(model, root, split: str = "val", data_cfg: DataConfig | None = None, device="cpu",
                           batch_size: int = 32, workers: int = 0, pred_dir: str | Path | None = None) -> dict:  # fmt: skip
    """PoseTrack AP (and MOTA, COCO AP) of ``model`` on ``split`` with ground-truth boxes.

    Args:
        model: a :class:`famicli.models.famipose.FamiPose` (its mode is restored afterwards).
        root: dataset folder (``annotations/<split>/*.json`` and the frames).
        split: the split to score.
        data_cfg: window and crop settings (default: ``DataConfig()``).
        device: where the model runs.
        pred_dir: keep the prediction files there (default: a temporary folder, removed).

    Returns:
        ``famicli.evaluate(...).to_dict()`` without the per-joint tables: ``ap``, ``mota``,
        ``mot_totals``, ``coco`` and ``provenance``.
    """
    from famicli.metrics.evaluate import evaluate

    data_cfg = data_cfg or DataConfig()
    videos, preds = predict_gt_boxes(model, root, split, data_cfg, device, batch_size, workers)
    gt_dir = Path(root) / "annotations" / split
    with tempfile.TemporaryDirectory(prefix="famipose-val-") as tmp:
        out = Path(pred_dir) if pred_dir is not None else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        formats = set()
        for video in videos:
            gt = json.loads(video.path.read_text())
            if "annolist" in gt:
                formats.add("posetrack17")
                frames = [(f["image"][0] if isinstance(f["image"], list) else f["image"])["name"] for f in gt["annolist"]]
                doc = annolist_document(frames, preds[video.name], video.image_ids)
            else:
                formats.add("posetrack18")
                doc = posetrack18_document(gt["images"], preds[video.name])
            (out / video.path.name).write_text(json.dumps(doc))
        dataset = "posetrack17" if formats == {"posetrack17"} else "posetrack18"
        result = evaluate(gt_dir, out, dataset, order="sorted").to_dict()
    keep = ("ap", "mota", "mot_totals", "coco", "warnings", "provenance")
    return {k: result[k] for k in keep if k in result}
