"""Which deformable convolution runs: torchvision's kernel or famipose's (:mod:`famicli.ops.deform`).

The choice, in order of precedence:

1. :func:`set_dcn_implementation` (process-wide, e.g. from a test or a script);
2. the environment variable ``FAMIPOSE_DCN``, read at every call;
3. ``auto``.

``auto`` runs famipose's implementation on CPU, where it is faster and proven equal, and
``torchvision.ops.deform_conv2d`` on CUDA. ``torchvision`` and ``famipose`` force one implementation
on every device, except the meta device: FLOP counting (:mod:`famicli.profiling.flops`) always sees
torchvision's op.

Reduced precision on CPU (``torch.autocast("cpu", torch.bfloat16)``, or bfloat16/float16 tensors):
neither implementation has a half-precision CPU kernel (torchvision's raises "not implemented for
'BFloat16'"), so the chosen one runs in float32 there, on the inputs cast up, outside autocast; its
float32 output goes on to the next (autocast) layer. The convolutions around it keep their bf16
kernels (oneDNN, AMX where the CPU has it).
"""

from __future__ import annotations

import os

import torch
import torchvision.ops

from famicli.errors import ConfigError
from famicli.ops.deform import deform_conv2d

IMPLEMENTATIONS = ("auto", "famipose", "torchvision")
HALF = (torch.bfloat16, torch.float16)
ENV_VAR = "FAMIPOSE_DCN"

_override: str | None = None


def _checked(name: str, source: str) -> str:
    if name not in IMPLEMENTATIONS:
        raise ConfigError(
            f"unknown deformable convolution implementation {name!r} ({source}); "
            f"choose from: {', '.join(IMPLEMENTATIONS)}"
        )
    return name


def set_dcn_implementation(name: str | None) -> str | None:
    """Force ``name`` (``auto``, ``famipose`` or ``torchvision``) for this process, over ``FAMIPOSE_DCN``;
    ``None`` goes back to the environment variable. Returns the previous setting, to restore it.

    Raises:
        ConfigError: an unknown name, with the choices.
    """
    global _override
    previous = _override
    _override = None if name is None else _checked(name, "set_dcn_implementation")
    return previous


def dcn_implementation() -> str:
    """The configured choice: :func:`set_dcn_implementation`'s, else ``$FAMIPOSE_DCN``, else ``auto``.

    Raises:
        ConfigError: ``FAMIPOSE_DCN`` names no implementation.
    """
    if _override is not None:
        return _override
    env = os.environ.get(ENV_VAR, "").strip().lower()
    return _checked(env, f"${ENV_VAR}") if env else "auto"


def resolve_dcn(input: torch.Tensor) -> str:
    """``famipose`` or ``torchvision``: the implementation a call on ``input`` runs."""
    name = dcn_implementation()
    if input.device.type == "meta":  # FLOP counting (famicli.profiling.flops) counts torchvision's op
        return "torchvision"
    if name != "auto":
        return name
    return "famipose" if input.device.type == "cpu" else "torchvision"


def dispatch_deform_conv2d(
    input: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``torchvision.ops.deform_conv2d`` (same arguments and shapes), run by :func:`resolve_dcn`'s choice;
    on CPU under autocast or on half-precision tensors, in float32 (see the module docstring)."""
    op = deform_conv2d if resolve_dcn(input) == "famipose" else torchvision.ops.deform_conv2d
    if input.device.type == "cpu" and (torch.is_autocast_enabled("cpu") or input.dtype in HALF):
        with torch.autocast("cpu", enabled=False):
            up = [None if t is None else t.float() for t in (input, offset, weight, bias, mask)]
            return op(up[0], up[1], up[2], up[3], stride=stride, padding=padding, dilation=dilation, mask=up[4])
    return op(input, offset, weight, bias, stride=stride, padding=padding, dilation=dilation, mask=mask)


class DeformConv2d(torchvision.ops.DeformConv2d):
    """``torchvision.ops.DeformConv2d`` (same arguments, parameters and state-dict keys) whose forward
    goes through :func:`dispatch_deform_conv2d`.

    Forward: input (B, C_in, H, W), offset (B, 2*G*kh*kw, H_out, W_out), mask (B, G*kh*kw, H_out,
    W_out) or None -> (B, C_out, H_out, W_out).
    """

    def forward(self, input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return dispatch_deform_conv2d(
            input,
            offset,
            self.weight,
            self.bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            mask=mask,
        )
