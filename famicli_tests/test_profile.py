"""FLOP formulas (hand-computed), the w48 FLOP/parameter figures, and the CPU/CUDA profiling paths."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from torchvision.ops import DeformConv2d

from famicli import profile_model
from famicli.errors import ConfigError
from famicli.profiling.flops import FLOP_FORMULAS, count_flops, count_model_flops
from famicli.profiling.profiler import ProfileConfig

FAST = dict(variant="tiny", device="cpu", warmup=1, iters=3, probe_seconds=0.05)


def _dcn_inputs(h: int, w: int, groups: int = 12):
    layer = DeformConv2d(48, 48, 3, padding=3, dilation=3)
    x = torch.randn(1, 48, h, w)
    offset = torch.randn(1, 2 * 9 * groups, h, w)
    mask = torch.randn(1, 9 * groups, h, w)
    return layer, x, offset, mask


def test_deform_conv2d_flops_match_the_documented_formula_by_hand():
    # the paper's layer: DeformConv2d(48, 48, 3, dilation=3, padding=3), 12 offset groups, at 12x9
    layer, x, offset, mask = _dcn_inputs(12, 9)
    taps = 1 * 3 * 3 * 12 * 9  # N * kh * kw * Ho * Wo = 972 sampling taps per input channel
    conv = 2 * 48 * 48 * taps  # 4,478,976: one multiply + one add per weight tap
    sampling = (7 + 1) * 48 * taps  # 373,248: bilinear (4 mul + 3 add) + mask (1 mul) per sampled value
    positions = 10 * 12 * taps  # 116,640: 2 offset adds, 2 fractions, 2 complements, 4 corner weights
    assert conv + sampling + positions == 4_968_864
    count = count_flops(layer, x, offset, mask)
    assert count.by_op == {"torchvision.deform_conv2d": 4_968_864}
    assert count.by_module["DeformConv2d"]["torchvision.deform_conv2d"] == 4_968_864
    # without a mask: 7 FLOPs per sampled value
    assert count_flops(layer, x, offset).total == conv + 7 * 48 * taps + positions
    # torch's own counter misses the op entirely: the reason this module exists
    with torch.inference_mode(), FlopCounterMode(display=False) as plain:
        layer(x, offset, mask)
    assert plain.get_total_flops() == 0


def test_flop_formulas_plug_into_torchs_counter():
    layer, x, offset, mask = _dcn_inputs(6, 5)
    with torch.inference_mode(), FlopCounterMode(display=False, custom_mapping=FLOP_FORMULAS) as counter:
        layer(x, offset, mask)
    assert counter.get_total_flops() == count_flops(layer, x, offset, mask).total > 0


def test_grid_sample_flops_by_hand():
    x, grid = torch.randn(2, 3, 4, 5), torch.rand(2, 6, 7, 2) * 2 - 1
    q = 2 * 6 * 7  # output positions
    bilinear = count_flops(F.grid_sample, x, grid, mode="bilinear", align_corners=True)
    assert bilinear.by_op == {"aten.grid_sampler_2d": 12 * q + 7 * 3 * q}  # 2,772
    nearest = count_flops(F.grid_sample, x, grid, mode="nearest", align_corners=True)
    assert nearest.by_op == {"aten.grid_sampler_2d": 4 * q}


def test_w48_params_and_flops_without_timing():
    result = profile_model(variant="w48", device="cpu", iters=0)
    assert result.latency == [] and result.matmul_peak == {}
    p, f = result.params, result.flops
    assert p["total"] == 64_655_204 and p["backbone"] == 63_595_745 == p["backbone_baseline"]
    # the four deformable convs at 96x72: each 9 * 6912 = 62,208 taps per channel
    taps = 9 * 96 * 72
    per_layer = 2 * 48 * 48 * taps + 8 * 48 * taps + 10 * 12 * taps
    assert per_layer == 318_007_296
    assert {k: v["flops"] for k, v in f["deformable"]["layers"].items()} == {
        f"local_calibration.dcns.{i}": per_layer for i in range(4)
    }
    assert f["by_op"]["torchvision.deform_conv2d"]["flops"] == 4 * per_layer
    assert f["deformable"]["gflops"] == pytest.approx(2 * f["deformable"]["gmacs"])
    # HRNet-W48 at 384x288, one crop incl. its 1x1 head: 35.31e9 conv MACs = 32.88 x 2^30, the
    # "32.9 GFLOPs" printed by the HRNet repo (MACs divided by 1024^3)
    crop = f["backbone_per_crop"]
    assert crop["flops"] == 2 * 35_306_606_592
    assert round(crop["gmacs_binary"], 1) == 32.9
    # FAMI-Pose runs the backbone on 1+S = 5 crops, its 1x1 head on the key frame only
    head = 2 * 17 * 48 * 96 * 72
    assert f["modules"]["backbone"]["flops"] == 5 * (crop["flops"] - head) + head
    assert sum(m["flops"] for m in f["modules"].values()) == f["per_key_frame"]["flops"]
    assert set(f["modules"]) == set(p) - {"total", "backbone_baseline"}
    assert f["per_key_frame"]["gmacs"] == pytest.approx(183.933, abs=1e-3)
    assert "aten.grid_sampler_2d" in f["by_op"]
    unc = f["uncounted"]
    assert unc["aten._native_batch_norm_legit_no_training"]["kind"] == "elementwise"
    assert not {"aten.convolution", "torchvision.deform_conv2d", "aten.grid_sampler_2d"} & set(unc)


def test_flops_are_linear_in_the_batch():
    from famicli.config import get_variant
    from famicli.models.famipose import FamiPose

    cfg = get_variant("tiny")
    with torch.device("meta"):
        model = FamiPose(cfg).eval()
    h, w = cfg.input_size

    def total(b: int) -> int:
        return count_flops(
            model, torch.empty(b, 3, h, w, device="meta"), torch.empty(b, 4, 3, h, w, device="meta")
        ).total

    flops, _ = count_model_flops(cfg)
    assert total(3) == 3 * total(1) == 3 * flops["per_key_frame"]["flops"]


def test_tiny_latency_on_cpu():
    calls = []
    result = profile_model(**FAST, batch_sizes=(1, 2), progress=lambda *a: calls.append(a))
    assert [(e["batch"], e["dtype"]) for e in result.latency] == [(1, "fp32"), (2, "fp32")]
    assert calls[-1][0] == calls[-1][1] == len(calls) == 2 * 2 * (1 + 3)
    peak = result.matmul_peak["fp32"]
    assert peak["peak_gflop_s"] == max(peak["mm_gflop_s"], peak["conv1x1_gflop_s"]) > 0
    for entry in result.latency:
        b = entry["batch"]
        for model in ("famipose", "backbone"):
            t = entry[model]
            ms, kf = t["batch_ms"], t["per_key_frame_ms"]
            assert t["iters"] == 3
            assert ms["min"] <= ms["p50"] <= ms["p95"] <= ms["p99"] <= ms["max"]
            assert kf["p50"] == pytest.approx(ms["p50"] / b) and kf["mean"] == pytest.approx(ms["mean"] / b)
            assert t["key_frames_per_s"] == pytest.approx(1000 * b / ms["mean"])
            assert t["peak_memory_mb"] > 0 and math.isfinite(t["achieved_gflop_s"])
        assert entry["temporal_overhead"]["ratio_p50"] > 0
    rows = result.rows()
    assert len(rows) == 4 and {r["model"] for r in rows} == {"famipose", "backbone"}
    d = result.to_dict()
    assert d["device"]["type"] == "cpu" and d["options"]["batch_sizes"] == (1, 2)


def test_channels_last_and_no_baseline():
    result = profile_model(**FAST, channels_last=True, baseline=False)
    (entry,) = result.latency
    assert "backbone" not in entry and "temporal_overhead" not in entry
    assert entry["famipose"]["per_key_frame_ms"]["p50"] > 0


def test_bf16_autocast_profiles_on_cpu():
    result = profile_model(**FAST, dtypes=("fp32", "bf16"))  # deformable convs in fp32 (famicli.ops.dispatch)
    assert [e["dtype"] for e in result.latency] == ["fp32", "bf16"]
    assert all(e["famipose"]["per_key_frame_ms"]["p50"] > 0 for e in result.latency)


def test_unsupported_dtype_is_a_config_error(monkeypatch):
    failure = "\"deformable_im2col\" not implemented for 'BFloat16'"
    monkeypatch.setattr("famicli.runtime._dtype_failure", lambda device, name: None if name == "fp32" else failure)
    with pytest.raises(ConfigError, match=r"dtype 'bf16' is not supported on cpu: .*choose from: fp32$"):
        profile_model(**FAST, dtypes=("fp32", "bf16"))


def test_compile_failure_is_a_config_error(monkeypatch):
    def broken_compile(module, *args, **kwargs):
        def run(*a, **k):
            raise RuntimeError("InductorError: no working C++ compiler found\ndetails")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.raises(ConfigError, match=r"^torch.compile failed on cpu: InductorError: no working C\+\+ compiler"):
        profile_model(**FAST, compile=True)


def test_bad_options():
    with pytest.raises(ConfigError, match="unknown dtype 'fp64'; choose from: fp32, bf16, fp16"):
        ProfileConfig(dtypes=("fp64",))
    with pytest.raises(ConfigError, match="positive integers"):
        ProfileConfig(batch_sizes=(0,))
    with pytest.raises(ConfigError, match="unknown profile option 'itres'"):
        profile_model(itres=3)
    with pytest.raises(ConfigError, match="unknown variant 'w33'; choose from: tiny, w32, w48"):
        profile_model(variant="w33", iters=0)


@pytest.mark.cuda
def test_tiny_latency_on_cuda_all_dtypes():
    result = profile_model(
        variant="tiny",
        device="cuda",
        batch_sizes=(1, 4),
        dtypes=("fp32", "bf16", "fp16"),
        warmup=2,
        iters=5,
        probe_seconds=0.1,
    )
    assert result.device["type"] == "cuda" and result.device["memory_kind"] == "cuda max allocated"
    assert len(result.latency) == 6
    for entry in result.latency:
        for model in ("famipose", "backbone"):
            t = entry[model]
            assert 0 < t["per_key_frame_ms"]["p50"] <= t["per_key_frame_ms"]["p99"]
            assert t["peak_memory_mb"] > 0
    assert all(p["peak_gflop_s"] > 0 for p in result.matmul_peak.values())


@pytest.mark.cuda
def test_gpu_channels_last_on_cuda():
    result = profile_model(variant="tiny", device="cuda", channels_last=True, warmup=1, iters=3, probe_seconds=0.05)
    assert result.latency[0]["famipose"]["per_key_frame_ms"]["p50"] > 0


def test_weights_give_the_architecture_and_the_checkpoint_hash(tiny_checkpoint):
    path = tiny_checkpoint
    result = profile_model(weights=str(path), device="cpu", warmup=0, iters=1, baseline=False, probe_seconds=0.05)
    assert result.model["variant"] == "tiny" and result.model["weights"] == str(path)
    assert len(result.provenance["checkpoint_sha256"]) == 64
