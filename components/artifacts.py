"""Artifact types this project adds to TFX's standard ones."""
from tfx.types import artifact, component_spec
from tfx.types import standard_artifacts  # noqa: F401  (re-exported for convenience)


class Vocabulary(artifact.Artifact):
    """A WordPiece vocabulary: ``vocab.txt`` plus ``tokenizer_config.json`` (casing, specials)."""

    # "<namespace>.<Name>" is the form KFP v2 schema titles need for custom artifact types.
    TYPE_NAME = "tfx_bert.Vocabulary"


class StudentBlessing(artifact.Artifact):
    """A distilled student's blessing: what TFX's ModelBlessing holds (the ``BLESSED`` /
    ``NOT_BLESSED`` file; ``blessed``, ``current_model_id``, ``baseline_model_id`` properties),
    written by the same evaluators, under a type of its own. A latest-blessed-model resolver
    queries ModelBlessing artifacts only (TFX's strategy, and the query KFP v2 compiles it into),
    so a blessed student is never a later teacher's baseline, on any orchestrator."""

    TYPE_NAME = "tfx_bert.StudentBlessing"


def with_student_blessing(spec_class: type, key: str, direction: str = "OUTPUTS") -> type:
    """``spec_class`` with its ModelBlessing channel ``key`` (an evaluator's output, or a
    Pusher's input with ``direction="INPUTS"``) typed StudentBlessing instead, so the component's
    own executor gates or pushes a student unchanged."""
    channels = dict(getattr(spec_class, direction))
    channels[key] = component_spec.ChannelParameter(type=StudentBlessing, optional=channels[key].optional)
    return type(f"Student{spec_class.__name__}", (spec_class,), {direction: channels})


class DataGateResult(artifact.Artifact):
    """A span's data gate (components/data_gate): ``data_gate.json`` (passed, the anomalies, the
    profile and its baseline) and ``data_profile.json``; custom properties ``passed`` (1 / 0)
    and ``anomalies`` (one line)."""

    TYPE_NAME = "tfx_bert.DataGateResult"
