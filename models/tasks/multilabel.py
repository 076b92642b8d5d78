"""Multi-label classification: several of ``label_names`` per text."""
from __future__ import annotations

import dataclasses

from tfx_bert import signatures
from tfx_bert.serving import task_clients
from tfx_bert.tasks import DemoData, Task, TaskSettings
from tfx_bert_app.models.tasks.classification import _TEXT_CSV


@dataclasses.dataclass
class MultilabelSettings(TaskSettings):
    label_delimiter: str = "|"  # csv/tsv label column: "sports|music"
    decision_threshold: float = 0.5  # a label is predicted at p >= this
    label_thresholds: list = dataclasses.field(default_factory=list)  # per label (label_names order); empty: the above

    def checks(self, finetune) -> list[tuple[bool, str]]:
        return [
            (len(finetune.label_names) >= 2,
             "the multilabel task needs finetune.label_names: its labels (e.g. --set finetune.label_names=a,b,c)"),
            (not self.label_thresholds or len(self.label_thresholds) == len(finetune.label_names),
             "finetune.label_thresholds must have one entry per finetune.label_names entry"),
            (all(0 < float(t) < 1 for t in [self.decision_threshold, *self.label_thresholds]),
             "finetune.decision_threshold and finetune.label_thresholds must be in (0, 1)"),
        ]


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
    transform_settings = ("max_seq_length", "label_names")
    feeds_one_sequence = True
    reads_transfer_text = True
    label_names_per_class = False  # label_names lists the labels, not num_classes class names

    def example_gen_args(self, finetune, negative_model: str = "") -> dict:
        return {**super().example_gen_args(finetune), "label_dtype": "multi",
                "label_delimiter": finetune.label_delimiter}

    def decode(self, inputs: dict, outputs: dict) -> list[dict]:
        return task_clients.decode_multilabel(inputs, outputs)
