"""Named-entity recognition (token classification): the task module.

Words -> WordPiece -> BERT -> each word's first piece -> dropout -> Dense -> tag logits, then
softmax or a CRF (``finetune.crf``; Viterbi decoding in-graph). Labels are IOB2 tags over
``finetune.label_names`` (the entity types); only a word's first piece is labelled, the other
pieces are ignored (the model reads the word's first-piece state). Data: CoNLL-2003 columns
(TaskExampleGen ``conll``; IOB1/IOB2/BIOES converted to IOB2). Metrics (TFMA, the
``models.ner_metrics.EntityF1`` combiner): entity-level precision / recall / F1 with exact span
match (seqeval's default / conlleval), overall and per type. Serving: raw text in; entity
types, character spans into the input text, entity texts, and each word's tag out.
"""
from __future__ import annotations

import json

import keras
import tensorflow as tf
import tensorflow_model_analysis as tfma

from tfx_bert_app.models import crf as crf_lib
from tfx_bert_app.models import encoder as encoder_lib
from tfx_bert_app.models import class_weights, compression, distillation, finetuning, ner_metrics, windows
from tfx_bert_app.models import export as export_lib
from tfx_bert import features, tagging, tokenization
from tfx_bert import signatures as sig

WORD_TAG_IDS = "word_tag_ids"  # serving / TFMA output: predicted tag id per word (-1: none)
MODEL_INPUTS = features.MODEL_INPUT_KEYS + (features.WORD_POSITIONS,)


def eval_config(f) -> tfma.EvalConfig:
    """TFMA: entity F1 gates the blessing (``finetune.accuracy_threshold``, and not below the
    baseline's); precision, recall and per-type scores are reported."""
    threshold = finetuning.blessing_threshold(f)
    return finetuning.gated_eval_config(WORD_TAG_IDS, tfma.MetricConfig(
        class_name="EntityF1", module="tfx_bert_app.models.ner_metrics",
        config=json.dumps({"name": ner_metrics.ENTITY_F1, "entity_types": [str(t) for t in f.entity_types]}),
        threshold=threshold),
        label_key=features.TAGS)


def _ragged(tensor, dtype=None):
    if isinstance(tensor, tf.SparseTensor):
        tensor = tf.RaggedTensor.from_sparse(tensor)
    elif not isinstance(tensor, tf.RaggedTensor):
        tensor = tf.RaggedTensor.from_tensor(tensor)
    return tf.cast(tensor, dtype) if dtype is not None else tensor


def preprocess(inputs: dict, settings, tokenizer) -> dict:
    """Words (and tags) -> token_ids, segment_ids, padding_mask, word_positions (and word_tags),
    int64 [batch, max_seq_length] (or [batch, max_windows * max_seq_length], the windows side by
    side: ``models/windows.py``), and ``windows_cut``."""
    words = _ragged(inputs[features.TOKENS])
    tags = _ragged(inputs[features.TAGS], tf.int64) if features.TAGS in inputs else None
    return windows.word_features(tokenizer, tokenizer.tokenize_words(words), settings, tags)


@keras.saving.register_keras_serializable(package="tfx_bert")
class GatherWords(keras.layers.Layer):
    """Sequence states [batch, seq, hidden] -> the states at each word's first piece."""

    def call(self, sequence, positions):
        return tf.gather(sequence, tf.maximum(positions, 0), batch_dims=1)


def build_tagger(backbone, num_tags: int, dropout: float, use_crf: bool, window_len: int = 0) -> keras.Model:
    """BERT -> first-piece states -> dropout -> Dense(num_tags) [-> CRF]: word tag logits.
    ``window_len`` > 0: the inputs are windows of that length side by side, each read by BERT
    alone (``models/windows.py``); word positions index the row of windows."""
    inputs = {key: keras.Input(shape=(None,), dtype="int32", name=key) for key in MODEL_INPUTS}
    mask = inputs[features.PADDING_MASK]
    if window_len:
        windowed_inputs = {k: windows.UnfoldWindows(window_len)(inputs[k], mask) for k in features.MODEL_INPUT_KEYS}
        sequence = windows.FoldWindows(window_len)(backbone(windowed_inputs)["sequence_output"], mask)
    else:
        sequence = backbone({k: inputs[k] for k in features.MODEL_INPUT_KEYS})["sequence_output"]
    words = GatherWords()(sequence, inputs[features.WORD_POSITIONS])
    logits = keras.layers.Dense(num_tags, name="tag_logits")(keras.layers.Dropout(dropout)(words))
    if use_crf:
        logits = crf_lib.CRF(num_tags, name="crf", dtype="float32")(logits)  # numerics: models/precision.py
    return keras.Model(inputs, logits, name="bert_tagger")


