"""TextExampleGen: a TFX ExampleGen for raw text corpora (see executor.py for formats)."""
from __future__ import annotations

from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import channel, component_spec, standard_artifacts

from tfx_bert_app.components import input_fingerprint
from tfx_bert_app.components.text_example_gen import executor


class TextExampleGenSpec(component_spec.ComponentSpec):
    """Parameters of TextExampleGen; key names are the executor's constants."""

    PARAMETERS = {
        executor.INPUT_PATTERN: component_spec.ExecutionParameter(type=str),
        executor.INPUT_FORMAT: component_spec.ExecutionParameter(type=str),
        executor.TEXT_FIELD: component_spec.ExecutionParameter(type=str),
        executor.ID_FIELD: component_spec.ExecutionParameter(type=str),
        executor.EVAL_PERCENT: component_spec.ExecutionParameter(type=int),
        executor.MAX_LINE_CHARS: component_spec.ExecutionParameter(type=int),
        executor.STRICT: component_spec.ExecutionParameter(type=int),
        executor.PER_LINE: component_spec.ExecutionParameter(type=int),
        executor.SPAN_RANGE: component_spec.ExecutionParameter(type=str, optional=True),
        "input_fingerprint": component_spec.ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {}
    OUTPUTS = {"examples": component_spec.ChannelParameter(type=standard_artifacts.Examples)}


class TextExampleGen(base_beam_component.BaseBeamComponent):
    """Ingests a raw corpus into tf.Examples ({text, doc_id, num_sentences}) with a stable
    hash-based train/eval split that never divides a document.

    Example:
        gen = TextExampleGen(input_pattern="/data/corpus/*.txt", input_format="bert_raw")

    ``input_pattern`` may hold TFX's ``{SPAN}`` (or date) and ``{VERSION}`` specs, resolved when
    it runs for ``span_range`` (``latest``, ``rolling:N``, ``static:A-B``; ``tfx_bert/spans.py``).
    """

    SPEC_CLASS = TextExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        input_pattern: str,
        input_format: str = "bert_raw",
        text_field: str = "text",
        id_field: str = "",
        eval_percent: int = 10,
        max_line_chars: int = 100_000,
        strict: bool = False,
        per_line: bool = False,
        span_range: str = "latest",
    ):
        if input_format not in executor.FORMATS:
            raise ValueError(f"input_format {input_format!r} is not one of {executor.FORMATS}.")
        if not 0 < eval_percent < 100:  # the rule pretrain.eval_percent has: both splits non-empty
            raise ValueError(f"eval_percent must be in 1..99, got {eval_percent}.")
        spec = TextExampleGenSpec(
            input_pattern=input_pattern,
            input_format=input_format,
            text_field=text_field,
            id_field=id_field,
            eval_percent=eval_percent,
            max_line_chars=max_line_chars,
            strict=int(strict),
            per_line=int(per_line),
            span_range=span_range,
            input_fingerprint=input_fingerprint.fingerprint([input_pattern]),
            examples=channel.Channel(type=standard_artifacts.Examples),
        )
        super().__init__(spec=spec)
