"""models/serving_kernels.py: encoder layers switched to 2-D matmuls answer as Keras's do, and
only where the switch applies."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import tiny_backbone
from tests.test_length_buckets import FULL, MODELS, VOCAB, _batch, _task_batch
from tfx_bert_app.models import compression, serving_kernels


def _traced(model):
    """``model``'s inference as a traced graph (what an export saves)."""
    return tf.function(lambda x: model(x, training=False), autograph=False)


def _batched_matmuls(function, x) -> int:
    """How many batched matmuls (Einsum, BatchMatMul) ``function`` traces to. Keras's encoder
    layer has six: the four attention projections (``EinsumDense`` on [batch, length, hidden])
    and the attention's scores and context; switched, only the last two remain."""
    import collections

    graph = function.get_concrete_function(x).graph
    types = collections.Counter(op.type for op in graph.get_operations())
    for fn in graph._functions.values():  # nested functions, where Keras traced any
        types.update(node.op for node in fn.definition.node_def)
    return sum(n for op, n in types.items() if op.startswith("BatchMatMul") or op == "Einsum")


def _switched_layers(model):
    return [layer for layer in model._flatten_layers(include_self=True, recursive=True)
            if getattr(layer.call, "__func__", None) is serving_kernels._encoder_call]


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_each_task_model_answers_the_same_switched_with_2d_projections(kind):
    tf.keras.utils.set_random_seed(0)
    model = MODELS[kind][0]()
    x = {k: tf.constant(v) for k, v in _task_batch(kind)[0].items()}  # rows of 2-13 real pieces in 32
    sides = 2 if kind == "pair" else 1  # a pair model runs its one encoder on each side
    keras_graph = _traced(model)
    expected = keras_graph(x)
    assert _batched_matmuls(keras_graph, x) == 6 * sides

    assert serving_kernels.use_serving_kernels(model) == 1  # the one encoder layer (shared by a pair's sides)
    assert serving_kernels.use_serving_kernels(model) == 0  # already switched
    switched = _traced(model)
    np.testing.assert_allclose(switched(x).numpy(), expected.numpy(), atol=1e-5)
    assert _batched_matmuls(switched, x) == 2 * sides


@pytest.mark.parametrize("normalize_first", [False, True])
def test_a_layer_answers_as_keras_pre_and_post_norm_with_padded_rows(normalize_first):
    from keras_hub.layers import TransformerEncoder

    tf.keras.utils.set_random_seed(1)
    layer = TransformerEncoder(intermediate_dim=24, num_heads=4, normalize_first=normalize_first)
    x = tf.random.normal([3, 10, 16])
    mask = tf.constant(_batch([10, 4, 1], full=10)["padding_mask"])
    expected = layer(x, padding_mask=mask)
    assert serving_kernels.use_serving_kernels(layer) == 1
    np.testing.assert_allclose(layer(x, padding_mask=mask).numpy(), expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(layer(x).numpy(), TransformerEncoder.call(layer, x).numpy(), atol=1e-5)  # no mask


def test_training_a_custom_mask_and_attention_scores_run_keras_own_call():
    backbone = tiny_backbone(VOCAB, FULL)
    layer = backbone.transformer_layers[0]
    serving_kernels.use_serving_kernels(backbone)
    x = tf.random.normal([2, 8, 16])
    full = tf.ones([2, 8, 8], tf.int32)
    calls = {
        "training": lambda h: layer(h, training=True),
        "attention mask": lambda h: layer(h, attention_mask=full),
        "scores": lambda h: layer(h, return_attention_scores=True)[0],
        "inference": lambda h: layer(h),
    }
    batched = {name: _batched_matmuls(tf.function(call, autograph=False), x) for name, call in calls.items()}
    assert batched == {"training": 6, "attention mask": 6, "scores": 6, "inference": 2}


def test_exports_switch_float32_models_only():
    tf.keras.utils.set_random_seed(0)
    model = MODELS["classifier"][0]()
    half = compression.for_serving(model, "float16")
    quantized = compression.for_serving(model, "int8")
    assert _switched_layers(half) == [] and _switched_layers(quantized) == []
    assert not any(serving_kernels.switchable(layer) for layer in half._flatten_layers())
    assert not any(serving_kernels.switchable(layer) for layer in quantized._flatten_layers())
    served = compression.for_serving(model, "float32")
    assert served is model and len(_switched_layers(model)) == 1


def test_a_layer_not_built_or_of_another_kind_is_not_switched():
    from keras_hub.layers import TransformerEncoder

    assert not serving_kernels.switchable(TransformerEncoder(intermediate_dim=8, num_heads=2))
    assert not serving_kernels.switchable(keras.layers.Dense(4))
