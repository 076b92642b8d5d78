"""Sentence similarity (STS-B, NLI): the task module.

One shared encoder embeds each sentence on its own (a bi-encoder, Sentence-BERT style): BERT
-> mean pooling over the real pieces, or the [CLS] state (``finetune.pooling``). Objectives
(``finetune.similarity_objective``):

* ``cosine``: the cosine of the two embeddings regresses the gold score scaled to [0, 1]
  (``label / finetune.score_max``; STS-B scores run 0-5), mean squared error;
* ``classification``: [u, v, |u - v|] -> Dense -> softmax over ``num_classes`` (NLI: entailment,
  neutral, contradiction), cross-entropy.

Data: TaskExampleGen (STS-B's GLUE TSV with a float ``score``; NLI pairs in GLUE TSV, CSV or
JSONL). Metrics (TFMA): Pearson and Spearman correlation of the cosine with the gold score
(``models.similarity_metrics``; Spearman gates the blessing), or accuracy for classification.
Serving: ``serving_default(text, text_b)`` -> ``similarity`` (the cosine; classification also
``probabilities`` and ``class_ids``), ``embed(text)`` -> the L2-normalised ``embedding``.
"""
from __future__ import annotations

import json

import keras
import tensorflow as tf
import tensorflow_model_analysis as tfma
import tensorflow_transform as tft
from tfx_bsl.public import tfxio

from tfx_bert_app.models import encoder as encoder_lib
from tfx_bert_app.models import compression, distillation, export, finetuning, similarity_metrics
from tfx_bert import features
from tfx_bert import signatures as sig
from tfx_bert.config import settings_from

SIMILARITY, EMBEDDING = sig.SIMILARITY, sig.EMBEDDING
SECOND = "_b"  # suffix of the second sentence's model inputs


def eval_config(f) -> tfma.EvalConfig:
    """TFMA: Spearman correlation (cosine objective) or accuracy (classification) gates the
    blessing (at least ``finetune.accuracy_threshold``, not below the baseline's)."""
    threshold = finetuning.blessing_threshold(f.accuracy_threshold)
    if f.similarity_objective == "classification":
        return finetuning.gated_eval_config(features.PROBABILITIES, tfma.MetricConfig(
            class_name="SparseCategoricalAccuracy", threshold=threshold))
    return finetuning.gated_eval_config(SIMILARITY, tfma.MetricConfig(
        class_name="Correlation", module="tfx_bert_app.models.similarity_metrics",
        config=json.dumps({"name": similarity_metrics.SPEARMAN}), threshold=threshold))


def encode_pair(tokenizer, texts, texts_b, seq_len: int) -> dict:
    """Each sentence packed on its own: ``token_ids`` ... for the first, ``token_ids_b`` ... for
    the second (int32 [batch, seq_len])."""
    first = tokenizer.encode(texts, seq_len)
    second = tokenizer.encode(texts_b, seq_len)
    return {**{k: tf.cast(v, tf.int32) for k, v in first.items()},
            **{k + SECOND: tf.cast(v, tf.int32) for k, v in second.items()}}


def preprocessing_fn(inputs: dict, custom_config: dict) -> dict:
    """text, text_b (and label) -> both sentences' model inputs (int64) and the label."""
    tokenizer = encoder_lib.load_tokenizer(custom_config["encoder_dir"])
    packed = encode_pair(tokenizer, finetuning.dense_strings(inputs[features.TEXT]),
                         finetuning.dense_strings(inputs[features.TEXT_B]), settings_from(custom_config).max_seq_length)
    outputs = {k: tf.cast(v, tf.int64) for k, v in packed.items()}
    if features.LABEL in inputs:
        label = inputs[features.LABEL]
        if isinstance(label, tf.SparseTensor):
            label = tf.sparse.to_dense(label)
        outputs[features.LABEL] = tf.reshape(label, [-1])
    return outputs


