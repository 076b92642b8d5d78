"""ServingPusher: TFX's Pusher (same spec and arguments) with the serving checks of
executor.py. Use it where a TF Serving instance watches the push destination. StudentPusher:
the same for a distilled student, pushed on its StudentBlessing."""
from tfx import v1 as tfx
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import channel, standard_artifacts, standard_component_specs
from tfx.utils import json_utils

from tfx_bert_app.components.artifacts import with_student_blessing
from tfx_bert_app.components.serving_pusher import executor


class ServingPusher(tfx.components.Pusher):
    """Pusher that checks op compatibility and loadability, writes warm-up requests and push
    metadata, and swaps versions in atomically. ``custom_config``: keep_versions,
    warmup_texts, model_name.
    """

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)


StudentPusherSpec = with_student_blessing(standard_component_specs.PusherSpec,
                                          standard_component_specs.MODEL_BLESSING_KEY, direction="INPUTS")


class StudentPusher(ServingPusher):
    """ServingPusher whose ``model_blessing`` is a StudentBlessing (a StudentEvaluator's)."""

    SPEC_CLASS = StudentPusherSpec

    def __init__(self, model, model_blessing, push_destination, custom_config=None):
        spec = StudentPusherSpec(model=model, model_blessing=model_blessing, push_destination=push_destination,
                                 custom_config=json_utils.dumps(custom_config),
                                 pushed_model=channel.Channel(type=standard_artifacts.PushedModel))
        # Pusher.__init__ would build the stock spec (a ModelBlessing input): its base's instead.
        base_component.BaseComponent.__init__(self, spec=spec)
