"""famipose's deformable convolution equals torchvision's, forward and backward, and the dispatcher."""

from __future__ import annotations

import re

import pytest
import torch
import torchvision.ops

import famicli.config
from famicli.errors import ConfigError
from famicli.models.alignment import LocalCalibration
from famicli.ops import (
    DeformConv2d,
    dcn_implementation,
    deform_conv2d,
    dispatch_deform_conv2d,
    resolve_dcn,
    set_dcn_implementation,
)

# relative L2 error allowed against torchvision: float32 rounding (measured <= 1e-6 here), float64
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}
NAMES = ("output", "input", "offset", "weight", "bias", "mask")


def rel_l2(ours: torch.Tensor, ref: torch.Tensor) -> float:
    if ref.norm() == 0:
        return ours.norm().item()
    return ((ours - ref).norm() / ref.norm()).item()


def make_case(
    b=2,
    c=8,
    h=9,
    w=7,
    c_out=6,
    k=(3, 3),
    offset_groups=2,
    groups=1,
    stride=1,
    padding=1,
    dilation=1,
    scale=1.0,
    mask=True,
    integer=False,
    dtype=torch.float64,
    seed=0,
):
    """Random tensors for one call; ``scale`` sets the offsets' magnitude in pixels."""
    g = torch.Generator().manual_seed(seed)
    stride, padding, dilation = (v if isinstance(v, tuple) else (v, v) for v in (stride, padding, dilation))
    h_out = (h + 2 * padding[0] - dilation[0] * (k[0] - 1) - 1) // stride[0] + 1
    w_out = (w + 2 * padding[1] - dilation[1] * (k[1] - 1) - 1) // stride[1] + 1
    taps = offset_groups * k[0] * k[1]
    offset = torch.randn(b, 2 * taps, h_out, w_out, generator=g, dtype=dtype) * scale
    if integer:  # sampling exactly on pixels: where torchvision's floor() decides the offset gradient
        offset = offset.round()
    return {
        "input": torch.randn(b, c, h, w, generator=g, dtype=dtype),
        "offset": offset,
        "weight": torch.randn(c_out, c // groups, *k, generator=g, dtype=dtype),
        "bias": torch.randn(c_out, generator=g, dtype=dtype),
        "mask": torch.randn(b, taps, h_out, w_out, generator=g, dtype=dtype) if mask else None,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
    }


def run(op, case: dict) -> dict[str, torch.Tensor]:
    """Output and the gradients of <output, random cotangent> for every tensor argument."""
    leaves = {n: case[n].clone().requires_grad_() for n in NAMES[1:] if case[n] is not None}
    out = op(
        leaves["input"],
        leaves["offset"],
        leaves["weight"],
        leaves["bias"],
        stride=case["stride"],
        padding=case["padding"],
        dilation=case["dilation"],
        mask=leaves.get("mask"),
    )
    cotangent = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype).to(out.device)
    grads = torch.autograd.grad(out, list(leaves.values()), cotangent)
    return {"output": out.detach(), **dict(zip(leaves, grads, strict=True))}


def assert_matches_torchvision(case: dict) -> None:
    ours, ref = run(deform_conv2d, case), run(torchvision.ops.deform_conv2d, case)
    assert ours.keys() == ref.keys()
    tol = TOL[case["input"].dtype]
    errors = {n: rel_l2(ours[n], ref[n]) for n in ref}
    assert all(e <= tol for e in errors.values()), errors
    for n in ref:
        assert ours[n].shape == ref[n].shape and ours[n].dtype == ref[n].dtype


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("scale", [0.3, 3.0, 40.0], ids=["subpixel", "pixels", "far_outside"])
@pytest.mark.parametrize("offset_groups", [1, 2])
def test_matches_torchvision_across_offset_sizes(dtype, scale, offset_groups):
    assert_matches_torchvision(make_case(scale=scale, offset_groups=offset_groups, dtype=dtype, seed=int(scale)))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "geometry",
    [
        {"dilation": 3, "padding": 3},  # FAMI-Pose's layer
        {"stride": 2, "padding": 1},
        {"stride": (2, 1), "padding": (0, 2), "dilation": (1, 2)},
        {"k": (1, 3), "padding": 0},
        {"groups": 2, "c_out": 4},  # weight groups
        {"mask": False},
        {"mask": False, "offset_groups": 4, "groups": 4, "c_out": 8, "dilation": 2, "padding": 2},
        {"b": 1, "h": 1, "w": 1, "padding": 1},  # a 1x1 image
    ],
    ids=["dilation3", "stride2", "anisotropic", "kernel1x3", "weight_groups", "no_mask", "all_groups", "1x1"],
)
def test_matches_torchvision_across_geometries(dtype, geometry):
    assert_matches_torchvision(make_case(dtype=dtype, scale=2.0, **geometry))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("dilation", [1, 3])
