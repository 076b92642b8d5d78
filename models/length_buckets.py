"""Length-aware training batches: each batch of a Trainer's inputs is cut to its longest row,
rounded up to a multiple of ``finetune.train_length_bucket`` pieces, instead of the fixed
``max_seq_length`` Transform pads every row to.

What a padded position adds to a BERT batch is cost only: attention masks it out, the pooled
[CLS] and every token-level head read real positions only, and a layer norm or a dense layer
works position by position. So the real positions' outputs and losses are the same as at the
full length (to float rounding), and a batch of 12-piece texts stops paying for 64 or 128
pieces: the serving side does the same (``finetune.export_length_bucket``). Hugging Face's
``DataCollatorWithPadding`` is the same idea.

A sequence group is ``token_ids``/``segment_ids``/``padding_mask`` with the same suffix. One with
one sequence per row, ``[batch, max_seq_length]``, is cut. Rows that hold several sequences side
by side (``[batch, k * width]``) are cut only where the task names them (``stacked``: {suffix:
k}), because its model splits them by count (``keras_layers.Unstack`` with ``count``): each of the
k sequences is cut to the longest over the batch's sequences, so the row becomes ``[batch, k *
cut]``. Retrieval names its queries (``max_query_length`` wide) and hard negatives, re-ranking its
candidate lists; long-text windows keep their layout (their models read positions at fixed
offsets).
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


def sequence_groups(inputs: dict, max_seq_length: int, stacked: dict | None = None) -> list[tuple]:
    """(sequences per row, keys) of each group in ``inputs`` (tensors or their specs) that can be
    cut, its padding mask first: every ``[batch, max_seq_length]`` group (one sequence per row),
    and each group ``stacked`` names by its key suffix with its sequences per row (side by side,
    of equal width; the task's model splits them by count)."""
    stacked = stacked or {}
    groups = []
    for key in sorted(inputs):
        if not key.startswith(features.PADDING_MASK):
            continue
        suffix, mask = key[len(features.PADDING_MASK):], inputs[key]
        keys = (key, *(k + suffix for k in SEQUENCE_KEYS if k + suffix in inputs))
        if suffix in stacked and mask.shape.rank == 2 and mask.shape[1] and mask.shape[1] % stacked[suffix] == 0:
            groups.append((stacked[suffix], keys))
        elif suffix not in stacked and mask.shape.rank == 2 and mask.shape[1] == max_seq_length:
            groups.append((1, keys))
    return groups


def _cut_group(inputs: dict, keys: tuple, count: int, bucket: int) -> dict:
    """The group's tensors with each of their ``count`` side-by-side sequences cut to the
    bucketed length over all of them."""
    width = inputs[keys[0]].shape[1] // count
    as_rows = lambda t: tf.reshape(t, [-1, count, width])  # noqa: E731
    length = bucketed_length(tf.reshape(inputs[keys[0]], [-1, width]), bucket)
    return {key: tf.reshape(as_rows(inputs[key])[:, :, :length], [-1, count * length]) if count > 1
            else inputs[key][:, :length] for key in keys}


def cut_batch(inputs: dict, max_seq_length: int, bucket: int, stacked: dict | None = None) -> dict:
    """``inputs`` (a batch's model inputs) with each sequence group cut to its bucketed length."""
    cut = dict(inputs)
    for count, keys in sequence_groups(inputs, max_seq_length, stacked):
        cut.update(_cut_group(inputs, keys, count, bucket))
    return cut


def length_aware(dataset: tf.data.Dataset, max_seq_length: int, bucket: int,
                 stacked: dict | None = None) -> tf.data.Dataset:
    """``dataset`` (batches of inputs, or of (inputs, labels[, weights])) with every batch's
    sequence groups cut (``cut_batch``; ``stacked``: see ``sequence_groups``); as it is with
    ``bucket`` 0 or where nothing is cut."""
    spec = dataset.element_spec
    inputs_spec = spec[0] if isinstance(spec, tuple) else spec
    if not bucket or not isinstance(inputs_spec, dict):
        return dataset
    if not sequence_groups(inputs_spec, max_seq_length, stacked):
        return dataset
    if isinstance(spec, tuple):
        return dataset.map(lambda x, *rest: (cut_batch(x, max_seq_length, bucket, stacked), *rest))
    return dataset.map(lambda x: cut_batch(x, max_seq_length, bucket, stacked))
