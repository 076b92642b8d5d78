"""Windows over long texts, in TF ops: one home for QA's SQuAD windows and those of the
classifiers and the tagger (``finetune.max_windows``).

A text's pieces are cut into slices that start every ``doc_stride`` pieces until the text is
covered, as google-research/bert's ``run_squad.py`` does for contexts; each slice is packed as
``[CLS] slice [SEP]``, or after a first segment that every window repeats (QA's question, a pair
task's first text): ``[CLS] first [SEP] slice [SEP]``. A text of more than ``max_windows`` windows
keeps its first ``max_windows`` and counts the rest (``windows_cut``): nothing is dropped
without a number saying so.

Training and serving share the layout Transform writes: one row per example, its windows side by
side (``[batch, max_windows * seq_len]``, with ``window_mask`` [batch, max_windows]), so a TFMA or
served example is one text. A classifier pools its windows' logits (``pool``); the tagger reads
each word from the window where it has the most context (``word_features``).
"""
from __future__ import annotations

import keras
import tensorflow as tf

from tfx_bert import features
from tfx_bert.tokenization import place_segments

WINDOW_MASK, WINDOWS_CUT = features.WINDOW_MASK, features.WINDOWS_CUT


def windowed(settings) -> bool:
    """Whether ``settings`` (a FinetuneConfig) read long texts in windows: a classifier's or the
    tagger's ``finetune.max_windows`` > 1 (QA's windows are its own settings)."""
    check = getattr(settings, "windowed", None)
    return bool(check and check())


def pooled(settings) -> bool:
    """Whether a windowed task classifies a text from its windows' pooled logits (sentiment, pair
    classification, multi-label); a tagger reads its windows inside its model instead."""
    return windowed(settings) and hasattr(settings, "window_pooling")


