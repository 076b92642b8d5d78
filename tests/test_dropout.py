"""models/dropout.py: the packed-mask dropout drops at the (quantized) rate, keeps the
expectation, is deterministic per seed, trains through its gradient, and switching a model to
it changes neither its inference nor what is saved."""
import json

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from tfx_bert import features
from tfx_bert_app.models import dropout, pretraining

SEED = tf.constant([3, 7], tf.int32)


@pytest.fixture(autouse=True)
def float32_after():
    yield
    keras.mixed_precision.set_dtype_policy("float32")


def test_quantized_rate_is_the_nearest_multiple_of_a_65536th():
    assert dropout.quantized_rate(0.1) == 6554 / 65536
    assert abs(dropout.quantized_rate(0.1) - 0.1) < 1e-5
    assert dropout.quantized_rate(0.5) == 0.5


@pytest.mark.parametrize("shape", [(1000, 1001), (32, 2, 128, 128)])  # an odd element count, and attention's
def test_drops_at_the_rate_and_scales_the_rest(shape):
    x = tf.ones(shape)
    y = dropout.packed_mask_dropout(x, 0.1, SEED).numpy()
    kept = y != 0
    n = kept.size
    # The dropped share is a binomial mean: within 5 standard deviations of the rate.
    assert abs((1 - kept.mean()) - dropout.quantized_rate(0.1)) < 5 * np.sqrt(0.09 / n)
    np.testing.assert_allclose(y[kept], 1 / (1 - dropout.quantized_rate(0.1)), rtol=1e-6)
    assert abs(y.mean() - 1.0) < 5 * np.sqrt(0.1 / 0.9 / n)  # the expectation is the input


def test_the_decisions_are_independent_across_elements_and_halves():
    y = dropout.packed_mask_dropout(tf.ones([200_000]), 0.5, SEED).numpy() != 0
    # The two decisions taken from one 32-bit draw (even/odd elements) are uncorrelated.
    assert abs(np.corrcoef(y[0::2], y[1::2])[0, 1]) < 0.02
    assert abs(np.corrcoef(y[:-1], y[1:])[0, 1]) < 0.02


def test_a_seed_fixes_the_mask_and_another_seed_changes_it():
    x = tf.random.normal([64, 64], seed=1)
    a = dropout.packed_mask_dropout(x, 0.3, SEED)
    np.testing.assert_array_equal(a, dropout.packed_mask_dropout(x, 0.3, SEED))
    assert not np.array_equal(a, dropout.packed_mask_dropout(x, 0.3, tf.constant([3, 8], tf.int32)))


def test_the_extreme_rates():
    x = tf.random.normal([10, 10], seed=2)
    np.testing.assert_array_equal(dropout.packed_mask_dropout(x, 0.0, SEED), x)
    np.testing.assert_array_equal(dropout.packed_mask_dropout(x, 1.0, SEED), tf.zeros_like(x))


def test_the_gradient_is_the_mask_times_the_scale():
    x = tf.random.uniform([50, 40], 1.0, 2.0, seed=3)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = dropout.packed_mask_dropout(x, 0.2, SEED)
    np.testing.assert_allclose(tape.gradient(y, x), y / x, rtol=1e-6)


def test_half_precision_inputs_keep_their_dtype():
    y = dropout.packed_mask_dropout(tf.ones([100, 100], tf.bfloat16), 0.1, SEED)
    assert y.dtype == tf.bfloat16


def _pretraining_model():
    backbone = keras_hub.models.BertBackbone(vocabulary_size=60, num_layers=2, num_heads=2, hidden_dim=16,
                                             intermediate_dim=32, max_sequence_length=16)
    return pretraining.build_pretraining_model(backbone)


def _batch():
    rng = np.random.default_rng(0)
    return {features.TOKEN_IDS: tf.constant(rng.integers(5, 60, (4, 8)), tf.int32),
            features.SEGMENT_IDS: tf.zeros((4, 8), tf.int32), features.PADDING_MASK: tf.ones((4, 8), tf.int32),
            features.MASK_POSITIONS: tf.constant([[1, 2]] * 4, tf.int32)}


def test_a_switched_model_drops_in_training_only_and_saves_as_before(tmp_path):
    model = _pretraining_model()
    config_before = json.loads(model.to_json())
    # Embeddings; per encoder layer: attention probabilities, attention output, feed-forward.
    assert dropout.use_packed_dropout(model) == 1 + 2 * 3
    assert json.loads(model.to_json()) == config_before
    batch = _batch()
    graph = tf.function(lambda b: model(b, training=True)).get_concrete_function(batch).graph
    op_types = [op.type for op in graph.get_operations()]
    # Every mask is drawn as 32-bit integers (two decisions each), none as Keras's float uniforms.
    assert op_types.count("StatelessRandomUniformFullIntV2") == 7
    assert "StatelessRandomUniformV2" not in op_types
    inference = model(batch, training=False)["mlm"]
    assert not np.allclose(model(batch, training=True)["mlm"], inference)
    # What pretraining saves is the backbone: it loads as keras-hub's, with Keras's Dropout.
    backbone = next(layer for layer in model.layers if isinstance(layer, keras_hub.models.BertBackbone))
    backbone.save(tmp_path / "backbone.keras")
    loaded = keras.saving.load_model(tmp_path / "backbone.keras", compile=False)
    dropouts = [layer for layer in loaded._flatten_layers() if isinstance(layer, keras.layers.Dropout)]
    assert len(dropouts) == 7 and all("call" not in vars(layer) for layer in dropouts)
    inputs = {k: batch[k] for k in features.MODEL_INPUT_KEYS}
    np.testing.assert_allclose(loaded(inputs, training=False)["sequence_output"],
                               backbone(inputs, training=False)["sequence_output"], rtol=1e-5, atol=1e-6)


def test_a_switched_model_trains_under_each_policy_and_with_xla():
    for policy, jit in (("float32", False), ("mixed_bfloat16", False), ("float32", True)):
        keras.mixed_precision.set_dtype_policy(policy)
        model = _pretraining_model()
        dropout.use_packed_dropout(model)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=jit,
                      loss={pretraining.MLM: keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                            pretraining.NSP: keras.losses.SparseCategoricalCrossentropy(from_logits=True)})
        labels = {pretraining.MLM: tf.constant([[7, 9]] * 4), pretraining.NSP: tf.constant([0, 1, 0, 1])}
        data = tf.data.Dataset.from_tensors((_batch(), labels)).repeat()
        before = model.evaluate(data, steps=1, verbose=0)[0]
        model.fit(data, steps_per_epoch=30, epochs=1, verbose=0)
        after = model.evaluate(data, steps=1, verbose=0)[0]
        assert after < 0.5 * before, (policy, jit, before, after)
