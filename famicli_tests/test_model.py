"""Model properties: parameter counts, shapes, gradients, freezing, batching, the MI estimators."""

from __future__ import annotations

import pytest
import torch

import famicli
from famicli.config import LossConfig, get_variant
from famicli.errors import ConfigError, InputError
from famicli.losses import FamiPoseCriterion, JointsMSELoss, MutualInformation, total_loss


def clip(cfg, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    h, w = cfg.input_size
    return torch.randn(b, 3, h, w, generator=g), torch.randn(b, cfg.num_support, 3, h, w, generator=g)


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return famicli.build_model("tiny")


def test_w48_has_the_official_parameter_count():
    with torch.device("meta"):
        model = famicli.build_model("w48")
    assert sum(p.numel() for p in model.parameters()) == 64_655_204
    assert model.parameter_groups()["backbone"] == 63_595_745


def test_unknown_variant_names_the_choices():
    with pytest.raises(ConfigError, match="unknown variant 'w33'; choose from: tiny, w32, w48"):
        famicli.build_model("w33")


def test_alignment_layers_derive_from_the_variant():
    with torch.device("meta"):
        w32 = famicli.build_model("w32")
    assert w32.local_calibration.dcns[0].weight.shape == (32, 32, 3, 3)
    assert w32.local_calibration.offsets[0].conv.out_channels == 2 * 9 * 8  # 8 offset groups for C=32
    # 64x48 heatmaps halve to 2x2 after five stride-2 convs: 16 * 2 * 2 inputs
    assert w32.global_transform.offset_layers[7].in_features == 64


def test_forward_shapes(tiny):
    key, support = clip(tiny.cfg)
    with torch.inference_mode():
        out = tiny.eval()(key, support)
    h, w = tiny.cfg.heatmap_size
    assert out.heatmaps.shape == (2, 17, h, w)
    assert out.backbone_heatmaps.shape == (2, 17, h, w)
    assert out.gtm_translation.shape == (2, 4, 2)
    g = tiny.cfg.dcn_offset_groups
    assert [o.shape for o in out.offsets] == [(2, 18 * g, h, w)] * 4
    assert [m.shape for m in out.masks] == [(2, 9 * g, h, w)] * 4
    assert torch.isfinite(out.heatmaps).all()


def test_wrong_input_shape_is_an_input_error(tiny):
    key, support = clip(tiny.cfg)
    with pytest.raises(InputError, match=r"support: expected shape \(2, 4, 3, 128, 96\), got \(2, 3, 3, 128, 96\)"):
        tiny(key, support[:, :3])
    with pytest.raises(InputError, match=r"key: expected shape"):
        tiny(key[:, :2], support)


def test_batched_equals_per_sample(tiny):
    key, support = clip(tiny.cfg, b=3)
    tiny.eval()
    with torch.inference_mode():
        batched = tiny(key, support).heatmaps
        single = torch.cat([tiny(key[i : i + 1], support[i : i + 1]).heatmaps for i in range(3)])
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-5)


def _objective_backward(model):
    out = model(*clip(model.cfg))
    target = torch.rand_like(out.heatmaps)
    terms = FamiPoseCriterion(model.backbone.final_layer)(out, target, torch.ones(2, 17))
    total_loss(terms, LossConfig()).backward()


