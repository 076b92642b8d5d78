"""Whole-word masking drawn per batch (``pretrain.whole_word_masking`` with dynamic masking).

google-research/bert's whole-word masking (``create_pretraining_data.py``,
``do_whole_word_mask``), in TF ops inside the Trainer's tf.data pipeline, so every epoch sees new
masks as keras-hub's ``MaskedLMMaskGenerator`` draws them for single pieces (keras-hub has no
whole-word variant): a word is a piece that does not start with ``##`` and the ``##`` pieces after
it; each sequence predicts ``min(max_predictions, max(1, round(rate x its pieces)))`` pieces at
most, taken as whole words in a random order; each chosen piece becomes [MASK] (80%), a random
piece (10%) or stays (10%), decided per piece as the reference does. One difference: the
reference skips a word that would overshoot the budget and tries the next; here the words are
taken while the budget holds, so a sequence may predict a few pieces fewer.
"""
from __future__ import annotations

import tensorflow as tf


def whole_word_masker(continuation_ids, vocab_size: int, special_ids, rate: float, max_predictions: int,
                      mask_id: int, mask_token_rate: float = 0.8, random_token_rate: float = 0.1):
    """A function: ragged int32 token ids [batch, (pieces)] -> the masked ``token_ids`` (ragged)
    and ``mask_positions`` / ``mask_ids`` (int32) / ``mask_weights`` (float32) [batch,
    max_predictions], the keys ``MaskedLMMaskGenerator`` returns. ``continuation_ids``: the
    vocabulary's ``##`` pieces; ``special_ids``: pieces never chosen ([CLS], [SEP], [PAD])."""
    table = tf.scatter_nd(tf.reshape(tf.constant(list(continuation_ids), tf.int64), [-1, 1]),
                          tf.ones([len(continuation_ids)], tf.bool), [vocab_size])
    specials = tf.constant(list(special_ids), tf.int32)

    def mask(token_ids):
        flat = token_ids.flat_values
        rows, nrows = tf.cast(token_ids.value_rowids(), tf.int64), tf.cast(token_ids.nrows(), tf.int64)
        selectable = ~tf.reduce_any(flat[:, None] == specials[None, :], axis=1)
        starts = ~(tf.gather(table, tf.cast(flat, tf.int64)) & selectable)  # a special is a word of its own
        word = tf.cumsum(tf.cast(starts, tf.int64)) - 1  # each piece's word, over the whole batch
        chosen_word = _choose_words(word, rows, nrows, selectable, rate, max_predictions)
        chosen = tf.gather(chosen_word, word) & selectable
        draw = tf.random.uniform(tf.shape(flat))
        random_ids = tf.random.uniform(tf.shape(flat), 0, vocab_size, dtype=tf.int32)
        replaced = tf.where(draw < mask_token_rate, tf.constant(mask_id, tf.int32),
                            tf.where(draw < mask_token_rate + random_token_rate, random_ids, flat))
        position = tf.range(tf.size(flat, out_type=tf.int64)) - tf.gather(tf.cast(token_ids.row_splits, tf.int64), rows)
        chosen_rows = tf.boolean_mask(rows, chosen)

        def per_row(values, fill):  # the chosen pieces' values, [batch, max_predictions]
            return tf.RaggedTensor.from_value_rowids(tf.boolean_mask(values, chosen), chosen_rows, nrows).to_tensor(
                fill, shape=[None, max_predictions])

        return {"token_ids": token_ids.with_flat_values(tf.where(chosen, replaced, flat)),
                "mask_positions": per_row(tf.cast(position, tf.int32), 0),
                "mask_ids": per_row(flat, 0),
                "mask_weights": per_row(tf.ones_like(flat, tf.float32), 0.0)}

    return mask


def _choose_words(word, rows, nrows, selectable, rate: float, max_predictions: int):
    """bool [words]: the words each row masks, whole, in a random order while its budget holds."""
    words = tf.reduce_max(tf.concat([word, [-1]], 0)) + 1
    word_row = tf.math.unsorted_segment_min(rows, word, words)
    word_len = tf.math.unsorted_segment_sum(tf.ones_like(word), word, words)
    word_selectable = tf.math.unsorted_segment_min(tf.cast(selectable, tf.int64), word, words) > 0
    pieces = tf.math.unsorted_segment_sum(tf.cast(selectable, tf.float32), rows, nrows)
    budget = tf.minimum(tf.cast(max_predictions, tf.int64),
                        tf.maximum(tf.constant(1, tf.int64), tf.cast(tf.round(pieces * rate), tf.int64)))
    # Rows stay together, a random order within each; unselectable words last.
    score = tf.where(word_selectable, tf.random.uniform(tf.shape(word_row)), 2.0)
    order = tf.argsort(tf.cast(word_row, tf.float32) * 4.0 + score, stable=True)
    sorted_row, sorted_len = tf.gather(word_row, order), tf.gather(word_len, order)
    total = tf.cumsum(sorted_len)
    row_start = tf.math.unsorted_segment_min(total - sorted_len, sorted_row, nrows)  # pieces before each row
    within = total - tf.gather(row_start, sorted_row)
    take = (within <= tf.gather(budget, sorted_row)) & tf.gather(word_selectable, order)
    return tf.scatter_nd(order[:, None], take, tf.shape(order))
