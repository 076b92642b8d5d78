"""Faster kernels for three Keras layers while a Trainer fits a model: dropout masks from half
the random bits, layer normalization as one fused op, and BERT's GELU in fewer ops with a
hand-written gradient. Same functions, same variables, same configs.

On a CPU a small BERT's training step is matmuls plus a long tail of element-wise ops, and two
layers own much of that tail (``benchmarks/step_profile.py``, BERT-tiny at seq 128, vocabulary
512, on a 2-core Intel Xeon): dropout's random draw (``StatelessRandomUniformV2``, 7.8% of the
op time) and layer normalization (12%, as ``keras.ops.layer_normalization``'s mean, variance,
rsqrt and products, and their gradients).

**Dropout.** Keras draws one float32 uniform number per element (Philox) and keeps the element
when it is at least the rate. A keep decision needs far fewer than 32 bits: TensorFlow's own
float uniform carries 23, and 16 resolve the rate to 1/65,536. ``packed_mask_dropout`` takes
two elements' decisions from one 32-bit draw, so Philox runs half as often. The rate becomes
``round(rate * 65536) / 65536`` (0.1 -> 0.1000061) and the kept values are scaled by the
inverse of the kept share, so the expected output still equals the input. Measured: 29% less
time for the dropout itself (forward and backward, 1M elements); BERT-tiny's training step
1.06x as fast.

**Layer normalization.** ``fused_layer_norm`` normalizes each row with TensorFlow's fused
batch-norm kernel (``FusedBatchNormV3`` in training mode over a [1, rows, width, 1] NCHW view:
one "channel" per row), then applies gamma and beta; its gradient is one fused op too. The
epsilon is passed to the raw op unchanged (``tf.nn.fused_batch_norm`` would raise BERT's 1e-12
to 1.001e-5). It computes in float32 like Keras's. It is used only where no GPU or TPU is
visible: cuDNN's kernel refuses an epsilon that small, and there XLA or cuDNN fuse anyway.
BERT-tiny's training step: 1.04x on top of the dropout on the Intel Xeon. On a 2-core AMD EPYC
the same fused kernel made BERT-tiny's step about 16% slower (18,921 against 22,538 tokens/s,
the other two kernels on in both), so by default it runs on Intel CPUs only
(``fused_layer_norms_pay_off``).

**GELU.** keras-hub's BERT computes the tanh form of GELU, ``0.5 x (1 + tanh(c (x + 0.044715
x^3)))``, as 8 element-wise ops over the feed-forward's widest tensor (4,096 x 2,048 floats in
BERT-small at batch 32), and autodiff makes its gradient about 14 more: each a full pass over
memory. ``tanh_gelu`` computes the same function as ``x * sigmoid(2c x (1 + 0.044715 x^2))``
(since ``(1 + tanh z) / 2 = sigmoid(2z)``) with a hand-written gradient, each direction one
XLA-fused loop (``jit_compile`` on just those two functions, inside a step that is not compiled
itself). Measured forward and backward: 17 ms against 52 (32 x 128 x 2,048), 2.2 against 8.0
(32 x 128 x 512). Each intermediate feed-forward ``Dense`` whose activation is keras-hub's
``gelu_approximate`` runs it while training; inference keeps Keras's path, so exports do not
depend on XLA.

``use_fast_kernels`` switches a built model's ``Dropout``, ``LayerNormalization`` and tanh-GELU
``Dense`` layers. It replaces only the instances' ``call``: layer classes and configs stay
Keras's, so a saved Keras model reloads with Keras's layers. A SavedModel traced from the
switched model itself (a float32 export) computes its layer norms with the fused op (standard
TensorFlow, the same values within float rounding); its dropout and GELU are Keras's there.
"""
from __future__ import annotations

import math
import types

import keras
import tensorflow as tf

RESOLUTION = 1 << 16  # keep decisions are made on 16 random bits


