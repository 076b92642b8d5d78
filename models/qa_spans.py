"""Extractive QA in TF ops: SQuAD windows over long contexts, and answer-span decoding.

Both run inside the graph (Transform's ``preprocessing_fn`` for training, the exported serving
signature for inference), with the project tokenizer and only op types TF Serving 2.16 has.

Windows follow google-research/bert's ``run_squad.py``: the question (at most
``max_query_length`` pieces) and a slice of the context's pieces are packed as
``[CLS] question [SEP] context slice [SEP]``; slices start every ``doc_stride`` pieces until the
context is covered. Each context piece carries the character span of the word it belongs to
(BERT's basic word split of the original text), so an answer maps back to whole words of the
input text, by character.

Decoding: in every window, each start position i (a word's first piece) and end position j (a
word's last piece) with i <= j < i + max_answer_length scores start_logit[i] + end_logit[j]; the
n best spans over all of a question's windows are kept (the same span seen from two
overlapping windows counted once). SQuAD 2.0: the no-answer score is start_logit[0] + end_logit[0] at [CLS], the minimum
over the windows (as ``run_squad.py``); the answer is empty when it beats the best span by more
than ``no_answer_threshold``.
"""
from __future__ import annotations

import tensorflow as tf

from tfx_bert import features
from tfx_bert import signatures as sig
from tfx_bert.tokenization import place_rows
from tfx_bert_app.models import windows as windows_lib

NEG_INF = -1e9


def context_pieces(tokenizer, contexts):
    """Contexts [batch] -> (piece ids, piece character starts, piece character ends), ragged
    [batch, (pieces)]: each piece carries its word's span in the original text."""
    words, starts, ends = tokenizer.split_words_with_offsets(contexts)
    pieces = tokenizer.tokenize_words(words)  # [batch, (words), (pieces)]
    counts = tf.cast(pieces.row_lengths(axis=2).flat_values, tf.int64)
    word_of_piece = tf.repeat(tf.range(tf.size(counts, out_type=tf.int64)), counts)
    ids = pieces.merge_dims(1, 2)
    return (ids, ids.with_flat_values(tf.gather(tf.cast(starts.flat_values, tf.int64), word_of_piece)),
            ids.with_flat_values(tf.gather(tf.cast(ends.flat_values, tf.int64), word_of_piece)))


def make_windows(tokenizer, questions, contexts, seq_len: int, doc_stride: int, max_query_length: int,
                 max_windows: int = 0, answer_starts=None, answer_ends=None) -> dict:
    """Questions and contexts [batch] -> one row per window.

    Returns int32 [windows, seq_len] ``token_ids``, ``segment_ids``, bool ``padding_mask``;
    int64 [windows, seq_len] ``char_starts`` / ``char_ends`` (the character span of the word of
    each context piece, -1 elsewhere); int64 [windows] ``example_index`` (the question's row).
    ``max_windows`` > 0 keeps at most that many windows a question (the first ones).

    With ``answer_starts`` / ``answer_ends`` (characters, end exclusive, -1: no answer) also
    int64 [windows] ``start_positions`` / ``end_positions``: the answer's first and last piece
    in the window, or 0 ([CLS]) where the window does not hold the whole answer.
    """
    if max_query_length > seq_len - 4:
        raise ValueError(f"max_query_length {max_query_length} leaves no room for the context in "
                         f"sequences of {seq_len}; use at most {seq_len - 4}.")
    ids, char_starts, char_ends = context_pieces(tokenizer, contexts)
    question_ids = tokenizer.tokenize(questions)  # its first max_query_length pieces are placed
    query_len = tf.minimum(tf.cast(question_ids.row_lengths(), tf.int64), max_query_length)
    packed = windows_lib.pack_windows(tokenizer, ids, seq_len, doc_stride, max_windows, first=(question_ids, query_len))
    example, window_start, window_len, offset = (packed[k] for k in ("example_index", "window_start", "window_len",
                                                                        "offset"))
    first_piece = tf.gather(ids.row_splits[:-1], example) + window_start

    def packed_chars(values):
        return place_rows(values.flat_values, first_piece, offset, window_len, seq_len, -1)

    result = {
        features.TOKEN_IDS: tf.cast(packed[features.TOKEN_IDS], tf.int32),
        features.SEGMENT_IDS: tf.cast(packed[features.SEGMENT_IDS], tf.int32),
        features.PADDING_MASK: packed[features.PADDING_MASK],
        "char_starts": packed_chars(char_starts),
        "char_ends": packed_chars(char_ends),
        "example_index": example,
    }
    if answer_starts is not None:
        first, last = answer_pieces(char_starts, char_ends, answer_starts, answer_ends)
        first, last = tf.gather(first, example), tf.gather(last, example)
        inside = (first >= window_start) & (last < window_start + window_len) & (first >= 0)
        result["start_positions"] = tf.where(inside, first - window_start + offset, tf.zeros_like(first))
        result["end_positions"] = tf.where(inside, last - window_start + offset, tf.zeros_like(last))
    return result


