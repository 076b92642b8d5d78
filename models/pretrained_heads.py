"""A published checkpoint's pretraining heads: the directory ``pretrain.init_from`` continues from.

A *pretraining model directory* is an encoder directory (keras-hub preset + vocabulary,
models/encoder.py) plus the whole pretraining model's weights (``pretraining_model.weights.h5``:
backbone, tied MLM head, NSP head) and ``pretraining_heads.json`` (how the heads compute, where
they came from). The pretraining Trainer writes one; ``import_for_pretraining`` makes one from:

- **Hugging Face** ``BertForPreTraining`` (MLM + NSP heads), ``BertForMaskedLM`` (MLM head, no
  pooler), ``BertModel`` (no heads): ``cls.predictions.*`` and ``cls.seq_relationship.*``;
- **google-research TF1**: ``cls/predictions/*`` and ``cls/seq_relationship/*``;
- **sentence-transformers** (no heads) and **keras-hub** presets (a ``BertMaskedLM`` task
  preset's MLM head);
- an earlier pretraining run's model (copied as it is).

The encoder itself is converted by models/checkpoint_conversion.py (one home for that); here
only the heads are mapped. The MLM head computes the checkpoint's own GELU and LayerNorm epsilon
(BERT's ``BertPredictionHeadTransform`` uses ``hidden_act`` and ``layer_norm_eps``); a head the
checkpoint lacks starts as a new one and the report says so.
"""
from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf

from tfx_bert_app.models import checkpoint_conversion, encoder as encoder_lib
from tfx_bert_app.models import pretraining

HEADS_FILE = "pretraining_heads.json"
HEADS = ("mlm", "nsp", "pooler")


def read_heads_config(directory: str) -> dict:
    """How a pretraining model directory's MLM head computes (``hidden_act``,
    ``layer_norm_epsilon``) and where its heads came from; a run older than this file had this
    project's heads (exact GELU, keras-hub's epsilon)."""
    path = os.path.join(directory, HEADS_FILE)
    if not tf.io.gfile.exists(path):
        return {**pretraining.DEFAULT_HEAD, "loaded": {}}
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def write_heads_config(directory: str, heads: dict) -> None:
    with tf.io.gfile.GFile(os.path.join(directory, HEADS_FILE), "w") as f:
        f.write(json.dumps(heads, indent=2))


def load_pretraining_model(directory: str, dropout: float | None = None, dtype: str | None = None):
    """(backbone, pretraining model, heads config) of a pretraining model directory."""
    directory = encoder_lib.resolve_dir(directory)
    weights = os.path.join(directory, pretraining.PRETRAINING_WEIGHTS)
    if not tf.io.gfile.exists(weights):
        raise FileNotFoundError(f"{weights} is missing: not a pretraining model directory (a pretraining run's "
                                "model, or a checkpoint imported by pretrain.init_from).")
    heads = read_heads_config(directory)
    backbone = encoder_lib.load_backbone(directory, dropout=dropout, dtype=dtype)
    model = pretraining.build_pretraining_model(backbone, heads["hidden_act"], heads["layer_norm_epsilon"])
    model.load_weights(weights)
    return backbone, model, heads


def is_pretraining_dir(directory: str) -> bool:
    return tf.io.gfile.exists(os.path.join(encoder_lib.resolve_dir(directory), pretraining.PRETRAINING_WEIGHTS))


# --- the heads of each format -------------------------------------------------------------

