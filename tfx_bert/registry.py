"""Model-size registry: BERT's published shapes (Turc et al. 2019 and Devlin et al. 2019).

This is the one place model shapes live; configs refer to sizes by name.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ModelSize:
    """Shape of a BERT encoder."""

    name: str
    num_layers: int
    hidden_dim: int
    num_heads: int
    intermediate_dim: int
    max_sequence_length: int = 512

    def backbone_kwargs(self, vocabulary_size: int, dropout: float = 0.1) -> dict:
        """Keyword arguments for ``keras_hub.models.BertBackbone``."""
        return dict(
            vocabulary_size=vocabulary_size,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            hidden_dim=self.hidden_dim,
            intermediate_dim=self.intermediate_dim,
            dropout=dropout,
            max_sequence_length=self.max_sequence_length,
        )


MODEL_SIZES: dict[str, ModelSize] = {
    s.name: s
    for s in (
        ModelSize("tiny", num_layers=2, hidden_dim=128, num_heads=2, intermediate_dim=512),
        ModelSize("mini", num_layers=4, hidden_dim=256, num_heads=4, intermediate_dim=1024),
        ModelSize("small", num_layers=4, hidden_dim=512, num_heads=8, intermediate_dim=2048),
        ModelSize("medium", num_layers=8, hidden_dim=512, num_heads=8, intermediate_dim=2048),
        ModelSize("base", num_layers=12, hidden_dim=768, num_heads=12, intermediate_dim=3072),
        ModelSize("large", num_layers=24, hidden_dim=1024, num_heads=16, intermediate_dim=4096),
    )
}


def get_model_size(name: str) -> ModelSize:
    """Looks a size up by name, with an error listing the known sizes."""
    try:
        return MODEL_SIZES[name]
    except KeyError:
        raise ValueError(
            f"Unknown model size {name!r}; choose one of {', '.join(MODEL_SIZES)}."
        ) from None


# Fine-tuning recipes by encoder width: what the settings below the user's default to
# (``finetune.recipe``; ``auto`` picks by the encoder's hidden size). Sources: Devlin et al. 2019
# (BERT, section A.3: batch 16 or 32, learning rate 5e-5 / 3e-5 / 2e-5, 2 to 4 epochs, 10%
# warm-up), Turc et al. 2019 (compact BERTs: learning rates up to 1e-4, 4 epochs); "tiny" is this
# project's, measured on the demo encoder (128 wide), whose small updates at BERT-paper rates
# learn nothing in the demo's 300 steps.
RECIPES: dict[str, dict] = {
    "tiny": {},  # FinetuneConfig's own defaults (and configs/demo.yaml's): 5e-4, 300 steps, 64 tokens
    "compact": {"learning_rate": 1e-4, "batch_size": 32, "epochs": 4.0, "max_seq_length": 128},
    "bert": {"learning_rate": 2e-5, "batch_size": 32, "epochs": 3.0, "max_seq_length": 128},
}


# The Tuner's search space per recipe (finetune.tuning): the BERT paper's grid for base-size
# models (Devlin et al. 2019, A.3: batch 16/32, 5e-5/3e-5/2e-5), Turc et al. 2019's for compact
# ones (1e-4/5e-5/3e-5, batch 8-128), and for the tiny demo encoder the same shape scaled to its
# recipe's 5e-4. Epochs are not searched: a short trial cannot rank them.
TUNING_GRIDS: dict[str, dict] = {
    "tiny": {"learning_rate": [1e-3, 5e-4, 2e-4], "batch_size": [16, 32]},
    "compact": {"learning_rate": [1e-4, 5e-5, 3e-5], "batch_size": [8, 16, 32, 64, 128]},
    "bert": {"learning_rate": [5e-5, 3e-5, 2e-5], "batch_size": [16, 32]},
}


def recipe_for_width(hidden_dim: int) -> str:
    """``tiny`` below 256 wide, ``compact`` below 768 (mini, small, medium), else ``bert``."""
    return "tiny" if hidden_dim < 256 else "compact" if hidden_dim < 768 else "bert"


def encoder_width(encoder_uri: str) -> int | None:
    """The hidden size an encoder directory declares (keras-hub ``hidden_dim``, Hugging Face or
    TF1 ``hidden_size``, a sentence-transformers model's transformer), or None when its
    configuration cannot be read here (the encoder check then says why)."""
    import json
    import os

    def read(name):
        path = os.path.join(encoder_uri, name)
        try:
            if "://" in encoder_uri:
                import tensorflow as tf

                with tf.io.gfile.GFile(path) as f:
                    return json.load(f)
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        except Exception:  # unreadable here (no such file, no credentials or network): unknown
            return None

    for name in ("config.json", "bert_config.json", "0_Transformer/config.json"):
        config = read(name)
        if isinstance(config, dict):
            width = config.get("hidden_size") or (config.get("config") or {}).get("hidden_dim")
            if width:
                return int(width)
    return None
