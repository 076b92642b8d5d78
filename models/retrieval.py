"""Dense retrieval (DPR-style dual encoder): the task module.

A query tower and a document tower (one shared encoder by default, ``finetune.shared_towers``;
separate weights otherwise), each BERT -> mean or [CLS] pooling -> L2 normalisation. Training
is contrastive with in-batch negatives: every query is scored against every passage of the
batch (its own positive, the other queries' positives and, when the data carries them, each
example's ``num_negatives`` hard negatives), cosine / ``finetune.temperature``, softmax
cross-entropy with the query's own positive as the label (DPR, Karpukhin et al. 2020;
Sentence-BERT's MultipleNegativesRankingLoss).

Data: TaskExampleGen ``beir`` (corpus.jsonl, queries.jsonl, qrels/<split>.tsv; hard negatives
mined by word overlap) or ``msmarco_triples``. Evaluation is retrieval over the whole corpus,
not TFMA over pairs: ``components.retrieval_evaluator`` embeds the corpus and the eval queries
with the candidate (and the baseline) model and gates the blessing on nDCG@10 (Recall@k and
MRR@10 reported). A blessed model's corpus is indexed into the vector store
(``components.vector_indexer``) when ``finetune.index_corpus`` is set.

Distillation: ``distill_run_fn`` trains a student on the teacher's in-batch score matrix; with
``finetune.cross_encoder_uri`` the dual encoder itself learns a re-ranker's score margins
(``cross_encoder_teacher``, ``PackPairs``, ``distillation.InBatchMarginMSE``).

Serving: ``embed(text)`` -> document ``embedding`` (what the VectorIndexer indexes),
``embed_query(text)`` -> query ``embedding``, ``serving_default(query, text)`` -> ``score``
(the cosine). Raw text in; the training tokenizer inside.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from tfx_bert_app.models import encoder as encoder_lib
from tfx_bert_app.models import compression, distillation, export as export_lib, finetuning
from tfx_bert_app.models.keras_layers import InBatchLogits, Restack, Unstack, build_sentence_encoder, dense_string_matrix
from tfx_bert import features
from tfx_bert import signatures as sig
from tfx_bert.config import TEACHER_MODEL_DIR

QUERY, NEGATIVES = sig.QUERY, features.NEGATIVES
QUERY_SUFFIX, NEGATIVES_SUFFIX = "_query", "_negatives"
SCORE, EMBEDDING = sig.SCORE, sig.EMBEDDING


def _encode_many(tokenizer, texts, seq_len: int) -> dict:
    """[batch, n] strings -> inputs [batch, n * seq_len] (n passages per example, flattened)."""
    n = tf.shape(texts)[1]
    packed = tokenizer.encode(tf.reshape(texts, [-1]), seq_len)
    return {k: tf.reshape(v, [-1, n * seq_len]) for k, v in packed.items()}


def encode_examples(tokenizer, settings, queries, texts, negatives=None) -> dict:
    """queries [batch], texts [batch] (the positives), negatives [batch, num_negatives] -> each
    tower's inputs: ``<key>_query`` [batch, max_query_length], ``<key>`` [batch, max_seq_length]
    and ``<key>_negatives`` [batch, num_negatives * max_seq_length] (int32)."""
    seq_len = settings.max_seq_length
    outputs = {k + QUERY_SUFFIX: v for k, v in tokenizer.encode(queries, settings.max_query_length).items()}
    outputs.update(tokenizer.encode(texts, seq_len))
    if settings.num_negatives:
        outputs.update({k + NEGATIVES_SUFFIX: v for k, v in _encode_many(tokenizer, negatives, seq_len).items()})
    return outputs


def preprocess(inputs: dict, settings, tokenizer) -> dict:
    """query, text (the positive passage), negatives -> each tower's inputs (int64, see
    ``encode_examples``)."""
    negatives = dense_string_matrix(inputs[NEGATIVES], settings.num_negatives) if settings.num_negatives else None
    outputs = encode_examples(tokenizer, settings, finetuning.dense_strings(inputs[QUERY]),
                              finetuning.dense_strings(inputs[features.TEXT]), negatives)
    return {k: tf.cast(v, tf.int64) for k, v in outputs.items()}


@keras.saving.register_keras_serializable(package="tfx_bert")
class PackPairs(keras.layers.Layer):
    """A dual encoder's inputs (queries, positives, hard negatives, each packed alone) -> a
    cross-encoder's: ``[CLS] query [SEP] passage [SEP]`` for each query's 1 + n candidates, one
    per row [batch * (1 + n), query_len + seq_len - 1], segment 0 then 1. The pieces are
    re-used as they are (one vocabulary), so no text is tokenized twice."""

    def __init__(self, seq_len: int, num_negatives: int, **kwargs):
        super().__init__(**kwargs)
        self.seq_len, self.num_negatives = seq_len, num_negatives

    def call(self, inputs):
        c = 1 + self.num_negatives
        keys = ("token_ids", "padding_mask")
        # A training batch may have its positives and negatives cut to different widths
        # (models/length_buckets.py): both are padded to the wider before they are stacked.
        positive_width = tf.shape(inputs["token_ids"])[1]
        negative_width = tf.shape(inputs["token_ids" + NEGATIVES_SUFFIX])[1] // self.num_negatives
        width = tf.maximum(positive_width, negative_width)

        def candidates(k):
            positives = tf.pad(inputs[k], [[0, 0], [0, width - positive_width]])[:, None, :]
            negatives = tf.reshape(inputs[k + NEGATIVES_SUFFIX], [tf.shape(inputs[k])[0], self.num_negatives,
                                                                   negative_width])
            negatives = tf.pad(negatives, [[0, 0], [0, 0], [0, width - negative_width]])
            return tf.reshape(tf.concat([positives, negatives], axis=1), [-1, width])

        passages = {k: candidates(k) for k in keys}
        queries = {k: tf.repeat(inputs[k + QUERY_SUFFIX], c, axis=0) for k in keys}
        query = tf.RaggedTensor.from_tensor(queries["token_ids"], lengths=tf.reduce_sum(
            tf.cast(queries["padding_mask"] > 0, tf.int32), axis=1))
        passage = tf.RaggedTensor.from_tensor(passages["token_ids"][:, 1:], lengths=tf.reduce_sum(
            tf.cast(passages["padding_mask"][:, 1:] > 0, tf.int32), axis=1))  # [CLS] dropped
        width = tf.shape(inputs["token_ids" + QUERY_SUFFIX])[1] + width - 1
        ids = tf.concat([query, passage], axis=1)
        segments = tf.concat([tf.zeros_like(query), tf.ones_like(passage)], axis=1)
        shape = tf.stack([ids.nrows(out_type=tf.int32), width])
        return {"token_ids": ids.to_tensor(0, shape=shape), "segment_ids": segments.to_tensor(0, shape=shape),
                "padding_mask": tf.ones_like(ids).to_tensor(0, shape=shape)}

    def get_config(self):
        return {**super().get_config(), "seq_len": self.seq_len, "num_negatives": self.num_negatives}


def cross_encoder_teacher(model_dir: str, seq_len: int, num_negatives: int, query_len: int) -> keras.Model:
    """A fine-tuned re-ranker (its ``distillation.load_teacher`` Keras model) as a model of the
    dual encoder's inputs: each query's candidate scores [batch, 1 + n], the positive first."""
    cross_encoder = distillation.load_teacher(model_dir).get_layer("cross_encoder")
    cross_encoder.trainable = False
    positions = distillation.backbone_of(cross_encoder).max_sequence_length
    if query_len + seq_len - 1 > positions:
        raise ValueError(f"finetune.cross_encoder_uri: a query and a passage packed together take up to "
                         f"max_query_length + max_seq_length - 1 = {query_len + seq_len - 1} pieces, more than the "
                         f"re-ranker's {positions} positions ({model_dir}): lower finetune.max_seq_length or "
                         f"max_query_length.")
    inputs = {k: keras.Input(shape=(None,), dtype="int32", name=k) for k in input_keys(num_negatives)}
    scores = cross_encoder(PackPairs(seq_len, num_negatives, name="pack_pairs")(inputs))
    return keras.Model(inputs, Restack(1 + num_negatives, name="candidate_scores")(scores), name="cross_encoder_teacher")


def build_dual_encoder(query_tower, doc_tower, seq_len: int, num_negatives: int, temperature: float) -> keras.Model:
    """Both towers and the in-batch logits (the training model)."""
    keys = features.MODEL_INPUT_KEYS
    inputs = {k + QUERY_SUFFIX: keras.Input(shape=(None,), dtype="int32", name=k + QUERY_SUFFIX) for k in keys}
    inputs.update({k: keras.Input(shape=(None,), dtype="int32", name=k) for k in keys})
    queries = query_tower({k: inputs[k + QUERY_SUFFIX] for k in keys})
    passages = doc_tower({k: inputs[k] for k in keys})
    if num_negatives:
        inputs.update({k + NEGATIVES_SUFFIX: keras.Input(shape=(None,), dtype="int32", name=k + NEGATIVES_SUFFIX)
                       for k in keys})
        unstack = Unstack(seq_len, count=num_negatives, name="unstack_negatives")
        negatives = doc_tower({k: unstack(inputs[k + NEGATIVES_SUFFIX]) for k in keys})
        passages = keras.layers.Concatenate(axis=0, name="batch_passages")([passages, negatives])
    return keras.Model(inputs, InBatchLogits(temperature, name="in_batch_logits", dtype="float32")(queries, passages), name="dual_encoder")


def stacked_sequences(settings) -> dict:
    """The queries (``max_query_length`` wide) and each row's hard negatives, which training
    batches cut too (``models/length_buckets.py``): the negatives are most of a step's passages."""
    return {QUERY_SUFFIX: 1, **({NEGATIVES_SUFFIX: settings.num_negatives} if settings.num_negatives else {})}


