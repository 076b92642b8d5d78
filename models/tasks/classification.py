"""Sequence classification of one text (sentiment) or a pair (GLUE MRPC/QNLI/RTE)."""
from __future__ import annotations

import dataclasses

from tfx_bert import signatures
from tfx_bert.serving import task_clients
from tfx_bert.task_settings import PooledWindowSettings
from tfx_bert.tasks import DemoData, Task, get_task
from tfx_bert_app.models import class_weights  # numpy only: the task modules stay light

_TEXT_CSV = (("input_format", "csv"), ("train_pattern", "train/*.csv"), ("eval_pattern", "eval/*.csv"),
             ("text_field", "text"), ("text_b_field", ""))


def calibration_checks(calibration: str) -> list[tuple[bool, str]]:
    """``finetune.calibration``: temperature (models/calibration.py) or none."""
    return [(calibration in ("temperature", "none"),
             f"finetune.calibration must be temperature or none, not {calibration!r}")]


def _non_negative(value) -> bool:
    try:
        return float(value) >= 0
    except (TypeError, ValueError):
        return False


def class_weight_checks(weights: list, count: int, entries: str) -> list[tuple[bool, str]]:
    """``finetune.class_weights``: [balanced] (models/class_weights.py), or ``count`` numbers >= 0
    (``entries`` says which, for the error)."""
    balanced = class_weights.is_balanced(weights)
    return [(not weights or balanced or len(weights) == count,
             f"finetune.class_weights must be balanced or have {entries}"),
            (balanced or all(_non_negative(w) for w in weights),
             f"finetune.class_weights must be numbers >= 0 or balanced, not {list(weights)}")]


@dataclasses.dataclass
class ClassificationSettings(PooledWindowSettings):
    # Per class id (empty: all 1), or [balanced]: n / (k n_c) from the train split's label counts.
    class_weights: list = dataclasses.field(default_factory=list)
    # temperature: one temperature fitted on the validation split after training divides the served
    # logits (models/calibration.py); none: the softmax of the trained logits as they are.
    calibration: str = "temperature"
    max_ece: float = 0.0  # the gate's bound on the eval split's expected calibration error (0: reported only)
    PIPELINE_ONLY = ("max_ece",)  # the Evaluator's, not the Trainer's

    def checks(self, finetune) -> list[tuple[bool, str]]:
        return [*super().checks(finetune),
                *class_weight_checks(self.class_weights, finetune.num_classes, "finetune.num_classes entries"),
                *calibration_checks(self.calibration),
                (0 <= self.max_ece < 1, "finetune.max_ece must be in [0, 1) (0: ECE is reported, not gated)")]


class SentimentTask(Task):
    name = "sentiment"
    description = "Sequence classification of one text: [CLS] -> dropout -> Dense -> softmax"
    module = "tfx_bert_app.models.classification"
    signature = signatures.CLASSIFICATION
    model_kind = "classifier"  # names the teacher in a student's progress line
    Settings = ClassificationSettings
    demo = DemoData("sentiment", "write_sentiment_dataset", "eval/data.csv",
                    _TEXT_CSV + (("label_field", "label"), ("num_classes", 2), ("label_names", [])))
    feeds_one_sequence = True
    reads_transfer_text = True
    derived_slices = True
    transform_settings = ("max_seq_length", "max_windows", "doc_stride")

    def decode(self, inputs: dict, outputs: dict) -> list[dict]:
        return task_clients.decode_classes(inputs, outputs)

    def with_second_text(self) -> Task:
        return get_task("pair_classification")


@dataclasses.dataclass
class PairClassificationSettings(ClassificationSettings):
    def checks(self, finetune) -> list[tuple[bool, str]]:
        return super().checks(finetune) + [
            (bool(finetune.text_b_field),
             "the pair_classification task reads two texts: set finetune.text_b_field (the second text's column, "
             "e.g. sentence2) and finetune.text_field")]


class PairClassificationTask(SentimentTask):
    name = "pair_classification"
    description = "Sentence-pair classification (GLUE MRPC/QNLI/RTE style): [CLS] a [SEP] b [SEP] -> softmax"
    signature = signatures.PAIR_CLASSIFICATION
    Settings = PairClassificationSettings
    # GLUE's layout: train.tsv and dev.tsv; the text columns differ by data set (MRPC's below).
    def with_second_text(self) -> Task:
        return self

    data_defaults = (("input_format", "glue_tsv"), ("train_pattern", "train.tsv"), ("eval_pattern", "dev.tsv"))
    demo = DemoData("pairs", "write_pair_dataset", "dev.tsv",
                    (("text_field", "#1 String"), ("text_b_field", "#2 String"), ("label_field", "Quality"),
                     ("num_classes", 2), ("label_names", [])))
