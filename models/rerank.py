"""Re-ranking with a cross-encoder: the task module.

``[CLS] query [SEP] passage [SEP]`` -> BERT -> pooled [CLS] -> dropout -> Dense(1): one
relevance score per (query, passage), the query and passage attending to each other (monoBERT,
Nogueira & Cho 2019). Each training example is a query with its candidates: the judged-relevant
passage and ``num_negatives`` hard negatives (TaskExampleGen ``beir``: mined by word overlap;
``msmarco_triples``: MS MARCO's). Losses (``finetune.rerank_loss``):

* ``pointwise``: binary cross-entropy of every (query, passage) score against relevant / not;
* ``listwise``: softmax cross-entropy over the query's candidates, the relevant one as the
  class (the localized contrastive estimation loss of Gao et al. 2021).

Metrics (TFMA, ``models.rerank_metrics``): MRR@10 (gates the blessing) and nDCG@10 of the
candidate lists as the model orders them. Serving: ``serving_default(query, text)`` ->
``score`` per pair (the client sends a query's top-k from the vector store as one batch:
``tfx_bert.retrieval.RetrieveThenRerank``); ``serving_tf_example`` scores a stored example's
candidates for TFMA.
"""
from __future__ import annotations

import json

import keras
import numpy as np
import tensorflow as tf
import tensorflow_model_analysis as tfma

from tfx_bert_app.models import encoder as encoder_lib
from tfx_bert_app.models import compression, distillation, export as export_lib, finetuning, rerank_metrics
from tfx_bert_app.models.keras_layers import Restack, Unstack, dense_string_matrix
from tfx_bert import features
from tfx_bert.signatures import QUERY, SCORE

LOSSES = ("listwise", "pointwise")
SCORES = "scores"


def eval_config(f) -> tfma.EvalConfig:
    """TFMA: MRR@10 of the candidate lists gates the blessing; nDCG@10 is reported with it."""
    # The name in the config too: the distillation summary finds the gated metric's values by it.
    return finetuning.gated_eval_config(SCORES, tfma.MetricConfig(
        class_name="RankingMetrics", module="tfx_bert_app.models.rerank_metrics",
        config=json.dumps({"name": rerank_metrics.MRR}),
        threshold=finetuning.blessing_threshold(f)))


def candidates(texts, negatives):
    """The relevant passage [batch] first, then the negatives [batch, n] -> [batch, 1 + n]."""
    return tf.concat([tf.reshape(texts, [-1, 1]), negatives], axis=1)


def encode_candidates(tokenizer, queries, passages, seq_len: int) -> dict:
    """queries [batch], passages [batch, c] -> ``[CLS] query [SEP] passage [SEP]`` inputs
    [batch, c * seq_len] (int32)."""
    c = tf.shape(passages)[1]
    repeated = tf.reshape(tf.repeat(tf.reshape(queries, [-1, 1]), c, axis=1), [-1])
    packed = tokenizer.encode(repeated, seq_len, texts_b=tf.reshape(passages, [-1]))
    return {k: tf.reshape(tf.cast(v, tf.int32), [-1, c * seq_len]) for k, v in packed.items()}


def preprocess(inputs: dict, settings, tokenizer) -> dict:
    """query, text (relevant), negatives -> the candidate pairs' inputs [batch, (1 + n) * seq]
    (int64) and the relevant passage's relevance ``label``."""
    num_negatives = settings.num_negatives
    passages = candidates(finetuning.dense_strings(inputs[features.TEXT]),
                          dense_string_matrix(inputs[features.NEGATIVES], num_negatives))
    packed = encode_candidates(tokenizer, finetuning.dense_strings(inputs[QUERY]), passages, settings.max_seq_length)
    outputs = {k: tf.cast(v, tf.int64) for k, v in packed.items()}
    label = inputs[features.LABEL]
    outputs[features.LABEL] = tf.reshape(tf.sparse.to_dense(label) if isinstance(label, tf.SparseTensor) else label, [-1])
    return outputs


MATCH_SEGMENTS = 2  # segment types the exact-match cue adds: segment + 2 for a piece the other segment has