def input_keys(num_negatives: int, suffixes=(QUERY_SUFFIX, "")) -> tuple:
    keys = features.MODEL_INPUT_KEYS
    return tuple(k + s for s in suffixes + ((NEGATIVES_SUFFIX,) if num_negatives else ()) for k in keys)


def build_inputs(data, files, training: bool):
    """(both towers' inputs, the in-batch labels: the diagonal)."""
    # A short final batch would still be correct, but dropping it keeps every step's number of
    # negatives the same.
    keys = input_keys(data.settings.num_negatives)
    return data.dataset(files, training, drop_final_batch=True).map(
        lambda x: (finetuning.model_inputs(x, keys), tf.range(tf.shape(x[keys[0]])[0])))


def build_towers(base_model: str, pooling: str, shared: bool):
    """(query tower, document tower): one sentence encoder twice, or two copies of the
    pretrained encoder that train apart."""
    doc_tower = build_sentence_encoder(encoder_lib.load_backbone(base_model), pooling)
    if shared:
        return doc_tower, doc_tower
    return build_sentence_encoder(encoder_lib.load_backbone(base_model), pooling, name="query_encoder"), doc_tower


def build_losses(model, settings):
    """Softmax cross-entropy over the in-batch logits."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def build_metrics(settings) -> list:
    return [keras.metrics.SparseCategoricalAccuracy(name="in_batch_accuracy")]


def compile_dual_encoder(model, settings, steps: int, learning_rate: float | None = None) -> None:
    """The task's loss and metric, AdamW scheduled over ``steps`` (peaking at ``learning_rate``,
    default the fine-tuning one): the mining round's second fit."""
    model.compile(optimizer=finetuning.optimizer(settings, steps, learning_rate), loss=build_losses(model, settings),
                  metrics=build_metrics(settings))


