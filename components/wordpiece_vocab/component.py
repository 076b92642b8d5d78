"""WordPieceVocabGen: learns a WordPiece vocabulary from an Examples artifact at Beam scale."""
from __future__ import annotations

from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import channel, component_spec, standard_artifacts

from tfx_bert_app.components.artifacts import Vocabulary
from tfx_bert_app.components.wordpiece_vocab import executor


class WordPieceVocabGenSpec(component_spec.ComponentSpec):
    PARAMETERS = {
        executor.VOCAB_SIZE: component_spec.ExecutionParameter(type=int),
        executor.LOWER_CASE: component_spec.ExecutionParameter(type=int),
        executor.NUM_UNUSED: component_spec.ExecutionParameter(type=int),
        executor.VOCAB_PATH: component_spec.ExecutionParameter(type=str),
        executor.MAX_BYTES_PER_WORD: component_spec.ExecutionParameter(type=int),
        executor.TEXT_FEATURE: component_spec.ExecutionParameter(type=str),
    }
    INPUTS = {"examples": component_spec.ChannelParameter(type=standard_artifacts.Examples)}
    OUTPUTS = {"vocabulary": component_spec.ChannelParameter(type=Vocabulary)}


class WordPieceVocabGen(base_beam_component.BaseBeamComponent):
    """Counts words (BERT basic tokenization) with Beam and learns a WordPiece vocabulary,
    or, with ``vocab_path``, adopts an existing ``vocab.txt`` (e.g. a published BERT's).

    Output: a Vocabulary artifact holding ``vocab.txt`` and ``tokenizer_config.json``.
    """

    SPEC_CLASS = WordPieceVocabGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        examples,
        vocab_size: int = 30522,
        lower_case: bool = True,
        num_unused_tokens: int = 0,
        vocab_path: str = "",
        max_bytes_per_word: int = 100,
        text_feature: str = "text",
    ):
        spec = WordPieceVocabGenSpec(
            examples=examples,
            vocab_size=vocab_size,
            lower_case=int(lower_case),
            num_unused_tokens=num_unused_tokens,
            vocab_path=vocab_path,
            max_bytes_per_word=max_bytes_per_word,
            text_feature=text_feature,
            vocabulary=channel.Channel(type=Vocabulary),
        )
        super().__init__(spec=spec)
