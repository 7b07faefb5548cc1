"""Training losses: heatmap MSE, the six MI terms, and the combined objective."""

from famicli.losses.heatmap import JointsMSELoss
from famicli.losses.mutual_info import ESTIMATORS, TERM_NAMES, MutualInformation
from famicli.losses.objective import FamiPoseCriterion, LossConfig, mi_weights, total_loss

__all__ = [
    "ESTIMATORS",
    "TERM_NAMES",
    "FamiPoseCriterion",
    "JointsMSELoss",
    "LossConfig",
    "MutualInformation",
    "mi_weights",
    "total_loss",
]
