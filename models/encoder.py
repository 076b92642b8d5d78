"""The pretrained-encoder artifact: a keras-hub preset directory plus the project tokenizer.

Layout of ``<dir>`` (what the pretraining Trainer writes to its serving model dir and what
fine-tuning reads from ``base_model``)::

    config.json, model.weights.h5, metadata.json   keras-hub BertBackbone preset
    tokenizer.json, assets/tokenizer/vocabulary.txt keras-hub BertTokenizer preset
    vocab/vocab.txt, vocab/tokenizer_config.json    the project tokenizer (source of truth)

so ``keras_hub.models.BertBackbone.from_preset(<dir>)`` works outside this project too.
"""
from __future__ import annotations

import json
import os

import keras_hub
import tensorflow as tf

from tfx_bert import tokenization

VOCAB_SUBDIR = "vocab"
METRICS_FILE = "pretraining_metrics.json"


def save_encoder(directory: str, backbone, vocab_dir: str, metrics: dict | None = None) -> None:
    """Writes the backbone and tokenizer as a keras-hub preset, plus the project vocab dir."""
    tf.io.gfile.makedirs(directory)
    backbone.save_to_preset(directory)
    tokenizer = tokenization.WordPieceTokenizer.from_directory(vocab_dir)
    tokenization.write_vocab_dir(os.path.join(directory, VOCAB_SUBDIR), tokenizer.vocab, tokenizer.config)
    keras_hub.models.BertTokenizer(
        vocabulary=tokenizer.vocab, lowercase=tokenizer.config.lower_case
    ).save_to_preset(directory)
    if metrics is not None:
        with tf.io.gfile.GFile(os.path.join(directory, METRICS_FILE), "w") as f:
            f.write(json.dumps(metrics, indent=2))


def vocab_dir(encoder_dir: str) -> str:
    """The project vocabulary directory inside an encoder artifact (or a keras-hub preset)."""
    ours = os.path.join(encoder_dir, VOCAB_SUBDIR)
    if tf.io.gfile.exists(os.path.join(ours, tokenization.VOCAB_FILENAME)):
        return ours
    hub_vocab = os.path.join(encoder_dir, "assets", "tokenizer", "vocabulary.txt")
    if tf.io.gfile.exists(hub_vocab):
        return os.path.dirname(hub_vocab)
    raise FileNotFoundError(
        f"{encoder_dir} holds no vocabulary (expected {ours}/vocab.txt or a keras-hub "
        "tokenizer preset); point encoder_uri at a pretrained encoder directory.")


def load_tokenizer(encoder_dir: str) -> tokenization.WordPieceTokenizer:
    """The tokenizer that belongs to an encoder."""
    directory = vocab_dir(encoder_dir)
    vocab_file = os.path.join(directory, tokenization.VOCAB_FILENAME)
    config = tokenization.read_tokenizer_config(directory)
    if not tf.io.gfile.exists(vocab_file):  # a plain keras-hub preset: casing from tokenizer.json
        vocab_file = os.path.join(directory, "vocabulary.txt")
        hub_config = os.path.join(encoder_dir, "tokenizer.json")
        if tf.io.gfile.exists(hub_config):
            with tf.io.gfile.GFile(hub_config) as f:
                lowercase = json.load(f).get("config", {}).get("lowercase", True)
            config = tokenization.TokenizerConfig(lower_case=bool(lowercase))
    return tokenization.WordPieceTokenizer(tokenization.read_vocab(vocab_file), config)


def load_backbone(encoder_dir: str, dropout: float | None = None):
    """Loads the BertBackbone of an encoder (any keras-hub BERT preset directory)."""
    if not tf.io.gfile.exists(os.path.join(encoder_dir, "config.json")):
        raise FileNotFoundError(
            f"{encoder_dir} is not a keras-hub preset (no config.json); "
            "point encoder_uri at a pretrained encoder directory.")
    kwargs = {} if dropout is None else {"dropout": dropout}
    return keras_hub.models.BertBackbone.from_preset(encoder_dir, **kwargs)
