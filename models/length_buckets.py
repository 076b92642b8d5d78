"""Length-aware training batches: each batch of a Trainer's inputs is cut to its longest row,
rounded up to a multiple of ``finetune.train_length_bucket`` pieces, instead of the fixed
``max_seq_length`` Transform pads every row to.

What a padded position adds to a BERT batch is cost only: attention masks it out, the pooled
[CLS] and every token-level head read real positions only, and a layer norm or a dense layer
works position by position. So the real positions' outputs and losses are the same as at the
full length (to float rounding), and a batch of 12-piece texts stops paying for 64 or 128
pieces: the serving side does the same (``finetune.export_length_bucket``). Hugging Face's
``DataCollatorWithPadding`` is the same idea.

Only a sequence group with one sequence per row is cut: ``token_ids``/``segment_ids``/
``padding_mask`` with the same suffix, ``[batch, max_seq_length]``. Rows that hold several
sequences side by side (long-text windows, re-ranking candidate lists, a retrieval query's
negatives: ``[batch, k * max_seq_length]``) keep their layout, since their models split the row
at fixed offsets.
"""
from __future__ import annotations

import tensorflow as tf

from tfx_bert import features

SEQUENCE_KEYS = (features.TOKEN_IDS, features.SEGMENT_IDS)


def bucketed_length(padding_mask, bucket: int):
    """The last real position + 1 over a batch's rows of ``padding_mask`` [batch, length],
    rounded up to a multiple of ``bucket``, at most the mask's length (int32 scalar)."""
    length = tf.shape(padding_mask)[1]
    positions = tf.range(1, length + 1)[tf.newaxis, :]
    longest = tf.reduce_max(tf.where(tf.cast(padding_mask, tf.bool), positions, 0))
    rounded = (tf.maximum(longest, 1) + bucket - 1) // bucket * bucket
    return tf.minimum(rounded, length)


def sequence_groups(inputs: dict, max_seq_length: int) -> list[tuple[str, ...]]:
    """The keys of each one-sequence-per-row group in ``inputs`` (tensors or their specs): its
    padding mask first."""
    groups = []
    for key in sorted(inputs):
        if not key.startswith(features.PADDING_MASK):
            continue
        mask = inputs[key]
        if mask.shape.rank != 2 or mask.shape[1] != max_seq_length:
            continue
        suffix = key[len(features.PADDING_MASK):]
        groups.append((key, *(k + suffix for k in SEQUENCE_KEYS if k + suffix in inputs)))
    return groups


def cut_batch(inputs: dict, max_seq_length: int, bucket: int) -> dict:
    """``inputs`` (a batch's model inputs) with each sequence group cut to its bucketed length."""
    cut = dict(inputs)
    for group in sequence_groups(inputs, max_seq_length):
        length = bucketed_length(inputs[group[0]], bucket)
        for key in group:
            cut[key] = inputs[key][:, :length]
    return cut


def length_aware(dataset: tf.data.Dataset, max_seq_length: int, bucket: int) -> tf.data.Dataset:
    """``dataset`` (batches of inputs, or of (inputs, labels[, weights])) with every batch's
    sequence groups cut (``cut_batch``); as it is with ``bucket`` 0 or where nothing is cut."""
    spec = dataset.element_spec
    inputs_spec = spec[0] if isinstance(spec, tuple) else spec
    if not bucket or not isinstance(inputs_spec, dict):
        return dataset
    if not sequence_groups(inputs_spec, max_seq_length):
        return dataset
    if isinstance(spec, tuple):
        return dataset.map(lambda x, *rest: (cut_batch(x, max_seq_length, bucket), *rest))
    return dataset.map(lambda x: cut_batch(x, max_seq_length, bucket))
