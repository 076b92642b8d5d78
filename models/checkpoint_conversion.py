"""google-research/bert TF1 checkpoints -> this project's encoder directory (a keras-hub preset).

A TF1 BERT directory holds ``bert_config.json``, ``vocab.txt`` and ``bert_model.ckpt.*``.
Variable names map onto keras-hub ``BertBackbone`` weights (attention kernels reshaped from
``[hidden, hidden]`` to ``[hidden, heads, head_dim]``), so users can fine-tune a published BERT
without pretraining. The MLM/NSP heads (``cls/...``) are not part of the encoder.
"""
from __future__ import annotations

import json
import os

import keras_hub
import numpy as np
import tensorflow as tf

from tfx_bert_app.models import encoder as encoder_lib
from tfx_bert import tokenization


def _checkpoint_prefix(checkpoint_dir: str) -> str:
    prefix = tf.train.latest_checkpoint(checkpoint_dir)
    if prefix:
        return prefix
    candidates = tf.io.gfile.glob(os.path.join(checkpoint_dir, "*.index"))
    if not candidates:
        raise FileNotFoundError(f"No TF checkpoint (*.index) in {checkpoint_dir}.")
    return candidates[0][: -len(".index")]


def _weight_map(num_layers: int, hidden: int, heads: int) -> dict:
    """keras-hub weight path -> (TF1 variable name, reshape target or None)."""
    head_dim = hidden // heads
    mapping = {
        "token_embedding/embeddings": ("bert/embeddings/word_embeddings", None),
        "position_embedding/embeddings": ("bert/embeddings/position_embeddings", None),
        "segment_embedding/embeddings": ("bert/embeddings/token_type_embeddings", None),
        "embeddings_layer_norm/gamma": ("bert/embeddings/LayerNorm/gamma", None),
        "embeddings_layer_norm/beta": ("bert/embeddings/LayerNorm/beta", None),
        "pooled_dense/kernel": ("bert/pooler/dense/kernel", None),
        "pooled_dense/bias": ("bert/pooler/dense/bias", None),
    }
    for i in range(num_layers):
        ours, theirs = f"transformer_layer_{i}", f"bert/encoder/layer_{i}"
        for part in ("query", "key", "value"):
            mapping[f"{ours}/self_attention_layer/{part}/kernel"] = (
                f"{theirs}/attention/self/{part}/kernel", (hidden, heads, head_dim))
            mapping[f"{ours}/self_attention_layer/{part}/bias"] = (
                f"{theirs}/attention/self/{part}/bias", (heads, head_dim))
        mapping.update({
            f"{ours}/self_attention_layer/attention_output/kernel": (
                f"{theirs}/attention/output/dense/kernel", (heads, head_dim, hidden)),
            f"{ours}/self_attention_layer/attention_output/bias": (f"{theirs}/attention/output/dense/bias", None),
            f"{ours}/self_attention_layer_norm/gamma": (f"{theirs}/attention/output/LayerNorm/gamma", None),
            f"{ours}/self_attention_layer_norm/beta": (f"{theirs}/attention/output/LayerNorm/beta", None),
            f"{ours}/feedforward_intermediate_dense/kernel": (f"{theirs}/intermediate/dense/kernel", None),
            f"{ours}/feedforward_intermediate_dense/bias": (f"{theirs}/intermediate/dense/bias", None),
            f"{ours}/feedforward_output_dense/kernel": (f"{theirs}/output/dense/kernel", None),
            f"{ours}/feedforward_output_dense/bias": (f"{theirs}/output/dense/bias", None),
            f"{ours}/feedforward_layer_norm/gamma": (f"{theirs}/output/LayerNorm/gamma", None),
            f"{ours}/feedforward_layer_norm/beta": (f"{theirs}/output/LayerNorm/beta", None),
        })
    return mapping


def backbone_from_tf1_checkpoint(checkpoint_dir: str):
    """Builds a keras-hub BertBackbone holding a google-research TF1 checkpoint's weights."""
    config_path = os.path.join(checkpoint_dir, "bert_config.json")
    if not tf.io.gfile.exists(config_path):
        raise FileNotFoundError(f"{config_path} is missing: not a google-research BERT directory.")
    with tf.io.gfile.GFile(config_path) as f:
        config = json.load(f)
    hidden, heads, layers = config["hidden_size"], config["num_attention_heads"], config["num_hidden_layers"]
    if config.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"{config_path}: hidden_act {config['hidden_act']!r} is not supported (only gelu).")
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=config["vocab_size"], num_layers=layers, num_heads=heads, hidden_dim=hidden,
        intermediate_dim=config["intermediate_size"], dropout=config.get("hidden_dropout_prob", 0.1),
        max_sequence_length=config.get("max_position_embeddings", 512),
        num_segments=config.get("type_vocab_size", 2))
    reader = tf.train.load_checkpoint(_checkpoint_prefix(checkpoint_dir))
    available = reader.get_variable_to_shape_map()
    weights = {w.path: w for w in backbone.weights}
    mapping = _weight_map(layers, hidden, heads)
    missing = sorted(name for name, _ in mapping.values() if name not in available)
    if missing:
        raise ValueError(f"Checkpoint in {checkpoint_dir} lacks {len(missing)} BERT variables, e.g. {missing[:3]}.")
    unmapped = sorted(set(weights) - set(mapping))
    if unmapped:
        raise ValueError(f"No checkpoint variable for backbone weights {unmapped}.")
    for path, (name, shape) in mapping.items():
        value = reader.get_tensor(name)
        weights[path].assign(np.reshape(value, shape) if shape else value)
    return backbone


def convert_tf1_checkpoint(checkpoint_dir: str, output_dir: str, lower_case: bool | None = None) -> str:
    """Writes an encoder directory (keras-hub preset + vocabulary) from a TF1 BERT directory.

    ``lower_case`` defaults to True unless the directory name says "cased" (as published
    BERTs' names do: uncased_L-12_H-768_A-12, cased_L-12_H-768_A-12)."""
    if lower_case is None:
        name = os.path.basename(os.path.normpath(checkpoint_dir)).lower()
        lower_case = not (name.startswith("cased") or "_cased" in name or "-cased" in name)
    backbone = backbone_from_tf1_checkpoint(checkpoint_dir)
    vocab = tokenization.read_vocab(os.path.join(checkpoint_dir, "vocab.txt"))
    staging = os.path.join(output_dir, ".vocab")
    tokenization.write_vocab_dir(staging, vocab, tokenization.TokenizerConfig(lower_case=lower_case))
    encoder_lib.save_encoder(output_dir, backbone, staging)
    tf.io.gfile.rmtree(staging)
    return output_dir
