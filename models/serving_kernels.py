"""keras-hub's Transformer encoder layers' inference as 2-D matmuls, for served graphs: the same
variables and values, in a form TensorFlow's CPU graph optimizer fuses.

keras-hub's ``TransformerEncoder`` computes its attention projections with ``EinsumDense``
(``abc,cde->abde``: an ``Einsum`` op on [batch, length, hidden]) and its feed-forward ``Dense``
layers on 3-D tensors, where the bias add and the GELU are separate element-wise passes: grappler's
remapper fuses a ``MatMul`` with its ``BiasAdd`` and activation only on 2-D operands. Profiled
(TensorFlow's profiler, a served BERT-small encoder, batch 32 x 16 pieces, 2-core Intel Xeon),
the einsums ran at about 60% of the matmuls' rate and the unfused bias adds and GELU took a fifth
of the op time; switched, the matmuls ran at the machine's peak and batch 32 served 1.12-1.37x
faster (``benchmarks/cpu_serving.py``, README).

``use_serving_kernels(model)`` switches every such layer of ``model`` to one that flattens the
tokens to [batch * length, hidden] and runs each projection as ``MatMul`` + ``BiasAdd`` (+
activation), which the remapper turns into one fused oneDNN matmul each; the attention itself
(scores, masked softmax, context) is computed as Keras's ``MultiHeadAttention`` computes it,
and the layer norms are the layers' own. The outputs equal Keras's within float rounding
(``tests/test_serving_kernels.py``: within 1e-5 for the classifier, span, tagger, CRF tagger and
pair models; every task's export is served in the end-to-end tests).

Only the inference path of an encoder layer in float32 with plain ``EinsumDense`` / ``Dense``
sublayers is switched; anything else (training, a custom attention mask, attention scores
requested, quantized, LoRA or mixed-precision layers) runs Keras's own ``call``. Every export
applies it to the model it serves (``models/compression.for_serving``, the embedder's export).
"""
from __future__ import annotations

import math
import types

import keras
import tensorflow as tf

QUERY_EQUATION = "abc,cde->abde"  # [batch, length, hidden] x [hidden, heads, head size]
OUTPUT_EQUATION = "abcd,cde->abe"  # [batch, length, heads, head size] x [heads, head size, hidden]


def _plain(layer, kind) -> bool:
    return (type(layer) is kind and layer.compute_dtype == "float32" and layer.quantization_mode is None
            and not getattr(layer, "lora_enabled", False)
            and all(v.dtype == "float32" for v in layer.weights))


def switchable(layer) -> bool:
    """Whether ``layer`` is a keras-hub ``TransformerEncoder`` whose inference this module can run."""
    from keras_hub.src.layers.modeling.transformer_encoder import TransformerEncoder

    if not isinstance(layer, TransformerEncoder) or not getattr(layer, "built", False):
        return False
    attention = layer._self_attention_layer
    projections = (attention._query_dense, attention._key_dense, attention._value_dense)
    return (all(_plain(p, keras.layers.EinsumDense) and p.equation == QUERY_EQUATION for p in projections)
            and _plain(attention._output_dense, keras.layers.EinsumDense)
            and attention._output_dense.equation == OUTPUT_EQUATION
            and list(attention._attention_axes) == [1]
            and _plain(layer._feedforward_intermediate_dense, keras.layers.Dense)
            and _plain(layer._feedforward_output_dense, keras.layers.Dense))


def _linear(rows, kernel, bias):
    """[rows, in] x ``kernel`` (reshaped to [in, out]) + ``bias``: MatMul + BiasAdd, which the
    remapper fuses (with an activation after it) into one matmul."""
    x = tf.matmul(rows, tf.reshape(kernel, [rows.shape[-1], -1]))
    return x if bias is None else tf.nn.bias_add(x, tf.reshape(bias, [-1]))


def _dense(layer, rows):
    """``layer`` (a Dense) on [rows, in], its activation after the fusable matmul."""
    x = _linear(rows, layer.kernel, layer.bias)
    return layer.activation(x) if layer.activation is not None else x


def _heads(rows, batch, length, heads, size):
    """[batch * length, heads * size] -> [batch, heads, length, size]."""
    return tf.transpose(tf.reshape(rows, [batch, length, heads, size]), [0, 2, 1, 3])


def _attention(attention, rows, batch, length, padding_mask):
    """Keras's MultiHeadAttention on flattened tokens: the query scaled, scores, a -1e9 bias on
    padded keys before the softmax (Keras's ``Softmax`` with a mask), the context."""
    heads, size = attention._query_dense.kernel.shape[1:]
    query, key, value = (_heads(_linear(rows, dense.kernel, dense.bias), batch, length, heads, size)
                         for dense in (attention._query_dense, attention._key_dense, attention._value_dense))
    scores = tf.matmul(query * (1.0 / math.sqrt(float(attention._key_dim))), key, transpose_b=True)
    if padding_mask is not None:
        padded = 1.0 - tf.cast(tf.reshape(padding_mask, [batch, 1, 1, length]), scores.dtype)
        scores += padded * -1e9
    context = tf.transpose(tf.matmul(tf.nn.softmax(scores, axis=-1), value), [0, 2, 1, 3])
    output = attention._output_dense
    return _linear(tf.reshape(context, [-1, heads * size]), output.kernel, output.bias)


def _encoder_call(self, inputs, padding_mask=None, attention_mask=None, training=None,
                  return_attention_scores=False, **kwargs):
    implicit_mask = padding_mask is None and getattr(inputs, "_keras_mask", None) is not None
    if training or attention_mask is not None or return_attention_scores or kwargs or implicit_mask:
        return type(self).call(self, inputs, padding_mask=padding_mask, attention_mask=attention_mask,
                               training=training, return_attention_scores=return_attention_scores, **kwargs)
    shape = tf.shape(inputs)
    batch, length, hidden = shape[0], shape[1], inputs.shape[-1]
    x = tf.reshape(inputs, [-1, hidden])
    residual = x
    if self.normalize_first:
        x = self._self_attention_layer_norm(x)
    x = _attention(self._self_attention_layer, x, batch, length, padding_mask) + residual
    if not self.normalize_first:
        x = self._self_attention_layer_norm(x)
    residual = x
    if self.normalize_first:
        x = self._feedforward_layer_norm(x)
    x = _dense(self._feedforward_output_dense, _dense(self._feedforward_intermediate_dense, x)) + residual
    if not self.normalize_first:
        x = self._feedforward_layer_norm(x)
    outputs = tf.reshape(x, shape)
    outputs.set_shape(inputs.shape)  # what Keras's call would have inferred for the next layer
    return outputs


def use_serving_kernels(*models: keras.Model) -> int:
    """Switches every switchable encoder layer of ``models`` (nested layers included) to run its
    inference as fusable 2-D matmuls; returns how many were switched. Like
    ``models/fast_kernels.py`` it replaces only the instances' ``call``: training (and every case
    ``switchable`` or the call itself leaves out) runs Keras's own, and a saved Keras model
    reloads with Keras's layers."""
    count = 0
    for model in models:
        for layer in model._flatten_layers(include_self=True, recursive=True):
            if switchable(layer) and getattr(layer.call, "__func__", None) is not _encoder_call:
                layer.call = types.MethodType(_encoder_call, layer)
                count += 1
    return count
