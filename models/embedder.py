"""A pretrained encoder served as a sentence-embedding model, without fine-tuning.

``export_embedder`` writes a SavedModel whose ``embed`` signature (also ``serving_default``)
takes raw text and returns ``embedding``: the in-graph WordPiece tokenizer, the encoder, its
pooling (mean, max or [CLS]) and, optionally, L2 normalisation. For an imported
sentence-transformers model the pooling, normalisation and sequence length default to the
model's own (``sentence_embedding.json``); for any other encoder to mean pooling, normalised,
128 tokens (what the retrieval and similarity heads start from). The vector indexer,
``tfx-bert retrieve`` and the serving clients use it like a fine-tuned retrieval model.
"""
from __future__ import annotations

import dataclasses
import json
import os

import tensorflow as tf

from tfx_bert import config as config_lib
from tfx_bert import features
from tfx_bert_app.models import encoder as encoder_lib
from tfx_bert_app.models import export
from tfx_bert_app.models import serving_kernels
from tfx_bert_app.models.keras_layers import build_sentence_encoder

EMBEDDING = "embedding"


@dataclasses.dataclass(frozen=True)
class EmbedderSettings:
    pooling: str = "mean"
    normalize: bool = True
    max_seq_length: int = 128
    # served batches cut to their longest row, rounded up (tokenization.trim_padding), as a task's export
    length_bucket: int = config_lib.FinetuneConfig.export_length_bucket


def embedder_settings(encoder_dir: str, pooling: str | None = None, normalize: bool | None = None,
                      max_seq_length: int | None = None) -> EmbedderSettings:
    """The encoder's own settings (a sentence-transformers import records them), overridden by
    whatever is given."""
    defaults = EmbedderSettings()
    path = os.path.join(encoder_dir, encoder_lib.SENTENCE_EMBEDDING_FILE)
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            own = json.load(f)
        defaults = EmbedderSettings(own.get("pooling", defaults.pooling), bool(own.get("normalize", True)),
                                    int(own.get("max_seq_length") or defaults.max_seq_length))
    settings = EmbedderSettings(pooling or defaults.pooling, defaults.normalize if normalize is None else normalize,
                                max_seq_length or defaults.max_seq_length)
    if settings.pooling not in ("mean", "max", "cls"):
        raise ValueError(f"pooling {settings.pooling!r}: expected mean, max or cls.")
    if not 8 <= settings.max_seq_length <= 512:
        raise ValueError(f"max_seq_length {settings.max_seq_length}: expected 8..512.")
    return settings


def export_embedder(encoder_dir: str, export_dir: str, settings: EmbedderSettings, source: str = "") -> str:
    """Writes the embedding SavedModel of an encoder directory; returns ``export_dir``.
    ``source``: the checkpoint it was converted from, recorded beside the model."""
    tokenizer = encoder_lib.load_tokenizer(encoder_dir)
    # float32 whatever policy a Trainer earlier in this process set: this model serves as is.
    backbone = encoder_lib.load_backbone(encoder_dir, dtype="float32")
    length = min(settings.max_seq_length, backbone.max_sequence_length)
    sentence_encoder = build_sentence_encoder(backbone, settings.pooling)
    serving_kernels.use_serving_kernels(sentence_encoder)
    module = tf.Module()
    export.track_weights(module, sentence_encoder)

    # autograph off: the graph is straight-line, and converting keras internals costs seconds.
    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name=features.TEXT)])
    def embed(text):
        vectors = sentence_encoder(dict(tokenizer.encode(text, length, length_bucket=settings.length_bucket)),
                                   training=False)
        return {EMBEDDING: tf.math.l2_normalize(vectors, -1) if settings.normalize else vectors}

    module.embed = embed
    function = embed.get_concrete_function()
    tf.saved_model.save(module, export_dir, signatures={"serving_default": function, "embed": function})
    tf.io.gfile.makedirs(os.path.join(export_dir, "assets.extra"))
    with tf.io.gfile.GFile(os.path.join(export_dir, "assets.extra", "embedder.json"), "w") as f:
        f.write(json.dumps({**dataclasses.asdict(settings), "encoder": source or encoder_dir,
                            "dimension": int(backbone.hidden_dim)}, indent=2))
    return export_dir