def towers_of(dual_encoder: keras.Model):
    """(query tower, document tower) of a model ``build_dual_encoder`` built (one model when
    shared)."""
    doc_tower = dual_encoder.get_layer("sentence_encoder")
    names = {layer.name for layer in dual_encoder.layers}
    return (dual_encoder.get_layer("query_encoder") if "query_encoder" in names else doc_tower), doc_tower


def build_model(encoder_dir: str, settings, tokenizer) -> keras.Model:
    query_tower, doc_tower = build_towers(encoder_dir, settings.pooling, settings.shared_towers)
    return build_dual_encoder(query_tower, doc_tower, settings.max_seq_length, settings.num_negatives,
                              settings.temperature)


def training_model(data, model, tokenizer):
    """With ``finetune.cross_encoder_uri``: the dual encoder inside a Distiller that adds a
    re-ranker's margins (Margin-MSE) to the contrastive loss."""
    settings = data.settings
    cross_encoder_dir = (data.fn_args.custom_config or {}).get(TEACHER_MODEL_DIR)
    if not cross_encoder_dir:
        return model, ""
    distillation.check_shared_vocabulary(cross_encoder_dir, data.fn_args.base_model)
    teacher = cross_encoder_teacher(cross_encoder_dir, settings.max_seq_length, settings.num_negatives,
                                    settings.max_query_length)
    return (distillation.distiller(teacher, model, distillation.InBatchMarginMSE(), settings.cross_encoder_alpha),
            f", with the re-ranker {cross_encoder_dir}'s margins (Margin-MSE, weight {settings.cross_encoder_alpha})")


