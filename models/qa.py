"""Extractive question answering (SQuAD v1.1 / v2.0): the task module.

Question + context -> SQuAD windows over the context (``doc_stride``; ``models.qa_spans``) ->
BERT -> two linear outputs per piece (start and end logits). Loss: cross-entropy of the
answer's first and last piece in each window ([CLS] where the window does not hold the answer,
or the question has none). Data: SQuAD JSON (TaskExampleGen ``squad``). Metrics (TFMA,
``models.qa_metrics.SquadMetrics``): exact match and F1 with the official answer normalisation
(``tfx_bert.squad``), 0-100 as the official scripts print them; F1 gates the blessing. Serving:
raw question and context in; the answer's text, character span and score, the no-answer score,
and the n best answers out.

Transform writes ``finetune.max_windows`` windows per question (a fixed shape; contexts longer
than that many windows are cut for training and evaluation); the serving signature windows
the whole context, however long.
"""
from __future__ import annotations

import json

import keras
import tensorflow as tf
import tensorflow_model_analysis as tfma

from tfx_bert_app.models import encoder as encoder_lib
from tfx_bert_app.models import compression, distillation, export as export_lib, finetuning, qa_metrics, qa_spans
from tfx_bert_app.models import windows as windows_lib
from tfx_bert import features, tokenization
from tfx_bert import signatures as sig

QUESTION, CONTEXT = sig.QUESTION, sig.CONTEXT
ANSWER_START, ANSWER_END, ANSWER_TEXTS, QUESTION_ID = "answer_start", "answer_end", "answer_texts", "question_id"
WINDOW_MASK = windows_lib.WINDOW_MASK
START_POSITIONS, END_POSITIONS = "start_positions", "end_positions"
ANSWER_SPAN = "answer_span"  # serving_tf_example / TFMA: [batch, 2] character start, end (-1: none)
WINDOW_KEYS = features.MODEL_INPUT_KEYS + (START_POSITIONS, END_POSITIONS)


def window_settings(settings) -> dict:
    """The windowing and decoding settings of the serving export (``export_reader``)."""
    return {"max_seq_length": settings.max_seq_length, "doc_stride": settings.doc_stride,
            "max_query_length": settings.max_query_length, "max_answer_length": settings.max_answer_length,
            "n_best_size": settings.n_best_size,
            "no_answer_threshold": float(settings.no_answer_threshold) if settings.squad_v2 else 1e9,
            "length_bucket": settings.export_length_bucket}


def eval_config(f) -> tfma.EvalConfig:
    """TFMA: SQuAD F1 gates the blessing (at least 100 x ``finetune.accuracy_threshold``, and
    not below the baseline's); exact match is reported."""
    threshold = finetuning.blessing_threshold(f, scale=100.0)
    return finetuning.gated_eval_config(ANSWER_SPAN, tfma.MetricConfig(
        class_name="SquadMetrics", module="tfx_bert_app.models.qa_metrics", config=json.dumps({"name": qa_metrics.SQUAD_F1}),
        threshold=threshold), label_key=None)


def _dense(tensor, default):
    if isinstance(tensor, tf.SparseTensor):
        tensor = tf.sparse.to_dense(tensor, default_value=default)
    return tf.reshape(tensor, [-1])


def preprocess(inputs: dict, settings, tokenizer) -> dict:
    """question, context, answer_start/end -> ``max_windows`` windows per question, flattened:
    token_ids / segment_ids / padding_mask [batch, max_windows * max_seq_length], start /
    end positions and ``window_mask`` [batch, max_windows] (int64)."""
    seq_len, max_windows = settings.max_seq_length, settings.max_windows
    questions, contexts = _dense(inputs[QUESTION], ""), _dense(inputs[CONTEXT], "")
    starts = _dense(inputs[ANSWER_START], -1) if ANSWER_START in inputs else -tf.ones_like(questions, tf.int64)
    ends = _dense(inputs[ANSWER_END], -1) if ANSWER_END in inputs else -tf.ones_like(questions, tf.int64)
    windows = qa_spans.make_windows(
        tokenizer, questions, contexts, seq_len, settings.doc_stride, settings.max_query_length, max_windows,
        starts, ends)
    batch, example = tf.shape(questions, out_type=tf.int64)[0], windows["example_index"]

    def per_question(values, width):  # a question's windows side by side in its row
        return windows_lib.side_by_side(values, example, batch, max_windows, width)

    outputs = {key: per_question(windows[key], seq_len) for key in features.MODEL_INPUT_KEYS}
    outputs[START_POSITIONS] = per_question(windows[START_POSITIONS], 0)
    outputs[END_POSITIONS] = per_question(windows[END_POSITIONS], 0)
    outputs[WINDOW_MASK] = per_question(tf.ones_like(windows["example_index"]), 0)
    return outputs


