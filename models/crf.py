"""A linear-chain CRF over word tags: training log-likelihood (forward algorithm) and Viterbi
decoding, in TF core ops only (tf.scan), so the decoder runs in-graph in TF Serving."""
from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfx_bert")
class CRF(keras.layers.Layer):
    """Holds the tag transition scores; the forward pass passes the emission logits through."""

    def __init__(self, num_tags: int, **kwargs):
        super().__init__(**kwargs)
        self.num_tags = num_tags

    def build(self, input_shape):
        self.transitions = self.add_weight(shape=(self.num_tags, self.num_tags), name="transitions",
                                           initializer=keras.initializers.RandomUniform(-0.1, 0.1))

    def call(self, logits):
        return logits

    def get_config(self):
        return dict(super().get_config(), num_tags=self.num_tags)


def log_likelihood(logits, tags, mask, transitions):
    """log p(tags | logits) per sequence; ``mask`` [batch, n] marks the words that count."""
    logits = tf.cast(logits, tf.float32)
    transitions = tf.convert_to_tensor(transitions, tf.float32)
    mask = tf.cast(mask, tf.float32)
    tags = tf.maximum(tf.cast(tags, tf.int32), 0)
    unary = tf.reduce_sum(tf.gather(logits, tags, batch_dims=2) * mask, axis=1)
    pairs = tf.stack([tags[:, :-1], tags[:, 1:]], axis=-1)
    binary = tf.reduce_sum(tf.gather_nd(transitions, pairs) * mask[:, :-1] * mask[:, 1:], axis=1)

    def forward(alpha, step):
        emission, present = step
        new = tf.reduce_logsumexp(alpha[:, :, None] + transitions[None], axis=1) + emission
        return tf.where(present[:, None] > 0, new, alpha)

    alphas = tf.scan(forward, (tf.transpose(logits[:, 1:], [1, 0, 2]), tf.transpose(mask[:, 1:])),
                     initializer=logits[:, 0])
    log_partition = tf.reduce_logsumexp(alphas[-1], axis=-1)
    # A sequence with no word (a tagger's transfer text carries no tags) has nothing to score.
    return tf.where(tf.reduce_any(mask > 0, axis=1), unary + binary - log_partition, 0.0)


def viterbi_decode(logits, mask, transitions):
    """The best tag sequence [batch, n] (int32) under the CRF; masked positions repeat the last
    tag and should be ignored."""
    logits = tf.cast(logits, tf.float32)
    transitions = tf.convert_to_tensor(transitions, tf.float32)
    present = tf.cast(mask, tf.bool)
    num_tags = tf.shape(transitions)[0]

    def step(state, inputs):
        score, _ = state
        emission, here = inputs
        candidates = score[:, :, None] + transitions[None]
        best = tf.reduce_max(candidates, axis=1) + emission
        back = tf.argmax(candidates, axis=1, output_type=tf.int32)
        identity = tf.broadcast_to(tf.range(num_tags)[None], tf.shape(back))
        return tf.where(here[:, None], best, score), tf.where(here[:, None], back, identity)

    initial = (logits[:, 0], tf.zeros_like(logits[:, 0], tf.int32))
    scores, backs = tf.scan(step, (tf.transpose(logits[:, 1:], [1, 0, 2]), tf.transpose(present[:, 1:])),
                            initializer=initial)
    last = tf.argmax(scores[-1], axis=-1, output_type=tf.int32)
    earlier = tf.scan(lambda tag, back: tf.gather(back, tag, batch_dims=1), backs, initializer=last, reverse=True)
    return tf.transpose(tf.concat([earlier, last[None]], axis=0))