def test_integer_offsets_take_torchvisions_one_sided_gradient(dtype, dilation):
    """On a pixel the bilinear sample has a kink; the offset gradient must be torchvision's side of it
    (floor of its coordinate), including at the image border and at offset 0."""
    assert_matches_torchvision(make_case(scale=4.0, integer=True, dilation=dilation, padding=dilation, dtype=dtype))
    zero = make_case(dtype=dtype, dilation=dilation, padding=dilation)
    zero["offset"] = torch.zeros_like(zero["offset"])
    assert_matches_torchvision(zero)


def test_samples_outside_the_image_are_zero_like_torchvision():
    """Offsets that put every sample (or the boundary corners) outside: y <= -1, y >= H, inf."""
    case = make_case(mask=True)
    for value in (-1.0, -1.5, 9.0, 1e6, -1e30):
        case["offset"] = torch.full_like(case["offset"], value)
        assert_matches_torchvision(case)
    case["offset"] = torch.full_like(case["offset"], float("inf"))
    with torch.no_grad():
        out = deform_conv2d(case["input"], case["offset"], case["weight"], case["bias"], padding=1, mask=case["mask"])
    assert torch.equal(out, case["bias"].view(1, -1, 1, 1).expand_as(out))


def test_inference_path_and_non_contiguous_arguments():
    case = make_case(dtype=torch.float32, scale=2.0)
    ref = run(torchvision.ops.deform_conv2d, case)
    with torch.inference_mode():  # the no-autograd path applies the mask in place
        out = deform_conv2d(case["input"], case["offset"], case["weight"], case["bias"], padding=1, mask=case["mask"])
    assert rel_l2(out, ref["output"]) <= TOL[torch.float32]
    # channels-last input, offset and mask as slices of larger tensors
    case["input"] = case["input"].contiguous(memory_format=torch.channels_last)
    case["offset"] = torch.cat((case["offset"], case["offset"]), dim=1)[:, : case["offset"].shape[1]]
    case["mask"] = case["mask"].transpose(2, 3).contiguous().transpose(2, 3)
    ours = run(deform_conv2d, case)
    assert all(rel_l2(ours[n], ref[n]) <= TOL[torch.float32] for n in ref)


def test_only_requested_gradients_are_computed():
    case = make_case()
    x = case["input"].clone().requires_grad_()
    out = deform_conv2d(x, case["offset"], case["weight"], None, padding=1, mask=case["mask"])
    (grad,) = torch.autograd.grad(out.sum(), x)
    ref_x = case["input"].clone().requires_grad_()
    ref = torchvision.ops.deform_conv2d(ref_x, case["offset"], case["weight"], None, padding=1, mask=case["mask"])
    (ref_grad,) = torch.autograd.grad(ref.sum(), ref_x)
    assert rel_l2(grad, ref_grad) <= TOL[torch.float64]


def test_bad_shapes_name_them():
    case = make_case()
    with pytest.raises(ValueError, match="offset has 35 channels"):
        deform_conv2d(case["input"], case["offset"][:, :35], case["weight"], padding=1)
    with pytest.raises(ValueError, match=r"mask \(2, 18, 9, 7\): expected \(2, 9, 9, 7\)"):
        deform_conv2d(case["input"], case["offset"][:, :18], case["weight"], padding=1, mask=case["mask"])
    with pytest.raises(ValueError, match="does not match batch 2 and output 7x5"):
        deform_conv2d(case["input"], case["offset"], case["weight"])


# ---- the dispatcher ------------------------------------------------------------------------------


@pytest.fixture
def no_override(monkeypatch):
    monkeypatch.delenv("FAMIPOSE_DCN", raising=False)
    previous = set_dcn_implementation(None)
    yield monkeypatch
    set_dcn_implementation(previous)


def test_auto_runs_famipose_on_cpu_and_torchvision_elsewhere(no_override):
    assert dcn_implementation() == "auto"
    assert resolve_dcn(torch.empty(1, device="cpu")) == "famipose"
    assert resolve_dcn(torch.empty(1, dtype=torch.float64)) == "famipose"
    assert resolve_dcn(torch.empty(1, dtype=torch.bfloat16)) == "famipose"  # run in float32, see below
    assert resolve_dcn(torch.empty(1, device="meta")) == "torchvision"  # FLOP counting sees torchvision's op
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert resolve_dcn(torch.empty(1)) == "famipose"


@pytest.mark.parametrize("forced", [None, "torchvision"])
def test_cpu_autocast_and_half_tensors_run_the_op_in_float32(no_override, forced):
    """Neither CPU kernel has bf16/fp16: under CPU autocast (or on half tensors) the dispatcher runs the
    chosen op in float32 on the inputs cast up; the result equals the float32 op on those inputs."""
    set_dcn_implementation(forced)
    g = torch.Generator().manual_seed(0)
    x, off = torch.randn(2, 8, 9, 7, generator=g), torch.randn(2, 2 * 2 * 9, 9, 7, generator=g)
    w, b, m = torch.randn(6, 8, 3, 3, generator=g), torch.randn(6, generator=g), torch.rand(2, 2 * 9, 9, 7, generator=g)
    expected = torchvision.ops.deform_conv2d(x, off, w, b, padding=1, mask=m)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = dispatch_deform_conv2d(x, off, w, b, padding=1, mask=m)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)
    half = [t.to(torch.bfloat16) for t in (x, off, w, b, m)]
    y = dispatch_deform_conv2d(*half[:4], padding=1, mask=half[4])
    exact = torchvision.ops.deform_conv2d(*[t.float() for t in half[:4]], padding=1, mask=half[4].float())
    torch.testing.assert_close(y, exact, rtol=1e-5, atol=1e-5)


