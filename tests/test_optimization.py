"""models.optimization: the warm-up then linear-decay learning-rate schedule, the non-finite
loss stop, and FusedAdamW against Keras's AdamW (updates, decay exclusions, op count, XLA,
distribution strategies and loss scaling)."""
import collections

import numpy as np
import pytest

from tfx_bert_app.models import optimization


def test_warmup_then_linear_decay():
    schedule = optimization.WarmupLinearDecay(1.0, warmup_steps=10, total_steps=110)
    values = [float(schedule(s)) for s in (0, 5, 10, 60, 110, 200)]
    np.testing.assert_allclose(values, [0.0, 0.5, 1.0, 0.5, 0.0, 0.0], atol=1e-6)


def test_a_non_finite_loss_fails_the_run_naming_the_step_and_the_setting():
    import keras

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.array([[1.0]] * 4 + [[np.nan]] * 4, "float32")
    with pytest.raises(FloatingPointError, match=r"loss became nan at step 3\. Lower the learning rate "
                                                 r"\(finetune.learning_rate\)"):
        model.fit(x, np.ones((8, 1), "float32"), batch_size=2, shuffle=False, verbose=0,
                  callbacks=[optimization.FailOnNonFiniteLoss("finetune.learning_rate")])


def _toy_model(seed: int = 0):
    """Embedding (a sparse gradient), a decayed kernel, an excluded bias and layer norm."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,), dtype="int32")
    x = keras.layers.Embedding(20, 8, name="embeddings")(inputs)
    x = keras.layers.LayerNormalization(name="layer_norm")(x)
    x = keras.layers.Dense(8, activation="gelu", name="dense")(x)
    outputs = keras.layers.Dense(3, name="logits")(keras.layers.GlobalAveragePooling1D()(x))
    return keras.Model(inputs, outputs)


def _train(optimizer, steps: int = 6, distribution=None, jit_compile=False):
    import contextlib

    import keras

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 20, (32, 6)).astype("int32"), rng.integers(0, 3, (32,))
    with distribution.scope() if distribution else contextlib.nullcontext():
        model = _toy_model()
        model.compile(optimizer=optimizer(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      jit_compile=jit_compile)
    model.fit(x, y, batch_size=8, epochs=steps // 4, shuffle=False, verbose=0)
    return model


def _bert_adamw(fused: bool, **betas):
    """optimization.adamw's settings (schedule, decay exclusions, global clipping) on either class."""
    import keras

    kind = optimization.FusedAdamW if fused else keras.optimizers.AdamW
    optimizer = kind(learning_rate=optimization.WarmupLinearDecay(0.05, 2, 8), weight_decay=0.1, epsilon=1e-6,
                     global_clipnorm=1.0, **betas)
    optimizer.exclude_from_weight_decay(var_names=optimization.WEIGHT_DECAY_EXCLUDED)
    return optimizer


def test_fused_adamw_updates_exactly_as_keras_adamw():
    import tensorflow as tf

    # The same gradients (an embedding's as IndexedSlices, as a gather gives them) through
    # three steps of each: the same variables and moments up to float rounding. The betas are
    # dyadic so that 1 - beta is exact in float32: TensorFlow's kernel forms it in float32,
    # Keras in Python's double (with beta_2 = 0.999 that alone moves the second moment by
    # 1.3e-5 relative, the next test's case).
    rng = np.random.default_rng(1)
    results = []
    for fused in (True, False):
        model = _toy_model()
        optimizer = _bert_adamw(fused, beta_1=0.875, beta_2=1 - 2**-10)
        for step in range(3):
            grads = [tf.constant(rng.normal(size=w.shape).astype("float32") * (step + 1)) for w in model.trainable_weights]
            grads[0] = tf.IndexedSlices(grads[0][:4], tf.constant([1, 3, 3, 7]), tf.constant(grads[0].shape))
            optimizer.apply(grads, model.trainable_weights)
        rng = np.random.default_rng(1)
        results.append((model, optimizer))
    (fused_model, fused_opt), (keras_model, keras_opt) = results
    assert int(fused_opt.iterations.numpy()) == 3
    for ours, theirs in zip(fused_model.weights + fused_opt.variables, keras_model.weights + keras_opt.variables):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=2e-6, atol=1e-8, err_msg=ours.path)


@pytest.mark.parametrize("jit_compile", [False, True])  # XLA compiles ResourceApplyAdam too
def test_fused_adamw_trains_as_keras_adamw(jit_compile):
    # Through fit, where rounding differences feed back through the model.
    fused = _train(lambda: _bert_adamw(True), 8, jit_compile=jit_compile)
    reference = _train(lambda: _bert_adamw(False), 8)
    assert int(fused.optimizer.iterations.numpy()) == 8
    for ours, theirs, start in zip(fused.weights, reference.weights, _toy_model().weights):
        assert not np.allclose(ours.numpy(), start.numpy()), ours.path
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5, err_msg=ours.path)


def test_fused_adamw_decays_only_the_weights_it_should():
    import keras

    # With no gradient step (learning rate 0 for Adam's part is impossible, so zero gradients:
    # Adam's update is then 0) only the decay moves the weights: kernels shrink, biases and
    # layer norm's gamma and beta stay.
    model = _toy_model()
    before = {w.path: w.numpy() for w in model.trainable_weights}
    optimizer = optimization.FusedAdamW(learning_rate=0.5, weight_decay=0.2)
    optimizer.exclude_from_weight_decay(var_names=optimization.WEIGHT_DECAY_EXCLUDED)
    optimizer.apply([keras.ops.zeros_like(w) for w in model.trainable_weights], model.trainable_weights)
    for w in model.trainable_weights:
        excluded = any(name in w.path for name in ("bias", "layer_norm"))
        np.testing.assert_allclose(w.numpy(), before[w.path] * (1.0 if excluded else 0.9), rtol=1e-6, err_msg=w.path)


def test_fused_adamw_runs_one_kernel_per_variable():
    import keras
    import tensorflow as tf

    def update_ops(optimizer):
        model = _toy_model()
        variables = model.trainable_weights
        optimizer.build(variables)
        graph = tf.function(lambda: optimizer.apply([keras.ops.ones_like(w) for w in variables],
                                                    variables)).get_concrete_function().graph
        return collections.Counter(op.type for op in graph.get_operations()), len(variables)

    fused, count = update_ops(_bert_adamw(True))
    keras_ops, _ = update_ops(_bert_adamw(False))
    assert fused["ResourceApplyAdam"] == count
    assert keras_ops["ResourceApplyAdam"] == 0
    assert sum(fused.values()) * 2 < sum(keras_ops.values()), (sum(fused.values()), sum(keras_ops.values()))


def test_fused_adamw_under_a_distribution_strategy_and_loss_scaling():
    import keras
    import tensorflow as tf

    # MirroredStrategy (one CPU here) updates through distribution.extended.update and each
    # variable's local copy; LossScaleOptimizer wraps it as mixed_float16 training does.
    mirrored = _train(lambda: _bert_adamw(True), 8, tf.distribute.MirroredStrategy(["CPU:0"]))
    reference = _train(lambda: _bert_adamw(False), 8)
    for ours, theirs in zip(mirrored.weights, reference.weights):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5, err_msg=ours.path)
    scaled = _train(lambda: keras.optimizers.LossScaleOptimizer(_bert_adamw(True)), 8)
    for ours, theirs in zip(scaled.weights, reference.weights):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5, err_msg=ours.path)


def test_fused_adamw_refuses_amsgrad():
    with pytest.raises(ValueError, match="amsgrad"):
        optimization.FusedAdamW(amsgrad=True)
