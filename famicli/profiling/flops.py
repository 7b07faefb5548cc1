"""FLOP counting that does not miss deformable convolutions, and FAMI-Pose's FLOPs per module.

``torch.utils.flop_counter.FlopCounterMode`` (like fvcore, thop and mmengine) counts
``torchvision::deform_conv2d`` and ``aten::grid_sampler_2d`` as zero. :data:`FLOP_FORMULAS` adds a
formula for both, :func:`count_flops` also records every executed op that still has none, and
:func:`count_model_flops` breaks a FAMI-Pose forward down per module on the meta device.

Convention: FLOPs = 2 x MACs. A convolution or matmul costs one multiply and one add per weight tap
(torch's formulas; bias ignored). The sampling work below is counted in FLOPs and reported as MACs by
the same factor 1/2, so ``gmacs`` is always ``gflops / 2``.

``deform_conv2d`` (input (N, C_in, H, W), weight (C_out, C_in/g, kh, kw), G offset groups, output
(N, C_out, Ho, Wo)), with P = N * kh * kw * Ho * Wo sampling taps per input channel::

    FLOPs = 2 * C_out * (C_in/g) * P      # the convolution on the sampled columns (as aten.convolution)
          + (7 + m) * C_in * P            # per sampled value: bilinear 4 products + 3 sums; m = 1 with a mask
          + 10 * G * P                    # per sampling position: 2 offset adds, 2 fractional parts,
                                          # 2 complements (1 - f), 4 corner-weight products

``grid_sampler_2d`` (input (N, C, H, W), grid (N, Ho, Wo, 2)), with Q = N * Ho * Wo output positions::

    bilinear: 12 * Q + 7 * C * Q          # per position: un-normalize x, y (mul + add each), 2 fractional
                                          # parts, 2 complements, 4 corner weights; per value 4 mul + 3 add
    nearest:   4 * Q                      # un-normalize only; the gather is no arithmetic
    bicubic:  54 * Q + 31 * C * Q         # 4 + 2 + 2 x 4 cubic weights (6 each); per value 16 mul + 15 add

Not counted, as in every FLOP counter and in the published HRNet figures: batch norm, ReLU, residual
adds and other elementwise ops. They are listed in :attr:`FlopCount.uncounted` with their output sizes
and an estimate (batch norm 2 FLOPs per element when folded into scale + shift, others 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torchvision.ops  # noqa: F401 - registers torch.ops.torchvision.deform_conv2d
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from famicli.config import ModelConfig

aten = torch.ops.aten


def deform_conv2d_flop(
    input_shape, weight_shape, offset_shape, mask_shape, bias_shape, *args, out_shape=None, **kwargs
) -> int:
    """FLOPs of one ``torchvision::deform_conv2d`` call (formula in the module docstring).

    The op's arguments after ``bias`` are stride, padding, dilation, groups, offset groups and
    ``use_mask``; only ``use_mask`` is read, the rest follows from the shapes.
    """
    n, c_in = input_shape[0], input_shape[1]
    c_out, c_in_per_group, kh, kw = weight_shape
    offset_groups = offset_shape[1] // (2 * kh * kw)
    use_mask = bool(args[-1]) if args else bool(kwargs.get("use_mask", True))
    taps = n * kh * kw * out_shape[2] * out_shape[3]
    conv = 2 * c_out * c_in_per_group * taps
    sampling = (8 if use_mask else 7) * c_in * taps
    positions = 10 * offset_groups * taps
    return conv + sampling + positions


# (FLOPs per output position, FLOPs per sampled value) by grid_sample's interpolation_mode
_GRID_SAMPLE_COST = {0: (12, 7), 1: (4, 0), 2: (54, 31)}


def grid_sampler_2d_flop(input_shape, grid_shape, interpolation_mode=0, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of one ``aten::grid_sampler_2d`` call (formula in the module docstring)."""
    n, c = input_shape[0], input_shape[1]
    positions = n * grid_shape[1] * grid_shape[2]
    per_position, per_value = _GRID_SAMPLE_COST.get(int(interpolation_mode), _GRID_SAMPLE_COST[0])
    return per_position * positions + per_value * c * positions


