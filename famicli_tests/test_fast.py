"""The exact fast inference path gives the reference model's eval-mode numbers."""

from __future__ import annotations

import pytest
import torch

import famicli
from famicli.errors import InputError
from famicli.models.famipose import build_model
from famicli.models.folded import optimize_for_inference
from famicli_tests.conftest import shared_path
from famicli_tests.test_parity import assert_matches_official_eval

TOL = 1e-4  # relative L2 error


def rel_l2(ours: torch.Tensor, ref: torch.Tensor) -> float:
    ours, ref = ours.detach().float(), ref.float()
    return ((ours - ref).norm() / ref.norm()).item()


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = build_model("tiny")
    for m in model.modules():  # non-trivial BN statistics, so that folding is really exercised
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    h, w = model.cfg.input_size
    key, support = torch.randn(3, 3, h, w), torch.randn(3, model.cfg.num_support, 3, h, w)
    return model.eval(), key, support


def assert_same(out, ref):
    assert rel_l2(out.heatmaps, ref.heatmaps) <= TOL
    assert rel_l2(out.backbone_heatmaps, ref.backbone_heatmaps) <= TOL
    assert rel_l2(out.gtm_translation, ref.gtm_translation) <= TOL
    for ours, theirs in zip(out.offsets + out.masks, ref.offsets + ref.masks, strict=True):
        assert rel_l2(ours, theirs) <= TOL
    for name in ("key", "support", "aggregated"):
        assert rel_l2(out.features[name], ref.features[name]) <= TOL


@pytest.mark.parametrize("channels_last", [False, True])
def test_fast_path_matches_reference(tiny, channels_last):
    model, key, support = tiny
    with torch.inference_mode():
        ref = model(key, support)
    fast = optimize_for_inference(model, channels_last=channels_last)
    out = fast(key, support)
    assert out.heatmaps.shape == ref.heatmaps.shape
    assert_same(out, ref)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())


def test_batched_equals_per_person(tiny):
    model, key, support = tiny
    fast = optimize_for_inference(model)
    whole = fast(key, support).heatmaps
    single = torch.cat([fast(key[i : i + 1], support[i : i + 1]).heatmaps for i in range(key.shape[0])])
    assert rel_l2(whole, single) <= TOL


def test_original_untouched_and_no_training(tiny):
    model, key, support = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = optimize_for_inference(model.train())
    model.eval()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    with pytest.raises(InputError, match="cannot train"):
        fast.train()
    with pytest.raises(InputError, match="key: expected shape"):
        fast(key[:, :, :8], support)


def test_parity_fixture_through_fast_path(tmp_path):
    fx = torch.load(shared_path("parity", "official_alignment_v15_reduced.pt"), weights_only=True)
    ckpt = tmp_path / "official.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in fx["state_dict"].items()}}, ckpt)
    fast = optimize_for_inference(famicli.load_model(ckpt))
    key = fx["inputs"]["key"].float()
    support = fx["inputs"]["support"].float().unflatten(1, (4, 3))  # (B, 12, H, W) -> (B, 4, 3, H, W)
    assert_matches_official_eval(fast(key, support), fx["eval"])
