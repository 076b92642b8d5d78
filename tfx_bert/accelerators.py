"""From the Trainer's configured resources to its tf.distribute strategy and precision.

The same resources that the Kubeflow runner writes into the compiled spec decide how the
Trainer trains, so a config that asks for 8 GPUs also trains with MirroredStrategy on them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the configuration imports this module to resolve "auto"
    from tfx_bert.config import ProjectConfig, ResourceConfig


def distribution_for(resources: ResourceConfig) -> str:
    """The strategy ``distribution: auto`` picks for these Trainer resources."""
    if resources.is_tpu:
        return "tpu"
    if resources.replicas > 1:
        return "multi_worker"
    if resources.gpus > 1:
        return "mirrored"
    return "default"


def precision_for(resources: ResourceConfig) -> str:
    """The Keras dtype policy ``mixed_precision: auto`` picks (empty: float32)."""
    if resources.is_tpu:
        return "mixed_bfloat16"
    if resources.gpus:
        return "mixed_float16"
    return ""


def training_strategy(config: ProjectConfig) -> tuple[str, str]:
    """(distribution, mixed_precision) of the pretraining Trainer, ``auto`` resolved."""
    p, trainer = config.pretrain, config.resources.trainer
    distribution = distribution_for(trainer) if p.distribution == "auto" else p.distribution
    precision = precision_for(trainer) if p.mixed_precision == "auto" else p.mixed_precision
    return distribution, "" if precision == "float32" else precision