@keras.saving.register_keras_serializable(package="tfx_bert")
class SpanLogits(keras.layers.Layer):
    """Sequence states -> start and end logits [batch, seq, 2]; padding gets -1e9."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(2, name="span_logits")

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, sequence, padding_mask):
        logits = tf.cast(self.dense(sequence), tf.float32)
        return tf.where(tf.cast(padding_mask, tf.bool)[:, :, None], logits, qa_spans.NEG_INF)


def build_span_model(backbone, dropout: float) -> keras.Model:
    """BERT -> dropout -> Dense(2): start and end logits per piece, [batch, seq, 2]."""
    inputs = {key: keras.Input(shape=(None,), dtype="int32", name=key) for key in features.MODEL_INPUT_KEYS}
    sequence = backbone(inputs)["sequence_output"]
    logits = SpanLogits(name="span")(keras.layers.Dropout(dropout)(sequence), inputs[features.PADDING_MASK])
    return keras.Model(inputs, logits, name="bert_span_extractor")


def span_loss(positions, logits):
    """Mean cross-entropy of the start and end positions ([batch, 2]) under the logits."""
    positions = tf.cast(positions, tf.int32)
    start = tf.nn.sparse_softmax_cross_entropy_with_logits(positions[:, 0], logits[:, :, 0])
    end = tf.nn.sparse_softmax_cross_entropy_with_logits(positions[:, 1], logits[:, :, 1])
    return tf.reduce_mean(start + end) / 2.0


def build_inputs(data, files, training: bool):
    """Transformed questions -> one element per real window: (inputs, [start, end])."""
    seq_len = data.settings.max_seq_length

    def windows(x):
        flat = {k: tf.reshape(tf.cast(x[k], tf.int32), [-1, seq_len]) for k in features.MODEL_INPUT_KEYS}
        flat["positions"] = tf.stack([tf.reshape(tf.cast(x[k], tf.int32), [-1]) for k in (START_POSITIONS, END_POSITIONS)], 1)
        flat["real"] = tf.reshape(x[WINDOW_MASK], [-1]) > 0
        return tf.data.Dataset.from_tensor_slices(flat)

    ds = data.dataset(files, training).flat_map(windows).filter(lambda w: w["real"])
    ds = ds.map(lambda w: ({k: w[k] for k in features.MODEL_INPUT_KEYS}, w["positions"]))
    return ds.batch(data.settings.batch_size).prefetch(tf.data.AUTOTUNE)


def build_model(encoder_dir: str, settings, tokenizer) -> keras.Model:
    return build_span_model(encoder_lib.load_backbone(encoder_dir), settings.dropout)


def build_losses(model, settings):
    return span_loss


def build_metrics(settings) -> list:
    return []


def describe(settings, encoder_dir: str) -> str:
    return (f"fine-tuning a span extractor (SQuAD windows of {settings.max_seq_length}, stride "
            f"{settings.doc_stride}) from {encoder_dir}")


def distillation_loss(settings, temperature: float):
    """The teacher's start and end distributions over each window."""
    return distillation.SpanDistillation(temperature)


def after_training(data, trained, model, tokenizer, eval_dataset, metrics: dict) -> dict:
    """SQuAD 2.0: the no-answer threshold tuned on the validation split (``fn_args.eval_files``;
    without one, the eval split) into the settings the export reads."""
    settings = data.settings
    if settings.squad_v2 and settings.tune_no_answer_threshold:
        eval_questions = data.dataset(data.fn_args.eval_files, False)
        settings.no_answer_threshold, metrics["eval_exact_match_tuned"] = tune_no_answer_threshold(
            model, eval_questions, settings.max_seq_length, settings.max_answer_length, tokenizer.vocab)
        metrics["no_answer_threshold"] = settings.no_answer_threshold
    return metrics


def export(model, data, tokenizer, precision: str) -> None:
    export_reader(model, data.fn_args.serving_model_dir, tokenizer, window_settings(data.settings), precision)