def answer_pieces(char_starts, char_ends, answer_starts, answer_ends):
    """The first and last context piece of each answer (character span -> piece span): the
    pieces of the words the answer overlaps; -1 for no answer."""
    answer_starts = tf.cast(tf.reshape(answer_starts, [-1]), tf.int64)
    answer_ends = tf.cast(tf.reshape(answer_ends, [-1]), tf.int64)
    # Counted over the flat pieces with their rows (ragged broadcasting traces ~900 ops).
    rows, num_rows = char_starts.value_rowids(), char_starts.nrows()

    def pieces_per_row(condition):
        return tf.math.unsorted_segment_sum(tf.cast(condition, tf.int64), rows, num_rows)

    first = pieces_per_row(char_ends.flat_values <= tf.gather(answer_starts, rows))
    last = pieces_per_row(char_starts.flat_values < tf.gather(answer_ends, rows)) - 1
    valid = (answer_starts >= 0) & (answer_ends > answer_starts) & (first <= last)
    none = -tf.ones_like(first)
    return tf.where(valid, first, none), tf.where(valid, last, none)


def best_spans(start_logits, end_logits, windows: dict, num_examples, contexts, max_answer_length: int,
               n_best: int, no_answer_threshold: float) -> dict:
    """Window logits [windows, seq_len] -> each question's answer and n-best list.

    Returns ``answer_text`` [batch] (empty: no answer), ``answer_start`` / ``answer_end``
    (characters, end exclusive; -1: no answer), ``score`` (the best span's start + end logit),
    ``no_answer_score``, and [batch, n_best] ``nbest_texts``, ``nbest_starts``, ``nbest_ends``,
    ``nbest_scores`` and ``nbest_probabilities`` (softmax over the n best; padded with "", -1,
    -inf, 0).
    """
    start_logits = tf.cast(start_logits, tf.float32)
    end_logits = tf.cast(end_logits, tf.float32)
    char_starts, char_ends = windows["char_starts"], windows["char_ends"]
    example = windows["example_index"]
    seq_len = tf.shape(start_logits)[1]
    is_context = char_starts >= 0
    # Spans run from a word's first piece in the window to a word's last: one (i, j) per
    # character span in a window, so the n best per window are n distinct spans.
    previous = tf.pad(char_starts[:, :-1], [[0, 0], [1, 0]], constant_values=-1)
    following = tf.pad(char_starts[:, 1:], [[0, 0], [0, 1]], constant_values=-1)
    word_first = is_context & (char_starts != previous)
    word_last = is_context & (char_starts != following)
    pair_scores = start_logits[:, :, None] + end_logits[:, None, :]  # [windows, i, j]
    i = tf.range(seq_len)[:, None]
    j = tf.range(seq_len)[None, :]
    allowed = (j >= i) & (j - i < max_answer_length)
    allowed = allowed[None] & word_first[:, :, None] & word_last[:, None, :]
    pair_scores = tf.where(allowed, pair_scores, NEG_INF)
    k = tf.minimum(2 * n_best, seq_len * seq_len)
    top_scores, top_index = tf.math.top_k(tf.reshape(pair_scores, [tf.shape(pair_scores)[0], -1]), k=k)
    top_i, top_j = top_index // seq_len, top_index % seq_len
    span_start = tf.gather(char_starts, top_i, batch_dims=1)
    span_end = tf.gather(char_ends, top_j, batch_dims=1)

    # All windows' candidates per question, best first; the same span twice counts once.
    num_examples = tf.cast(num_examples, tf.int64)
    by_example = lambda t: tf.RaggedTensor.from_value_rowids(  # noqa: E731
        tf.reshape(t, [-1]), tf.repeat(example, k), nrows=num_examples)
    scores = by_example(top_scores).to_tensor(default_value=NEG_INF)
    order = tf.argsort(scores, axis=1, direction="DESCENDING", stable=True)
    scores = tf.gather(scores, order, batch_dims=1)
    starts = tf.gather(by_example(span_start).to_tensor(default_value=-1), order, batch_dims=1)
    ends = tf.gather(by_example(span_end).to_tensor(default_value=-1), order, batch_dims=1)
    same = (starts[:, :, None] == starts[:, None, :]) & (ends[:, :, None] == ends[:, None, :])
    earlier = tf.linalg.band_part(tf.ones_like(same, tf.int32), -1, 0) - tf.eye(tf.shape(same)[1], dtype=tf.int32)
    duplicate = tf.reduce_any(same & (earlier > 0), axis=2)
    valid = (scores > NEG_INF / 2) & ~duplicate
    scores = tf.where(valid, scores, NEG_INF)
    width = tf.minimum(n_best, tf.shape(scores)[1])
    nbest_scores, keep = tf.math.top_k(scores, k=width)
    nbest_valid = nbest_scores > NEG_INF / 2
    none = -tf.ones_like(keep, tf.int64)
    nbest_starts = tf.where(nbest_valid, tf.gather(starts, keep, batch_dims=1), none)
    nbest_ends = tf.where(nbest_valid, tf.gather(ends, keep, batch_dims=1), none)
    rows = tf.repeat(contexts[:, None], width, axis=1)
    nbest_texts = tf.where(nbest_valid, tf.strings.substr(rows, tf.maximum(nbest_starts, 0),
                                                          tf.maximum(nbest_ends - nbest_starts, 0),
                                                          unit="UTF8_CHAR"), "")
    exp = tf.where(nbest_valid, tf.exp(nbest_scores - nbest_scores[:, :1]), 0.0)
    probabilities = exp / tf.maximum(tf.reduce_sum(exp, axis=1, keepdims=True), 1e-20)

    null = tf.math.unsorted_segment_min(start_logits[:, 0] + end_logits[:, 0], example, num_examples)
    best = nbest_scores[:, 0]
    answered = nbest_valid[:, 0] & (null - best <= no_answer_threshold)
    return {
        sig.ANSWER_TEXT: tf.where(answered, nbest_texts[:, 0], ""),
        sig.ANSWER_START: tf.where(answered, nbest_starts[:, 0], none[:, 0]),
        sig.ANSWER_END: tf.where(answered, nbest_ends[:, 0], none[:, 0]),
        sig.SCORE: tf.where(nbest_valid[:, 0], best, tf.fill(tf.shape(best), NEG_INF)),
        sig.NO_ANSWER_SCORE: null,
        sig.NBEST_TEXTS: nbest_texts,
        sig.NBEST_STARTS: nbest_starts,
        sig.NBEST_ENDS: nbest_ends,
        sig.NBEST_SCORES: tf.where(nbest_valid, nbest_scores, float("-inf")),
        sig.NBEST_PROBABILITIES: probabilities,
    }
