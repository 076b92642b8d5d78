"""DataGate: whether a span of task data may be trained on (see executor.py). The fine-tuning
pipeline runs everything after it inside ``tfx.dsl.Cond`` on its result's ``passed``."""
from __future__ import annotations

from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import channel, component_spec, standard_artifacts

from tfx_bert_app.components.artifacts import DataGateResult
from tfx_bert_app.components.data_gate import executor as ex


class DataGateSpec(component_spec.ComponentSpec):
    PARAMETERS = {ex.LABEL_LINF: component_spec.ExecutionParameter(type=float),
                  ex.LENGTH_JS: component_spec.ExecutionParameter(type=float),
                  ex.UNKNOWN_JS: component_spec.ExecutionParameter(type=float),
                  ex.ALLOW_ANOMALIES: component_spec.ExecutionParameter(type=int)}
    INPUTS = {"examples": component_spec.ChannelParameter(type=standard_artifacts.Examples),
              "anomalies": component_spec.ChannelParameter(type=standard_artifacts.ExampleAnomalies),
              # The latest blessed model: its data_profile.json is the drift baseline.
              "baseline_model": component_spec.ChannelParameter(type=standard_artifacts.Model, optional=True),
              # The encoder whose tokenizer measures lengths in pieces and the unknown-piece rate.
              "encoder": component_spec.ChannelParameter(type=standard_artifacts.Model, optional=True)}
    OUTPUTS = {"result": component_spec.ChannelParameter(type=DataGateResult)}


class DataGate(base_component.BaseComponent):
    """Example:
        gate = DataGate(examples=gen.outputs["examples"], anomalies=validator.outputs["anomalies"],
                        baseline_model=resolver.outputs["model"], encoder=encoder.outputs["result"])
        with tfx.dsl.Cond(gate.outputs["result"].future()[0].custom_property("passed") == 1):
            trainer = ...
    """

    SPEC_CLASS = DataGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(ex.Executor)

    def __init__(self, examples, anomalies, baseline_model=None, encoder=None, label_linf: float = 0.1,
                 length_js: float = 0.1, unknown_js: float = 0.1, allow_anomalies: bool = False):
        super().__init__(spec=DataGateSpec(
            examples=examples, anomalies=anomalies, baseline_model=baseline_model, encoder=encoder,
            label_linf=float(label_linf), length_js=float(length_js), unknown_js=float(unknown_js),
            allow_anomalies=int(allow_anomalies), result=channel.Channel(type=DataGateResult)))