def window_count(length, room, stride):
    """Windows of ``room`` pieces every ``stride`` pieces that cover ``length`` pieces (int64)."""
    return tf.where(length <= room, tf.ones_like(length), 1 + (length - room + stride - 1) // stride)


def _windows_needed(ids, seq_len: int, doc_stride: int, first_len=None):
    """(slice pieces per window, stride, windows needed), int64 [batch], for ragged piece ids
    [batch, (pieces)] after a first segment of ``first_len`` pieces (None: no first segment)."""
    specials = 2 if first_len is None else 3  # [CLS] and the [SEP]s
    first_len = tf.zeros_like(ids.row_lengths(), tf.int64) if first_len is None else first_len
    room = seq_len - specials - first_len
    stride = tf.maximum(tf.constant(1, tf.int64), tf.minimum(tf.cast(doc_stride, tf.int64), room))
    return room, stride, window_count(tf.cast(ids.row_lengths(), tf.int64), room, stride)


def pack_windows(tokenizer, ids, seq_len: int, doc_stride: int, max_windows: int = 0, first=None) -> dict:
    """Ragged piece ids [batch, (pieces)] -> one row per window, placed by position.

    ``first``: (ragged ids [batch, (pieces)], int64 [batch] pieces kept) of a first segment every
    window of its example repeats, or None. Returns int64 [windows, seq_len] ``token_ids`` /
    ``segment_ids``, bool ``padding_mask``; int64 [windows] ``example_index``, ``window_start``
    (the slice's first piece in the text) and ``window_len``; int64 [windows] ``offset`` (the
    slice's first position in the row); int64 [batch] ``windows`` (kept) and ``windows_cut``."""
    room, stride, needed = _windows_needed(ids, seq_len, doc_stride, first[1] if first is not None else None)
    length = tf.cast(ids.row_lengths(), tf.int64)
    count = tf.minimum(needed, tf.constant(max_windows, tf.int64)) if max_windows else needed
    example = tf.repeat(tf.range(tf.size(count, out_type=tf.int64)), count)
    window_start = tf.ragged.range(count, dtype=tf.int64).flat_values * tf.gather(stride, example)
    window_len = tf.maximum(tf.constant(0, tf.int64),
                            tf.minimum(tf.gather(room, example), tf.gather(length, example) - window_start))
    slice_ = (ids.flat_values, tf.gather(ids.row_splits[:-1], example) + window_start, window_len)
    if first is None:
        token_ids, segment_ids, padding_mask = place_segments(
            slice_, seq_len, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
        offset = tf.ones_like(example)
    else:
        first_ids, kept = first
        kept = tf.gather(kept, example)
        token_ids, segment_ids, padding_mask = place_segments(
            (first_ids.flat_values, tf.gather(first_ids.row_splits[:-1], example), kept), seq_len,
            tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id, second=slice_)
        offset = 2 + kept
    return {features.TOKEN_IDS: token_ids, features.SEGMENT_IDS: segment_ids, features.PADDING_MASK: padding_mask,
            "example_index": example, "window_start": window_start, "window_len": window_len, "offset": offset,
            "windows": count, WINDOWS_CUT: needed - count}


def side_by_side(values, example, batch, max_windows: int, width: int = 0):
    """Per-window values [windows(, width)] (an example's windows consecutive, as ``pack_windows``
    makes them) -> int64 [batch, max_windows * max(1, width)], each window in its slot, zeros in
    the slots an example has no window for."""
    slot = tf.range(tf.size(example, out_type=tf.int64)) - tf.searchsorted(example, example, side="left",
                                                                           out_type=tf.int64)
    shape = tf.stack([tf.cast(batch, tf.int64), max_windows] + ([width] if width else []))
    placed = tf.scatter_nd(tf.stack([example, slot], axis=1), tf.cast(values, tf.int64), tf.cast(shape, tf.int64))
    return tf.reshape(placed, [-1, max_windows * max(1, width)])


def transformed_windows(tokenizer, texts, seq_len: int, doc_stride: int, max_windows: int,
                        first_texts=None) -> dict:
    """What Transform writes for a classification-like task with windows: raw texts [batch]
    (``first_texts``: a pair's first texts, cut to half a window) -> int64 token_ids /
    segment_ids / padding_mask [batch, max_windows * seq_len], ``window_mask`` [batch,
    max_windows] and ``windows_cut`` [batch]."""
    first = None
    if first_texts is not None:
        first_ids = tokenizer.tokenize(first_texts)
        first = (first_ids, tf.minimum(tf.cast(first_ids.row_lengths(), tf.int64), (seq_len - 3) // 2))
    ids = tokenizer.tokenize(texts)
    return _side_by_side_features(pack_windows(tokenizer, ids, seq_len, doc_stride, max_windows, first),
                                  max_windows, seq_len)


def _side_by_side_features(packed: dict, max_windows: int, seq_len: int) -> dict:
    """``pack_windows``'s rows -> the model inputs side by side, ``window_mask`` and ``windows_cut``."""
    batch, example = tf.size(packed["windows"], out_type=tf.int64), packed["example_index"]
    outputs = {key: side_by_side(packed[key], example, batch, max_windows, seq_len) for key in features.MODEL_INPUT_KEYS}
    outputs[WINDOW_MASK] = side_by_side(tf.ones_like(example), example, batch, max_windows)
    outputs[WINDOWS_CUT] = packed[WINDOWS_CUT]
    return outputs


def real_windows(inputs: dict, seq_len: int):
    """Side-by-side model inputs -> (the real windows' int32 model inputs [windows, seq_len], the
    example of each window int64 [windows], batch size)."""
    mask = inputs[WINDOW_MASK]
    rows = tf.where(tf.reshape(mask, [-1]) > 0)[:, 0]
    windows = {key: tf.gather(tf.reshape(tf.cast(inputs[key], tf.int32), [-1, seq_len]), rows)
               for key in features.MODEL_INPUT_KEYS}
    return windows, rows // tf.cast(tf.shape(mask)[1], tf.int64), tf.shape(mask, out_type=tf.int64)[0]


def pool(window_logits, example, batch, pooling: str):
    """Window logits [windows, classes] -> the example's [batch, classes]: their mean or their
    maximum (``finetune.window_pooling``), in float32."""
    logits = tf.cast(window_logits, tf.float32)
    segment = tf.math.unsorted_segment_max if pooling == "max" else tf.math.unsorted_segment_mean
    return segment(logits, example, batch)


def pooled_logits(model, inputs: dict, seq_len: int, pooling: str, training: bool = False):
    """``model`` (window inputs -> logits) over each example's real windows, pooled per example."""
    windows, example, batch = real_windows(inputs, seq_len)
    return pool(model(windows, training=training), example, batch, pooling)


def windows_cut(ids, seq_len: int, doc_stride: int, max_windows: int, first_len=None):
    """int64 [batch]: the windows of ``ids`` (ragged [batch, (pieces)]) past ``max_windows``, by
    ``pack_windows``'s rule (``first_len``: a first segment's pieces kept, as there)."""
    needed = _windows_needed(ids, seq_len, doc_stride, first_len)[2]
    return tf.maximum(tf.constant(0, tf.int64), needed - max_windows)


def text_features(tokenizer, texts, texts_b, settings) -> dict:
    """Transform's model features for one text or a pair (the second text windowed), int64:
    side by side windows with ``window_mask`` when ``settings.windowed()``, else BERT's packing
    at ``max_seq_length``; ``windows_cut`` either way."""
    seq_len, stride = settings.max_seq_length, settings.stride(settings.max_seq_length)
    if windowed(settings):
        if texts_b is None:
            return transformed_windows(tokenizer, texts, seq_len, stride, settings.max_windows)
        return transformed_windows(tokenizer, texts_b, seq_len, stride, settings.max_windows, first_texts=texts)
    segments = [tokenizer.tokenize(texts)] + ([tokenizer.tokenize(texts_b)] if texts_b is not None else [])
    outputs = {key: tf.cast(value, tf.int64) for key, value in tokenizer.pack(segments, seq_len).items()}
    first_len = (tf.minimum(tf.cast(segments[0].row_lengths(), tf.int64), (seq_len - 3) // 2)
                 if texts_b is not None else None)
    outputs[WINDOWS_CUT] = windows_cut(segments[-1], seq_len, stride, 1, first_len)
    return outputs


def training_model(settings, model):
    """(the model ``fit`` trains, a note for the progress line): ``model`` itself, or a Keras
    model that pools its windows (``finetune.max_windows`` > 1, a classifying task); it has no
    weights of its own (the saved and exported model stays the window model)."""
    if not pooled(settings):
        return model, ""

    class PooledWindows(keras.Model):
        def __init__(self):
            super().__init__(name=f"{model.name}_windows")
            self.window_model = model

        def call(self, inputs, training=False):
            return example_logits(settings, self.window_model)(inputs, training=training)

    return PooledWindows(), (f"; up to {settings.max_windows} windows of {settings.max_seq_length} every "
                             f"{settings.stride(settings.max_seq_length)} pieces a text, {settings.window_pooling}-pooled")


def model_inputs(settings) -> tuple:
    """The Transform features a classification-like model reads."""
    return features.MODEL_INPUT_KEYS + ((WINDOW_MASK,) if pooled(settings) else ())


def example_logits(settings, model):
    """``model`` as a function of an example's features (``(inputs, training=False)``): itself,
    or pooled over its windows (export, calibration, ``training_model``)."""
    if not pooled(settings):
        return model

    def logits(inputs, training=False):
        return pooled_logits(model, inputs, settings.max_seq_length, settings.window_pooling, training)
    return logits


def report_cut(data, metrics: dict) -> dict:
    """The texts of the train and validation inputs that ``max_windows`` cut, into ``metrics``
    (``windows_cut``: texts, texts cut, windows cut) and the progress log; ``metrics`` as they
    are for a task whose Transform counts none."""
    if WINDOWS_CUT not in data.transform_output.transformed_feature_spec():
        return metrics
    settings, counts = data.settings, {}
    splits = {"train": data.fn_args.train_files,
              "validation" if settings.has_validation else "eval": data.fn_args.eval_files}
    for split, files in splits.items():
        cut = tf.concat([tf.reshape(x[WINDOWS_CUT], [-1]) for x in data.dataset(files, False)], 0).numpy()
        counts[split] = {"texts": int(cut.size), "texts_cut": int((cut > 0).sum()), "windows_cut": int(cut.sum())}
    for split, c in counts.items():
        if c["texts_cut"]:
            print(f"  [windows] {c['texts_cut']} of {c['texts']} {split} texts were longer than "
                  f"{settings.max_windows} window(s) of {settings.max_seq_length} pieces: {c['windows_cut']} "
                  f"window(s) not read (raise finetune.max_windows to read them)", flush=True)
    return {**metrics, WINDOWS_CUT: counts}


def cut_output(transformed: dict) -> dict:
    """The served ``windows_cut`` (int64 [batch]) where Transform wrote it (exports of earlier
    Transform graphs have none)."""
    return {WINDOWS_CUT: tf.reshape(transformed[WINDOWS_CUT], [-1])} if WINDOWS_CUT in transformed else {}


def word_features(tokenizer, word_pieces, settings, word_labels=None) -> dict:
    """A tagger's features for words' pieces ([batch, (words), (pieces)]; ``word_labels``
    [batch, (words)]), int64: with ``finetune.max_windows`` > 1 the windows side by side, each
    word at the position of its first piece in the window where it has the most context (BERT's
    max-context rule, as ``run_squad.py`` scores it: the fewer pieces on its shorter side, the
    less; ties to the longer window), as a flat position into the row (``word_positions``,
    -1: no word or cut); else BERT's packing (``pack_words``). ``windows_cut`` either way."""
    seq_len, stride = settings.max_seq_length, settings.stride(settings.max_seq_length)
    ids = word_pieces.merge_dims(1, 2)
    if not windowed(settings):
        outputs = {k: tf.cast(v, tf.int64) for k, v in tokenizer.pack_words(word_pieces, seq_len, word_labels).items()}
        outputs[WINDOWS_CUT] = windows_cut(ids, seq_len, stride, 1)
        return outputs
    max_windows, width = settings.max_windows, settings.max_windows * seq_len
    packed = pack_windows(tokenizer, ids, seq_len, stride, max_windows)
    outputs = _side_by_side_features(packed, max_windows, seq_len)
    counts = tf.cast(word_pieces.row_lengths(axis=2), tf.int64)  # [batch, (words)]
    first_piece = tf.cumsum(counts.flat_values, exclusive=True) - tf.gather(
        tf.cast(ids.row_splits, tf.int64), counts.value_rowids())  # each word's first piece in its text
    position = _max_context_position(first_piece, counts.flat_values > 0, counts.value_rowids(),
                                     tf.cast(ids.row_lengths(), tf.int64), packed["windows"], seq_len, stride)
    outputs[features.WORD_POSITIONS] = counts.with_flat_values(position).to_tensor(-1, shape=[None, width])
    if word_labels is not None:
        labels = tf.where(position >= 0, tf.cast(word_labels.flat_values, tf.int64), -1)
        outputs[features.WORD_TAGS] = counts.with_flat_values(labels).to_tensor(-1, shape=[None, width])
    return outputs


def _max_context_position(first_piece, has_pieces, example, length, kept, seq_len: int, stride: int):
    """Per word (flat): its first piece's flat position ``slot * seq_len + 1 + offset`` in the
    kept window of its text where it has the most context, or -1 (no pieces, or past the kept
    windows)."""
    room = seq_len - 2
    stride = max(1, min(stride, room))
    slot = tf.range(tf.reduce_max(tf.concat([kept, [1]], 0)), dtype=tf.int64)[None, :]  # [1, W]
    start = slot * stride
    window_len = tf.minimum(tf.constant(room, tf.int64), tf.gather(length, example)[:, None] - start)
    offset = first_piece[:, None] - start
    inside = (slot < tf.gather(kept, example)[:, None]) & (offset >= 0) & (offset < window_len) & has_pieces[:, None]
    context = tf.cast(tf.minimum(offset, window_len - 1 - offset), tf.float32) + 0.01 * tf.cast(window_len, tf.float32)
    best = tf.argmax(tf.where(inside, context, -1.0), axis=1, output_type=tf.int64)
    position = best * seq_len + 1 + tf.gather(offset, best, batch_dims=1)
    return tf.where(tf.reduce_any(inside, axis=1), position, -1)


def _real_rows(padding_mask, seq_len: int):
    """The rows of the side-by-side ``padding_mask`` [batch, windows * seq_len], cut into
    windows, that hold a window (int64 [real windows])."""
    rows = tf.reshape(tf.cast(padding_mask, tf.bool), [-1, seq_len])
    return tf.where(tf.reduce_any(rows, axis=1))[:, 0]


@keras.saving.register_keras_serializable(package="tfx_bert")
class UnfoldWindows(keras.layers.Layer):
    """Side-by-side windows [batch, windows * seq_len] -> the real ones [real windows, seq_len]
    (a sequence model reads each window as a row; the empty slots cost nothing)."""

    def __init__(self, seq_len: int, **kwargs):
        super().__init__(**kwargs)
        self.seq_len = seq_len

    def call(self, values, padding_mask):
        return tf.gather(tf.reshape(values, [-1, self.seq_len]), _real_rows(padding_mask, self.seq_len))

    def get_config(self):
        return {**super().get_config(), "seq_len": self.seq_len}


@keras.saving.register_keras_serializable(package="tfx_bert")
class FoldWindows(keras.layers.Layer):
    """The real windows' states [real windows, seq_len, hidden] -> side by side [batch, windows *
    seq_len, hidden], zeros in the empty slots (``UnfoldWindows`` undone)."""

    def __init__(self, seq_len: int, **kwargs):
        super().__init__(**kwargs)
        self.seq_len = seq_len

    def call(self, states, padding_mask):
        rows = _real_rows(padding_mask, self.seq_len)
        shape = tf.shape(padding_mask, out_type=tf.int64)
        slots = shape[0] * (shape[1] // self.seq_len)
        hidden = tf.shape(states, out_type=tf.int64)[-1]
        placed = tf.scatter_nd(rows[:, None], states, tf.stack([slots, self.seq_len, hidden]))
        return tf.reshape(placed, tf.stack([shape[0], shape[1], hidden]))

    def get_config(self):
        return {**super().get_config(), "seq_len": self.seq_len}
