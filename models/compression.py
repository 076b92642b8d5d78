"""Weight compression of a trained task model for serving (``finetune.export_precision``,
``distill.export_precision``).

* ``float32``: the model as trained.
* ``float16``: a float16 copy (weights and compute): half the size; fast where the hardware has
  half-precision matrix units (GPU tensor cores), slower on most CPUs.
* ``int8``: Keras's weight quantization (``Model.quantize("int8")``: int8 kernels with a float
  scale per output channel in the Dense / EinsumDense layers, activations quantized on the fly);
  about a third of the size; on CPU it buys memory, not speed (measured in
  ``benchmarks/compression.py``).

The trained model is left as it is (the teacher a later distillation loads keeps its policy):
the served model is a copy. A model trained under a mixed policy (``finetune.mixed_precision``)
is served as a float32 copy at ``float32``. Outputs are cast back to float32 by the tasks'
exports, so the served signatures change with neither the training nor the served precision.
"""
from __future__ import annotations

import warnings

import keras
import tensorflow as tf

from tfx_bert_app.models import precision as precision_lib
from tfx_bert_app.models import serving_kernels

PRECISIONS = ("float32", "float16", "int8")


def _retyped_config(node, dtype: str):
    """A model config with every float32 or mixed dtype policy (nested at any depth) set to
    ``dtype``."""
    if isinstance(node, dict):
        if node.get("class_name") == "DTypePolicy" and isinstance(node.get("config"), dict):
            if node["config"].get("name") in precision_lib.POLICIES:
                return {**node, "config": {**node["config"], "name": dtype}}
            return node
        return {key: (dtype if key == "dtype" and value in precision_lib.POLICIES else _retyped_config(value, dtype))
                for key, value in node.items()}
    if isinstance(node, list):
        return [_retyped_config(value, dtype) for value in node]
    return node


def _copy(model: keras.Model, dtype: str = "float32") -> keras.Model:
    """A copy of ``model`` (same architecture and weights) whose floats are ``dtype``."""
    copy = type(model).from_config(_retyped_config(model.get_config(), dtype))
    weights = {v.path: v for v in model.weights}
    missing = [v.path for v in copy.weights if v.path not in weights]
    if missing:
        raise ValueError(f"Cannot copy {model.name} for compression: no weights {missing[:3]} in the trained model.")
    for variable in copy.weights:
        variable.assign(tf.cast(weights[variable.path], variable.dtype))
    return copy


def for_serving(model: keras.Model, precision: str) -> keras.Model:
    """The model to export at ``precision`` (one of ``PRECISIONS``), its float32 encoder layers
    switched to ``models/serving_kernels.py``'s fusable inference."""
    if precision == "float32":
        mixed = any(layer.dtype_policy.name != "float32" for layer in model._flatten_layers())
        served = _copy(model) if mixed else model
        serving_kernels.use_serving_kernels(served)
        return served
    if precision == "float16":
        return _copy(model, "float16")
    if precision == "int8":
        quantized = _copy(model)
        with warnings.catch_warnings():  # one per layer without weights to quantize (Add, Dropout, ...)
            warnings.filterwarnings("ignore", message=".*does not have a `quantize` method")
            quantized.quantize("int8")
        return quantized
    raise ValueError(f"export_precision must be one of {', '.join(PRECISIONS)}; got {precision!r}.")
