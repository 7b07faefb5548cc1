"""famipose reproduces the official FAMI-Pose (Alignment_V15) outputs on the shared parity fixture."""

from __future__ import annotations

import pytest
import torch

import famicli
from famicli.losses import MutualInformation
from famicli_tests.conftest import shared_path

TOL = 1e-4  # relative L2 error, as the fixture's README specifies


def rel_l2(ours: torch.Tensor, ref: torch.Tensor) -> float:
    ours, ref = ours.detach().float(), ref.float()
    return ((ours - ref).norm() / ref.norm()).item()


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    fx = torch.load(shared_path("parity", "official_alignment_v15_reduced.pt"), weights_only=True)
    # saved the way official checkpoints are: a {"state_dict": ...} wrapper, DataParallel prefixes
    ckpt = tmp_path_factory.mktemp("parity") / "official.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in fx["state_dict"].items()}}, ckpt)
    model = famicli.load_model(ckpt)  # depth read off the keys (one module per stage)
    b = fx["inputs"]["key"].shape[0]
    key = fx["inputs"]["key"].float()
    support = fx["inputs"]["support"].float().unflatten(1, (4, 3))  # (B, 12, H, W) -> (B, 4, 3, H, W)
    assert support.shape[0] == b
    return fx, model, key, support


def test_depth_read_from_keys(fixture):
    _, model, _, _ = fixture
    assert model.cfg.hrnet.modules == (1, 1, 1)
    assert model.cfg.hrnet.blocks == (1, 1, 1)
    assert model.cfg.hrnet.widths == (48, 96, 192, 384)
    assert model.checkpoint_info["format"] == "official"


def assert_matches_official_eval(out, ref: dict) -> None:
    """``out`` (a FamiPoseOutput) equals the fixture's eval-mode outputs ``ref`` within TOL."""
    assert rel_l2(out.heatmaps, ref["final_heatmaps"]) <= TOL
    assert rel_l2(out.backbone_heatmaps, ref["backbone_heatmaps"]) <= TOL
    assert rel_l2(out.gtm_translation, torch.stack(ref["gtm_translation"], dim=1)) <= TOL
    assert rel_l2(out.offsets[0][:1], ref["dcn_offset_1"]) <= TOL
    assert rel_l2(out.offsets[3][:1], ref["dcn_offset_4"]) <= TOL
    assert rel_l2(out.masks[0][:1], ref["dcn_mask_1"]) <= TOL


def test_eval_mode_matches_official(fixture):
    fx, model, key, support = fixture
    with torch.inference_mode():
        out = model.eval()(key, support)
    assert_matches_official_eval(out, fx["eval"])


def test_train_mode_matches_official_and_gradients_are_finite(fixture):
    fx, model, key, support = fixture
    ref = fx["train"]
    model.train()  # official behaviour: every BatchNorm uses batch statistics (backbone not frozen)
    try:
        out = model(key, support)
        assert rel_l2(out.heatmaps, ref["final_heatmaps"]) <= TOL
        assert rel_l2(out.backbone_heatmaps, ref["backbone_heatmaps"]) <= TOL
        mi = MutualInformation("official")(model.backbone.final_layer, *out.features.values(), out.heatmaps)
        terms = torch.stack([mi[f"mi_{i}"] for i in range(1, 7)])
        assert rel_l2(terms, ref["mi_terms"]) <= TOL
        # the official kl_div call gives NaN gradients on torch >= 1.13; the log-space form must not
        model.zero_grad()
        (out.heatmaps.square().mean() + terms.sum()).backward()
        bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
        assert bad == []
        assert sum(p.grad is not None for p in model.parameters()) == len(list(model.parameters())) - 2
    finally:
        model.eval()
