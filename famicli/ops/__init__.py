"""Tensor operations with a faster path than the library op, each proven equal to it by a test.

- :func:`deform_conv2d`: ``torchvision.ops.deform_conv2d``'s semantics, ~4x faster forward and ~5x
  faster backward on CPU (``benchmarks/dcn_speed.py``; ``famicli_tests/test_deform.py``).
- :func:`dispatch_deform_conv2d` / :class:`DeformConv2d`: what the model calls; torchvision's kernel
  or famipose's, chosen by ``FAMIPOSE_DCN=auto|famipose|torchvision`` or :func:`set_dcn_implementation`.
"""

from famicli.ops.deform import deform_conv2d
from famicli.ops.dispatch import (
    ENV_VAR,
    IMPLEMENTATIONS,
    DeformConv2d,
    dcn_implementation,
    dispatch_deform_conv2d,
    resolve_dcn,
    set_dcn_implementation,
)

__all__ = [
    "ENV_VAR",
    "IMPLEMENTATIONS",
    "DeformConv2d",
    "dcn_implementation",
    "deform_conv2d",
    "dispatch_deform_conv2d",
    "resolve_dcn",
    "set_dcn_implementation",
]
