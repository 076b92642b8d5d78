"""models/fast_kernels.py: the packed-mask dropout drops at the (quantized) rate, keeps the
expectation, is deterministic per seed and trains through its gradient; the fused layer norm
equals Keras's, gradients included, at BERT's epsilon; switching a model changes neither its
inference nor what is saved, and it trains under each policy and with XLA."""
import json

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from tfx_bert import features
from tfx_bert_app.models import fast_kernels, pretraining

SEED = tf.constant([3, 7], tf.int32)


@pytest.fixture(autouse=True)
def float32_after():
    yield
    keras.mixed_precision.set_dtype_policy("float32")


def test_quantized_rate_is_the_nearest_multiple_of_a_65536th():
    assert fast_kernels.quantized_rate(0.1) == 6554 / 65536
    assert abs(fast_kernels.quantized_rate(0.1) - 0.1) < 1e-5
    assert fast_kernels.quantized_rate(0.5) == 0.5


@pytest.mark.parametrize("shape", [(1000, 1001), (32, 2, 128, 128)])  # an odd element count, and attention's
def test_drops_at_the_rate_and_scales_the_rest(shape):
    x = tf.ones(shape)
    y = fast_kernels.packed_mask_dropout(x, 0.1, SEED).numpy()
    kept = y != 0
    n = kept.size
    # The dropped share is a binomial mean: within 5 standard deviations of the rate.
    assert abs((1 - kept.mean()) - fast_kernels.quantized_rate(0.1)) < 5 * np.sqrt(0.09 / n)
    np.testing.assert_allclose(y[kept], 1 / (1 - fast_kernels.quantized_rate(0.1)), rtol=1e-6)
    assert abs(y.mean() - 1.0) < 5 * np.sqrt(0.1 / 0.9 / n)  # the expectation is the input


def test_the_decisions_are_independent_across_elements_and_halves():
    y = fast_kernels.packed_mask_dropout(tf.ones([200_000]), 0.5, SEED).numpy() != 0
    # The two decisions taken from one 32-bit draw (even/odd elements) are uncorrelated.
    assert abs(np.corrcoef(y[0::2], y[1::2])[0, 1]) < 0.02
    assert abs(np.corrcoef(y[:-1], y[1:])[0, 1]) < 0.02


def test_a_seed_fixes_the_mask_and_another_seed_changes_it():
    x = tf.random.normal([64, 64], seed=1)
    a = fast_kernels.packed_mask_dropout(x, 0.3, SEED)
    np.testing.assert_array_equal(a, fast_kernels.packed_mask_dropout(x, 0.3, SEED))
    assert not np.array_equal(a, fast_kernels.packed_mask_dropout(x, 0.3, tf.constant([3, 8], tf.int32)))


def test_the_extreme_rates():
    x = tf.random.normal([10, 10], seed=2)
    np.testing.assert_array_equal(fast_kernels.packed_mask_dropout(x, 0.0, SEED), x)
    np.testing.assert_array_equal(fast_kernels.packed_mask_dropout(x, 1.0, SEED), tf.zeros_like(x))


def test_the_gradient_is_the_mask_times_the_scale():
    x = tf.random.uniform([50, 40], 1.0, 2.0, seed=3)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fast_kernels.packed_mask_dropout(x, 0.2, SEED)
    np.testing.assert_allclose(tape.gradient(y, x), y / x, rtol=1e-6)


def test_half_precision_inputs_keep_their_dtype():
    y = fast_kernels.packed_mask_dropout(tf.ones([100, 100], tf.bfloat16), 0.1, SEED)
    assert y.dtype == tf.bfloat16


@pytest.mark.parametrize("scale", [1.0, 1e-4])  # 1e-4: a variance far below 1e-5, where epsilon's exact value shows
def test_the_fused_layer_norm_equals_keras_and_so_do_its_gradients(scale):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(3, 5, 16)).astype("float32") * scale + 2.0 * scale)
    gamma, beta = tf.constant(rng.normal(size=16).astype("float32")), tf.constant(rng.normal(size=16).astype("float32"))
    weights = tf.constant(rng.normal(size=(3, 5, 16)).astype("float32"))
    results = []
    for norm in (lambda *a: keras.ops.layer_normalization(*a, epsilon=1e-12),
                 lambda *a: fast_kernels.fused_layer_norm(*a, epsilon=1e-12)):
        with tf.GradientTape() as tape:
            tape.watch([x, gamma, beta])
            y = norm(x, gamma, beta)
            loss = tf.reduce_sum(y * weights)
        results.append([y, *tape.gradient(loss, [x, gamma, beta])])
    for ours, theirs in zip(results[1], results[0]):
        np.testing.assert_allclose(ours, theirs, rtol=2e-4, atol=2e-4 * float(tf.reduce_max(tf.abs(theirs))))