def describe(settings, encoder_dir: str) -> str:
    return (f"contrastive dual encoder ({'shared' if settings.shared_towers else 'separate'} towers, "
            f"{settings.pooling} pooling, temperature {settings.temperature}, in-batch + {settings.num_negatives} "
            f"hard negatives per query) from {encoder_dir}")


def distillation_loss(settings, temperature: float):
    """The teacher's in-batch score matrix: for each query, the softmax over every passage of
    the batch at temperature T, matched by KL divergence. Scores, not embeddings, are matched,
    so a narrower student needs no projection."""
    return distillation.softmax_distillation(temperature)


def export(model, data, tokenizer, precision: str) -> None:
    """Both towers of the dual encoder."""
    export_dual_encoder(*towers_of(model), data.fn_args.serving_model_dir, tokenizer, data.settings.max_seq_length,
                        data.settings.max_query_length, precision, data.settings.export_length_bucket)


def export_dual_encoder(query_tower, doc_tower, export_dir: str, tokenizer, seq_len: int, query_len: int,
                        precision: str = "float32", length_bucket: int = 0) -> None:
    """SavedModel: ``embed`` (document text -> ``embedding``), ``embed_query`` (query text ->
    ``embedding``) and ``serving_default`` (``query``, ``text`` -> ``score``, their cosine)."""
    # float32 whatever the training policy unless ``precision`` asks for compressed weights;
    # shared towers stay one model; embeddings are float32 either way.
    shared = query_tower is doc_tower
    doc_tower = compression.for_serving(doc_tower, precision)
    query_tower = doc_tower if shared else compression.for_serving(query_tower, precision)
    module = tf.Module()
    export_lib.track_weights(module, query_tower, doc_tower)

    def embed_docs(texts):
        return tf.math.l2_normalize(tf.cast(doc_tower(dict(tokenizer.encode(texts, seq_len, length_bucket=length_bucket)),
                                                      training=False),
                                            tf.float32), -1)

    def embed_queries(texts):
        return tf.math.l2_normalize(tf.cast(query_tower(dict(tokenizer.encode(texts, query_len, length_bucket=length_bucket)),
                                                        training=False),
                                            tf.float32), -1)

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name=features.TEXT)])
    def embed(text):
        return {EMBEDDING: embed_docs(text)}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name=features.TEXT)])
    def embed_query(text):
        return {EMBEDDING: embed_queries(text)}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name=QUERY),
                                  tf.TensorSpec([None], tf.string, name=features.TEXT)])
    def score(query, text):
        return {SCORE: tf.reduce_sum(embed_queries(query) * embed_docs(text), axis=-1)}

    module.embed, module.embed_query, module.score = embed, embed_query, score
    export_lib.save_served_model(module, export_dir, {
        "serving_default": score.get_concrete_function(),
        "embed": embed.get_concrete_function(),
        "embed_query": embed_query.get_concrete_function()})
