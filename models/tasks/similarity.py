"""Sentence similarity (STS-B) and bi-encoder NLI: a shared encoder, pooled embeddings."""
from __future__ import annotations

import dataclasses
from typing import Literal

from tfx_bert import signatures
from tfx_bert.serving import task_clients
from tfx_bert.task_settings import PoolingSettings, VectorIndexSettings
from tfx_bert.tasks import DemoData, Task

_GLUE_PAIRS = (("input_format", "glue_tsv"), ("train_pattern", "train.tsv"), ("eval_pattern", "dev.tsv"),
               ("text_field", "sentence1"), ("text_b_field", "sentence2"))


@dataclasses.dataclass
class SimilaritySettings(PoolingSettings, VectorIndexSettings):
    # cosine (STS-B scores) | classification (NLI: [u, v, |u-v|])
    similarity_objective: Literal["cosine", "classification"] = "cosine"
    score_max: float = 5.0  # cosine: gold scores divided by this (STS-B: 0-5)


@dataclasses.dataclass
class NliSettings(SimilaritySettings):
    similarity_objective: Literal["cosine", "classification"] = "classification"


class SimilarityTask(Task):
    name = "similarity"
    description = "Sentence similarity (STS-B): shared encoder, mean/[CLS] pooling, cosine regression"
    module = "tfx_bert_app.models.similarity"
    signature = signatures.SIMILARITY_PAIR
    model_kind = "bi-encoder"  # names the teacher in a student's progress line
    Settings = SimilaritySettings
    data_defaults = _GLUE_PAIRS + (("label_field", "score"),)  # STS-B's GLUE columns
    demo = DemoData("sts", "write_sts_dataset", "dev.tsv")
    reads_transfer_text = True

    def example_gen_args(self, finetune, negative_model: str = "") -> dict:
        scores = finetune.similarity_objective == "cosine"
        return {**super().example_gen_args(finetune), "text_b_field": finetune.text_b_field or "text_b",
                "label_names": [] if scores else list(finetune.label_names),
                "label_dtype": "float" if scores else "int"}

    def zero_shot_gated(self, settings) -> bool:
        """Cosine scores have a zero-shot counterpart: the pretrained encoder's embeddings."""
        return settings.similarity_objective == "cosine"

    def decode(self, inputs: dict, outputs: dict) -> list[dict]:
        return task_clients.decode_similarity(inputs, outputs)


class NliTask(SimilarityTask):
    name = "nli"
    description = "Sentence-pair classification with a bi-encoder (NLI): [u, v, |u-v|] -> Dense -> softmax"
    Settings = NliSettings
    data_defaults = _GLUE_PAIRS + (("label_field", "gold_label"),)  # MNLI's GLUE columns
    demo = DemoData("nli", "write_nli_dataset", "dev.tsv",
                    (("num_classes", 3), ("label_names", ["entailment", "neutral", "contradiction"])))
    reads_transfer_text = False

    def zero_shot_gated(self, settings) -> bool:
        return False