# Pass as FlopCounterMode(custom_mapping=FLOP_FORMULAS) to fix any torch FLOP count.
FLOP_FORMULAS: dict = {
    torch.ops.torchvision.deform_conv2d: deform_conv2d_flop,
    aten.grid_sampler_2d: grid_sampler_2d_flop,
}

# Ops without arithmetic: allocation, views, copies, concatenation, gathers (incl. nearest upsampling).
_NO_ARITHMETIC = {
    getattr(aten, name)
    for name in (
        "empty",
        "empty_like",
        "empty_strided",
        "new_empty",
        "new_zeros",
        "zeros",
        "zeros_like",
        "ones",
        "ones_like",
        "full",
        "full_like",
        "fill_",
        "zero_",
        "arange",
        "scalar_tensor",
        "lift_fresh",
        "lift_fresh_copy",
        "view",
        "_unsafe_view",
        "reshape",
        "_reshape_alias",
        "t",
        "transpose",
        "permute",
        "expand",
        "unsqueeze",
        "squeeze",
        "select",
        "slice",
        "split",
        "split_with_sizes",
        "unbind",
        "as_strided",
        "alias",
        "detach",
        "clone",
        "copy_",
        "_to_copy",
        "cat",
        "stack",
        "index",
        "_unsafe_index",
        "index_select",
        "gather",
        "upsample_nearest2d",
        "constant_pad_nd",
        "floor",
        "clamp",
    )
}

# Elementwise ops: FLOPs per output element, for the estimate of what is not counted.
_ELEMENTWISE_COST = {
    "aten._native_batch_norm_legit_no_training": 2,
    "aten.native_batch_norm": 2,
    "aten._native_batch_norm_legit": 2,
    "aten.relu": 1,
    "aten.relu_": 1,
    "aten.add": 1,
    "aten.add_": 1,
    "aten.sub": 1,
    "aten.sub_": 1,
    "aten.mul": 1,
    "aten.mul_": 1,
    "aten.div": 1,
    "aten.div_": 1,
    "aten.sigmoid": 4,
    "aten.hardtanh": 1,
    "aten.hardtanh_": 1,
}


@dataclass
class FlopCount:
    """What :func:`count_flops` saw.

    Attributes:
        total: FLOPs of every counted op.
        by_module: FLOPs per module path and op name, from ``FlopCounterMode.get_flop_counts()``
            (a module's row includes its submodules'; the root is named after its class).
        by_op: FLOPs per op name.
        uncounted: executed ops with arithmetic and no formula: op name -> ``calls``, ``elements``
            (output elements), ``kind`` (``elementwise`` or ``other``) and ``estimated_flops``
            (elementwise only, else ``None``).
    """

    total: int
    by_module: dict[str, dict[str, int]]
    by_op: dict[str, int]
    uncounted: dict[str, dict] = field(default_factory=dict)

    def module(self, path: str) -> int:
        """FLOPs inside module ``path`` (e.g. ``"FamiPose.backbone"``).

        Modules reached through a method rather than ``__call__`` (``backbone.features``) have no
        row of their own: their FLOPs are the sum over their outermost called submodules.
        """
        if path in self.by_module:
            return sum(self.by_module[path].values())
        inside = {k for k in self.by_module if k.startswith(path + ".")}

        def ancestors(k: str):
            return (".".join(k.split(".")[:i]) for i in range(1, k.count(".") + 1))

        outermost = [k for k in inside if not any(a in inside for a in ancestors(k))]
        return sum(sum(self.by_module[k].values()) for k in outermost)

    def leaves(self, op: str) -> dict[str, int]:
        """FLOPs of ``op`` per innermost module that ran it (e.g. each deformable conv layer)."""
        having = {k: v[op] for k, v in self.by_module.items() if op in v and k != "Global"}
        return {k: f for k, f in having.items() if not any(o.startswith(k + ".") for o in having)}