@keras.saving.register_keras_serializable(package="tfx_bert")
class ExactMatchSegments(keras.layers.Layer):
    """The pair's inputs with ``segment_ids`` + 2 where a piece also occurs in the other segment
    (query pieces found in the passage, passage pieces found in the query; special pieces and
    padding never match). MarkedBERT's exact-match cue (Boualili et al. 2020), as two segment
    types rather than marker tokens, so the sequence keeps its length: a small encoder learns
    "these words match" from one embedding row instead of having to learn token identity across
    the segments through attention."""

    def __init__(self, ignored_ids=(), **kwargs):
        super().__init__(**kwargs)
        self.ignored_ids = [int(i) for i in ignored_ids]

    def call(self, inputs):
        ids, segments = tf.cast(inputs["token_ids"], tf.int32), tf.cast(inputs["segment_ids"], tf.int32)
        real = tf.cast(inputs["padding_mask"], tf.bool)
        for ignored in self.ignored_ids:
            real = tf.logical_and(real, ids != ignored)
        pairs = tf.logical_and(real[:, :, None], real[:, None, :])
        pairs = tf.logical_and(pairs, tf.logical_and(ids[:, :, None] == ids[:, None, :],
                                                     segments[:, :, None] != segments[:, None, :]))
        match = tf.cast(tf.reduce_any(pairs, axis=2), segments.dtype)
        return {**inputs, "segment_ids": tf.cast(segments + MATCH_SEGMENTS * match, inputs["segment_ids"].dtype)}

    def get_config(self):
        return {**super().get_config(), "ignored_ids": self.ignored_ids}


def with_match_segments(backbone):
    """``backbone`` rebuilt with two more segment types, their embeddings copies of segments 0
    and 1 (so the model computes what it did until training moves them apart); every other
    weight the backbone's own."""
    config = {**backbone.get_config(), "num_segments": backbone.num_segments + MATCH_SEGMENTS}
    wider = type(backbone).from_config(config)
    own = {v.path: v for v in backbone.weights}
    for variable in wider.weights:
        value = own[variable.path].numpy()
        if variable.path.endswith("segment_embedding/embeddings"):
            value = np.concatenate([value, value[:MATCH_SEGMENTS]], axis=0)
        variable.assign(value)
    return wider


def build_cross_encoder(backbone, dropout: float = 0.1, exact_match_ignored: list[int] | None = None) -> keras.Model:
    """One (query, passage) pair's inputs [pairs, seq] -> its relevance score [pairs]; with
    ``exact_match_ignored`` (the special pieces' ids) the pair goes through ``ExactMatchSegments``
    to a backbone with the two match segment types (``with_match_segments``)."""
    inputs = {key: keras.Input(shape=(None,), dtype="int32", name=key) for key in features.MODEL_INPUT_KEYS}
    backbone_inputs = inputs
    if exact_match_ignored is not None:
        backbone = with_match_segments(backbone)
        backbone_inputs = ExactMatchSegments(exact_match_ignored, name="exact_match")(inputs)
    pooled = backbone(backbone_inputs)["pooled_output"]
    score = keras.layers.Dense(1, name="score")(keras.layers.Dropout(dropout)(pooled))
    return keras.Model(inputs, keras.layers.Reshape(())(score), name="cross_encoder")


def build_list_model(cross_encoder, seq_len: int, num_candidates: int) -> keras.Model:
    """Candidate lists [batch, c * seq] -> scores [batch, c] (the training model)."""
    inputs = {key: keras.Input(shape=(None,), dtype="int32", name=key) for key in features.MODEL_INPUT_KEYS}
    unstack = Unstack(seq_len, count=num_candidates, name="unstack_candidates")
    scores = cross_encoder({k: unstack(v) for k, v in inputs.items()})
    return keras.Model(inputs, Restack(num_candidates, name="candidate_scores")(scores), name="candidate_lists")


def loss_and_labels(loss_name: str, num_candidates: int):
    """(Keras loss, labels for n candidate lists, training metric) of ``listwise`` or
    ``pointwise``; the relevant passage is candidate 0 of every list."""
    if loss_name == "listwise":
        return (keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                lambda n: tf.zeros([n], tf.int32), keras.metrics.SparseCategoricalAccuracy(name="top1_accuracy"))
    if loss_name == "pointwise":
        return (keras.losses.BinaryCrossentropy(from_logits=True),
                lambda n: tf.one_hot(tf.zeros([n], tf.int32), num_candidates),
                keras.metrics.BinaryAccuracy(name="pair_accuracy", threshold=0.0))
    raise ValueError(f"rerank loss must be one of {LOSSES}; got {loss_name!r}.")