@keras.saving.register_keras_serializable(package="tfx_bert")
class Pooling(keras.layers.Layer):
    """Sequence states -> one vector: the mean or the maximum over real pieces (as
    sentence-transformers pools), or the [CLS] state."""

    def __init__(self, mode: str = "mean", **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, sequence, padding_mask):
        if self.mode == "cls":
            return sequence[:, 0]
        mask = tf.cast(padding_mask, sequence.dtype)[:, :, None]
        if self.mode == "max":
            return tf.reduce_max(sequence * mask - (1.0 - mask) * 1e9, axis=1)
        return tf.reduce_sum(sequence * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def build_sentence_encoder(backbone, pooling: str, name: str = "sentence_encoder") -> keras.Model:
    """BERT -> pooling: one sentence's embedding [batch, hidden]."""
    inputs = {key: keras.Input(shape=(None,), dtype="int32", name=key) for key in features.MODEL_INPUT_KEYS}
    sequence = backbone(inputs)["sequence_output"]
    return keras.Model(inputs, Pooling(pooling, name="pooling", dtype="float32")(sequence, inputs[features.PADDING_MASK]),
                       name=name)


@keras.saving.register_keras_serializable(package="tfx_bert")
class Cosine(keras.layers.Layer):
    def call(self, u, v):
        return tf.reduce_sum(tf.math.l2_normalize(u, -1) * tf.math.l2_normalize(v, -1), axis=-1)


@keras.saving.register_keras_serializable(package="tfx_bert")
class PairFeatures(keras.layers.Layer):
    """[u, v, |u - v|] (Sentence-BERT's classification features)."""

    def call(self, u, v):
        return tf.concat([u, v, tf.abs(u - v)], axis=-1)


def build_pair_model(sentence_encoder, objective: str, num_classes: int = 3, dropout: float = 0.1) -> keras.Model:
    """Both sentences through the shared encoder -> the cosine [batch] (``cosine``) or class
    logits [batch, num_classes] (``classification``)."""
    keys = features.MODEL_INPUT_KEYS
    inputs = {key: keras.Input(shape=(None,), dtype="int32", name=key) for key in keys}
    inputs.update({key + SECOND: keras.Input(shape=(None,), dtype="int32", name=key + SECOND) for key in keys})
    u = sentence_encoder({k: inputs[k] for k in keys})
    v = sentence_encoder({k: inputs[k + SECOND] for k in keys})
    if objective == "cosine":
        output = Cosine(name="cosine", dtype="float32")(u, v)
    else:
        pair = keras.layers.Dropout(dropout)(PairFeatures(name="pair_features")(u, v))
        output = keras.layers.Dense(num_classes, name="logits")(pair)
    return keras.Model(inputs, output, name=f"bi_encoder_{objective}")


def _dataset(fn_args, files, tf_transform_output, batch_size: int, repeat: bool, label_fn):
    options = tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=features.LABEL, shuffle=repeat,
                                             num_epochs=None if repeat else 1, drop_final_batch=False)
    ds = fn_args.data_accessor.tf_dataset_factory(files, options, tf_transform_output.transformed_metadata.schema)
    keys = features.MODEL_INPUT_KEYS + tuple(k + SECOND for k in features.MODEL_INPUT_KEYS)
    return ds.map(lambda x, y: ({k: tf.cast(x[k], tf.int32) for k in keys}, label_fn(tf.reshape(y, [-1]))))


def run_fn(fn_args) -> None:
    """TFX Trainer entry point: fine-tunes the shared sentence encoder from ``base_model``."""
    settings = finetuning.start(fn_args)
    sentence_encoder = build_sentence_encoder(encoder_lib.load_backbone(fn_args.base_model), settings.pooling)
    model = build_pair_model(sentence_encoder, settings.similarity_objective, settings.num_classes, settings.dropout)
    tokenizer = encoder_lib.load_tokenizer(fn_args.base_model)
    _train_and_export(fn_args, settings, model, model, settings.learning_rate, tokenizer, settings.export_precision,
                      f"fine-tuning a {settings.pooling}-pooling bi-encoder ({settings.similarity_objective}) from "
                      f"{fn_args.base_model}")
    distillation.save_teacher(model, fn_args.serving_model_dir, tokenizer)


def distill_run_fn(fn_args) -> None:
    """TFX Trainer entry point of the student: ``base_model`` is the fine-tuned bi-encoder (the
    teacher); the student takes some of its layers and learns the teacher's pair outputs: its
    cosine scores (mean squared error, ``distillation.EmbeddingDistillation``) or, for the
    classification objective (NLI), its class distribution (soft targets at temperature T)."""
    objective = settings_from(fn_args.custom_config).similarity_objective
    distillation.run_student(
        fn_args, distillation.softmax_distillation if objective == "classification"
        else lambda temperature: distillation.EmbeddingDistillation(),
        lambda settings, d, model, student, what: _train_and_export(
            fn_args, settings, model, student, d.learning_rate, distillation.teacher_tokenizer(fn_args.base_model),
            d.export_precision, what, d), "bi-encoder")


