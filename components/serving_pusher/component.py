"""ServingPusher: TFX's Pusher (same spec and arguments) with the serving checks of
executor.py. Use it where a TF Serving instance watches the push destination. StudentPusher:
the same for a distilled student, pushed on its StudentBlessing."""
from tfx import v1 as tfx
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import channel, component_spec, standard_artifacts, standard_component_specs
from tfx.utils import json_utils

from tfx_bert_app.components.artifacts import DataGateResult, with_student_blessing
from tfx_bert_app.components.serving_pusher import executor


class ServingPusherSpec(standard_component_specs.PusherSpec):
    """TFX's PusherSpec plus the run's artifacts the pushed version's model card is written from
    (each optional): the examples (spans, row counts), the data gate's result, the evaluation and
    the Trainer's model run (the validation curve)."""

    INPUTS = {**standard_component_specs.PusherSpec.INPUTS,
              executor.EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples, optional=True),
              executor.DATA_GATE_KEY: component_spec.ChannelParameter(type=DataGateResult, optional=True),
              executor.EVALUATION_KEY: component_spec.ChannelParameter(type=standard_artifacts.ModelEvaluation,
                                                                       optional=True),
              executor.MODEL_RUN_KEY: component_spec.ChannelParameter(type=standard_artifacts.ModelRun, optional=True)}


class ServingPusher(tfx.components.Pusher):
    """Pusher that checks op compatibility and loadability, writes warm-up requests, push
    metadata and a model card, and swaps versions in atomically. ``custom_config``:
    keep_versions, warmup_texts, model_name, and the card's task, encoder_uri, intended_use and
    limitations. ``card_inputs``: the ServingPusherSpec inputs the card reads.
    """

    SPEC_CLASS = ServingPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model, model_blessing=None, push_destination=None, custom_config=None,
                 card_inputs: dict | None = None):
        spec = self.SPEC_CLASS(model=model, model_blessing=model_blessing, push_destination=push_destination,
                               custom_config=json_utils.dumps(custom_config), **(card_inputs or {}),
                               pushed_model=channel.Channel(type=standard_artifacts.PushedModel))
        # Pusher.__init__ would build the stock spec: this one instead.
        base_component.BaseComponent.__init__(self, spec=spec)


StudentPusherSpec = with_student_blessing(ServingPusherSpec, standard_component_specs.MODEL_BLESSING_KEY,
                                          direction="INPUTS")


class StudentPusher(ServingPusher):
    """ServingPusher whose ``model_blessing`` is a StudentBlessing (a StudentEvaluator's)."""

    SPEC_CLASS = StudentPusherSpec