def test_gradients_reach_every_trainable_parameter(tiny):
    """Official recipe: frozen backbone, everything else trained by MSE + MI terms."""
    tiny.freeze_backbone().train()
    _objective_backward(tiny)
    trainable = [(n, p) for n, p in tiny.named_parameters() if p.requires_grad]
    assert len(trainable) == len(list(tiny.parameters())) - len(list(tiny.backbone.parameters()))
    bad = [n for n, p in trainable if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert bad == []


def test_unfrozen_backbone_is_trained_too(tiny):
    """With the backbone trainable, only its 1x1 heatmap layer is outside the objective: it feeds the
    backbone-only heatmaps and, detached, the MI terms' inputs (as in the official code)."""
    tiny.train()
    _objective_backward(tiny)
    bad = [n for n, p in tiny.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert bad == ["backbone.final_layer.weight", "backbone.final_layer.bias"]


def test_frozen_backbone_gets_no_gradient_and_keeps_bn_statistics(tiny):
    tiny.freeze_backbone()
    tiny.train()
    assert not tiny.backbone.training and tiny.aggregation.training
    before = tiny.backbone.bn1.running_mean.clone()
    key, support = clip(tiny.cfg)
    out = tiny(key, support)
    mi = MutualInformation()(tiny.backbone.final_layer, *out.features.values(), out.heatmaps)
    (out.heatmaps.mean() + sum(mi.values())).backward()
    assert all(p.grad is None for p in tiny.backbone.parameters())
    assert all(p.grad is not None for p in tiny.head.parameters())
    torch.testing.assert_close(tiny.backbone.bn1.running_mean, before)


def test_official_bn_option_updates_frozen_backbone_statistics():
    torch.manual_seed(0)
    model = famicli.build_model(get_variant("tiny", freeze_backbone_bn=False)).freeze_backbone()
    model.train()
    assert model.backbone.training
    before = model.backbone.bn1.running_mean.clone()
    model(*clip(model.cfg))
    assert not torch.equal(model.backbone.bn1.running_mean, before)


def test_official_estimator_terms_coincide_and_corrected_is_a_kl(tiny):
    key, support = clip(tiny.cfg)
    tiny.eval()
    with torch.no_grad():
        out = tiny(key, support)
    f = out.features
    args = (tiny.backbone.final_layer, f["key"], f["support"], f["aggregated"], out.heatmaps)
    official = MutualInformation("official").per_row(*args)
    corrected = MutualInformation("corrected").per_row(*args)
    assert official["mi_1"].shape == (2, 17) and official["mi_2"].shape == (2, tiny.cfg.width)
    torch.testing.assert_close(official["mi_1"].mean(), official["mi_3"].mean(), rtol=1e-2, atol=1e-7)
    for name, value in corrected.items():
        assert (value >= -1e-5).all(), name  # a KL divergence is non-negative
    assert not torch.allclose(corrected["mi_1"], corrected["mi_3"])
    # the same distribution against itself has zero divergence
    z = f["key"]
    assert MutualInformation("corrected").divergence(z, z).abs().max() < 1e-5


def test_unknown_estimator():
    with pytest.raises(ConfigError, match="unknown MI estimator 'kde'; choose from: official, corrected"):
        MutualInformation("kde")


def test_objective_signs():
    one = torch.tensor(1.0)
    terms = {"heatmap": torch.tensor(2.0), **{f"mi_{i}": one * i for i in range(1, 7)}}
    # 2 + 0.5 * (-0.1*1 + 0.1*2 + 3 - 4 + 5 - 6)
    assert total_loss(terms, LossConfig()).item() == pytest.approx(2 + 0.5 * (-0.1 + 0.2 + 3 - 4 + 5 - 6))
    assert total_loss({"heatmap": one}, LossConfig()).item() == 1.0


def test_joints_mse_weights_zero_out_joints():
    pred = torch.zeros(1, 2, 4, 4)
    target = torch.ones(1, 2, 4, 4)
    loss = JointsMSELoss()
    assert loss(pred, target, torch.tensor([[1.0, 1.0]])).item() == pytest.approx(0.5)
    assert loss(pred, target, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(0.25)


def test_criterion_terms_outside_the_forward(tiny):
    """The MI terms come from the criterion, on the output's features; alpha = 0 skips them."""
    tiny.train()
    out = tiny(*clip(tiny.cfg))
    target, weight = torch.rand_like(out.heatmaps), torch.ones(2, 17)
    head = tiny.backbone.final_layer
    terms = FamiPoseCriterion(head, "corrected", 0.1)(out, target, weight)
    assert list(terms) == ["heatmap", *(f"mi_{i}" for i in range(1, 7))]
    f = out.features
    expected = MutualInformation("corrected", 0.1)(head, f["key"], f["support"], f["aggregated"], out.heatmaps)
    for name, value in expected.items():
        torch.testing.assert_close(terms[name], value)
    assert list(FamiPoseCriterion(head, mi=False)(out, target, weight)) == ["heatmap"]
    assert not list(FamiPoseCriterion(head).parameters())  # the head stays the model's
