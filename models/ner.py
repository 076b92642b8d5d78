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
import tensorflow_transform as tft
from tfx_bsl.public import tfxio

from tfx_bert_app.models import crf as crf_lib
from tfx_bert_app.models import encoder as encoder_lib
from tfx_bert_app.models import compression, distillation, export, finetuning, ner_metrics
from tfx_bert import features, tagging
from tfx_bert import signatures as sig
from tfx_bert.config import settings_from

WORD_TAG_IDS = "word_tag_ids"  # serving / TFMA output: predicted tag id per word (-1: none)
MODEL_INPUTS = features.MODEL_INPUT_KEYS + (features.WORD_POSITIONS,)


def eval_config(f) -> tfma.EvalConfig:
    """TFMA: entity F1 gates the blessing (``finetune.accuracy_threshold``, and not below the
    baseline's); precision, recall and per-type scores are reported."""
    threshold = finetuning.blessing_threshold(f.accuracy_threshold)
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


def preprocessing_fn(inputs: dict, custom_config: dict) -> dict:
    """Words (and tags) -> token_ids, segment_ids, padding_mask, word_positions (and word_tags),
    int64 [batch, max_seq_length]."""
    tokenizer = encoder_lib.load_tokenizer(custom_config["encoder_dir"])
    seq_len = settings_from(custom_config).max_seq_length
    words = _ragged(inputs[features.TOKENS])
    tags = _ragged(inputs[features.TAGS], tf.int64) if features.TAGS in inputs else None
    packed = tokenizer.pack_words(tokenizer.tokenize_words(words), seq_len, tags)
    return {key: tf.cast(value, tf.int64) for key, value in packed.items()}


@keras.saving.register_keras_serializable(package="tfx_bert")
class GatherWords(keras.layers.Layer):
    """Sequence states [batch, seq, hidden] -> the states at each word's first piece."""

    def call(self, sequence, positions):
        return tf.gather(sequence, tf.maximum(positions, 0), batch_dims=1)


def build_tagger(backbone, num_tags: int, dropout: float, use_crf: bool) -> keras.Model:
    """BERT -> first-piece states -> dropout -> Dense(num_tags) [-> CRF]: word tag logits."""
    inputs = {key: keras.Input(shape=(None,), dtype="int32", name=key) for key in MODEL_INPUTS}
    sequence = backbone({k: inputs[k] for k in features.MODEL_INPUT_KEYS})["sequence_output"]
    words = GatherWords()(sequence, inputs[features.WORD_POSITIONS])
    logits = keras.layers.Dense(num_tags, name="tag_logits")(keras.layers.Dropout(dropout)(words))
    if use_crf:
        logits = crf_lib.CRF(num_tags, name="crf", dtype="float32")(logits)  # numerics: models/precision.py
    return keras.Model(inputs, logits, name="bert_tagger")


