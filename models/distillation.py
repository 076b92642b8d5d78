"""Distillation: a fine-tuned teacher -> a student with fewer layers, for any task model built
on a BERT backbone.

* **The teacher** is the task model its Trainer saved next to the SavedModel
  (``<model artifact>/Format-Keras/model.keras``, with its vocabulary, ``save_teacher``): the
  SavedModel serves raw text, the student trains on the Transform output, and both need the
  same Keras model. A teacher from another run (``distill.teacher_uri``) must share the
  Transform's vocabulary (``check_shared_vocabulary``).
* **The student** (``student_from_teacher``) is the teacher's own architecture with fewer
  transformer layers, initialised from the teacher: the embeddings, the pooler and the head, and
  the layers ``layer_map`` picks, evenly spread from the first to the last (DistilBERT's
  initialisation: 6 of 12 are layers 0, 2, 4, 7, 9, 11). Same width, vocabulary and Transform;
  with ``distill.ffn_keep`` < 1, narrower feed-forward blocks (their most important neurons,
  ``kept_neurons``).
  Or (``student_from_encoder``, ``distill.student_encoder_uri``) the teacher's architecture on
  another pretrained encoder of any depth and width that shares its vocabulary, the head new.
* **Training**: ``keras.distillation.Distiller`` (the teacher frozen, the student's own loss on
  the labels weighted ``1 - alpha``, the soft-target loss ``alpha``) with the loss that fits the
  head's outputs: ``keras.distillation.LogitsDistillation`` (``softmax_distillation``; softmax
  heads over the last axis: classification, list-wise re-ranking scores: KL at temperature T,
  times T^2), and here, where Keras lacks them: ``SigmoidLogitsDistillation`` (multi-label),
  ``WordLogitsDistillation`` (per-word tags: KL over the words that exist, padding masked),
  ``SpanDistillation`` (QA: the start and end distributions over a window's pieces),
  ``EmbeddingDistillation`` (sentence embeddings: MSE), ``MarginMSEDistillation`` (re-ranking
  margins) and ``InBatchMarginMSE`` (a re-ranker's margins into a dual encoder's in-batch
  matrix). ``WeightedDistiller`` adds sample weights, DistilBERT's hidden-state term and
  MiniLM's attention term (last layers, or every mapped pair: TinyBERT); ``with_transfer_text``
  mixes unlabelled text the teacher labels into the batches.
* **Report** (``size_and_latency``): parameters, SavedModel MB and in-process latency of a
  served model, for the teacher and the student side by side.
"""
from __future__ import annotations

import functools
import os
import re
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from tfx_bert import tokenization
from tfx_bert.config import distill_settings_from
from tfx_bert.distill_summary import REPORT_FILE

KERAS_SUBDIR = "Format-Keras"
KERAS_FILE = "model.keras"
VOCAB_SUBDIR = "vocab"
_LAYER = re.compile(r"^transformer_layer_(\d+)/")
_BACKBONES = ("keras_hub>BertBackbone", "tfx_bert>BertEncoder")
BACKBONE_INPUTS = ("token_ids", "segment_ids", "padding_mask")  # what a BERT backbone reads


def teacher_path(serving_model_dir: str) -> str:
    """Where a Trainer that ran with ``serving_model_dir`` keeps its Keras task model."""
    return os.path.join(os.path.dirname(serving_model_dir.rstrip("/")), KERAS_SUBDIR, KERAS_FILE)


def save_teacher(model: keras.Model, serving_model_dir: str, tokenizer: tokenization.WordPieceTokenizer) -> str:
    """Saves the trained task model beside its SavedModel, for a later distillation, with its
    WordPiece vocabulary: a student's export tokenizes with it (NER's words, QA's windows), and a
    teacher given by URI must share it with the student's Transform (``check_shared_vocabulary``)."""
    path = teacher_path(serving_model_dir)
    tf.io.gfile.makedirs(os.path.dirname(path))
    tokenization.write_vocab_dir(os.path.join(os.path.dirname(path), VOCAB_SUBDIR), tokenizer.vocab, tokenizer.config)
    if "://" in path:  # Keras writes local files only
        local = os.path.join(tempfile.mkdtemp(), KERAS_FILE)
        model.save(local)
        tf.io.gfile.copy(local, path, overwrite=True)
    else:
        model.save(path)
    return path


def load_teacher(base_model: str) -> keras.Model:
    """The teacher task model of the Model artifact whose serving dir is ``base_model``."""
    from tfx_bert_app.models import encoder  # noqa: F401  (registers BertEncoder for loading)

    path = teacher_path(base_model)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"The teacher model {base_model} has no Keras task model at {path}: it was trained before "
            f"distillation existed, or by a task without distill_run_fn. Fine-tune it again with this version.")
    if "://" in path:
        local = os.path.join(tempfile.mkdtemp(), KERAS_FILE)
        tf.io.gfile.copy(path, local, overwrite=True)
        path = local
    return keras.models.load_model(path, compile=False)


def teacher_tokenizer(base_model: str) -> tokenization.WordPieceTokenizer:
    """The WordPiece tokenizer the teacher was trained with (saved by ``save_teacher``)."""
    directory = os.path.join(os.path.dirname(teacher_path(base_model)), VOCAB_SUBDIR)
    vocab_file = os.path.join(directory, tokenization.VOCAB_FILENAME)
    if not tf.io.gfile.exists(vocab_file):
        raise FileNotFoundError(f"The teacher model {base_model} has no vocabulary at {vocab_file}: fine-tune it "
                                f"again with this version.")
    return tokenization.WordPieceTokenizer(tokenization.read_vocab(vocab_file),
                                           tokenization.read_tokenizer_config(directory))