@pytest.mark.parametrize("dtype, tolerance", [("float32", 2e-6), ("bfloat16", 2e-2)])
def test_tanh_gelu_equals_keras_and_so_does_its_gradient(dtype, tolerance):
    # From -12 (deep in the tail, where the tanh form cancels to 0) to 12.
    x = tf.cast(tf.linspace(-12.0, 12.0, 4001), dtype)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours, theirs = fast_kernels.tanh_gelu(x), keras.activations.gelu(x, approximate=True)
    assert ours.dtype == theirs.dtype == tf.as_dtype(dtype)
    for a, b in ((ours, theirs), (tape.gradient(ours, x), tape.gradient(theirs, x))):
        a, b = tf.cast(a, tf.float32).numpy(), tf.cast(b, tf.float32).numpy()
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance * 10)
    # Against the float64 definition, in float32: no worse than Keras's own float32 result.
    x64 = np.linspace(-12.0, 12.0, 4001)
    exact = 0.5 * x64 * (1 + np.tanh(np.sqrt(2 / np.pi) * (x64 + 0.044715 * x64**3)))
    if dtype == "float32":
        assert np.max(np.abs(ours.numpy() - exact)) <= np.max(np.abs(theirs.numpy() - exact)) + 1e-6


def test_only_keras_hubs_tanh_gelu_is_switched():
    layers = [keras.layers.Dense(4, activation=a) for a in ("gelu", "relu", None)]
    model = keras.Sequential([keras.Input((3,)), *layers])
    assert fast_kernels.use_fast_kernels(model)["gelu"] == 0
    assert all("call" not in vars(layer) for layer in layers)


def test_a_layer_norm_over_another_axis_keeps_keras_path():
    layer = keras.layers.LayerNormalization(axis=1, epsilon=1e-12)
    x = tf.random.normal([2, 6, 4], seed=4)
    expected = layer(x)
    model = keras.Sequential([keras.Input((6, 4)), layer])
    assert fast_kernels.use_fast_kernels(model, fuse_layer_norms=True) == {"dropout": 0, "layer_norm": 1, "gelu": 0}
    np.testing.assert_allclose(layer(x), expected, rtol=1e-6)


@pytest.mark.parametrize("vendor,fused", [("GenuineIntel", 6), ("AuthenticAMD", 0), ("", 0)])
def test_layer_norms_are_fused_by_default_only_on_intel_cpus(monkeypatch, vendor, fused):
    monkeypatch.setattr(fast_kernels, "_cpu_vendor", lambda: vendor)
    monkeypatch.setattr(fast_kernels, "_accelerator_visible", lambda: False)  # the CPU rule, on any machine
    assert fast_kernels.use_fast_kernels(_pretraining_model())["layer_norm"] == fused
    assert fast_kernels.use_fast_kernels(_pretraining_model(), fuse_layer_norms=False)["layer_norm"] == 0


def test_the_cpu_vendor_is_read_from_proc_cpuinfo():
    with open("/proc/cpuinfo") as cpuinfo:
        expected = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("vendor_id"))
    assert fast_kernels._cpu_vendor() == expected


def _pretraining_model():
    backbone = keras_hub.models.BertBackbone(vocabulary_size=60, num_layers=2, num_heads=2, hidden_dim=16,
                                             intermediate_dim=32, max_sequence_length=16)
    return pretraining.build_pretraining_model(backbone)


def _batch():
    rng = np.random.default_rng(0)
    return {features.TOKEN_IDS: tf.constant(rng.integers(5, 60, (4, 8)), tf.int32),
            features.SEGMENT_IDS: tf.zeros((4, 8), tf.int32), features.PADDING_MASK: tf.ones((4, 8), tf.int32),
            features.MASK_POSITIONS: tf.constant([[1, 2]] * 4, tf.int32)}