def test_environment_variable_and_setting_force_an_implementation(no_override):
    no_override.setenv("FAMIPOSE_DCN", "torchvision")
    assert resolve_dcn(torch.empty(1)) == "torchvision"
    no_override.setenv("FAMIPOSE_DCN", " FamiPose ")
    assert resolve_dcn(torch.empty(1, dtype=torch.bfloat16)) == "famipose"
    assert resolve_dcn(torch.empty(1, device="meta")) == "torchvision"  # FLOP counting, always
    assert set_dcn_implementation("torchvision") is None  # the setting wins over the variable
    assert resolve_dcn(torch.empty(1)) == "torchvision"
    assert set_dcn_implementation(None) == "torchvision"
    assert dcn_implementation() == "famipose"


def test_unknown_implementation_names_the_choices(no_override):
    message = (
        "unknown deformable convolution implementation 'cuda' ($FAMIPOSE_DCN); choose from: auto, famipose, torchvision"
    )
    no_override.setenv("FAMIPOSE_DCN", "cuda")
    with pytest.raises(ConfigError, match=re.escape(message)):
        dispatch_deform_conv2d(torch.empty(1, 1, 3, 3), torch.empty(1, 18, 1, 1), torch.empty(1, 1, 3, 3))
    with pytest.raises(ConfigError, match="choose from: auto, famipose, torchvision"):
        set_dcn_implementation("fast")


def test_layer_is_torchvisions_with_the_same_parameters(no_override):
    torch.manual_seed(0)
    ours = DeformConv2d(8, 6, 3, padding=3, dilation=3)
    ref = torchvision.ops.DeformConv2d(8, 6, 3, padding=3, dilation=3)
    ref.load_state_dict(ours.state_dict())
    assert isinstance(ours, torchvision.ops.DeformConv2d) and repr(ours) == repr(ref)
    case = make_case(dtype=torch.float32, dilation=3, padding=3, scale=2.0)
    x, offset, mask = case["input"], case["offset"], case["mask"]
    for name in ("famipose", "torchvision"):
        set_dcn_implementation(name)
        assert rel_l2(ours(x, offset, mask), ref(x, offset, mask)) <= TOL[torch.float32]


def test_local_calibration_trains_the_same_with_either_implementation(no_override):
    """The tiny variant's Local Calibration Module (the model's four deformable convolutions, at its
    feature size): output, offsets and every gradient, famipose vs torchvision."""
    cfg = famicli.config.get_variant("tiny")
    torch.manual_seed(0)
    module = LocalCalibration(cfg.width, cfg.dcn_offset_groups, cfg.dcn_dilation, cfg.combine_blocks).train()
    g = torch.Generator().manual_seed(0)
    key, support = (torch.randn(2, cfg.width, *cfg.heatmap_size, generator=g) for _ in range(2))
    state = {k: v.clone() for k, v in module.state_dict().items()}  # BN running stats move in train mode
    results = {}
    for name in ("torchvision", "famipose"):
        set_dcn_implementation(name)
        module.load_state_dict(state)
        module.zero_grad()
        inputs = [key.clone().requires_grad_(), support.clone().requires_grad_()]
        aligned, offsets, masks = module(*inputs)
        loss = aligned.square().mean() + sum(o.square().mean() + m.square().mean() for o, m in zip(offsets, masks))
        loss.backward()
        grads = {n: p.grad.clone() for n, p in module.named_parameters()}
        results[name] = {
            "aligned": aligned.detach(),
            "offset_4": offsets[3].detach(),
            "grad_key": inputs[0].grad,
            "grad_support": inputs[1].grad,
            **grads,
        }
    ours, ref = results["famipose"], results["torchvision"]
    assert ours.keys() == ref.keys() and len(ref) > 20
    errors = {n: rel_l2(ours[n], ref[n]) for n in ref}
    assert max(errors.values()) <= 1e-5, sorted(errors.items(), key=lambda kv: -kv[1])[:3]


@pytest.mark.cuda
def test_matches_torchvision_on_cuda():
    """Forced onto CUDA (``auto`` keeps torchvision's kernel there), the same ops give the same answer."""
    for dtype in (torch.float32, torch.float64):
        case = make_case(dtype=dtype, scale=3.0, dilation=3, padding=3, offset_groups=2)
        case = {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in case.items()}
        assert_matches_torchvision(case)