def check_shared_vocabulary(base_model: str, encoder_dir: str) -> None:
    """Refuses a teacher fine-tuned with another vocabulary than the Transform's encoder
    (``encoder_dir``): the student learns the teacher's outputs on the Transform's token ids, so a
    teacher that reads other ids teaches noise."""
    from tfx_bert_app.models import encoder as encoder_lib

    transform_vocab = list(encoder_lib.load_tokenizer(encoder_dir).vocab)
    teacher_vocab = list(teacher_tokenizer(base_model).vocab)
    if teacher_vocab == transform_vocab:
        return
    differ = next((i for i, (a, b) in enumerate(zip(teacher_vocab, transform_vocab)) if a != b),
                  min(len(teacher_vocab), len(transform_vocab)))
    pieces = lambda vocab: repr(vocab[differ]) if differ < len(vocab) else "nothing"  # noqa: E731
    raise ValueError(
        f"The teacher {base_model} was fine-tuned with another vocabulary than this pipeline's encoder {encoder_dir} "
        f"({len(teacher_vocab)} against {len(transform_vocab)} pieces; piece {differ} is {pieces(teacher_vocab)} "
        f"against {pieces(transform_vocab)}). The student learns the teacher's outputs on the Transform's token ids, "
        f"so both must share one vocabulary: set finetune.encoder_uri to the encoder the teacher was fine-tuned from.")


def layer_map(teacher_layers: int, student_layers: int) -> list[int]:
    """The teacher layer each student layer starts from: evenly spread, first and last kept."""
    if not 0 < student_layers <= teacher_layers:
        raise ValueError(f"distill.student_layers must be 1..{teacher_layers} (the teacher's layers); "
                         f"got {student_layers}.")
    if student_layers == 1:
        return [teacher_layers - 1]
    return [int(round(x)) for x in np.linspace(0, teacher_layers - 1, student_layers)]


def _dicts(node):
    """Every dict inside a model's config (nested at any depth), the outer ones first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _dicts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _dicts(value)


def _backbone_nodes(node):
    """Every serialized BERT backbone (its ``class_name`` / ``config`` dict) inside a model's
    config, nested at any depth."""
    return (found for found in _dicts(node)
            if found.get("registered_name") in _BACKBONES and isinstance(found.get("config"), dict))


def _backbone_configs(node):
    """Every serialized BERT backbone config inside a model's config (nested at any depth)."""
    return (found["config"] for found in _backbone_nodes(node))


def backbone_setting(model: keras.Model, key: str) -> int:
    """A setting of the BERT backbone inside a task model (``num_layers``, ``intermediate_dim``),
    or of each of its backbones, which must agree: a dual encoder's two towers."""
    values = {int(config[key]) for config in _backbone_configs(model.get_config())}
    if len(values) != 1:
        raise ValueError(f"Distillation needs a task model whose BERT backbones agree on {key}; {model.name} has "
                         f"{sorted(values) or 'no backbone'}.")
    return values.pop()


def num_layers(model: keras.Model) -> int:
    """The transformer layers of the BERT backbone(s) inside a task model."""
    return backbone_setting(model, "num_layers")


def student_from_teacher(teacher: keras.Model, student_layers: int = 0, ffn_keep: float = 1.0) -> keras.Model:
    """The teacher's architecture with ``student_layers`` transformer layers (0: half, rounded
    up), every weight copied from the teacher (layers by ``layer_map``). ``ffn_keep`` < 1 also
    narrows every feed-forward block to that share of its neurons, the most important of each
    source layer (``kept_neurons``): width pruning that cuts two thirds of a layer's matmuls."""
    total = num_layers(teacher)
    student_layers = student_layers or (total + 1) // 2
    sources = layer_map(total, student_layers)
    config = teacher.get_config()
    for backbone in _backbone_configs(config):
        backbone["num_layers"] = student_layers
        backbone["intermediate_dim"] = ffn_width(int(backbone["intermediate_dim"]), ffn_keep)
    student = type(teacher).from_config(config)
    # Backbone by backbone (a dual encoder's two towers have the same weight paths), then the rest.
    in_backbones = set()
    for teacher_backbone, student_backbone in zip(backbones_of(teacher), backbones_of(student)):
        _copy_weights(teacher_backbone.weights, student_backbone.weights, sources)
        in_backbones |= {id(v) for v in teacher_backbone.weights + student_backbone.weights}
    _copy_weights([v for v in teacher.weights if id(v) not in in_backbones],
                  [v for v in student.weights if id(v) not in in_backbones], sources)
    return student


def ffn_width(intermediate_dim: int, keep: float) -> int:
    """The student's feed-forward width: ``keep`` of the teacher's, at least one neuron."""
    if not 0 < keep <= 1:
        raise ValueError(f"distill.ffn_keep must be in (0, 1] (the share of feed-forward neurons kept); got {keep}.")
    return max(1, int(round(intermediate_dim * keep)))


_FFN_IN = "feedforward_intermediate_dense/"
_FFN_OUT = "feedforward_output_dense/kernel"


