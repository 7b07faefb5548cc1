"""Device, dtype and seed resolution, and the environment report of ``famipose info``."""

from __future__ import annotations

import platform
import random

import numpy as np
import torch

from famicli import __version__
from famicli.errors import ConfigError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> the first CUDA device if there is one, else CPU; ``cuda[:N]`` must exist.

    Raises:
        ConfigError: a CUDA device was asked for and none is available, or an unknown name.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but CUDA is not available (torch {torch.__version__})")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} does not exist; {torch.cuda.device_count()} CUDA device(s) found")
        return device
    raise ConfigError(f"unknown device {name!r}; choose from: auto, cpu, cuda, cuda:N")


def resolve_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ConfigError(f"unknown dtype {name!r}; choose from: {', '.join(DTYPES)}")
    return DTYPES[name]


def check_dtype(device: torch.device, name: str) -> None:
    """ConfigError if the model's kernels cannot run under the dtype's autocast on ``device``."""
    detail = _dtype_failure(device, name)
    if detail is not None:
        ok = [d for d in DTYPES if _dtype_failure(device, d) is None]
        raise ConfigError(
            f"dtype {name!r} is not supported on {device.type}: the model's ops fail under "
            f"{name} autocast ({detail}); choose from: {', '.join(ok)}"
        )


def _dtype_failure(device: torch.device, name: str) -> str | None:
    """Run a small conv + deformable conv (the model's dispatcher) + grid_sample under the dtype's
    autocast; the error, if any."""
    if name == "fp32":
        return None
    import torch.nn.functional as F

    from famicli.ops import dispatch_deform_conv2d

    x = torch.randn(1, 4, 5, 5, device=device)
    try:
        with torch.inference_mode(), torch.autocast(device.type, dtype=DTYPES[name]):
            y = F.conv2d(x, torch.randn(4, 4, 3, 3, device=device), padding=1)
            y = dispatch_deform_conv2d(
                y,
                torch.zeros(1, 18, 5, 5, device=device),
                torch.randn(4, 4, 3, 3, device=device),
                padding=1,
                mask=torch.ones(1, 9, 5, 5, device=device),
            )
            F.grid_sample(y, torch.zeros(1, 5, 5, 2, device=device), align_corners=True)
    except (RuntimeError, NotImplementedError) as exc:
        # e.g. "operator(), /path/deform_conv2d_kernel.cpp:234, \"deformable_im2col\" not implemented for 'BFloat16'"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return [part for part in first.split(", ") if "/" not in part][-1:][0][:160] if "/" in first else first[:160]
    return None


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def environment_info() -> dict:
    """Versions, and the device famipose would pick."""
    import torchvision

    device = resolve_device("auto")
    return {
        "famipose": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda (torch build)": torch.version.cuda or "none",
        "cuda available": torch.cuda.is_available(),
        "device": str(device) if device.type == "cpu" else f"{device} ({torch.cuda.get_device_name(device)})",
        "cpu threads": torch.get_num_threads(),
    }