def _train_and_export(fn_args, settings, model, pair_model, learning_rate: float, tokenizer, precision: str,
                      what: str, distill=None) -> None:
    """Trains ``model`` (the pair model, or a Distiller around it) on the pairs' labels (and a
    student, with ``distill.transfer_pattern``, on transfer text too: a line and the next as a
    pair), then exports ``pair_model`` and its sentence encoder."""
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    batch_size, train_steps = settings.batch_size, int(fn_args.train_steps)
    optimizer = finetuning.optimizer(settings, train_steps, learning_rate)
    if settings.similarity_objective == "cosine":
        score_max = float(settings.score_max)
        label_fn = lambda y: tf.cast(y, tf.float32) / score_max  # noqa: E731
        model.compile(optimizer=optimizer, loss=keras.losses.MeanSquaredError())  # a Loss: takes sample weights
    else:
        label_fn = lambda y: tf.cast(y, tf.int32)  # noqa: E731
        model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    print(f"  [train] {what}, {train_steps} steps of batch {batch_size}", flush=True)
    train_ds = distillation.with_transfer_text(
        _dataset(fn_args, fn_args.train_files, tf_transform_output, batch_size, True, label_fn),
        tf_transform_output, distill, batch_size, settings.seed)
    metrics = finetuning.fit(model, fn_args, train_ds,
                             _dataset(fn_args, fn_args.eval_files, tf_transform_output, batch_size, False, label_fn))
    finetuning.report(metrics, fn_args.model_run_dir)
    export_bi_encoder(pair_model, pair_model.get_layer("sentence_encoder"), fn_args.serving_model_dir, tokenizer,
                      settings.max_seq_length, settings.similarity_objective, precision)


def export_bi_encoder(model, sentence_encoder, export_dir: str, tokenizer, seq_len: int, objective: str,
                      precision: str = "float32") -> None:
    """SavedModel: ``serving_default`` (``text``, ``text_b`` -> ``similarity`` [+ class
    ``probabilities``, ``class_ids``]), ``embed`` (``text`` -> L2-normalised ``embedding``) and
    ``serving_tf_example`` (for TFMA). Raw text in, the training tokenizer inside."""
    # float32 whatever the training policy unless ``precision`` asks for compressed weights; the
    # sentence encoder stays the pair model's own; outputs are float32 either way.
    model = compression.for_serving(model, precision)
    sentence_encoder = model.get_layer(sentence_encoder.name)
    module = tf.Module()
    export.track_weights(module, model, sentence_encoder)
    raw_spec = {features.TEXT: tf.io.FixedLenFeature([], tf.string), features.TEXT_B: tf.io.FixedLenFeature([], tf.string)}

    def embed_texts(texts):
        embedding = sentence_encoder(dict(tokenizer.encode(texts, seq_len)), training=False)
        return tf.math.l2_normalize(tf.cast(embedding, tf.float32), -1)

    def pair_outputs(texts, texts_b):
        u, v = embed_texts(texts), embed_texts(texts_b)
        outputs = {SIMILARITY: tf.reduce_sum(u * v, axis=-1)}
        if objective == "classification":
            logits = tf.cast(model(encode_pair(tokenizer, texts, texts_b, seq_len), training=False), tf.float32)
            outputs[features.PROBABILITIES] = tf.nn.softmax(logits, axis=-1)
            outputs[features.CLASS_IDS] = tf.argmax(logits, axis=-1)
        return outputs

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name=features.TEXT),
                                  tf.TensorSpec([None], tf.string, name=features.TEXT_B)])
    def serve_pair(text, text_b):
        return pair_outputs(text, text_b)

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name=features.TEXT)])
    def embed(text):
        return {EMBEDDING: embed_texts(text)}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_tf_example(serialized):
        raw = tf.io.parse_example(serialized, raw_spec)
        return pair_outputs(raw[features.TEXT], raw[features.TEXT_B])

    module.serve_pair, module.embed, module.serve_tf_example = serve_pair, embed, serve_tf_example
    tf.saved_model.save(module, export_dir, signatures={
        "serving_default": serve_pair.get_concrete_function(),
        "embed": embed.get_concrete_function(),
        "serving_tf_example": serve_tf_example.get_concrete_function()})
