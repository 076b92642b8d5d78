"""The student: the teacher's own architecture with fewer transformer layers, initialised from
the teacher (``student_from_teacher``): the embeddings, the pooler and the head, and the layers
``layer_map`` picks, evenly spread from the first to the last (DistilBERT's initialisation: 6 of
12 are layers 0, 2, 4, 7, 9, 11); with ``distill.ffn_keep`` < 1, narrower feed-forward blocks
(their most important neurons, ``kept_neurons``). Or (``student_from_encoder``,
``distill.student_encoder_uri``) the teacher's architecture on another pretrained encoder of any
depth and width that shares its vocabulary, the head new."""
from __future__ import annotations

import re

import keras
import numpy as np


_LAYER = re.compile(r"^transformer_layer_(\d+)/")
_BACKBONES = ("keras_hub>BertBackbone", "tfx_bert>BertEncoder")


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
