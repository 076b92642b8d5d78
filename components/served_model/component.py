"""ServedModel: a pushed model version as a Model artifact (see executor.py)."""
from __future__ import annotations

from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import channel, component_spec, standard_artifacts

from tfx_bert_app.components.served_model import executor as ex


class ServedModelSpec(component_spec.ComponentSpec):
    PARAMETERS = {ex.MODEL_BASE: component_spec.ExecutionParameter(type=str),
                  ex.VERSION: component_spec.ExecutionParameter(type=str)}
    INPUTS = {}
    OUTPUTS = {"model": component_spec.ChannelParameter(type=standard_artifacts.Model)}


class ServedModel(base_component.BaseComponent):
    """Example: ServedModel(model_base="/srv/models/sentiment", version="")  # "" = the newest"""

    SPEC_CLASS = ServedModelSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(ex.Executor)

    def __init__(self, model_base: str, version: str = ""):
        super().__init__(spec=ServedModelSpec(model_base=model_base, version=str(version),
                                              model=channel.Channel(type=standard_artifacts.Model)))
