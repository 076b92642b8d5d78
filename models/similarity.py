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

from tfx_bert_app.models import encoder as encoder_lib
from tfx_bert_app.models import compression, distillation, export as export_lib, finetuning, similarity_metrics
from tfx_bert_app.models.keras_layers import Cosine, PairFeatures, build_sentence_encoder
from tfx_bert import features
from tfx_bert import signatures as sig

SIMILARITY, EMBEDDING = sig.SIMILARITY, sig.EMBEDDING
SECOND = "_b"  # suffix of the second sentence's model inputs


def eval_config(f) -> tfma.EvalConfig:
    """TFMA: Spearman correlation (cosine objective) or accuracy (classification) gates the
    blessing (at least ``finetune.accuracy_threshold``, not below the baseline's)."""
    threshold = finetuning.blessing_threshold(f)
    if f.similarity_objective == "classification":
        return finetuning.gated_eval_config(features.PROBABILITIES, tfma.MetricConfig(
            class_name="SparseCategoricalAccuracy", threshold=threshold))
    return finetuning.gated_eval_config(SIMILARITY, tfma.MetricConfig(
        class_name="Correlation", module="tfx_bert_app.models.similarity_metrics",
        config=json.dumps({"name": similarity_metrics.SPEARMAN}), threshold=threshold))


def encode_pair(tokenizer, texts, texts_b, seq_len: int, length_bucket: int = 0) -> dict:
    """Each sentence packed on its own: ``token_ids`` ... for the first, ``token_ids_b`` ... for
    the second (int32 [batch, seq_len]; ``length_bucket``: each cut to its longest row, serving)."""
    first = tokenizer.encode(texts, seq_len, length_bucket=length_bucket)
    second = tokenizer.encode(texts_b, seq_len, length_bucket=length_bucket)
    return {**{k: tf.cast(v, tf.int32) for k, v in first.items()},
            **{k + SECOND: tf.cast(v, tf.int32) for k, v in second.items()}}


def preprocess(inputs: dict, settings, tokenizer) -> dict:
    """text, text_b (and label) -> both sentences' model inputs (int64) and the label."""
    packed = encode_pair(tokenizer, finetuning.dense_strings(inputs[features.TEXT]),
                         finetuning.dense_strings(inputs[features.TEXT_B]), settings.max_seq_length)
    outputs = {k: tf.cast(v, tf.int64) for k, v in packed.items()}
    if features.LABEL in inputs:
        label = inputs[features.LABEL]
        if isinstance(label, tf.SparseTensor):
            label = tf.sparse.to_dense(label)
        outputs[features.LABEL] = tf.reshape(label, [-1])
    return outputs


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


PAIR_KEYS = features.MODEL_INPUT_KEYS + tuple(k + SECOND for k in features.MODEL_INPUT_KEYS)


def build_model(encoder_dir: str, settings, tokenizer) -> keras.Model:
    """The shared sentence encoder twice: their cosine, or [u, v, |u-v|] -> classes."""
    sentence_encoder = build_sentence_encoder(encoder_lib.load_backbone(encoder_dir), settings.pooling)
    return build_pair_model(sentence_encoder, settings.similarity_objective, settings.num_classes, settings.dropout)


def build_inputs(data, files, training: bool):
    """(both sentences' inputs, the gold score / score_max, or the class id)."""
    settings = data.settings
    if settings.similarity_objective == "cosine":
        score_max = float(settings.score_max)
        label_fn = lambda y: tf.cast(y, tf.float32) / score_max  # noqa: E731
    else:
        label_fn = lambda y: tf.cast(y, tf.int32)  # noqa: E731
    return data.dataset(files, training, label_key=features.LABEL).map(
        lambda x, y: (finetuning.model_inputs(x, PAIR_KEYS), label_fn(tf.reshape(y, [-1]))))


def build_losses(model, settings):
    if settings.similarity_objective == "cosine":
        return keras.losses.MeanSquaredError()  # a Loss: takes sample weights
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def build_metrics(settings) -> list:
    if settings.similarity_objective == "cosine":
        return []
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


def describe(settings, encoder_dir: str) -> str:
    return (f"fine-tuning a {settings.pooling}-pooling bi-encoder ({settings.similarity_objective}) from "
            f"{encoder_dir}")


def distillation_loss(settings, temperature: float):
    """The teacher's cosine scores (mean squared error) or, for the classification objective
    (NLI), its class distribution (soft targets at temperature T)."""
    if settings.similarity_objective == "classification":
        return distillation.softmax_distillation(temperature)
    return distillation.EmbeddingDistillation()


def export(model, data, tokenizer, precision: str) -> None:
    """The pair model and its sentence encoder."""
    export_bi_encoder(model, model.get_layer("sentence_encoder"), data.fn_args.serving_model_dir, tokenizer,
                      data.settings.max_seq_length, data.settings.similarity_objective, precision,
                      data.settings.export_length_bucket)


def export_bi_encoder(model, sentence_encoder, export_dir: str, tokenizer, seq_len: int, objective: str,
                      precision: str = "float32", length_bucket: int = 0) -> None:
    """SavedModel: ``serving_default`` (``text``, ``text_b`` -> ``similarity`` [+ class
    ``probabilities``, ``class_ids``]), ``embed`` (``text`` -> L2-normalised ``embedding``) and
    ``serving_tf_example`` (for TFMA). Raw text in, the training tokenizer inside."""
    # float32 whatever the training policy unless ``precision`` asks for compressed weights; the
    # sentence encoder stays the pair model's own; outputs are float32 either way.
    model = compression.for_serving(model, precision)
    sentence_encoder = model.get_layer(sentence_encoder.name)
    module = tf.Module()
    export_lib.track_weights(module, model, sentence_encoder)
    raw_spec = {features.TEXT: tf.io.FixedLenFeature([], tf.string), features.TEXT_B: tf.io.FixedLenFeature([], tf.string)}

    def embed_texts(texts):
        embedding = sentence_encoder(dict(tokenizer.encode(texts, seq_len, length_bucket=length_bucket)), training=False)
        return tf.math.l2_normalize(tf.cast(embedding, tf.float32), -1)

    def pair_outputs(texts, texts_b):
        u, v = embed_texts(texts), embed_texts(texts_b)
        outputs = {SIMILARITY: tf.reduce_sum(u * v, axis=-1)}
        if objective == "classification":
            pair = encode_pair(tokenizer, texts, texts_b, seq_len, length_bucket)
            logits = tf.cast(model(pair, training=False), tf.float32)
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
    export_lib.save_served_model(module, export_dir, {
        "serving_default": serve_pair.get_concrete_function(),
        "embed": embed.get_concrete_function(),
        "serving_tf_example": serve_tf_example.get_concrete_function()})