def kept_neurons(intermediate_kernel: np.ndarray, output_kernel: np.ndarray, width: int) -> np.ndarray:
    """The ``width`` feed-forward neurons of a layer to keep, in their order: those whose input
    column and output row have the largest norm product (a neuron's weight magnitude on both
    sides bounds what it adds to the residual stream; the distillation that follows recovers the
    rest, as in DynaBERT's and CoFi's width pruning)."""
    importance = np.linalg.norm(intermediate_kernel, axis=0) * np.linalg.norm(output_kernel, axis=1)
    return np.sort(np.argsort(-importance, kind="stable")[:width])


def _source_value(by_path: dict, source: str, shape) -> np.ndarray:
    """The teacher's value for a student weight: itself, or (a narrowed feed-forward block) the
    kept neurons' slice of it."""
    value = by_path[source].numpy()
    if tuple(value.shape) == tuple(shape):
        return value
    layer = source[:source.index("/") + 1]
    if not (_FFN_IN in source or source.endswith(_FFN_OUT)):
        raise ValueError(f"The student's weight {source} has shape {tuple(shape)}, the teacher's {value.shape}.")
    width = shape[0] if source.endswith(_FFN_OUT) else shape[-1]
    kept = kept_neurons(by_path[layer + _FFN_IN + "kernel"].numpy(), by_path[layer + _FFN_OUT].numpy(), width)
    return value[kept] if source.endswith(_FFN_OUT) or value.ndim == 1 else value[:, kept]


def _copy_weights(teacher_weights: list, student_weights: list, sources: list[int]) -> None:
    """Each student weight from the teacher's of the same path, transformer layer i from layer
    ``sources[i]`` (a narrower feed-forward block from its kept neurons)."""
    by_path = {v.path: v for v in teacher_weights}
    for variable in student_weights:
        match = _LAYER.match(variable.path)
        source = (f"transformer_layer_{sources[int(match.group(1))]}/{variable.path[match.end():]}"
                  if match else variable.path)
        if source not in by_path:
            raise ValueError(f"The student's weight {variable.path} has no teacher weight {source}.")
        variable.assign(_source_value(by_path, source, variable.shape))


def student_from_encoder(teacher: keras.Model, encoder_dir: str) -> keras.Model:
    """The teacher's task architecture on another pretrained encoder (a registry size the
    pretraining pipeline trained, or an imported checkpoint; any depth and width): the encoder's
    weights, a freshly initialised head (its width follows the encoder's), the teacher's dropout
    and layer names. The encoder must read the teacher's vocabulary (``check_shared_vocabulary``)."""
    from tfx_bert_app.models import encoder as encoder_lib

    num_layers(teacher)  # exactly one backbone
    source = encoder_lib.load_backbone(encoder_dir)
    serialized = keras.saving.serialize_keras_object(source)
    config = teacher.get_config()
    for node in _backbone_nodes(config):
        kept = {key: node["config"][key] for key in ("name", "dropout", "dtype") if key in node["config"]}
        node.update({key: serialized[key] for key in ("module", "class_name", "registered_name") if key in serialized})
        node["config"] = {**serialized["config"], **kept}
    for node in _dicts(config):  # the head's layers were built for the teacher's width: build them anew
        node.pop("build_config", None)
    student = type(teacher).from_config(config)
    for backbone in backbones_of(student):
        backbone.set_weights(source.get_weights())
    return student


def softmax_distillation(temperature: float):
    """``keras.distillation.LogitsDistillation`` for softmax heads, with KL divergence given as a
    ``keras.losses.KLDivergence`` instance: Keras 3.15's default ``loss="kl_divergence"``
    resolves to the plain function, which skips the softmax and computes "KL" on raw logits
    (negative losses, the student drifting away)."""
    return keras.distillation.LogitsDistillation(temperature=temperature, loss=keras.losses.KLDivergence())


class SigmoidLogitsDistillation(keras.distillation.DistillationLoss):
    """Multi-label heads: each label's sigmoid at temperature T is a soft target (binary cross
    entropy against the teacher's), times T^2 as for softmax."""

    def __init__(self, temperature: float = 2.0):
        self.temperature = float(temperature)

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        t = self.temperature
        targets = keras.ops.sigmoid(keras.ops.divide(teacher_outputs, t))
        loss = keras.losses.binary_crossentropy(targets, keras.ops.divide(student_outputs, t), from_logits=True)
        return keras.ops.mean(loss) * t * t

    def get_config(self):
        return {"temperature": self.temperature}


class SpanDistillation(keras.distillation.DistillationLoss):
    """Extractive QA heads (start and end logits per piece, [batch, seq, 2]): KL between the
    teacher's and the student's start distributions over the window's pieces, and their end
    distributions, at temperature T, times T^2 (padding is -1e9 in both: probability 0)."""

    def __init__(self, temperature: float = 2.0):
        self.temperature = float(temperature)

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        t = self.temperature
        teacher = tf.cast(teacher_outputs, tf.float32) / t
        student = tf.cast(student_outputs, tf.float32) / t
        kl = tf.reduce_sum(tf.nn.softmax(teacher, axis=1)
                           * (tf.nn.log_softmax(teacher, axis=1) - tf.nn.log_softmax(student, axis=1)), axis=1)
        return tf.reduce_mean(kl) * t * t

    def get_config(self):
        return {"temperature": self.temperature}


