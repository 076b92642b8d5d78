"""Artifact types this project adds to TFX's standard ones.

They live in the library layer, and ``tfx_bert`` exports them by name, because a type's name is
its import path on Kubeflow: TFX's KFP v2 entrypoint turns a custom schema title
(``tfx_bert.Vocabulary``) into the class it imports (``import tfx_bert; tfx_bert.Vocabulary``)
before it runs a step's executor. (``<namespace>.<Name>`` is also the form KFP v2 schema titles
take.)
"""
from tfx.types import artifact


class Vocabulary(artifact.Artifact):
    """A WordPiece vocabulary: ``vocab.txt`` plus ``tokenizer_config.json`` (casing, specials)."""

    TYPE_NAME = "tfx_bert.Vocabulary"


class StudentBlessing(artifact.Artifact):
    """A distilled student's blessing: what TFX's ModelBlessing holds (the ``BLESSED`` /
    ``NOT_BLESSED`` file; ``blessed``, ``current_model_id``, ``baseline_model_id`` properties),
    written by the same evaluators, under a type of its own. A latest-blessed-model resolver
    queries ModelBlessing artifacts only (TFX's strategy, and the query KFP v2 compiles it into),
    so a blessed student is never a later teacher's baseline, on any orchestrator."""

    TYPE_NAME = "tfx_bert.StudentBlessing"


class DataGateResult(artifact.Artifact):
    """A span's data gate (components/data_gate): ``data_gate.json`` (passed, the anomalies, the
    profile and its baseline) and ``data_profile.json``; custom properties ``passed`` (1 / 0)
    and ``anomalies`` (one line)."""

    TYPE_NAME = "tfx_bert.DataGateResult"


class VectorIndex(artifact.Artifact):
    """A collection in a vector store: ``store_uri``, ``collection``, ``index_type``, ``documents``
    and the corpus ``fingerprint`` (custom properties), and the embedding shards."""

    TYPE_NAME = "tfx_bert.VectorIndex"


NAMES = ("Vocabulary", "StudentBlessing", "DataGateResult", "VectorIndex")
