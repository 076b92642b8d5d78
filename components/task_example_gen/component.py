"""TaskExampleGen: a TFX ExampleGen for labelled fine-tuning data (see executor.py)."""
from __future__ import annotations

import json
import os

from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import channel, component_spec, standard_artifacts

from tfx_bert_app.components import input_fingerprint
from tfx_bert_app.components.task_example_gen import executor as ex


class TaskExampleGenSpec(component_spec.ComponentSpec):
    PARAMETERS = {
        ex.INPUT_BASE: component_spec.ExecutionParameter(type=str),
        ex.TRAIN_PATTERN: component_spec.ExecutionParameter(type=str),
        ex.EVAL_PATTERN: component_spec.ExecutionParameter(type=str),
        ex.INPUT_FORMAT: component_spec.ExecutionParameter(type=str),
        ex.TEXT_FIELD: component_spec.ExecutionParameter(type=str),
        ex.TEXT_B_FIELD: component_spec.ExecutionParameter(type=str),
        ex.LABEL_FIELD: component_spec.ExecutionParameter(type=str),
        ex.LABEL_NAMES: component_spec.ExecutionParameter(type=str),
        ex.NUM_CLASSES: component_spec.ExecutionParameter(type=int),
        ex.STRICT: component_spec.ExecutionParameter(type=int),
        ex.TAG_SCHEME: component_spec.ExecutionParameter(type=str, optional=True),
        ex.LABEL_DTYPE: component_spec.ExecutionParameter(type=str, optional=True),
        ex.LABEL_DELIMITER: component_spec.ExecutionParameter(type=str, optional=True),
        ex.NUM_NEGATIVES: component_spec.ExecutionParameter(type=int, optional=True),
        ex.NEGATIVE_POOL: component_spec.ExecutionParameter(type=int, optional=True),
        ex.NEGATIVE_MINING: component_spec.ExecutionParameter(type=str, optional=True),
        ex.VALIDATION_PATTERN: component_spec.ExecutionParameter(type=str, optional=True),
        ex.SPAN_RANGE: component_spec.ExecutionParameter(type=str, optional=True),
        ex.VALIDATION_PERCENT: component_spec.ExecutionParameter(type=int, optional=True),
        ex.SCORE_PATTERN: component_spec.ExecutionParameter(type=str, optional=True),
        ex.SLICE_FIELDS: component_spec.ExecutionParameter(type=str, optional=True),
        "input_fingerprint": component_spec.ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {}
    OUTPUTS = {"examples": component_spec.ChannelParameter(type=standard_artifacts.Examples)}


class TaskExampleGen(base_beam_component.BaseBeamComponent):
    """Reads ``<input_base>/<train_pattern>`` and ``<input_base>/<eval_pattern>`` into tf.Examples
    {text, [text_b], label}; a ``validation`` split from ``<input_base>/<validation_pattern>`` or
    ``validation_percent`` of the train records. Patterns may hold TFX's ``{SPAN}``, ``{VERSION}``
    and ``{YYYY}``/``{MM}``/``{DD}`` specs, resolved when it runs for ``span_range`` (``latest``,
    ``rolling:N``, ``static:A-B``; ``tfx_bert/spans.py``). With ``score_pattern`` (batch scoring)
    its files are the one split, ``score``; an empty ``label_field`` reads texts without labels.
    ``slice_fields``: columns kept beside the text as string features (``finetune.slices``; a row
    without one gets "").

    Example (GLUE MRPC):
        TaskExampleGen(input_base="/data/MRPC", train_pattern="train.tsv", eval_pattern="dev.tsv",
                       input_format="glue_tsv", text_field="#1 String", text_b_field="#2 String",
                       label_field="Quality", num_classes=2)
    """

    SPEC_CLASS = TaskExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(ex.Executor)

    def __init__(self, input_base, train_pattern: str = "train/*", eval_pattern: str = "eval/*",
                 input_format: str = "csv", text_field: str = "text", text_b_field: str = "",
                 label_field: str = "label", label_names: list | tuple = (), num_classes: int = 2,
                 strict: bool = False, tag_scheme: str = "iob2", label_dtype: str = "int",
                 num_negatives: int = 0, negative_pool: int = 0, label_delimiter: str = "|",
                 negative_mining: dict | None = None, validation_pattern: str = "", validation_percent: int = 0,
                 span_range: str = "latest", score_pattern: str = "", slice_fields: list | tuple = ()):
        if input_format not in ex.FORMATS:
            raise ValueError(f"input_format {input_format!r} is not one of {ex.FORMATS}.")
        if label_dtype not in ("int", "float", "multi"):
            raise ValueError(f"label_dtype {label_dtype!r} is not int, float or multi.")
        if label_dtype == "multi" and not label_names:
            raise ValueError("label_dtype multi needs label_names (the labels, in id order).")
        spec = TaskExampleGenSpec(
            input_base=input_base, train_pattern=train_pattern, eval_pattern=eval_pattern,
            input_format=input_format, text_field=text_field, text_b_field=text_b_field,
            label_field=label_field, label_names=json.dumps([str(n) for n in label_names]) if label_names else "",
            num_classes=len(label_names) or num_classes, strict=int(strict), tag_scheme=tag_scheme,
            label_dtype=label_dtype, label_delimiter=label_delimiter, num_negatives=num_negatives, negative_pool=negative_pool,
            negative_mining=json.dumps(negative_mining, sort_keys=True) if negative_mining else "",
            validation_pattern=validation_pattern, validation_percent=int(validation_percent), span_range=span_range,
            score_pattern=score_pattern, slice_fields=json.dumps(list(slice_fields)) if slice_fields else "",
            input_fingerprint=input_fingerprint.fingerprint(
                [os.path.join(input_base, p) for p in ([score_pattern] if score_pattern else
                                                       (train_pattern, eval_pattern, validation_pattern)) if p]
                if isinstance(input_base, str) and input_format != "beir" else [input_base]),
            examples=channel.Channel(type=standard_artifacts.Examples))
        super().__init__(spec=spec)