def _hf_heads(tensors: dict, source: str) -> dict:
    """name -> value of the heads' weights in a Hugging Face state dict, in Keras layouts; a
    head the checkpoint lacks is absent."""
    def find(*keys):
        return checkpoint_conversion.find_tensor(tensors, *keys)

    found = {}
    mlm = {"dense_kernel": find("cls.predictions.transform.dense.weight"),
           "dense_bias": find("cls.predictions.transform.dense.bias"),
           "gamma": find("cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.gamma"),
           "beta": find("cls.predictions.transform.LayerNorm.bias", "cls.predictions.transform.LayerNorm.beta"),
           "bias": find("cls.predictions.bias", "cls.predictions.decoder.bias")}
    if all(v is not None for v in mlm.values()):
        decoder = find("cls.predictions.decoder.weight")
        embeddings = find("embeddings.word_embeddings.weight")
        if decoder is not None and not np.array_equal(decoder, embeddings):
            raise ValueError(f"{source}: cls.predictions.decoder.weight is not the token embedding table; BERT ties "
                             "them, and this project's MLM head is tied (an untied decoder cannot be carried over).")
        found["mlm"] = {**mlm, "dense_kernel": mlm["dense_kernel"].T}
    elif any(v is not None for v in mlm.values()):
        missing = sorted(k for k, v in mlm.items() if v is None)
        raise ValueError(f"{source} has part of an MLM head (cls.predictions.*) but not {missing}.")
    kernel, bias = find("cls.seq_relationship.weight"), find("cls.seq_relationship.bias")
    if kernel is not None and bias is not None:
        found["nsp"] = {"kernel": kernel.T, "bias": bias}
    if find("pooler.dense.weight") is not None:
        found["pooler"] = True
    return found


def _tf1_heads(reader, source: str) -> dict:
    """The same from a google-research TF1 checkpoint (kernels are already [in, out]; the NSP
    ``output_weights`` are [2, hidden], used with ``transpose_b``)."""
    names = reader.get_variable_to_shape_map()
    mlm_names = {"dense_kernel": "cls/predictions/transform/dense/kernel",
                 "dense_bias": "cls/predictions/transform/dense/bias",
                 "gamma": "cls/predictions/transform/LayerNorm/gamma",
                 "beta": "cls/predictions/transform/LayerNorm/beta", "bias": "cls/predictions/output_bias"}
    found = {"pooler": True}  # the TF1 encoder's conversion requires bert/pooler/*
    present = [k for k, n in mlm_names.items() if n in names]
    if len(present) == len(mlm_names):
        found["mlm"] = {k: reader.get_tensor(n) for k, n in mlm_names.items()}
    elif present:
        raise ValueError(f"{source} has part of an MLM head (cls/predictions/*) but not "
                         f"{sorted(set(mlm_names) - set(present))}.")
    if "cls/seq_relationship/output_weights" in names and "cls/seq_relationship/output_bias" in names:
        found["nsp"] = {"kernel": reader.get_tensor("cls/seq_relationship/output_weights").T,
                        "bias": reader.get_tensor("cls/seq_relationship/output_bias")}
    return found


def _keras_hub_heads(directory: str) -> dict:
    """A keras-hub ``BertMaskedLM`` task preset's MLM head (keras-hub has no NSP head)."""
    task = os.path.join(directory, "task.json")
    if not tf.io.gfile.exists(task):
        return {"pooler": True}
    with tf.io.gfile.GFile(task) as f:
        if "BertMaskedLM" not in f.read():
            return {"pooler": True}
    import keras_hub

    head = keras_hub.models.BertMaskedLM.from_preset(directory, preprocessor=None).masked_lm_head
    return {"pooler": True, "mlm": {
        "dense_kernel": head._intermediate_dense.kernel.numpy(), "dense_bias": head._intermediate_dense.bias.numpy(),
        "gamma": head._intermediate_layer_norm.gamma.numpy(), "beta": head._intermediate_layer_norm.beta.numpy(),
        "bias": head._bias.numpy()}}


