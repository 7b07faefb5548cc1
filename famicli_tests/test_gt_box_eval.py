"""GT-box evaluation (training's validation): the crop → heatmap → image chain scores perfect heatmaps at 100."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from famicli.config import DataConfig, get_variant
from famicli.data.posetrack import PoseTrackDataset
from famicli.data.synthtrack.generate import SynthConfig, generate
from famicli.engine.validator import evaluate_with_gt_boxes


class _Oracle(torch.nn.Module):
    """Returns, batch by batch, the ground-truth target heatmaps of the dataset it was given."""

    def __init__(self, cfg, targets: list[torch.Tensor]):
        super().__init__()
        self.cfg, self.targets = cfg, targets

    def forward(self, key, support):
        return SimpleNamespace(heatmaps=self.targets.pop(0))


@pytest.mark.parametrize("crop", ["unbiased", "standard"])
def test_perfect_heatmaps_score_100(tmp_path, crop):
    root = tmp_path / "st"
    generate(root, SynthConfig(videos=2, frames=8, size=(160, 120), seed=4, val_videos=1))
    cfg = get_variant("tiny")
    data = DataConfig(sigma=1.0, crop=crop)
    dataset = PoseTrackDataset(root, "val", data, cfg.input_size, cfg.heatmap_size, train=False)
    targets = [torch.stack([dataset[i]["target"] for i in range(s, min(s + 4, len(dataset)))])
               for s in range(0, len(dataset), 4)]  # fmt: skip
    report = evaluate_with_gt_boxes(_Oracle(cfg, targets), root, "val", data, batch_size=4, pred_dir=tmp_path / "pred")
    assert report["ap"]["Total"] == pytest.approx(100.0)
    assert report["mota"]["Total"] > 99.0
    written = json.loads(next((tmp_path / "pred").glob("*.json")).read_text())
    assert {"images", "annotations", "categories"} <= set(written)
    assert all(len(a["keypoints"]) == 51 and len(a["scores"]) == 17 for a in written["annotations"])