def masked_softmax_loss(word_tags, logits, tag_weights=None):
    """Cross-entropy over the words that have a tag (-1: padding, cut off, no pieces), each word's
    weighted by its tag's ``tag_weights`` entry (``finetune.class_weights``; None: all 1), averaged
    over the words."""
    word_tags = tf.cast(word_tags, tf.int32)
    mask = tf.cast(word_tags >= 0, tf.float32)
    tags = tf.maximum(word_tags, 0)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(tags, tf.cast(logits, tf.float32))
    if tag_weights is not None:
        losses = losses * tf.gather(tf.constant(tag_weights, tf.float32), tags)
    return tf.reduce_sum(losses * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def count_labels(data, files) -> list[int]:
    """Words of each IOB2 tag in ``files`` (``finetune.class_weights: balanced``)."""
    num_tags = len(tagging.tag_names([str(t) for t in data.settings.entity_types]))
    return class_weights.label_counts((x[features.WORD_TAGS] for x in data.dataset(files, False)), num_tags)


def crf_loss(crf_layer):
    def loss(word_tags, logits):
        mask = tf.cast(word_tags, tf.int32) >= 0
        return -tf.reduce_mean(crf_lib.log_likelihood(logits, word_tags, mask, crf_layer.transitions))
    return loss


def decode(model, logits, positions):
    """Tag id per word [batch, n] (int64; -1 where there is no word)."""
    mask = positions >= 0
    if _uses_crf(model):
        tags = crf_lib.viterbi_decode(logits, mask, model.get_layer("crf").transitions)
    else:
        tags = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.where(mask, tf.cast(tags, tf.int64), -1)


def entity_spans(tag_ids, starts, ends, texts, entity_types):
    """IOB2 tag ids per word [batch, n] + the words' character offsets -> entities, padded:
    types, starts, ends (characters, end exclusive) and texts [batch, max entities]."""
    n = tf.shape(tag_ids)[1]
    inside = tag_ids > 0
    kind = tf.where(inside, (tag_ids - 1) // 2, -1)
    is_b = inside & (tf.math.floormod(tag_ids, 2) == 1)
    is_i = inside & ~is_b
    previous_kind = tf.pad(kind[:, :-1], [[0, 0], [1, 0]], constant_values=-1)
    begins = is_b | (is_i & (previous_kind != kind))
    next_continues = tf.pad((is_i & ~begins)[:, 1:] & (kind[:, 1:] == kind[:, :-1]), [[0, 0], [0, 1]])
    finishes = inside & ~next_continues
    index = tf.broadcast_to(tf.range(n, dtype=tf.int64)[None], tf.shape(tag_ids))
    first = tf.ragged.boolean_mask(index, begins)
    last = tf.ragged.boolean_mask(index, finishes)
    types = tf.ragged.boolean_mask(kind, begins)
    starts_dense = starts.to_tensor(default_value=0)  # [batch, words]: as wide as tag_ids
    ends_dense = ends.to_tensor(default_value=0)
    char_start = first.with_flat_values(tf.gather_nd(starts_dense, tf.stack([first.value_rowids(), first.flat_values], 1)))
    char_end = last.with_flat_values(tf.gather_nd(ends_dense, tf.stack([last.value_rowids(), last.flat_values], 1)))
    names = tf.constant(list(entity_types) or ["ENTITY"])
    texts_flat = tf.strings.substr(tf.gather(texts, first.value_rowids()), char_start.flat_values,
                                   char_end.flat_values - char_start.flat_values, unit="UTF8_CHAR")
    return {
        sig.ENTITY_TYPES: types.with_flat_values(tf.gather(names, types.flat_values)).to_tensor(default_value=""),
        sig.ENTITY_STARTS: char_start.to_tensor(default_value=-1),
        sig.ENTITY_ENDS: char_end.to_tensor(default_value=-1),
        sig.ENTITY_TEXTS: first.with_flat_values(texts_flat).to_tensor(default_value=""),
    }


def build_model(encoder_dir: str, settings, tokenizer) -> keras.Model:
    num_tags = len(tagging.tag_names([str(t) for t in settings.entity_types]))
    return build_tagger(encoder_lib.load_backbone(encoder_dir), num_tags, settings.dropout, settings.crf,
                        settings.max_seq_length if windows.windowed(settings) else 0)


def build_inputs(data, files, training: bool):
    """(model inputs with word positions, word tags: -1 where there is no word)."""
    return data.dataset(files, training).map(
        lambda x: (finetuning.model_inputs(x, MODEL_INPUTS), tf.cast(x[features.WORD_TAGS], tf.int32)))


def _uses_crf(model) -> bool:
    return any(isinstance(layer, crf_lib.CRF) for layer in model.layers)


def build_losses(model, settings):
    """The CRF's negative log-likelihood, or softmax cross-entropy over the tagged words (weighted
    per tag with ``finetune.class_weights``)."""
    if _uses_crf(model):
        return crf_loss(model.get_layer("crf"))
    weights = [float(w) for w in settings.class_weights]
    if not weights:
        return masked_softmax_loss

    def weighted_softmax_loss(word_tags, logits):
        return masked_softmax_loss(word_tags, logits, weights)
    return weighted_softmax_loss


def build_metrics(settings) -> list:
    return []


def describe(settings, encoder_dir: str) -> str:
    num_tags = len(tagging.tag_names([str(t) for t in settings.entity_types]))
    return (f"fine-tuning a {'CRF' if settings.crf else 'softmax'} tagger ({num_tags} IOB2 tags) from "
            f"{encoder_dir}")


def distillation_loss(settings, temperature: float):
    """The teacher's tag distribution on every word (a CRF's emissions), padding masked; the
    student keeps its own loss on the tags (softmax or CRF likelihood) and Viterbi at serving."""
    return distillation.WordLogitsDistillation(temperature)


def wrap_teacher(teacher):
    return distillation.mark_padded_words(teacher, features.WORD_POSITIONS)


def export(model, data, tokenizer, precision: str) -> None:
    """The tagger (its weights at ``precision``) with ``tokenizer`` in its graph."""
    export_tagger(compression.for_serving(model, precision), data.transform_output, data.fn_args.serving_model_dir,
                  [str(t) for t in data.settings.entity_types], data.settings, tokenizer)


def export_tagger(model, tf_transform_output, export_dir: str, entity_types, settings, tokenizer) -> None:
    """SavedModel: ``serving_default`` (raw ``text`` -> entities with character spans, word
    tags, ``windows_cut``) and ``serving_tf_example`` (CoNLL tf.Examples -> ``word_tag_ids``, for
    TFMA); long texts in windows as ``settings`` (``finetune.max_windows``) say."""
    seq_len = settings.max_windows * settings.max_seq_length if windows.windowed(settings) else settings.max_seq_length
    length_bucket = 0 if windows.windowed(settings) else settings.export_length_bucket
    module = tf.Module()
    export_lib.track_weights(module, model)
    module.tft_layer = tf_transform_output.transform_features_layer()
    raw_spec = dict(tf_transform_output.raw_feature_spec())
    raw_spec.pop(features.TAGS, None)
    names = tf.constant(tagging.tag_names(entity_types))

    def tag_ids_for(packed):
        packed = tokenization.trim_padding(packed, length_bucket)  # word_positions stay inside the longest row
        logits = model({k: tf.cast(packed[k], tf.int32) for k in MODEL_INPUTS}, training=False)
        return decode(model, logits, tf.cast(packed[features.WORD_POSITIONS], tf.int32))

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve_text(text):
        words, starts, ends = tokenizer.split_words_with_offsets(text)
        packed = windows.word_features(tokenizer, tokenizer.tokenize_words(words), settings)
        tag_ids = tag_ids_for(packed)
        word_count = tf.cast(words.row_lengths(), tf.int32)
        width = tf.reduce_max(tf.concat([word_count, [0]], 0))
        tag_ids = tf.pad(tag_ids, [[0, 0], [0, tf.maximum(0, width - seq_len)]], constant_values=-1)[:, :width]
        outputs = entity_spans(tag_ids, starts, ends, text, entity_types)
        outputs[sig.WORDS] = words.to_tensor(default_value="")
        outputs[sig.WORD_TAGS] = tf.where(tag_ids >= 0, tf.gather(names, tf.maximum(tag_ids, 0)), "")
        return {**outputs, **windows.cut_output(packed)}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_tf_example(serialized):
        transformed = module.tft_layer(tf.io.parse_example(serialized, raw_spec))
        return {WORD_TAG_IDS: tag_ids_for(transformed)}

    module.serve_text, module.serve_tf_example = serve_text, serve_tf_example
    export_lib.save_served_model(module, export_dir, {
        "serving_default": serve_text.get_concrete_function(),
        "serving_tf_example": serve_tf_example.get_concrete_function()})
