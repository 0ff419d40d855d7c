"""TopK SAE trainer and metrics."""

from sae_core.train.metrics import ce_recovered, dead_fraction, evaluate, fvu, l0
from sae_core.train.trainer import TrainConfig, geometric_median, init_sae, train

__all__ = [
    "TrainConfig",
    "train",
    "init_sae",
    "geometric_median",
    "evaluate",
    "ce_recovered",
    "fvu",
    "l0",
    "dead_fraction",
]