class EmbeddingDistillation(keras.distillation.DistillationLoss):
    """Outputs matched by mean squared error: sentence embeddings (sentence-transformers' model
    distillation), or a bi-encoder's cosine scores (the similarity task's student)."""

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        losses = [keras.ops.mean(keras.ops.square(keras.ops.subtract(t, s)))
                  for t, s in zip(keras.tree.flatten(teacher_outputs), keras.tree.flatten(student_outputs))]
        return keras.ops.sum(keras.ops.stack(losses))

    def get_config(self):
        return {}


class MarginMSEDistillation(keras.distillation.DistillationLoss):
    """Candidate lists of a re-ranker (scores [batch, 1 + n], the relevant passage first): the
    student's margins s(relevant) - s(negative) matched to the teacher's by mean squared error
    (Margin-MSE, Hofstaetter et al. 2020). Margins, not raw scores: a cross-encoder's scores have
    no fixed scale, its ordering is what the student must keep. No temperature."""

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        teacher = tf.cast(teacher_outputs, tf.float32)
        student = tf.cast(student_outputs, tf.float32)
        teacher_margins = teacher[:, :1] - teacher[:, 1:]
        student_margins = student[:, :1] - student[:, 1:]
        return tf.reduce_mean(tf.square(teacher_margins - student_margins))

    def get_config(self):
        return {}


class InBatchMarginMSE(MarginMSEDistillation):
    """A cross-encoder's candidate scores [batch, 1 + n] (the positive first) distilled into a
    dual encoder, whose output is its in-batch score matrix [batch, batch * (1 + n)] (columns:
    the batch's positives, then each query's n hard negatives in order): each query's own
    positive and negatives are taken from its row, then Margin-MSE."""

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        student = tf.cast(student_outputs, tf.float32)
        batch = tf.shape(student)[0]
        n = tf.shape(teacher_outputs)[1] - 1
        positives = tf.linalg.diag_part(student[:, :batch])
        negatives = tf.reshape(student[:, batch:], [batch, batch, n])  # [query, owner, j]
        own = tf.gather_nd(negatives, tf.stack([tf.range(batch), tf.range(batch)], axis=1))  # [batch, n]
        return super().compute_loss(teacher_outputs, tf.concat([positives[:, None], own], axis=1))


class MarkPaddedWords(keras.layers.Layer):
    """Per-word logits [batch, words, tags] -> the same, NaN in the word slots that hold no word
    (``word_positions`` < 0): how ``WordLogitsDistillation`` tells them apart, since a Keras
    distillation loss sees only the two models' outputs."""

    def call(self, logits, positions):
        present = keras.ops.expand_dims(keras.ops.greater_equal(positions, 0), -1)
        return keras.ops.where(present, logits, keras.ops.full_like(logits, float("nan")))


def mark_padded_words(teacher: keras.Model, positions_key: str) -> keras.Model:
    """The (frozen) per-word teacher, its padded word slots NaN (``MarkPaddedWords``)."""
    inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in teacher.input}
    return keras.Model(inputs, MarkPaddedWords()(teacher(inputs), inputs[positions_key]),
                       name=f"{teacher.name}_words")


class WordLogitsDistillation(keras.distillation.DistillationLoss):
    """Per-word softmax heads (NER tags; a CRF's emissions): KL between the teacher's and the
    student's tag distributions at temperature T, times T^2, averaged over the words that exist
    (the teacher comes through ``mark_padded_words``), so padding neither dilutes nor adds."""

    def __init__(self, temperature: float = 2.0):
        self.temperature = float(temperature)

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        t = self.temperature
        present = tf.logical_not(tf.math.is_nan(teacher_outputs[..., 0]))
        teacher = tf.where(present[..., None], tf.cast(teacher_outputs, tf.float32), 0.0) / t
        student = tf.cast(student_outputs, tf.float32) / t
        kl = tf.reduce_sum(tf.nn.softmax(teacher) * (tf.nn.log_softmax(teacher) - tf.nn.log_softmax(student)), -1)
        weights = tf.cast(present, tf.float32)
        return tf.reduce_sum(kl * weights) / tf.maximum(tf.reduce_sum(weights), 1.0) * t * t

    def get_config(self):
        return {"temperature": self.temperature}


def _weighted(loss, sample_weight):
    if not isinstance(loss, keras.losses.Loss):
        raise TypeError(f"The data carries sample weights, so the student's loss must be a keras.losses.Loss to "
                        f"take them; got {loss!r}.")
    return lambda y_true, predicted: loss(y_true, predicted, sample_weight=sample_weight)


def backbones_of(model: keras.Model) -> list:
    """The BERT backbone layers inside a task model, at any depth (a shared one once)."""
    import keras_hub

    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras_hub.models.BertBackbone)]


def backbone_of(model: keras.Model):
    """The (one) BERT backbone layer inside a task model, at any depth."""
    found = backbones_of(model)
    if len(found) != 1:
        raise ValueError(f"Distillation needs a task model with one BERT backbone; {model.name} has {len(found)}.")
    return found[0]


