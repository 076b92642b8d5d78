"""Artifact types this project adds to TFX's standard ones."""
from tfx.types import artifact
from tfx.types import standard_artifacts  # noqa: F401  (re-exported for convenience)


class Vocabulary(artifact.Artifact):
    """A WordPiece vocabulary: ``vocab.txt`` plus ``tokenizer_config.json`` (casing, specials)."""

    # "<namespace>.<Name>" is the form KFP v2 schema titles need for custom artifact types.
    TYPE_NAME = "tfx_bert.Vocabulary"