def masked_softmax_loss(word_tags, logits):
    """Cross-entropy over the words that have a tag (-1: padding, cut off, no pieces)."""
    word_tags = tf.cast(word_tags, tf.int32)
    mask = tf.cast(word_tags >= 0, tf.float32)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.maximum(word_tags, 0), tf.cast(logits, tf.float32))
    return tf.reduce_sum(losses * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def crf_loss(crf_layer):
    def loss(word_tags, logits):
        mask = tf.cast(word_tags, tf.int32) >= 0
        return -tf.reduce_mean(crf_lib.log_likelihood(logits, word_tags, mask, crf_layer.transitions))
    return loss


def decode(model, logits, positions):
    """Tag id per word [batch, n] (int64; -1 where there is no word)."""
    mask = positions >= 0
    if any(isinstance(layer, crf_lib.CRF) for layer in model.layers):
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


def _dataset(fn_args, files, tf_transform_output, batch_size: int, repeat: bool):
    options = tfxio.TensorFlowDatasetOptions(batch_size=batch_size, shuffle=repeat,
                                             num_epochs=None if repeat else 1, drop_final_batch=False)
    ds = fn_args.data_accessor.tf_dataset_factory(files, options, tf_transform_output.transformed_metadata.schema)
    return ds.map(lambda x: ({k: tf.cast(x[k], tf.int32) for k in MODEL_INPUTS}, tf.cast(x[features.WORD_TAGS], tf.int32)))


def run_fn(fn_args) -> None:
    """TFX Trainer entry point: fine-tunes a tagger from the encoder in ``base_model``."""
    settings = finetuning.start(fn_args)
    num_tags = len(tagging.tag_names([str(t) for t in settings.entity_types]))
    model = build_tagger(encoder_lib.load_backbone(fn_args.base_model), num_tags, settings.dropout, settings.crf)
    tokenizer = encoder_lib.load_tokenizer(fn_args.base_model)
    _train_and_export(fn_args, settings, model, model, settings.learning_rate, settings.export_precision, tokenizer,
                      f"fine-tuning a {'CRF' if settings.crf else 'softmax'} tagger ({num_tags} IOB2 tags) from "
                      f"{fn_args.base_model}")
    distillation.save_teacher(model, fn_args.serving_model_dir, tokenizer)


def distill_run_fn(fn_args) -> None:
    """TFX Trainer entry point of the student: ``base_model`` is the fine-tuned tagger (the
    teacher); the student takes some of its layers (and its CRF transitions) and learns the
    teacher's tag distribution on every word (``distillation.WordLogitsDistillation``; a CRF's
    emissions) and the tags (its own loss: softmax or CRF likelihood). Viterbi at serving."""
    distillation.run_student(
        fn_args, distillation.WordLogitsDistillation,
        lambda settings, d, model, student, what: _train_and_export(
            fn_args, settings, model, student, d.learning_rate, d.export_precision,
            distillation.teacher_tokenizer(fn_args.base_model), what, d),
        "tagger", wrap_teacher=lambda teacher: distillation.mark_padded_words(teacher, features.WORD_POSITIONS))


def _train_and_export(fn_args, settings, model, tagger, learning_rate: float, precision: str, tokenizer,
                      what: str, distill=None) -> None:
    """Trains ``model`` (the tagger, or a Distiller around it) on the word tags (and a student,
    with ``distill.transfer_pattern``, on transfer text too), then exports
    ``tagger`` (its weights at ``precision``) with ``tokenizer`` in its graph (the encoder's, or
    the teacher's: the same)."""
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    batch_size, train_steps = settings.batch_size, int(fn_args.train_steps)
    use_crf = any(isinstance(layer, crf_lib.CRF) for layer in tagger.layers)
    model.compile(optimizer=finetuning.optimizer(settings, train_steps, learning_rate),
                  loss=crf_loss(tagger.get_layer("crf")) if use_crf else masked_softmax_loss)
    print(f"  [train] {what}, {train_steps} steps of batch {batch_size}", flush=True)
    train_ds = distillation.with_transfer_text(_dataset(fn_args, fn_args.train_files, tf_transform_output, batch_size, True),
                                               tf_transform_output, distill, batch_size, settings.seed)
    metrics = finetuning.fit(model, fn_args, train_ds,
                             _dataset(fn_args, fn_args.eval_files, tf_transform_output, batch_size, False))
    finetuning.report(metrics, fn_args.model_run_dir)
    export_tagger(compression.for_serving(tagger, precision), tf_transform_output, fn_args.serving_model_dir,
                  [str(t) for t in settings.entity_types], settings.max_seq_length, tokenizer)


def export_tagger(model, tf_transform_output, export_dir: str, entity_types, seq_len: int, tokenizer) -> None:
    """SavedModel: ``serving_default`` (raw ``text`` -> entities with character spans, word
    tags) and ``serving_tf_example`` (CoNLL tf.Examples -> ``word_tag_ids``, for TFMA)."""
    module = tf.Module()
    export.track_weights(module, model)
    module.tft_layer = tf_transform_output.transform_features_layer()
    raw_spec = dict(tf_transform_output.raw_feature_spec())
    raw_spec.pop(features.TAGS, None)
    names = tf.constant(tagging.tag_names(entity_types))

    def tag_ids_for(packed):
        logits = model({k: tf.cast(packed[k], tf.int32) for k in MODEL_INPUTS}, training=False)
        return decode(model, logits, tf.cast(packed[features.WORD_POSITIONS], tf.int32))

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve_text(text):
        words, starts, ends = tokenizer.split_words_with_offsets(text)
        packed = tokenizer.pack_words(tokenizer.tokenize_words(words), seq_len)
        tag_ids = tag_ids_for(packed)
        word_count = tf.cast(words.row_lengths(), tf.int32)
        width = tf.reduce_max(tf.concat([word_count, [0]], 0))
        tag_ids = tf.pad(tag_ids, [[0, 0], [0, tf.maximum(0, width - seq_len)]], constant_values=-1)[:, :width]
        outputs = entity_spans(tag_ids, starts, ends, text, entity_types)
        outputs[sig.WORDS] = words.to_tensor(default_value="")
        outputs[sig.WORD_TAGS] = tf.where(tag_ids >= 0, tf.gather(names, tf.maximum(tag_ids, 0)), "")
        return outputs

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_tf_example(serialized):
        transformed = module.tft_layer(tf.io.parse_example(serialized, raw_spec))
        return {WORD_TAG_IDS: tag_ids_for(transformed)}

    module.serve_text, module.serve_tf_example = serve_text, serve_tf_example
    tf.saved_model.save(module, export_dir, signatures={
        "serving_default": serve_text.get_concrete_function(),
        "serving_tf_example": serve_tf_example.get_concrete_function()})