class _OpRecorder(TorchDispatchMode):
    """Records executed ops (after FlopCounterMode's decompositions) that have no FLOP formula."""

    def __init__(self, counted: set):
        super().__init__()
        self.counted = counted
        self.ops: dict[str, list[int]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        packet = func._overloadpacket
        if packet in self.counted or packet in _NO_ARITHMETIC:
            return out
        tensors = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor) and t.is_floating_point()]
        if tensors:
            calls_elements = self.ops.setdefault(str(packet), [0, 0])
            calls_elements[0] += 1
            calls_elements[1] += sum(t.numel() for t in tensors)
        return out


def count_flops(fn: Callable, *args, **kwargs) -> FlopCount:
    """Run ``fn(*args, **kwargs)`` under inference mode and count its FLOPs.

    Works on meta tensors (no memory, no compute: build the model under ``torch.device("meta")``)
    and on real ones; the counts depend on shapes only.
    """
    counter = FlopCounterMode(display=False, custom_mapping=FLOP_FORMULAS)
    recorder = _OpRecorder(set(counter.flop_registry))
    with torch.inference_mode(), recorder, counter:  # the recorder sits below the counter
        fn(*args, **kwargs)
    by_module = {mod: {str(op): n for op, n in ops.items()} for mod, ops in counter.get_flop_counts().items()}
    uncounted = {}
    for name, (calls, elements) in sorted(recorder.ops.items(), key=lambda kv: -kv[1][1]):
        cost = _ELEMENTWISE_COST.get(name)
        uncounted[name] = {
            "calls": calls,
            "elements": elements,
            "kind": "elementwise" if cost else "other",
            "estimated_flops": cost * elements if cost else None,
        }
    return FlopCount(
        total=counter.get_total_flops(),
        by_module=by_module,
        by_op=dict(by_module.get("Global", {})),
        uncounted=uncounted,
    )


# result key -> FamiPose attribute, in the paper's order (same keys as FamiPose.parameter_groups)
MODULES = {
    "backbone": "backbone",
    "global_transformation": "global_transform",
    "local_calibration": "local_calibration",
    "aggregation": "aggregation",
    "head": "head",
}
DEFORM_OP = "torchvision.deform_conv2d"


def count_model_flops(model_cfg: ModelConfig) -> tuple[dict, dict]:
    """FLOPs per key frame (batch 1, on the meta device) and parameters, per module.

    Returns:
        ``(flops, params)`` as in the ``flops`` and ``params`` entries of ``--json`` (docs/profile.md).
    """
    from famicli.models.famipose import FamiPose

    with torch.device("meta"):
        model = FamiPose(model_cfg).eval()
    h, w = model_cfg.input_size
    s = model_cfg.num_support
    key = torch.empty(1, 3, h, w, device="meta")
    support = torch.empty(1, s, 3, h, w, device="meta")
    count = count_flops(model, key, support)
    crop = count_flops(model.backbone, key)  # the single-frame baseline: features + final_layer
    root = type(model).__name__
    modules = {name: count.module(f"{root}.{attr}") for name, attr in MODULES.items()}
    other = count.total - sum(modules.values())
    if other:
        modules["other"] = other
    groups = model.parameter_groups()
    deform = count.leaves(DEFORM_OP)
    flops = {
        "per_key_frame": _amount(count.total),
        "modules": {name: _amount(n) | {"share": n / count.total} for name, n in modules.items()},
        "by_op": {op: _amount(n) for op, n in sorted(count.by_op.items(), key=lambda kv: -kv[1])},
        "deformable": _amount(sum(deform.values()))
        | {
            "layers": {k.removeprefix(root + "."): _amount(n) for k, n in deform.items()},
        },
        "backbone_per_crop": _amount(crop.total)
        | {
            "gmacs_binary": crop.total / 2 / 2**30,
            "crops_per_key_frame": 1 + s,
        },
        "uncounted": count.uncounted,
    }
    params = {
        **groups,
        "total": sum(groups.values()),
        "backbone_baseline": sum(p.numel() for p in model.backbone.parameters()),
    }
    return flops, params


def _amount(flop: int) -> dict:
    return {"flops": int(flop), "gmacs": flop / 2e9, "gflops": flop / 1e9}
