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