def build_inputs(data, files, training: bool):
    """(candidate lists' inputs, labels of the loss: candidate 0 is the relevant passage)."""
    _, label_fn, _ = loss_and_labels(data.settings.rerank_loss, 1 + data.settings.num_negatives)
    return data.dataset(files, training, label_key=features.LABEL).map(
        lambda x, y: (finetuning.model_inputs(x), label_fn(tf.shape(y)[0])))


def stacked_sequences(settings) -> dict:
    """The candidate lists, which training batches cut to their longest pair (``models/length_buckets.py``)."""
    return {"": 1 + settings.num_negatives}


def build_model(encoder_dir: str, settings, tokenizer) -> keras.Model:
    """The cross-encoder over candidate lists (the training model); it is its layer
    ``cross_encoder`` that is served."""
    cross_encoder = build_cross_encoder(encoder_lib.load_backbone(encoder_dir), settings.dropout,
                                        special_ids(tokenizer) if settings.exact_match else None)
    return build_list_model(cross_encoder, settings.max_seq_length, 1 + settings.num_negatives)


def build_losses(model, settings):
    return loss_and_labels(settings.rerank_loss, 1 + settings.num_negatives)[0]


def build_metrics(settings) -> list:
    return [loss_and_labels(settings.rerank_loss, 1 + settings.num_negatives)[2]]


def describe(settings, encoder_dir: str) -> str:
    return (f"cross-encoder re-ranker from {encoder_dir} ({settings.rerank_loss} loss over "
            f"{1 + settings.num_negatives} candidates per query)")


def special_ids(tokenizer) -> list[int]:
    """The pieces that never count as a match: padding, unknown, [CLS], [SEP] and [MASK]."""
    return [tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id]


def distillation_loss(settings, temperature: float):
    """The teacher's score margins over the same candidate lists, beside the listwise or
    pointwise loss on the judgements (weight ``1 - alpha``)."""
    return distillation.MarginMSEDistillation()


def export(model, data, tokenizer, precision: str) -> None:
    export_cross_encoder(model.get_layer("cross_encoder"), data.fn_args.serving_model_dir, tokenizer,
                         data.settings.max_seq_length, precision, data.settings.export_length_bucket)


def export_cross_encoder(cross_encoder, export_dir: str, tokenizer, seq_len: int, precision: str = "float32",
                         length_bucket: int = 0) -> None:
    """SavedModel: ``serving_default`` (``query``, ``text`` -> ``score`` per pair) and
    ``serving_tf_example`` (a stored example's candidates -> ``scores`` [batch, 1 + n], TFMA)."""
    # float32 whatever the training policy unless ``precision`` asks for compressed weights;
    # the scores are float32 either way.
    cross_encoder = compression.for_serving(cross_encoder, precision)
    module = tf.Module()
    export_lib.track_weights(module, cross_encoder)
    # Negatives as a variable-length list: a model trained with another num_negatives (the
    # baseline in TFMA's comparison) scores the same examples.
    raw_spec = {QUERY: tf.io.FixedLenFeature([], tf.string), features.TEXT: tf.io.FixedLenFeature([], tf.string),
                features.NEGATIVES: tf.io.VarLenFeature(tf.string)}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name=QUERY),
                                  tf.TensorSpec([None], tf.string, name=features.TEXT)])
    def serve(query, text):
        packed = tokenizer.encode(query, seq_len, texts_b=text, length_bucket=length_bucket)
        return {SCORE: tf.cast(cross_encoder(dict(packed), training=False), tf.float32)}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_tf_example(serialized):
        raw = tf.io.parse_example(serialized, raw_spec)
        passages = candidates(raw[features.TEXT], tf.sparse.to_dense(raw[features.NEGATIVES], default_value=""))
        packed = encode_candidates(tokenizer, raw[QUERY], passages, seq_len)
        c = tf.shape(passages)[1]
        scores = cross_encoder({k: tf.reshape(v, [-1, seq_len]) for k, v in packed.items()}, training=False)
        return {SCORES: tf.reshape(tf.cast(scores, tf.float32), [-1, c])}

    module.serve, module.serve_tf_example = serve, serve_tf_example
    export_lib.save_served_model(module, export_dir, {
        "serving_default": serve.get_concrete_function(),
        "serving_tf_example": serve_tf_example.get_concrete_function()})
