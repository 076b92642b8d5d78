"""ZeroShotGate: blesses a sentence-similarity model only if TFMA's Evaluator blessed it and it
ranks the eval pairs better (Spearman) than the pretrained encoder's zero-shot embeddings (see
executor.py). The Pusher and the VectorIndexer read its blessing."""
from __future__ import annotations

from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import channel, component_spec, standard_artifacts

from tfx_bert_app.components.zero_shot_gate import executor as ex


class ZeroShotGateSpec(component_spec.ComponentSpec):
    PARAMETERS = {ex.EVAL_SPLIT: component_spec.ExecutionParameter(type=str),
                  ex.POOLING: component_spec.ExecutionParameter(type=str),
                  ex.MAX_SEQ_LENGTH: component_spec.ExecutionParameter(type=int)}
    INPUTS = {"model": component_spec.ChannelParameter(type=standard_artifacts.Model),
              "blessing": component_spec.ChannelParameter(type=standard_artifacts.ModelBlessing),
              "examples": component_spec.ChannelParameter(type=standard_artifacts.Examples),
              "encoder": component_spec.ChannelParameter(type=standard_artifacts.Model)}
    OUTPUTS = {"gated_blessing": component_spec.ChannelParameter(type=standard_artifacts.ModelBlessing)}


class ZeroShotGate(base_component.BaseComponent):
    SPEC_CLASS = ZeroShotGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(ex.Executor)

    def __init__(self, model, blessing, examples, encoder, pooling: str = "mean", max_seq_length: int = 0,
                 eval_split: str = "eval"):
        super().__init__(spec=ZeroShotGateSpec(
            model=model, blessing=blessing, examples=examples, encoder=encoder, eval_split=eval_split,
            pooling=pooling, max_seq_length=max_seq_length,
            gated_blessing=channel.Channel(type=standard_artifacts.ModelBlessing)))
