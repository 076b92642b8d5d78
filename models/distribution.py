"""tf.distribute strategy from configuration, and per-replica batch arithmetic.

``distribution``: ``default`` (one device), ``mirrored`` (all local GPUs), ``multi_worker``
(``MultiWorkerMirroredStrategy``; the cluster comes from ``TF_CONFIG``), ``tpu``
(``TPUStrategy``; ``tpu`` names the TPU, empty for the local/VM TPU). Batch sizes in the config
are global; each replica gets ``global // num_replicas``.
"""
from __future__ import annotations

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def make_strategy(name: str = "default", tpu: str = "") -> tf.distribute.Strategy:
    """The strategy named in the config (see the module docstring)."""
    if name in ("", "default"):
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"Unknown distribution {name!r}; choose one of {', '.join(STRATEGIES)}.")


def per_replica_batch_size(global_batch_size: int, strategy: tf.distribute.Strategy) -> int:
    """Global batch split across replicas; it must divide evenly."""
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(
            f"Global batch size {global_batch_size} does not divide across {replicas} replicas; "
            f"use a multiple of {replicas}.")
    return global_batch_size // replicas


def distribute(strategy: tf.distribute.Strategy, dataset: tf.data.Dataset, global_batch_size: int):
    """Prepares a globally batched dataset for Keras ``fit`` under ``strategy``.

    Keras splits each global batch across replicas; across workers the records are sharded by
    element (``AutoShardPolicy.DATA``), which works whatever the number of input files.
    """
    per_replica_batch_size(global_batch_size, strategy)  # validates divisibility
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
