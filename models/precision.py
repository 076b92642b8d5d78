"""Mixed precision for the models the pipeline trains: the Keras dtype policy of a run, and what
a model actually computes in (the check behind tests/test_precision.py and the benchmarks).

Under ``mixed_bfloat16`` / ``mixed_float16`` the variables stay float32 and the layers compute in
the half type, so the matmuls (nearly all of BERT's FLOPs) run on the hardware's fast path. What
must stay float32 does, explicitly: layer normalisation (Keras computes it in float32), every
loss (Keras losses and the tasks' own cast the logits to float32 first), the CRF, sentence
pooling and the cosine / in-batch similarity layers (``dtype="float32"``: sums over a sequence
and scores divided by a small temperature lose too much in 8 bits of mantissa). The served
models are float32 copies (``models/compression.for_serving``) unless ``export_precision`` asks
for less, so a client sees the same signatures whatever the training precision.
``mixed_float16`` also scales the loss (Keras wraps the optimizer when the model compiles).
"""
from __future__ import annotations

import collections

import keras
import tensorflow as tf

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
# The ops that carry a BERT's FLOPs: their dtype is the precision the model really trains in.
MATMUL_OPS = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum", "_MklMatMul",
              "_FusedMatMul", "_MklFusedMatMul")


def resolve(name: str) -> str:
    """The policy ``name`` stands for: ``auto`` (a run_fn whose settings did not come through
    ``tfx_bert.config.load_config``, which resolves it from the Trainer's resources) picks
    ``mixed_float16`` when TensorFlow sees a GPU, else float32; ``""`` is float32."""
    if name == "auto":
        return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"
    name = name or "float32"
    if name not in POLICIES:
        raise ValueError(f"mixed_precision must be one of {', '.join(POLICIES)} (or auto); got {name!r}.")
    return name


def use_policy(name: str) -> str:
    """Sets the Keras dtype policy the models built next in this process follow (every run_fn
    sets it, float32 included, so one Trainer's policy never leaks into the next); returns it."""
    policy = resolve(name)
    keras.mixed_precision.set_dtype_policy(policy)
    return policy


def compute_dtypes(model: keras.Model) -> dict[str, str]:
    """{layer path: compute dtype} of every layer of ``model``, nested models included."""
    return {layer.path or layer.name: layer.compute_dtype for layer in model._flatten_layers(include_self=False)}


def matmul_dtypes(model: keras.Model, inputs) -> collections.Counter:
    """{dtype: number of matmul-like ops} in the graph of one training-mode forward pass of
    ``model`` on ``inputs`` (nested function graphs included): where the FLOPs really run."""
    graph = tf.function(lambda x: model(x, training=True)).get_concrete_function(inputs).graph
    counts: collections.Counter = collections.Counter()

    def walk(g):
        for op in g.get_operations():
            if op.type in MATMUL_OPS:
                counts[tf.as_dtype(op.get_attr("T")).name] += 1
        for function in getattr(g, "_functions", {}).values():
            if hasattr(function, "graph"):
                walk(function.graph)

    walk(graph)
    return counts