def _gelu_calls(graph) -> int:
    """How many ops of ``graph`` call the XLA-compiled GELU function."""
    return sum(1 for op in graph.get_operations() if op.type in ("PartitionedCall", "StatefulPartitionedCall")
               and "tanh_gelu_value" in op.get_attr("f").name)


def test_a_switched_model_drops_in_training_only_and_saves_as_before(tmp_path):
    model = _pretraining_model()
    config_before = json.loads(model.to_json())
    # Dropout: embeddings; per encoder layer attention probabilities, attention output and
    # feed-forward. Layer norms: embeddings, two per encoder layer, the MLM head's. GELU: each
    # encoder layer's intermediate feed-forward (the MLM head's transform has keras-hub's
    # "gelu" string, the erf form, which keeps Keras's path).
    switched = fast_kernels.use_fast_kernels(model, fuse_layer_norms=True)
    assert switched == {"dropout": 1 + 2 * 3, "layer_norm": 1 + 2 * 2 + 1, "gelu": 2}
    assert json.loads(model.to_json()) == config_before
    batch = _batch()
    graph = tf.function(lambda b: model(b, training=True)).get_concrete_function(batch).graph
    op_types = [op.type for op in graph.get_operations()]
    # Every mask is drawn as 32-bit integers (two decisions each), none as Keras's float uniforms.
    assert op_types.count("StatelessRandomUniformFullIntV2") == 7
    assert "StatelessRandomUniformV2" not in op_types
    assert op_types.count("FusedBatchNormV3") == 6  # every layer norm is one fused op
    # Both encoder GELUs are calls of the XLA-fused function now; the one tanh left is the
    # pooler's activation. Inference keeps Keras's tanh GELU.
    assert _gelu_calls(graph) == 2 and op_types.count("Tanh") == 1 and "Pow" not in op_types
    inference_graph = tf.function(lambda b: model(b, training=False)).get_concrete_function(batch).graph
    assert _gelu_calls(inference_graph) == 0
    assert [op.type for op in inference_graph.get_operations()].count("Tanh") == 3
    inference = model(batch, training=False)["mlm"]
    assert not np.allclose(model(batch, training=True)["mlm"], inference)
    # What pretraining saves is the backbone: it loads as keras-hub's, with Keras's Dropout.
    backbone = next(layer for layer in model.layers if isinstance(layer, keras_hub.models.BertBackbone))
    backbone.save(tmp_path / "backbone.keras")
    loaded = keras.saving.load_model(tmp_path / "backbone.keras", compile=False)
    dropouts = [layer for layer in loaded._flatten_layers() if isinstance(layer, keras.layers.Dropout)]
    assert len(dropouts) == 7 and all("call" not in vars(layer) for layer in dropouts)
    inputs = {k: batch[k] for k in features.MODEL_INPUT_KEYS}
    norms = [layer for layer in loaded._flatten_layers() if isinstance(layer, keras.layers.LayerNormalization)]
    assert len(norms) == 5 and all("call" not in vars(layer) for layer in norms)
    np.testing.assert_allclose(loaded(inputs, training=False)["sequence_output"],
                               backbone(inputs, training=False)["sequence_output"], rtol=1e-5, atol=1e-5)


def test_a_switched_model_trains_under_each_policy_and_with_xla():
    for policy, jit in (("float32", False), ("mixed_bfloat16", False), ("float32", True)):
        keras.mixed_precision.set_dtype_policy(policy)
        model = _pretraining_model()
        fast_kernels.use_fast_kernels(model)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=jit,
                      loss={pretraining.MLM: keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                            pretraining.NSP: keras.losses.SparseCategoricalCrossentropy(from_logits=True)})
        labels = {pretraining.MLM: tf.constant([[7, 9]] * 4), pretraining.NSP: tf.constant([0, 1, 0, 1])}
        data = tf.data.Dataset.from_tensors((_batch(), labels)).repeat()
        before = model.evaluate(data, steps=1, verbose=0)[0]
        model.fit(data, steps_per_epoch=30, epochs=1, verbose=0)
        after = model.evaluate(data, steps=1, verbose=0)[0]
        assert after < 0.5 * before, (policy, jit, before, after)