def _assign(model, heads: dict, source: str) -> None:
    mlm, nsp = model.get_layer(pretraining.MLM), model.get_layer(pretraining.NSP)
    targets = {"mlm": {"dense_kernel": mlm._intermediate_dense.kernel, "dense_bias": mlm._intermediate_dense.bias,
                       "gamma": mlm._intermediate_layer_norm.gamma, "beta": mlm._intermediate_layer_norm.beta,
                       "bias": mlm._bias},
               "nsp": {"kernel": nsp.kernel, "bias": nsp.bias}}
    for head, variables in targets.items():
        for key, variable in variables.items():
            if head not in heads:
                continue
            value = np.asarray(heads[head][key], np.float32)
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(f"{source}: the {head.upper()} head's {key} has shape {list(value.shape)}; this "
                                 f"encoder implies {list(variable.shape)}.")
            variable.assign(value)


def _checkpoint_heads(source: str, kind: str, model_dir: str) -> dict:
    if kind == "tf1":
        return _tf1_heads(tf.train.load_checkpoint(checkpoint_conversion.checkpoint_prefix(source)), source)
    if kind == "keras-hub":
        return _keras_hub_heads(source)
    return _hf_heads(checkpoint_conversion.read_weights(model_dir), model_dir)


def _head_activation(kind: str, output_dir: str) -> dict:
    """The MLM head's GELU and epsilon: the checkpoint's (its encoder's, as converted)."""
    if kind == "keras-hub":  # keras-hub's BertMaskedLM head: exact GELU, its default epsilon
        return dict(pretraining.DEFAULT_HEAD)
    with tf.io.gfile.GFile(os.path.join(output_dir, "config.json")) as f:
        config = json.load(f).get("config", {})
    return {"hidden_act": config.get("hidden_act", encoder_lib.DEFAULT_ACTIVATION),
            "layer_norm_epsilon": float(config.get("layer_norm_epsilon", encoder_lib.DEFAULT_LAYER_NORM_EPSILON))}


def import_for_pretraining(source: str, output_dir: str, casing: str = "auto") -> dict:
    """Writes a pretraining model directory from any checkpoint ``pretrain.init_from`` takes;
    returns its heads config (which heads came from the checkpoint) and prints which are new."""
    if checkpoint_conversion.is_hub_preset(source):
        source = checkpoint_conversion.download_hub_preset(source, "pretrain.init_from")
    if is_pretraining_dir(source):  # an earlier pretraining run's model: as it is
        _copy_tree(encoder_lib.resolve_dir(source), output_dir)
        heads = read_heads_config(output_dir)
        print(f"  [import] {source}: a pretraining run's model, heads and all", flush=True)
        return heads
    kind = checkpoint_conversion.detect_format(source)
    model_dir = checkpoint_conversion.sentence_embedding_config(source)[0] if kind == "sentence-transformers" else source
    if kind == "keras-hub":
        encoder_lib.check_encoder_dir(source)
        _copy_tree(source, output_dir)
    else:
        checkpoint_conversion.convert_checkpoint(source, output_dir, casing, kind)
    found = _checkpoint_heads(source, kind, model_dir)
    head = _head_activation(kind, output_dir)
    backbone = encoder_lib.load_backbone(output_dir, dtype="float32")
    model = pretraining.build_pretraining_model(backbone, head["hidden_act"], head["layer_norm_epsilon"])
    _assign(model, found, source)
    model.save_weights(os.path.join(output_dir, pretraining.PRETRAINING_WEIGHTS))
    heads = {**head, "source": source, "format": kind, "loaded": {h: h in found for h in HEADS}}
    write_heads_config(output_dir, heads)
    for name, what in (("mlm", "MLM head"), ("nsp", "NSP head"), ("pooler", "pooler")):
        print(f"  [import] {what}: " + ("from the checkpoint" if name in found else
                                        "new (the checkpoint has none; it starts from a random initialisation)"),
              flush=True)
    return heads


def _copy_tree(source: str, target: str) -> None:
    for directory, _, files in tf.io.gfile.walk(source):
        relative = os.path.relpath(directory, source)
        tf.io.gfile.makedirs(os.path.join(target, relative))
        for name in files:
            tf.io.gfile.copy(os.path.join(directory, name), os.path.join(target, relative, name), overwrite=True)
