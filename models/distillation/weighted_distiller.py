"""The distiller: ``keras.distillation.Distiller`` (the teacher frozen, the student's own loss
on the labels weighted ``1 - alpha``, the soft-target loss ``alpha``), extended by
``WeightedDistiller`` with sample weights, DistilBERT's hidden-state term and MiniLM's attention
term (last layers, or every mapped pair: TinyBERT)."""
from __future__ import annotations

import functools

import keras
import numpy as np

from tfx_bert_app.models.distillation.student import backbone_of, layer_map


BACKBONE_INPUTS = ("token_ids", "segment_ids", "padding_mask")  # what a BERT backbone reads


def _weighted(loss, sample_weight):
    if not isinstance(loss, keras.losses.Loss):
        raise TypeError(f"The data carries sample weights, so the student's loss must be a keras.losses.Loss to "
                        f"take them; got {loss!r}.")
    return lambda y_true, predicted: loss(y_true, predicted, sample_weight=sample_weight)


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
