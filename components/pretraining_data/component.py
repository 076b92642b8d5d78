"""PretrainingDataGen: MLM+NSP pretraining instances from documents, at Beam scale."""
from __future__ import annotations

from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import channel, component_spec, standard_artifacts

from tfx_bert_app.components.artifacts import Vocabulary
from tfx_bert_app.components.pretraining_data import executor


class PretrainingDataGenSpec(component_spec.ComponentSpec):
    PARAMETERS = {
        executor.MAX_SEQ_LENGTH: component_spec.ExecutionParameter(type=int),
        executor.SHORT_SEQ_PROB: component_spec.ExecutionParameter(type=float),
        executor.NSP_SHARDS: component_spec.ExecutionParameter(type=int),
        executor.SEED: component_spec.ExecutionParameter(type=int),
        executor.MASKING: component_spec.ExecutionParameter(type=str),
        executor.DUPE_FACTOR: component_spec.ExecutionParameter(type=int),
        executor.MASKED_LM_PROB: component_spec.ExecutionParameter(type=float),
        executor.MAX_PREDICTIONS: component_spec.ExecutionParameter(type=int),
        executor.WHOLE_WORD_MASKING: component_spec.ExecutionParameter(type=int),
    }
    INPUTS = {
        "examples": component_spec.ChannelParameter(type=standard_artifacts.Examples),
        "vocabulary": component_spec.ChannelParameter(type=Vocabulary),
    }
    OUTPUTS = {"pretraining_examples": component_spec.ChannelParameter(type=standard_artifacts.Examples)}


class PretrainingDataGen(base_beam_component.BaseBeamComponent):
    """Documents -> ``[CLS] A [SEP] B [SEP]`` NSP pairs of WordPiece ids (google-research
    recipe: segment pairs filling max_seq_length, short_seq_prob, 50% random next segment,
    random front/back truncation). Masking is dynamic (the Trainer masks each batch afresh) or
    static (``dupe_factor`` differently masked copies, optionally whole-word). Output: an
    Examples artifact the pretraining Trainer reads.
    """

    SPEC_CLASS = PretrainingDataGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, examples, vocabulary, max_seq_length: int = 128,
                 short_seq_prob: float = 0.1, nsp_shards: int = 4, seed: int = 12345,
                 masking: str = "dynamic", dupe_factor: int = 10, masked_lm_prob: float = 0.15,
                 max_predictions_per_seq: int = 20, whole_word_masking: bool = False):
        spec = PretrainingDataGenSpec(
            masking=masking,
            dupe_factor=dupe_factor,
            masked_lm_prob=masked_lm_prob,
            max_predictions_per_seq=max_predictions_per_seq,
            whole_word_masking=int(whole_word_masking),
            examples=examples,
            vocabulary=vocabulary,
            max_seq_length=max_seq_length,
            short_seq_prob=short_seq_prob,
            nsp_shards=nsp_shards,
            seed=seed,
            pretraining_examples=channel.Channel(type=standard_artifacts.Examples),
        )
        super().__init__(spec=spec)