class WeightedDistiller(keras.distillation.Distiller):
    """``keras.distillation.Distiller`` whose student loss honours sample weights (a dataset's
    third element: ``finetune.class_weights``), plus an optional hidden-state term.

    Keras 3.15's Distiller drops sample weights ("currently unused"), so a student of a
    class-weighted teacher would train unweighted. The soft-target loss stays unweighted: the
    teacher's distribution already carries what the weights taught it.

    ``hidden_weight`` > 0 adds DistilBERT's cosine loss between the teacher's and the student's
    last hidden states over the real tokens (1 - cosine, averaged), through a learned projection
    (TinyBERT's W_h, trained with the student, not exported) when the student is narrower. It
    needs a model fed one sequence (``BACKBONE_INPUTS``); Keras's ``FeatureDistillation`` cannot
    reach a backbone nested in a task model. ``attention_weight`` > 0 adds MiniLM's attention and
    value-relation term. ``layer_mapping`` ``all`` applies both terms to every student layer and
    the teacher layer it starts from, and the hidden-state term to the embeddings too (TinyBERT's
    intermediate and embedding layers); ``last`` to the last layers only."""

    def __init__(self, *args, hidden_weight: float = 0.0, attention_weight: float = 0.0, layer_mapping: str = "last",
                 relation_heads: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.hidden_weight, self.hidden_projection = float(hidden_weight), None
        self.attention_weight, self.relation_heads = float(attention_weight), int(relation_heads)
        if layer_mapping not in ("last", "all"):
            raise ValueError(f"distill.layer_mapping must be last or all; got {layer_mapping!r}.")
        if not (self.hidden_weight or self.attention_weight):
            return  # soft targets only: the models need no BERT backbone (any head distils)
        self._backbones = {"teacher": backbone_of(self.teacher), "student": backbone_of(self.student)}
        teacher_backbone, student_backbone = self._backbones["teacher"], self._backbones["student"]
        # (student layer, teacher layer) pairs the terms compare: the last ones, or (TinyBERT) every
        # student layer against the teacher layer it starts from.
        if layer_mapping == "all":
            self.layer_pairs = list(enumerate(layer_map(teacher_backbone.num_layers, student_backbone.num_layers)))
        else:
            self.layer_pairs = [(student_backbone.num_layers - 1, teacher_backbone.num_layers - 1)]
        # The hidden-state term's pairs: with ``all``, TinyBERT's embedding-layer term too (layer
        # -1: the embeddings, what layer 0 reads). Attention has no such layer.
        self.hidden_pairs = ([(-1, -1)] if layer_mapping == "all" else []) + self.layer_pairs
        if self.attention_weight and self.relation_heads:
            for who, backbone in self._backbones.items():
                if backbone.hidden_dim % self.relation_heads:
                    raise ValueError(f"distill.relation_heads={self.relation_heads} must divide the {who}'s width "
                                     f"({backbone.hidden_dim}): MiniLM v2 splits the concatenated heads into that "
                                     f"many relation heads.")
        elif self.attention_weight and teacher_backbone.num_heads != student_backbone.num_heads:
            raise ValueError(f"distill.attention_weight compares attention heads one to one (MiniLM): the teacher "
                             f"has {teacher_backbone.num_heads}, the student {student_backbone.num_heads}. Use a "
                             f"student with as many heads, set distill.relation_heads (MiniLM v2: any heads), or "
                             f"set distill.attention_weight=0.")
        self._states = {"teacher": _layer_states(teacher_backbone), "student": _layer_states(student_backbone)}
        self.embedding_projection = None
        if self.hidden_weight and teacher_backbone.hidden_dim != student_backbone.hidden_dim:
            # TinyBERT's W_h (shared by the layers) and, for the embeddings, its own W_e.
            self.hidden_projection = _projection(teacher_backbone, student_backbone, "hidden_projection")
            if self.hidden_pairs[0][0] < 0:
                self.embedding_projection = _projection(teacher_backbone, student_backbone, "embedding_projection")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if sample_weight is None:
            total = super().compute_loss(x, y, y_pred, training=training)
        else:
            unweighted = self._student_loss
            self._student_loss = keras.tree.map_structure(lambda loss: _weighted(loss, sample_weight), unweighted)
            try:
                total = super().compute_loss(x, y, y_pred, training=training)
            finally:
                self._student_loss = unweighted
        if self.hidden_weight:
            total = total + self.hidden_weight * self.hidden_state_loss(x, training)
        if self.attention_weight:
            total = total + self.attention_weight * self.attention_loss(x, training)
        return total

    def _both_states(self, inputs, training):
        return (self._states["teacher"](inputs, training=False), self._states["student"](inputs, training=training))

    def attention_loss(self, x, training=False):
        """MiniLM's deep self-attention term: KL between the teacher's and the student's
        attention distributions, plus KL between their value relations (softmax of V V^T /
        sqrt(d) per head), each averaged over heads and the real query tokens, and over the
        ``layer_pairs``. With ``relation_heads`` (MiniLM v2): KL between their query-query,
        key-key and value-value relations over that many relation heads instead."""
        inputs = _backbone_inputs(x, "distill.attention_weight")
        mask = keras.ops.cast(inputs["padding_mask"], "float32")
        teacher_states, student_states = self._both_states(inputs, training)
        total = 0.0
        relations = (functools.partial(multi_head_relations, num_heads=self.relation_heads) if self.relation_heads
                     else layer_relations)
        for student_layer, teacher_layer in self.layer_pairs:
            teacher = relations(self._backbones["teacher"], teacher_layer, teacher_states[teacher_layer],
                                inputs["padding_mask"], False)
            student = relations(self._backbones["student"], student_layer, student_states[student_layer],
                                inputs["padding_mask"], training)
            total = total + sum(_masked_kl(t, s, mask) for t, s in zip(teacher, student))
        return total / len(self.layer_pairs)

    def hidden_state_loss(self, x, training=False):
        """1 - cosine between the teacher's and the (projected) student's hidden states (each
        of ``hidden_pairs``' outputs: with ``all``, the embeddings too), averaged over the tokens
        the padding mask keeps and the pairs."""
        inputs = _backbone_inputs(x, "distill.hidden_weight")
        mask = keras.ops.cast(inputs["padding_mask"], "float32")
        teacher_states, student_states = self._both_states(inputs, training)
        total = 0.0
        for student_layer, teacher_layer in self.hidden_pairs:
            teacher = keras.ops.cast(teacher_states[teacher_layer + 1], "float32")
            student = keras.ops.cast(student_states[student_layer + 1], "float32")
            projection = self.embedding_projection if student_layer < 0 else self.hidden_projection
            if projection is not None:
                student = projection(student)
            cosine = keras.ops.sum(keras.ops.normalize(teacher, axis=-1) * keras.ops.normalize(student, axis=-1),
                                   axis=-1)
            total = total + keras.ops.sum((1.0 - cosine) * mask) / keras.ops.maximum(keras.ops.sum(mask), 1.0)
        return total / len(self.hidden_pairs)


def _projection(teacher_backbone, student_backbone, name: str) -> keras.layers.Dense:
    """A learned map from the student's width to the teacher's (trained with the student, not
    exported)."""
    projection = keras.layers.Dense(teacher_backbone.hidden_dim, dtype="float32", name=name)
    projection.build((None, None, student_backbone.hidden_dim))
    return projection


def _backbone_inputs(x, setting: str) -> dict:
    """The backbone's inputs out of a batch, or a clear error for a model not fed one sequence."""
    missing = [key for key in BACKBONE_INPUTS if not isinstance(x, dict) or key not in x]
    if missing:
        raise ValueError(f"{setting} needs a model fed one sequence ({', '.join(BACKBONE_INPUTS)}); "
                         f"this one lacks {missing}: set {setting}=0 for this task.")
    return {key: x[key] for key in BACKBONE_INPUTS}


def _layer_states(backbone) -> keras.Model:
    """A model of the backbone's inputs that returns [the embeddings, transformer layer 0's
    output, ..., the last layer's]: element i is what layer i reads, i + 1 what it returns. It
    shares the backbone's weights."""
    names = ["embeddings_dropout"] + [f"transformer_layer_{i}" for i in range(backbone.num_layers)]
    return keras.Model(backbone.input, [backbone.get_layer(name).output for name in names])


def _self_relation(vectors, padding_mask):
    """softmax(X X^T / sqrt(d)) per head of ``vectors`` [batch, seq, heads, d] -> [batch, heads,
    seq, seq] in float32, padded keys at 0."""
    vectors = keras.ops.cast(vectors, "float32")
    scores = keras.ops.einsum("bqhd,bkhd->bhqk", vectors, vectors) / float(np.sqrt(vectors.shape[-1]))
    keys = keras.ops.cast(padding_mask, "float32")[:, None, None, :]
    return keras.ops.softmax(scores - 1e9 * (1.0 - keys), axis=-1)


def layer_relations(backbone, index: int, layer_input, padding_mask, training) -> tuple:
    """(attention distributions, value relations) of the backbone's transformer layer ``index``
    reading ``layer_input``: each [batch, heads, seq, seq] in float32, padded keys at 0."""
    layer = backbone.get_layer(f"transformer_layer_{index}")
    _, attention = layer(layer_input, padding_mask=padding_mask, return_attention_scores=True, training=training)
    values = layer._self_attention_layer._value_dense(layer_input)  # [batch, seq, heads, d]
    return keras.ops.cast(attention, "float32"), _self_relation(values, padding_mask)


def multi_head_relations(backbone, index: int, layer_input, padding_mask, training, num_heads: int) -> tuple:
    """MiniLM v2's (query-query, key-key, value-value) relations of transformer layer ``index``:
    each projection's heads concatenated, then split into ``num_heads`` relation heads, so a
    teacher and a student with other head counts (and widths) compare; each [batch, num_heads,
    seq, seq] in float32. (``training`` is unused: the projections have no dropout.)"""
    attention = backbone.get_layer(f"transformer_layer_{index}")._self_attention_layer
    relations = []
    for projection in (attention._query_dense, attention._key_dense, attention._value_dense):
        vectors = projection(layer_input)  # [batch, seq, heads, d]
        batch, seq = keras.ops.shape(vectors)[0], keras.ops.shape(vectors)[1]
        width = vectors.shape[2] * vectors.shape[3]
        split = keras.ops.reshape(vectors, (batch, seq, num_heads, width // num_heads))
        relations.append(_self_relation(split, padding_mask))
    return tuple(relations)


def _masked_kl(teacher, student, mask):
    """KL(teacher || student) over the last axis, averaged over heads and the real queries."""
    kl = keras.ops.sum(teacher * (keras.ops.log(teacher + 1e-9) - keras.ops.log(student + 1e-9)), axis=-1)
    per_query = keras.ops.mean(kl, axis=1)  # over heads: [batch, seq]
    return keras.ops.sum(per_query * mask) / keras.ops.maximum(keras.ops.sum(mask), 1.0)


def distiller(teacher: keras.Model, student: keras.Model, loss, alpha: float, hidden_weight: float = 0.0,
              attention_weight: float = 0.0, layer_mapping: str = "last", relation_heads: int = 0) -> keras.Model:
    """``WeightedDistiller`` (Keras's Distiller, sample weights honoured): the student's own loss
    (given at ``compile``, a ``keras.losses.Loss``) weighted ``1 - alpha``, ``loss`` (a
    distillation loss) ``alpha``, plus ``hidden_weight`` x the hidden-state term and
    ``attention_weight`` x MiniLM's attention term over the ``layer_mapping`` pairs (MiniLM v2's
    with ``relation_heads``); its predictions are the student's."""
    return WeightedDistiller(teacher=teacher, student=student, distillation_losses=loss, student_loss_weight=1.0 - alpha,
                             hidden_weight=hidden_weight, attention_weight=attention_weight,
                             layer_mapping=layer_mapping, relation_heads=relation_heads)


def run_student(fn_args, make_loss, train_and_export, what: str, wrap_teacher=None) -> None:
    """What every task's ``distill_run_fn`` does: the settings (``custom_config``:
    ``tfx_bert.config.distill_settings``), the teacher (``base_model``), the layer-taking student,
    a Distiller with ``make_loss(temperature)`` on the teacher (through ``wrap_teacher`` if given),
    then the task's own ``train_and_export(settings, distill_settings, model, student, message)``
    and the report. ``what`` names the teacher in the progress line."""
    from tfx_bert_app.models import finetuning

    settings = finetuning.start(fn_args)
    d = distill_settings_from(fn_args.custom_config)
    if (fn_args.custom_config or {}).get("encoder_dir"):  # the Transform's encoder (the pipeline passes it)
        check_shared_vocabulary(fn_args.base_model, fn_args.custom_config["encoder_dir"])
    teacher = load_teacher(fn_args.base_model)
    if d.student_encoder_uri:
        check_shared_vocabulary(fn_args.base_model, d.student_encoder_uri)
        student = student_from_encoder(teacher, d.student_encoder_uri)
    else:
        student = student_from_teacher(teacher, d.student_layers, d.ffn_keep)
    model = distiller(wrap_teacher(teacher) if wrap_teacher else teacher, student, make_loss(d.temperature), d.alpha,
                      d.hidden_weight, d.attention_weight, d.layer_mapping, d.relation_heads)
    hidden = (f", hidden-state weight {d.hidden_weight}" if d.hidden_weight else "") + (
        f", attention weight {d.attention_weight}" if d.attention_weight else "") + (
        f" over {d.relation_heads} relation heads" if d.attention_weight and d.relation_heads else "") + (
        f", {d.layer_mapping} layers" if d.hidden_weight or d.attention_weight else "")
    train_and_export(settings, d, model, student,
                     f"distilling a {num_layers(student)}-layer student from the {num_layers(teacher)}-layer {what} "
                     f"{fn_args.base_model} (T={d.temperature}, alpha={d.alpha}{hidden})")
    report(teacher, student, fn_args.base_model, fn_args.serving_model_dir, fn_args.model_run_dir)


def with_transfer_text(train_dataset, tf_transform_output, d, batch_size: int, seed: int = 0):
    """``train_dataset`` as it is without ``d`` (a teacher's run) or ``d.transfer_pattern``; else
    (batches of (inputs, labels[, weights])) mixed with unlabelled in-domain
    text (``d.transfer_pattern``) that the teacher labels with its soft outputs: about
    ``d.transfer_share`` of each batch's examples are lines of those files, run through the
    task's Transform graph as ``_transfer_features`` says.

    They count in the soft-target loss and not in the labels': a text label is zero at sample
    weight 0 (``WeightedDistiller`` weights the label loss only); a tagger's word tags are all
    -1 (no tag: its losses skip those words), its dataset keeps its (inputs, tags) form."""
    if d is None or not d.transfer_pattern:
        return train_dataset
    from tfx_bert import features

    files = sorted(tf.io.gfile.glob(d.transfer_pattern))
    if not files:
        raise ValueError(f"distill.transfer_pattern {d.transfer_pattern!r} matches no file: give a glob of text "
                         f"files, one text per line (the pretraining corpus's *.txt read as such).")
    raw_spec = dict(tf_transform_output.raw_feature_spec())
    tagger = raw_spec.pop(features.TAGS, None) is not None
    raw_spec.pop(features.LABEL, None)
    lines_per_example, columns = _transfer_features(raw_spec)
    input_spec, label_spec = train_dataset.element_spec[:2]
    tft_layer = tf_transform_output.transform_features_layer()

    def transform(texts):  # [n] lines, or [n, 2]: a line and the next
        transformed = tft_layer(columns(texts))
        n = tf.shape(texts)[0]
        inputs = {k: tf.cast(transformed[k], spec.dtype) for k, spec in input_spec.items()}
        labels = tf.fill(tf.stack([n, *label_spec.shape[1:].as_list()]), tf.constant(-1 if tagger else 0, label_spec.dtype))
        return (inputs, labels) if tagger else (inputs, labels, tf.zeros([n], tf.float32))

    lines = tf.data.TextLineDataset(files).map(tf.strings.strip).filter(lambda line: tf.strings.length(line) > 0)
    if d.transfer_max:
        lines = lines.take(d.transfer_max)
    if lines_per_example == 2:  # a line and the next (mostly of one document, like NSP's positive pairs)
        lines = lines.batch(2, drop_remainder=True)
    transfer = lines.shuffle(10_000, seed=seed).repeat().batch(batch_size).map(transform).unbatch()
    labelled = train_dataset if tagger else train_dataset.map(
        lambda x, y, *w: (x, y, w[0] if w else tf.ones(tf.shape(y)[:1], tf.float32)))
    print(f"  [distill] transfer text: {len(files)} file(s) matching {d.transfer_pattern}, "
          f"{d.transfer_share:.0%} of each batch", flush=True)
    mixed = tf.data.Dataset.sample_from_datasets(
        [labelled.unbatch(), transfer], [1.0 - d.transfer_share, d.transfer_share], seed=seed)
    return mixed.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _transfer_features(raw_spec: dict):
    """(lines per example, lines -> the task's raw features) for a task whose examples are one
    ``text``, a ``text`` / ``text_b`` pair (a line and the next), or a sentence's ``tokens``
    (a line's words, split as the served tagger splits raw text; and the line as its ``text``)."""
    from tfx_bert import features, tokenization
    from tfx_bert_app.models import export

    keys = set(raw_spec)
    if keys == {features.TEXT}:
        return 1, lambda lines: {features.TEXT: export.reshape_to_spec(lines, raw_spec[features.TEXT])}
    if keys == {features.TEXT, features.TEXT_B}:
        return 2, lambda pairs: {k: export.reshape_to_spec(pairs[:, i], raw_spec[k])
                                 for i, k in enumerate((features.TEXT, features.TEXT_B))}
    if keys in ({features.TOKENS}, {features.TOKENS, features.TEXT}) and isinstance(
            raw_spec[features.TOKENS], tf.io.VarLenFeature):  # CoNLL examples also carry the sentence
        return 1, lambda lines: {features.TOKENS: tokenization.split_words(lines).to_sparse(),
                                 **({features.TEXT: export.reshape_to_spec(lines, raw_spec[features.TEXT])}
                                    if features.TEXT in keys else {})}
    raise ValueError(f"distill.transfer_pattern: this task's examples carry {sorted(keys)}, not one "
                     f"'{features.TEXT}', a '{features.TEXT}', '{features.TEXT_B}' pair or a sentence's "
                     f"'{features.TOKENS}': transfer text cannot stand for them.")


def parameter_count(model: keras.Model) -> int:
    return int(sum(np.prod(v.shape) for v in model.weights))


def saved_model_mb(export_dir: str) -> float:
    """The SavedModel's size on disk (graph, variables, assets)."""
    total = 0
    for root, _, files in tf.io.gfile.walk(export_dir):
        total += sum(tf.io.gfile.stat(os.path.join(root, f)).length for f in files)
    return total / 2**20


def latency_ms(signature, inputs: dict, runs: int = 30) -> dict:
    """p50 / p99 wall milliseconds of ``signature(**inputs)`` after two warm-up calls."""
    for _ in range(2):
        signature(**inputs)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        signature(**inputs)
        times.append(1000 * (time.perf_counter() - start))
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}


def size_and_latency(model: keras.Model, export_dir: str, inputs: dict) -> dict:
    """Parameters, depth, feed-forward width, SavedModel MB and batch-1 latency of the served
    ``serving_default``."""
    served = tf.saved_model.load(export_dir).signatures["serving_default"]
    return {"parameters": parameter_count(model), "layers": num_layers(model),
            "feed_forward": backbone_setting(model, "intermediate_dim"),
            "saved_model_mb": round(saved_model_mb(export_dir), 2), **latency_ms(served, inputs)}


def report(teacher: keras.Model, student: keras.Model, teacher_dir: str, student_dir: str, run_dir: str) -> dict:
    """Teacher and student side by side (parameters, layers, SavedModel MB, batch-1 latency of
    ``serving_default`` on one short text), printed and written to ``<run_dir>/REPORT_FILE``."""
    import json

    served = tf.saved_model.load(student_dir).signatures["serving_default"]
    text = tf.constant(["a short request to time the model ."])
    inputs = {name: text for name in served.structured_input_signature[1]}
    result = {"teacher": size_and_latency(teacher, teacher_dir, inputs),
              "student": size_and_latency(student, student_dir, inputs)}
    result["speedup_p50"] = result["teacher"]["p50_ms"] / max(result["student"]["p50_ms"], 1e-9)
    print("  [distill] " + "; ".join(
        f"{who}: {r['layers']} layers, {r['parameters']:,} parameters, {r['saved_model_mb']:.1f} MB, "
        f"p50 {r['p50_ms']:.1f} ms" for who, r in (("teacher", result["teacher"]), ("student", result["student"])))
        + f"; {result['speedup_p50']:.2f}x faster at batch 1", flush=True)
    with tf.io.gfile.GFile(os.path.join(run_dir, REPORT_FILE), "w") as f:
        f.write(json.dumps(result, indent=2))
    return result


def retention_eval_config(eval_config, min_retention: float):
    """The task's TFMA EvalConfig with its gate turned relative to the teacher (the baseline):
    every metric that had a threshold now passes when it is at least ``min_retention`` times the
    teacher's (TFMA's relative change >= min_retention - 1); the absolute bar is the teacher's."""
    import tensorflow_model_analysis as tfma

    config = tfma.EvalConfig()
    config.CopyFrom(eval_config)
    gated = 0
    for spec in config.metrics_specs:
        for metric in spec.metrics:
            if metric.HasField("threshold"):
                metric.threshold.CopyFrom(tfma.MetricThreshold(change_threshold=tfma.GenericChangeThreshold(
                    direction=tfma.MetricDirection.HIGHER_IS_BETTER, relative={"value": min_retention - 1.0})))
                gated += 1
    if not gated:
        raise ValueError("The task's EvalConfig gates on no metric: there is nothing to keep of the teacher's.")
    return config
