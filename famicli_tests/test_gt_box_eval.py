"""GT-box evaluation (training's validation, ``eval --weights``): the crop → heatmap → image chain scores
perfect heatmaps at 100."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from famicli.config import DataConfig, get_variant
from famicli.data.posetrack import PoseTrackDataset
from famicli.engine.validator import validate


class _Oracle(torch.nn.Module):
    """Returns, person by person, the ground-truth target heatmaps of the dataset it was given (the
    predictor crops the persons in the dataset's order: sequences, frames, then file order)."""

    def __init__(self, cfg, targets: list[torch.Tensor]):
        super().__init__()
        self.cfg, self.targets = cfg, targets

    def forward(self, key, support):
        heatmaps = torch.stack([self.targets.pop(0) for _ in range(len(key))])
        return SimpleNamespace(heatmaps=heatmaps, backbone_heatmaps=heatmaps)


@pytest.mark.parametrize("crop", ["unbiased", "standard"])
def test_perfect_heatmaps_score_100(synthtrack, tmp_path, crop):
    root = synthtrack  # the session's set (conftest); its val split is scored
    cfg = get_variant("tiny")
    data = DataConfig(sigma=1.0, crop=crop)
    dataset = PoseTrackDataset(root, "val", data, cfg.input_size, cfg.heatmap_size, train=False)
    targets = [dataset[i]["target"] for i in range(len(dataset))]
    oracle = _Oracle(cfg, targets)
    report = validate(oracle, root, data, batch_size=4, pred_dir=tmp_path / "pred")
    assert not oracle.targets  # every person was predicted once
    assert report["ap"]["Total"] == pytest.approx(100.0)
    assert report["mota"]["Total"] > 99.0
    written = json.loads(next((tmp_path / "pred" / "famipose").glob("*.json")).read_text())
    assert {"images", "annotations", "categories"} <= set(written)
    assert all(len(a["keypoints"]) == 51 and len(a["scores"]) == 17 for a in written["annotations"])