def _window_answers(logits, token_ids, segment_ids, padding_mask, max_answer_length: int, vocab):
    """Best span per window in numpy, by the rule of ``qa_spans.best_spans`` (from a word's
    first piece to a word's last, over the context): (no-answer score, best span score, start,
    end) arrays over the windows."""
    import numpy as np

    seq_len = logits.shape[1]
    last = padding_mask.sum(axis=1) - 1  # the closing [SEP]
    context = (segment_ids == 1) & padding_mask.astype(bool) & (np.arange(seq_len)[None] < last[:, None])
    continues = np.array([token.startswith("##") for token in vocab])[token_ids]
    following = np.pad(continues[:, 1:] & context[:, 1:], [(0, 0), (0, 1)])
    word_first = context & ~(continues & np.pad(context[:, :-1], [(0, 0), (1, 0)]))
    word_last = context & ~following
    i, j = np.arange(seq_len)[:, None], np.arange(seq_len)[None, :]
    allowed = (j >= i) & (j - i < max_answer_length)
    pairs = logits[:, :, None, 0] + logits[:, None, :, 1]
    pairs = np.where(allowed[None] & word_first[:, :, None] & word_last[:, None, :], pairs, -np.inf)
    flat = pairs.reshape(len(pairs), -1).argmax(axis=1)
    return (logits[:, 0, 0] + logits[:, 0, 1], pairs.reshape(len(pairs), -1).max(axis=1),
            flat // seq_len, flat % seq_len)


def tune_no_answer_threshold(model, question_batches, seq_len: int, max_answer_length: int,
                             vocab) -> tuple[float, float]:
    """The no-answer threshold with the best exact match on held-out questions (SQuAD 2.0's
    ``best_exact_thresh``, on pieces): returns (threshold, exact match 0-100 at it).

    A question's answer is empty when its no-answer score (the minimum over its windows) beats
    its best span by more than the threshold; the span is right when it is the labelled one.
    """
    import numpy as np

    diffs, span_right, answerable = [], [], []
    for batch in question_batches:
        real = tf.reshape(batch[WINDOW_MASK], [-1]).numpy() > 0
        inputs = {k: tf.reshape(tf.cast(batch[k], tf.int32), [-1, seq_len]).numpy()[real]
                  for k in features.MODEL_INPUT_KEYS}
        logits = model.predict_on_batch(inputs)
        null, best, start, end = _window_answers(np.asarray(logits, np.float64), inputs[features.TOKEN_IDS],
                                                 inputs[features.SEGMENT_IDS], inputs[features.PADDING_MASK],
                                                 max_answer_length, vocab)
        question = np.repeat(np.arange(len(batch[WINDOW_MASK])), batch[WINDOW_MASK].shape[1])[real]
        gold_start = tf.reshape(batch[START_POSITIONS], [-1]).numpy()[real]
        gold_end = tf.reshape(batch[END_POSITIONS], [-1]).numpy()[real]
        for q in np.unique(question):
            windows = np.flatnonzero(question == q)
            top = windows[np.argmax(best[windows])]
            diffs.append(null[windows].min() - best[top])
            span_right.append(gold_start[top] > 0 and (start[top], end[top]) == (gold_start[top], gold_end[top]))
            answerable.append(bool((gold_start[windows] > 0).any()))
    diffs, span_right, answerable = np.array(diffs), np.array(span_right), np.array(answerable)
    if not len(diffs):
        return 0.0, 0.0
    candidates = np.concatenate([[diffs.min() - 1.0], np.sort(diffs)])
    right = [np.where(diffs > t, ~answerable, span_right).mean() for t in candidates]
    best_index = int(np.argmax(right))
    return float(candidates[best_index]), 100.0 * float(right[best_index])


def export_reader(model, export_dir: str, tokenizer, settings: dict, precision: str = "float32") -> None:
    """SavedModel: ``serving_default`` (raw ``question`` and ``context`` -> answer text, character
    span, score, no-answer score, n best) and ``serving_tf_example`` (SQuAD tf.Examples ->
    ``answer_span``, for TFMA). The whole context is windowed, however long."""
    # float32 whatever the training policy unless ``precision`` asks for compressed weights.
    model = compression.for_serving(model, precision)
    module = tf.Module()
    export_lib.track_weights(module, model)
    raw_spec = {QUESTION: tf.io.FixedLenFeature([], tf.string), CONTEXT: tf.io.FixedLenFeature([], tf.string)}
    seq_len = int(settings["max_seq_length"])

    def answer(questions, contexts):
        windows = qa_spans.make_windows(tokenizer, questions, contexts, seq_len, int(settings["doc_stride"]),
                                        int(settings["max_query_length"]))
        inputs = tokenization.trim_padding({k: windows[k] for k in features.MODEL_INPUT_KEYS},
                                           int(settings.get("length_bucket", 0)))
        logits = tf.cast(model(inputs, training=False), tf.float32)
        # Back to the windows' width: the positions cut were padding, which best_spans never picks.
        logits = tf.pad(logits, [[0, 0], [0, seq_len - tf.shape(logits)[1]], [0, 0]])
        return qa_spans.best_spans(logits[:, :, 0], logits[:, :, 1], windows, tf.shape(questions)[0], contexts,
                                   int(settings["max_answer_length"]), int(settings["n_best_size"]),
                                   float(settings["no_answer_threshold"]))

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name=QUESTION),
                                  tf.TensorSpec([None], tf.string, name=CONTEXT)])
    def serve_text(question, context):
        return answer(question, context)

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_tf_example(serialized):
        raw = tf.io.parse_example(serialized, raw_spec)
        out = answer(raw[QUESTION], raw[CONTEXT])
        return {ANSWER_SPAN: tf.stack([out[sig.ANSWER_START], out[sig.ANSWER_END]], axis=1)}

    module.serve_text, module.serve_tf_example = serve_text, serve_tf_example
    export_lib.save_served_model(module, export_dir, {
        "serving_default": serve_text.get_concrete_function(),
        "serving_tf_example": serve_tf_example.get_concrete_function()})
