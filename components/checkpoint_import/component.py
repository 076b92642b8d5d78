"""CheckpointImport: a published checkpoint (or an earlier pretraining run's model) as the
pretraining pipeline's starting model and vocabulary (``pretrain.init_from``; see executor.py)."""
from __future__ import annotations

from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import channel, component_spec, standard_artifacts

from tfx_bert_app.components.artifacts import Vocabulary
from tfx_bert_app.components.checkpoint_import import executor as ex


class CheckpointImportSpec(component_spec.ComponentSpec):
    PARAMETERS = {ex.SOURCE: component_spec.ExecutionParameter(type=str),
                  ex.CASING: component_spec.ExecutionParameter(type=str)}
    INPUTS = {}
    OUTPUTS = {"model": component_spec.ChannelParameter(type=standard_artifacts.Model),
               "vocabulary": component_spec.ChannelParameter(type=Vocabulary)}


class CheckpointImport(base_component.BaseComponent):
    """Example:
        start = CheckpointImport(source="gs://bucket/bert-base-uncased", casing="uncased")
        instances = PretrainingDataGen(examples=..., vocabulary=start.outputs["vocabulary"], ...)
        trainer = BertTrainer(..., base_model=start.outputs["model"])
    """

    SPEC_CLASS = CheckpointImportSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(ex.Executor)

    def __init__(self, source: str, casing: str = "auto"):
        super().__init__(spec=CheckpointImportSpec(
            source=source, casing=casing, model=channel.Channel(type=standard_artifacts.Model),
            vocabulary=channel.Channel(type=Vocabulary)))
