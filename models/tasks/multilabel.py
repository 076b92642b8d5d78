"""Multi-label classification: several of ``label_names`` per text."""
from __future__ import annotations

import dataclasses

from tfx_bert import signatures
from tfx_bert.serving import task_clients
from tfx_bert.task_settings import PooledWindowSettings
from tfx_bert.tasks import DemoData, Task
from tfx_bert_app.models.tasks.classification import _TEXT_CSV, calibration_checks, class_weight_checks


@dataclasses.dataclass
class MultilabelSettings(PooledWindowSettings):
    label_delimiter: str = "|"  # csv/tsv label column: "sports|music"
    decision_threshold: float = 0.5  # a label is predicted at p >= this
    # Per label (label_names order; empty: decision_threshold for all), or [tuned]: each label's
    # threshold that maximises its F1 on the validation split, after calibration (models/multilabel.py).
    label_thresholds: list = dataclasses.field(default_factory=list)
    calibration: str = "temperature"  # as the classification tasks': one temperature for every label's sigmoid
    # Per label (label_names order; empty: all 1): the weight of its positive term in the loss, or
    # [balanced]: negatives / positives of each label in the train split (models/class_weights.py).
    class_weights: list = dataclasses.field(default_factory=list)

    def tuned(self) -> bool:
        return [str(t) for t in self.label_thresholds] == ["tuned"]

    def checks(self, finetune) -> list[tuple[bool, str]]:
        given = [] if self.tuned() else list(self.label_thresholds)
        return [
            *super().checks(finetune),
            (len(finetune.label_names) >= 2,
             "the multilabel task needs finetune.label_names: its labels (e.g. --set finetune.label_names=a,b,c)"),
            (not given or len(given) == len(finetune.label_names),
             "finetune.label_thresholds must be tuned or have one entry per finetune.label_names entry"),
            (all(_in_unit_interval(t) for t in [self.decision_threshold, *given]),
             f"finetune.decision_threshold and finetune.label_thresholds must be numbers in (0, 1) (or "
             f"label_thresholds: tuned), not {self.decision_threshold!r} and {list(self.label_thresholds)}"),
            (not self.tuned() or finetune.has_validation,
             "finetune.label_thresholds=tuned fits the thresholds on the validation split: set "
             "finetune.validation_percent or finetune.validation_pattern (the eval split is the gate's)"),
            *calibration_checks(self.calibration),
            *class_weight_checks(self.class_weights, len(finetune.label_names),
                                 "one positive weight per finetune.label_names entry"),
        ]


def _in_unit_interval(value) -> bool:
    try:
        return 0 < float(value) < 1
    except (TypeError, ValueError):
        return False


class MultilabelTask(Task):
    name = "multilabel"
    description = "Multi-label classification: [CLS] -> Dense -> a sigmoid per label, a threshold per label"
    module = "tfx_bert_app.models.multilabel"
    signature = signatures.MULTILABEL
    model_kind = "multi-label classifier"  # names the teacher in a student's progress line
    Settings = MultilabelSettings
    demo = DemoData("multilabel", "write_multilabel_dataset", "eval/data.csv",
                    _TEXT_CSV + (("label_field", "labels"), ("label_delimiter", "|"),
                                 ("label_names", ["garden", "kitchen", "music", "sea", "space", "sports"]),
                                 ("accuracy_threshold", 0.5)))
    transform_settings = ("max_seq_length", "label_names", "max_windows", "doc_stride")
    feeds_one_sequence = True
    reads_transfer_text = True
    derived_slices = True
    label_names_per_class = False  # label_names lists the labels, not num_classes class names

    def example_gen_args(self, finetune, negative_model: str = "") -> dict:
        return {**super().example_gen_args(finetune), "label_dtype": "multi",
                "label_delimiter": finetune.label_delimiter}

    def decode(self, inputs: dict, outputs: dict) -> list[dict]:
        return task_clients.decode_multilabel(inputs, outputs)
