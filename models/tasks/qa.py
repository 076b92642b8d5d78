"""Extractive question answering over SQuAD v1.1 / v2.0 data."""
from __future__ import annotations

import dataclasses

from tfx_bert import signatures
from tfx_bert.serving import task_clients
from tfx_bert.task_settings import query_length_check
from tfx_bert.tasks import DemoData, Task, TaskSettings


@dataclasses.dataclass
class QaSettings(TaskSettings):
    """Windows over long contexts and answer decoding."""

    doc_stride: int = 24  # pieces between window starts (SQuAD, 384-piece windows: 128)
    max_query_length: int = 16  # question pieces (SQuAD: 64)
    max_windows: int = 4  # windows per question written by Transform; serving: all
    max_answer_length: int = 30  # pieces
    n_best_size: int = 5
    squad_v2: bool = True  # unanswerable questions: answer "" when the [CLS] score wins
    no_answer_threshold: float = 0.0  # no answer when null score - best span > this
    tune_no_answer_threshold: bool = True  # pick it on the eval split (best_exact_thresh)

    def checks(self, finetune) -> list[tuple[bool, str]]:
        return [
            query_length_check(self.max_query_length, finetune, "context"),
            (self.doc_stride > 0, "finetune.doc_stride must be positive"),
            (self.max_windows > 0, "finetune.max_windows must be positive"),
            (self.max_answer_length > 0 and self.n_best_size > 0,
             "finetune.max_answer_length and finetune.n_best_size must be positive"),
        ]


class QaTask(Task):
    name = "qa"
    description = "Extractive QA (SQuAD v1.1/v2.0): windows with doc_stride -> start/end logits -> answer span"
    module = "tfx_bert_app.models.qa"
    label_settings = ()  # what the outputs mean (a warm start keeps them)
    signature = signatures.QA
    model_kind = "span extractor"  # names the teacher in a student's progress line
    Settings = QaSettings
    data_defaults = (("input_format", "squad"), ("train_pattern", "train.json"), ("eval_pattern", "dev.json"))
    demo = DemoData("qa", "write_qa_dataset", "dev.json")
    transform_settings = ("max_seq_length", "doc_stride", "max_query_length", "max_windows")
    feeds_one_sequence = True

    def example_gen_args(self, finetune, negative_model: str = "") -> dict:
        return dict(input_format="squad")

    def decode(self, inputs: dict, outputs: dict) -> list[dict]:
        return task_clients.decode_answers(inputs, outputs)
