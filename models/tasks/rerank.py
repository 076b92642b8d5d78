"""Re-ranking: a cross-encoder scores (query, passage) pairs."""
from __future__ import annotations

import dataclasses
from typing import Literal

from tfx_bert import signatures
from tfx_bert.serving import task_clients
from tfx_bert.task_settings import NegativeSettings
from tfx_bert.tasks import Task
from tfx_bert_app.models.tasks.retrieval import BEIR, RetrievalTask


@dataclasses.dataclass
class RerankSettings(NegativeSettings):
    rerank_loss: Literal["listwise", "pointwise"] = "listwise"  # softmax over candidates | BCE
    # MarkedBERT's exact-match cue (models/rerank.ExactMatchSegments): pieces the other segment
    # also has get their own segment type (two rows added to the encoder's segment embeddings,
    # copies of the two it has, so the model starts where it would without). false: monoBERT as is.
    exact_match: bool = True

    def checks(self, finetune) -> list[tuple[bool, str]]:
        return super().checks(finetune) + [
            (self.num_negatives >= 1, "re-ranking trains on candidate lists: finetune.num_negatives must be >= 1")]


class RerankTask(Task):
    name = "rerank"
    description = "Re-ranking: cross-encoder [CLS] query [SEP] passage [SEP] -> score; pointwise or listwise loss"
    module = "tfx_bert_app.models.rerank"
    label_settings = ()  # what the outputs mean (a warm start keeps them)
    signature = signatures.RERANK
    model_kind = "cross-encoder"  # names the teacher in a student's progress line
    Settings = RerankSettings
    data_defaults = BEIR
    demo = dataclasses.replace(  # the retrieval task's demo data
        RetrievalTask.demo, settings=(("num_negatives", 7), ("negative_pool", 0), ("train_steps", 600), ("learning_rate", 1e-3),
                                      ("accuracy_threshold", 0.45)))
    transform_settings = ("max_seq_length", "num_negatives")

    def example_gen_args(self, finetune, negative_model: str = "") -> dict:
        return finetune.task_settings.example_gen_args(finetune, negative_model)

    def decode(self, inputs: dict, outputs: dict) -> list[dict]:
        return task_clients.decode_scores(inputs, outputs)
