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

import keras
import keras_hub
import tensorflow as tf

from tfx_bert import tokenization

VOCAB_SUBDIR = "vocab"
METRICS_FILE = "pretraining_metrics.json"
SENTENCE_EMBEDDING_FILE = "sentence_embedding.json"  # an imported sentence-transformers model's pooling
# Hugging Face ``hidden_act`` names -> exact (erf) or tanh-approximated GELU. keras-hub's
# BertBackbone always computes the tanh form ("gelu_new"); bert-base-uncased declares "gelu".
GELU_EXACT = {"gelu": False, "gelu_python": False, "gelu_new": True, "gelu_pytorch_tanh": True,
              "gelu_fast": True, "gelu_tanh": True}
DEFAULT_ACTIVATION = "gelu_new"
DEFAULT_LAYER_NORM_EPSILON = 1e-12


@keras.saving.register_keras_serializable(package="tfx_bert")
def gelu_tanh(x):
    """The tanh-approximated GELU (Hugging Face's ``gelu_new``, google-research's ``gelu``)."""
    return keras.activations.gelu(x, approximate=True)


def gelu_for(hidden_act: str):
    """The Keras activation computing a checkpoint's ``hidden_act`` (Keras's "gelu" is erf's)."""
    if hidden_act not in GELU_EXACT:
        raise ValueError(f"hidden_act {hidden_act!r} is not supported: BERT here computes one of {sorted(GELU_EXACT)}.")
    return gelu_tanh if GELU_EXACT[hidden_act] else "gelu"


@keras.saving.register_keras_serializable(package="tfx_bert")
class BertEncoder(keras_hub.models.BertBackbone):
    """keras-hub's BertBackbone computing a checkpoint's own GELU (``hidden_act``) and LayerNorm
    epsilon. Only used where they differ from BertBackbone's (tanh GELU, 1e-12), so an encoder
    directory stays a plain keras-hub preset whenever it can."""

    def __init__(self, *args, hidden_act: str = DEFAULT_ACTIVATION,
                 layer_norm_epsilon: float = DEFAULT_LAYER_NORM_EPSILON, **kwargs):
        super().__init__(*args, **kwargs)
        self.hidden_act, self.layer_norm_epsilon = hidden_act, layer_norm_epsilon
        approximate = GELU_EXACT[hidden_act]

        def gelu(x):
            return keras.activations.gelu(x, approximate=approximate)

        # The functional graph calls each layer again at every call, so the attributes set here
        # are what runs (and what a SavedModel traces).
        for layer in self.transformer_layers:
            layer._feedforward_intermediate_dense.activation = gelu
        for layer in self._flatten_layers():
            if isinstance(layer, keras.layers.LayerNormalization):
                layer.epsilon = layer_norm_epsilon

    def get_config(self):
        return {**super().get_config(), "hidden_act": self.hidden_act, "layer_norm_epsilon": self.layer_norm_epsilon}


def build_backbone(hidden_act: str = DEFAULT_ACTIVATION, layer_norm_epsilon: float = DEFAULT_LAYER_NORM_EPSILON,
                   **backbone_kwargs):
    """A BertBackbone (or, for another GELU or epsilon, a ``BertEncoder``) of these sizes."""
    if hidden_act not in GELU_EXACT:
        raise ValueError(f"hidden_act {hidden_act!r} is not supported: BERT encoders here compute one of "
                         f"{sorted(GELU_EXACT)}.")
    if hidden_act in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu_tanh") \
            and layer_norm_epsilon == DEFAULT_LAYER_NORM_EPSILON:
        return keras_hub.models.BertBackbone(**backbone_kwargs)
    return BertEncoder(hidden_act=hidden_act, layer_norm_epsilon=layer_norm_epsilon, **backbone_kwargs)


def resolve_dir(path: str) -> str:
    """The encoder directory behind a Trainer's ``base_model``: TFX hands ``run_fn``
    ``<artifact>/Format-Serving``, which an imported keras-hub preset directory (an Importer's
    artifact is the directory itself) does not have; and a Model artifact's directory as MLMD
    names it (``<artifact>``) is its ``Format-Serving``."""
    path = path.rstrip("/")
    serving = os.path.join(path, "Format-Serving")  # a Model artifact's own directory, as MLMD names it
    if not tf.io.gfile.exists(os.path.join(path, "config.json")) and tf.io.gfile.exists(
            os.path.join(serving, "config.json")):
        return serving
    if os.path.basename(path) == "Format-Serving" and not tf.io.gfile.exists(os.path.join(path, "config.json")):
        parent = os.path.dirname(path)
        if tf.io.gfile.exists(os.path.join(parent, "config.json")):
            return parent
    return path


def check_encoder_dir(path: str) -> None:
    """Raises an error naming the file and what was expected unless ``path`` is an encoder
    directory this project fine-tunes from: a keras-hub BERT backbone preset with a vocabulary."""
    config_file = os.path.join(path, "config.json")
    if not tf.io.gfile.exists(config_file):
        raise FileNotFoundError(f"{config_file} is missing: {path} is not an encoder directory (a keras-hub "
                                "BERT preset); convert a checkpoint with tfx-bert convert-checkpoint.")
    try:
        with tf.io.gfile.GFile(config_file) as f:
            config = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{config_file} is not valid JSON: {e}") from None
    name = str(config.get("registered_name") or config.get("class_name") or "")
    if "Bert" not in name:
        raise ValueError(f"{config_file} describes {name or 'no keras-hub class'}, not a BERT backbone "
                         "(keras_hub>BertBackbone); a Hugging Face or TF1 checkpoint is converted by "
                         "tfx-bert convert-checkpoint or by pointing finetune.encoder_uri at it (local paths).")
    vocab_dir(path)  # names what is missing


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
    encoder_dir = resolve_dir(encoder_dir)
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


def load_backbone(encoder_dir: str, dropout: float | None = None, dtype: str | None = None):
    """Loads the BertBackbone of an encoder (any keras-hub BERT preset directory); ``dtype``: its
    dtype policy (default: Keras's global one, which a run_fn sets, models/precision.py)."""
    encoder_dir = resolve_dir(encoder_dir)
    if not tf.io.gfile.exists(os.path.join(encoder_dir, "config.json")):
        raise FileNotFoundError(
            f"{encoder_dir} is not a keras-hub preset (no config.json); "
            "point encoder_uri at a pretrained encoder directory.")
    kwargs = {} if dropout is None else {"dropout": dropout}
    if dtype is not None:
        kwargs["dtype"] = dtype
    return keras_hub.models.BertBackbone.from_preset(encoder_dir, **kwargs)
