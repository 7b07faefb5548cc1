"""famipose: FAMI-Pose (Liu et al., CVPR 2022) as a pip-installable toolkit.

The public API is imported lazily so that ``famipose --help`` does not import torch.
"""

from importlib import import_module

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "build_model": "famicli.models.famipose",
    "FamiPose": "famicli.models.famipose",
    "load_model": "famicli.models.checkpoint",
    "save_checkpoint": "famicli.models.checkpoint",
    "evaluate": "famicli.metrics.scoring",
    "profile_model": "famicli.profiling.profiler",
    "predict_video": "famicli.inference.predictor",
    "PredictConfig": "famicli.inference.predictor",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'famicli' has no attribute {name!r}")
