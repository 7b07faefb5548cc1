"""Which deformable convolution runs: torchvision's kernel or famipose's (:mod:`famicli.ops.deform`).

The choice, in order of precedence:

1. :func:`set_dcn_implementation` (process-wide, e.g. from a test or a script);
2. the environment variable ``FAMIPOSE_DCN``, read at every call;
3. ``auto``.

``auto`` runs famipose's implementation where it is faster and proven equal: on CPU, for float32 and
float64 tensors, outside CPU autocast. Everywhere else (CUDA, half types) it runs
``torchvision.ops.deform_conv2d``. ``torchvision`` and ``famipose`` force one implementation on every
device, except the meta device: FLOP counting (:mod:`famicli.flops`) always sees torchvision's op.
"""

from __future__ import annotations

import os

import torch
import torchvision.ops

from famicli.errors import ConfigError
from famicli.ops.deform import deform_conv2d

IMPLEMENTATIONS = ("auto", "famipose", "torchvision")
ENV_VAR = "FAMIPOSE_DCN"

_override: str | None = None


def _checked(name: str, source: str) -> str:
    if name not in IMPLEMENTATIONS:
        raise ConfigError(f"unknown deformable convolution implementation {name!r} ({source}); "
                          f"choose from: {', '.join(IMPLEMENTATIONS)}")  # fmt: skip
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
    if input.device.type == "meta":  # FLOP counting (famicli.flops) counts torchvision's op
        return "torchvision"
    if name != "auto":
        return name
    cpu_fast_path = (
        input.device.type == "cpu"
        and input.dtype in (torch.float32, torch.float64)
        and not torch.is_autocast_enabled("cpu")
    )
    return "famipose" if cpu_fast_path else "torchvision"


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
    """``torchvision.ops.deform_conv2d`` (same arguments and shapes), run by :func:`resolve_dcn`'s choice."""
    op = deform_conv2d if resolve_dcn(input) == "famipose" else torchvision.ops.deform_conv2d
    return op(input, offset, weight, bias, stride=stride, padding=padding, dilation=dilation, mask=mask)


class DeformConv2d(torchvision.ops.DeformConv2d):
    """``torchvision.ops.DeformConv2d`` (same arguments, parameters and state-dict keys) whose forward
    goes through :func:`dispatch_deform_conv2d`.

    Forward: input (B, C_in, H, W), offset (B, 2*G*kh*kw, H_out, W_out), mask (B, G*kh*kw, H_out,
    W_out) or None -> (B, C_out, H_out, W_out).
    """

    def forward(self, input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return dispatch_deform_conv2d(input, offset, self.weight, self.bias, stride=self.stride,
                                      padding=self.padding, dilation=self.dilation, mask=mask)  # fmt: skip
