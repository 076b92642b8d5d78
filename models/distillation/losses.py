"""The soft-target losses, one per kind of head: ``keras.distillation.LogitsDistillation``
(``softmax_distillation``; softmax heads over the last axis: classification, list-wise
re-ranking scores: KL at temperature T, times T^2), and here, where Keras lacks them:
``SigmoidLogitsDistillation`` (multi-label), ``WordLogitsDistillation`` (per-word tags: KL over
the words that exist, padding masked), ``SpanDistillation`` (QA: the start and end distributions
over a window's pieces), ``EmbeddingDistillation`` (sentence embeddings: MSE),
``MarginMSEDistillation`` (re-ranking margins) and ``InBatchMarginMSE`` (a re-ranker's margins
into a dual encoder's in-batch matrix)."""
from __future__ import annotations

import keras
import tensorflow as tf


def softmax_distillation(temperature: float):
    """``keras.distillation.LogitsDistillation`` for softmax heads, with KL divergence given as a
    ``keras.losses.KLDivergence`` instance: Keras 3.15's default ``loss="kl_divergence"``
    resolves to the plain function, which skips the softmax and computes "KL" on raw logits
    (negative losses, the student drifting away)."""
    return keras.distillation.LogitsDistillation(temperature=temperature, loss=keras.losses.KLDivergence())


class SigmoidLogitsDistillation(keras.distillation.DistillationLoss):
    """Multi-label heads: each label's sigmoid at temperature T is a soft target (binary cross
    entropy against the teacher's), times T^2 as for softmax."""

    def __init__(self, temperature: float = 2.0):
        self.temperature = float(temperature)

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        t = self.temperature
        targets = keras.ops.sigmoid(keras.ops.divide(teacher_outputs, t))
        loss = keras.losses.binary_crossentropy(targets, keras.ops.divide(student_outputs, t), from_logits=True)
        return keras.ops.mean(loss) * t * t

    def get_config(self):
        return {"temperature": self.temperature}


class SpanDistillation(keras.distillation.DistillationLoss):
    """Extractive QA heads (start and end logits per piece, [batch, seq, 2]): KL between the
    teacher's and the student's start distributions over the window's pieces, and their end
    distributions, at temperature T, times T^2 (padding is -1e9 in both: probability 0)."""

    def __init__(self, temperature: float = 2.0):
        self.temperature = float(temperature)

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        t = self.temperature
        teacher = tf.cast(teacher_outputs, tf.float32) / t
        student = tf.cast(student_outputs, tf.float32) / t
        kl = tf.reduce_sum(tf.nn.softmax(teacher, axis=1)
                           * (tf.nn.log_softmax(teacher, axis=1) - tf.nn.log_softmax(student, axis=1)), axis=1)
        return tf.reduce_mean(kl) * t * t

    def get_config(self):
        return {"temperature": self.temperature}


class EmbeddingDistillation(keras.distillation.DistillationLoss):
    """Outputs matched by mean squared error: sentence embeddings (sentence-transformers' model
    distillation), or a bi-encoder's cosine scores (the similarity task's student)."""

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        losses = [keras.ops.mean(keras.ops.square(keras.ops.subtract(t, s)))
                  for t, s in zip(keras.tree.flatten(teacher_outputs), keras.tree.flatten(student_outputs))]
        return keras.ops.sum(keras.ops.stack(losses))

    def get_config(self):
        return {}


class MarginMSEDistillation(keras.distillation.DistillationLoss):
    """Candidate lists of a re-ranker (scores [batch, 1 + n], the relevant passage first): the
    student's margins s(relevant) - s(negative) matched to the teacher's by mean squared error
    (Margin-MSE, Hofstaetter et al. 2020). Margins, not raw scores: a cross-encoder's scores have
    no fixed scale, its ordering is what the student must keep. No temperature."""

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        teacher = tf.cast(teacher_outputs, tf.float32)
        student = tf.cast(student_outputs, tf.float32)
        teacher_margins = teacher[:, :1] - teacher[:, 1:]
        student_margins = student[:, :1] - student[:, 1:]
        return tf.reduce_mean(tf.square(teacher_margins - student_margins))

    def get_config(self):
        return {}


class InBatchMarginMSE(MarginMSEDistillation):
    """A cross-encoder's candidate scores [batch, 1 + n] (the positive first) distilled into a
    dual encoder, whose output is its in-batch score matrix [batch, batch * (1 + n)] (columns:
    the batch's positives, then each query's n hard negatives in order): each query's own
    positive and negatives are taken from its row, then Margin-MSE."""

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        student = tf.cast(student_outputs, tf.float32)
        batch = tf.shape(student)[0]
        n = tf.shape(teacher_outputs)[1] - 1
        positives = tf.linalg.diag_part(student[:, :batch])
        negatives = tf.reshape(student[:, batch:], [batch, batch, n])  # [query, owner, j]
        own = tf.gather_nd(negatives, tf.stack([tf.range(batch), tf.range(batch)], axis=1))  # [batch, n]
        return super().compute_loss(teacher_outputs, tf.concat([positives[:, None], own], axis=1))


class MarkPaddedWords(keras.layers.Layer):
    """Per-word logits [batch, words, tags] -> the same, NaN in the word slots that hold no word
    (``word_positions`` < 0): how ``WordLogitsDistillation`` tells them apart, since a Keras
    distillation loss sees only the two models' outputs."""

    def call(self, logits, positions):
        present = keras.ops.expand_dims(keras.ops.greater_equal(positions, 0), -1)
        return keras.ops.where(present, logits, keras.ops.full_like(logits, float("nan")))


def mark_padded_words(teacher: keras.Model, positions_key: str) -> keras.Model:
    """The (frozen) per-word teacher, its padded word slots NaN (``MarkPaddedWords``)."""
    inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in teacher.input}
    return keras.Model(inputs, MarkPaddedWords()(teacher(inputs), inputs[positions_key]),
                       name=f"{teacher.name}_words")


class WordLogitsDistillation(keras.distillation.DistillationLoss):
    """Per-word softmax heads (NER tags; a CRF's emissions): KL between the teacher's and the
    student's tag distributions at temperature T, times T^2, averaged over the words that exist
    (the teacher comes through ``mark_padded_words``), so padding neither dilutes nor adds."""

    def __init__(self, temperature: float = 2.0):
        self.temperature = float(temperature)

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        t = self.temperature
        present = tf.logical_not(tf.math.is_nan(teacher_outputs[..., 0]))
        teacher = tf.where(present[..., None], tf.cast(teacher_outputs, tf.float32), 0.0) / t
        student = tf.cast(student_outputs, tf.float32) / t
        kl = tf.reduce_sum(tf.nn.softmax(teacher) * (tf.nn.log_softmax(teacher) - tf.nn.log_softmax(student)), -1)
        weights = tf.cast(present, tf.float32)
        return tf.reduce_sum(kl * weights) / tf.maximum(tf.reduce_sum(weights), 1.0) * t * t

    def get_config(self):
        return {"temperature": self.temperature}
