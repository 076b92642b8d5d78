"""Artifact types this project adds to TFX's standard ones (defined in ``tfx_bert/artifacts.py``,
where Kubeflow's entrypoint imports them by name) and what components build with them."""
from tfx.types import component_spec
from tfx.types import standard_artifacts  # noqa: F401  (re-exported for convenience)

from tfx_bert.artifacts import DataGateResult, StudentBlessing, Vocabulary, VectorIndex  # noqa: F401


def with_student_blessing(spec_class: type, key: str, direction: str = "OUTPUTS") -> type:
    """``spec_class`` with its ModelBlessing channel ``key`` (an evaluator's output, or a
    Pusher's input with ``direction="INPUTS"``) typed StudentBlessing instead, so the component's
    own executor gates or pushes a student unchanged."""
    channels = dict(getattr(spec_class, direction))
    channels[key] = component_spec.ChannelParameter(type=StudentBlessing, optional=channels[key].optional)
    return type(f"Student{spec_class.__name__}", (spec_class,), {direction: channels})
