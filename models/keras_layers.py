"""Keras layers that several tasks' models share: sentence pooling and the sentence encoder,
pair features and the cosine, the in-batch score matrix of contrastive training, and the
reshapes between candidate lists and one candidate per row. Registered for Keras
serialization (``tfx_bert>Name``), so saved task models load wherever this module is imported."""
from __future__ import annotations

import keras
import tensorflow as tf

from tfx_bert import features


@keras.saving.register_keras_serializable(package="tfx_bert")
class Pooling(keras.layers.Layer):
    """Sequence states -> one vector: the mean or the maximum over real pieces (as
    sentence-transformers pools), or the [CLS] state."""

    def __init__(self, mode: str = "mean", **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, sequence, padding_mask):
        if self.mode == "cls":
            return sequence[:, 0]
        mask = tf.cast(padding_mask, sequence.dtype)[:, :, None]
        if self.mode == "max":
            return tf.reduce_max(sequence * mask - (1.0 - mask) * 1e9, axis=1)
        return tf.reduce_sum(sequence * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def build_sentence_encoder(backbone, pooling: str, name: str = "sentence_encoder") -> keras.Model:
    """BERT -> pooling: one sentence's embedding [batch, hidden]."""
    inputs = {key: keras.Input(shape=(None,), dtype="int32", name=key) for key in features.MODEL_INPUT_KEYS}
    sequence = backbone(inputs)["sequence_output"]
    return keras.Model(inputs, Pooling(pooling, name="pooling", dtype="float32")(sequence, inputs[features.PADDING_MASK]),
                       name=name)


@keras.saving.register_keras_serializable(package="tfx_bert")
class Cosine(keras.layers.Layer):
    def call(self, u, v):
        return tf.reduce_sum(tf.math.l2_normalize(u, -1) * tf.math.l2_normalize(v, -1), axis=-1)


@keras.saving.register_keras_serializable(package="tfx_bert")
class PairFeatures(keras.layers.Layer):
    """[u, v, |u - v|] (Sentence-BERT's classification features)."""

    def call(self, u, v):
        return tf.concat([u, v, tf.abs(u - v)], axis=-1)


def dense_string_matrix(tensor, width: int):
    """A string list feature (sparse or dense) -> [batch, width]."""
    if isinstance(tensor, tf.SparseTensor):
        tensor = tf.sparse.to_dense(tensor, default_value="")
    return tf.reshape(tensor, [-1, width])


@keras.saving.register_keras_serializable(package="tfx_bert")
class InBatchLogits(keras.layers.Layer):
    """Cosine of every query with every passage of the batch, over the temperature:
    [batch, batch + batch * num_negatives]; column i is query i's positive."""

    def __init__(self, temperature: float = 0.05, **kwargs):
        super().__init__(**kwargs)
        self.temperature = temperature

    def call(self, queries, passages):
        queries = tf.math.l2_normalize(queries, -1)
        passages = tf.math.l2_normalize(passages, -1)
        return tf.matmul(queries, passages, transpose_b=True) / self.temperature

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


@keras.saving.register_keras_serializable(package="tfx_bert")
class Unstack(keras.layers.Layer):
    """[batch, n * seq] -> [batch * n, seq] (n passages per example, one per row). With ``count``
    (n) the rows are split by count, whatever their width: a training batch cut to its longest
    passage (``models/length_buckets.py``) has n * (less than ``seq_len``) columns."""

    def __init__(self, seq_len: int, count: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seq_len, self.count = seq_len, count

    def call(self, x):
        if self.count:
            return tf.reshape(x, [tf.shape(x)[0] * self.count, tf.shape(x)[1] // self.count])
        return tf.reshape(x, [-1, self.seq_len])

    def get_config(self):
        return {**super().get_config(), "seq_len": self.seq_len, "count": self.count}


@keras.saving.register_keras_serializable(package="tfx_bert")
class Restack(keras.layers.Layer):
    """Scores [batch * c] -> [batch, c] (one row of candidates per query)."""

    def __init__(self, num_candidates: int, **kwargs):
        super().__init__(**kwargs)
        self.num_candidates = num_candidates

    def call(self, x):
        return tf.reshape(x, [-1, self.num_candidates])

    def get_config(self):
        return {**super().get_config(), "num_candidates": self.num_candidates}