def _threshold(rate: float) -> int:
    """How many of the 65,536 values of 16 random bits drop an element."""
    return round(rate * RESOLUTION)


def quantized_rate(rate: float) -> float:
    """The drop rate ``packed_mask_dropout`` applies for ``rate``: the nearest multiple of
    1/65,536."""
    return _threshold(rate) / RESOLUTION


def packed_mask_dropout(inputs, rate: float, seed):
    """``inputs`` with each element zeroed with probability ``quantized_rate(rate)`` and the rest
    scaled by 1 / (1 - that), decided by 16 bits each of ceil(n / 2) stateless 32-bit Philox
    draws (``seed``: a [2] int32 tensor, as ``tf.random.stateless_*`` takes)."""
    threshold = _threshold(rate)
    if threshold == 0:
        return inputs
    if threshold >= RESOLUTION:
        return tf.zeros_like(inputs)
    size = tf.size(inputs)
    bits = tf.random.stateless_uniform(tf.reshape((size + 1) // 2, [1]), seed=seed, minval=None, maxval=None,
                                       dtype=tf.uint32)
    halves = tf.reshape(tf.bitcast(bits, tf.uint16), [-1])[:size]
    keep = tf.reshape(halves >= tf.constant(threshold, tf.uint16), tf.shape(inputs))
    scale = tf.cast(RESOLUTION / (RESOLUTION - threshold), inputs.dtype)
    return tf.where(keep, inputs * scale, tf.zeros_like(inputs))


def _seed(generator: keras.random.SeedGenerator):
    # The generator's state is int64 (a TF placement constraint); the stateless ops, and XLA,
    # want int32: the same fold Keras's own TensorFlow dropout applies.
    seed = generator.next()
    if seed.dtype != tf.int32:
        seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
    return seed


def _packed_call(self, inputs, training=False):
    if not training or self.rate == 0:
        return inputs
    if self.noise_shape is not None:  # a broadcast mask: Keras's own path
        return type(self).call(self, inputs, training=training)
    return packed_mask_dropout(inputs, self.rate, _seed(self.seed_generator))


def fused_layer_norm(inputs, gamma, beta, epsilon: float):
    """Layer normalization over the last axis (Keras's, with its float32 compute) as one
    ``FusedBatchNormV3`` over a view with one channel per row; ``epsilon`` exactly as given."""
    x = tf.cast(inputs, tf.float32)
    shape = tf.shape(x)
    rows = tf.reduce_prod(shape[:-1])
    ones = tf.ones(tf.reshape(rows, [1]), tf.float32)
    empty = tf.constant([], tf.float32)
    normalized, *_ = tf.raw_ops.FusedBatchNormV3(
        x=tf.reshape(x, tf.stack([1, rows, shape[-1], 1])), scale=ones, offset=tf.zeros_like(ones), mean=empty,
        variance=empty, epsilon=epsilon, exponential_avg_factor=1.0, data_format="NCHW", is_training=True)
    outputs = tf.reshape(normalized, shape) * tf.cast(gamma, tf.float32) + tf.cast(beta, tf.float32)
    return tf.cast(outputs, inputs.dtype)


def _fused_norm_call(self, inputs):
    axes = self.axis if isinstance(self.axis, (list, tuple)) else [self.axis]
    rank = len(inputs.shape)
    if list(axes) not in ([-1], [rank - 1]) or not (self.center and self.scale) or self.rms_scaling:
        return type(self).call(self, inputs)  # another layout: Keras's own path
    return tf.cast(fused_layer_norm(inputs, self.gamma, self.beta, self.epsilon), self.compute_dtype)


# tanh-form GELU as x * sigmoid(x * (C0 + C1 * x^2)): 0.5 * (1 + tanh(z)) = sigmoid(2z).
_GELU_C0 = 2.0 * math.sqrt(2.0 / math.pi)
_GELU_C1 = _GELU_C0 * 0.044715


def _tanh_gelu_value(x):
    return x * tf.sigmoid(x * (_GELU_C0 + _GELU_C1 * (x * x)))


def _tanh_gelu_gradient(x, upstream):
    # d/dx [x * s(b(x))] = s + x * s * (1 - s) * b'(x), with b'(x) = C0 + 3 * C1 * x^2.
    square = x * x
    gate = tf.sigmoid(x * (_GELU_C0 + _GELU_C1 * square))
    return upstream * (gate + x * (gate - gate * gate) * (_GELU_C0 + (3.0 * _GELU_C1) * square))


# Each direction is one XLA-fused loop (one read of x, one write), however the step around it
# is compiled: an element-wise chain over the feed-forward's widest tensor is memory-bound.
_fused_value = tf.function(_tanh_gelu_value, jit_compile=True, reduce_retracing=True)
_fused_gradient = tf.function(_tanh_gelu_gradient, jit_compile=True, reduce_retracing=True)


@tf.custom_gradient
def tanh_gelu(x):
    """keras-hub BERT's GELU (``keras.activations.gelu(x, approximate=True)``: Hendrycks and
    Gimpel's tanh form, as google-research BERT) as one XLA-fused loop forward and one for its
    hand-written gradient, which recomputes the sigmoid from ``x`` instead of keeping it; the
    same dtype as ``x``."""
    def grad(upstream):
        return _fused_gradient(x, upstream)

    return _fused_value(x), grad


def _tanh_gelu_dense_call(self, inputs, training=None):
    # keras.layers.Dense.call with its activation replaced by the same function's fused form,
    # while training; inference (and so every export) keeps Keras's own path.
    if not training:
        return type(self).call(self, inputs, training=training)
    x = keras.ops.matmul(inputs, self.kernel)
    if self.bias is not None:
        x = keras.ops.add(x, self.bias)
    return tanh_gelu(x)


def _is_tanh_gelu_dense(layer) -> bool:
    from keras_hub.src.utils.keras_utils import gelu_approximate

    return (type(layer) is keras.layers.Dense and layer.activation is gelu_approximate
            and layer.quantization_mode is None)


def _accelerator_visible() -> bool:
    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def _cpu_vendor() -> str:
    """/proc/cpuinfo's vendor_id ("GenuineIntel", "AuthenticAMD"), or "" where there is none."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def fused_layer_norms_pay_off() -> bool:
    """Whether ``fused_layer_norm`` is the faster layer norm here: on an Intel CPU with no GPU or
    TPU visible, the only place it was measured faster (see the module docstring)."""
    return not _accelerator_visible() and _cpu_vendor() == "GenuineIntel"


def use_fast_kernels(model: keras.Model, fuse_layer_norms: bool | None = None) -> dict:
    """Makes every ``keras.layers.Dropout`` in ``model`` (nested layers included) draw its masks
    with ``packed_mask_dropout`` from its own seed generator, and every
    ``keras.layers.LayerNormalization`` run ``fused_layer_norm`` (``fuse_layer_norms``; None:
    where ``fused_layer_norms_pay_off``), and every ``Dense`` with keras-hub's tanh GELU run
    ``tanh_gelu`` while training. Call it before the model's training function is traced
    (before ``fit``). Returns how many layers of each kind were switched."""
    switched = {"dropout": 0, "layer_norm": 0, "gelu": 0}
    fuse_norms = fused_layer_norms_pay_off() if fuse_layer_norms is None else fuse_layer_norms
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if _is_tanh_gelu_dense(layer):
            layer.call = types.MethodType(_tanh_gelu_dense_call, layer)
            switched["gelu"] += 1
        elif isinstance(layer, keras.layers.Dropout):
            layer.call = types.MethodType(_packed_call, layer)
            switched["dropout"] += 1
        elif fuse_norms and isinstance(layer, keras.layers.LayerNormalization):
            layer.call = types.MethodType(_fused_norm_call, layer)
            switched["layer_norm"] += 1
    return switched
