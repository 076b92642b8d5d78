"""Task registry: what each fine-tuning task plugs into the fine-tuning pipeline.

Each task is one module under ``models/`` that declares, for the pipeline:

* ``example_gen(finetune_config, data_path)``: the ExampleGen reading its data format;
* ``preprocessing_fn``: Transform's function (the shared in-graph tokenizer);
* ``run_fn``: the Trainer's function (head, loss, training metrics, serving export);
* ``trainer_config(finetune_config)``: the Trainer's ``custom_config``;
* ``eval_config(finetune_config)``: the TFMA EvalConfig (the community's metrics, the blessing
  thresholds);
* optionally ``transform_config(finetune_config)``: extra settings for ``preprocessing_fn``.

A registry entry names the module, and the embedded demo data with the loader settings that
read it (used when ``finetune.data_dir`` is empty). Dotted paths into this installed package, so
containers and Beam workers import them the same way.
"""
from __future__ import annotations

import dataclasses
import importlib


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    module: str  # models.<task module>
    description: str
    demo_data: str = ""  # key of demo_data.write_demo_data()'s result
    demo_settings: tuple = ()  # (finetune key, value) pairs that read the demo data ("{data}": its path)
    settings: tuple = ()  # (finetune key, value) pairs the task always uses

    @property
    def preprocessing_fn(self) -> str:
        return f"{self.module}.preprocessing_fn"

    @property
    def run_fn(self) -> str:
        return f"{self.module}.run_fn"

    def load(self):
        """The task's module (imports TF and TFMA: call only when building or running)."""
        return importlib.import_module(self.module)


TASKS: dict[str, Task] = {
    "sentiment": Task(
        name="sentiment", module="models.classification",
        description="Sequence classification of one text: [CLS] -> dropout -> Dense -> softmax",
        demo_data="sentiment",
        demo_settings=(("input_format", "csv"), ("train_pattern", "train/*.csv"), ("eval_pattern", "eval/*.csv"),
                       ("text_field", "text"), ("text_b_field", ""), ("label_field", "label"),
                       ("num_classes", 2), ("label_names", []))),
    "pair_classification": Task(
        name="pair_classification", module="models.classification",
        description="Sentence-pair classification (GLUE MRPC/QNLI/RTE style): [CLS] a [SEP] b [SEP] -> softmax",
        demo_data="pairs",
        demo_settings=(("input_format", "glue_tsv"), ("train_pattern", "train.tsv"), ("eval_pattern", "dev.tsv"),
                       ("text_field", "#1 String"), ("text_b_field", "#2 String"), ("label_field", "Quality"),
                       ("num_classes", 2), ("label_names", []))),
    "ner": Task(
        name="ner", module="models.ner",
        description="Named-entity recognition: first word piece -> Dense -> softmax or CRF; entity spans",
        demo_data="ner",
        demo_settings=(("input_format", "conll"), ("train_pattern", "train.txt"), ("eval_pattern", "dev.txt"),
                       ("entity_types", ["PER", "LOC", "ORG"]), ("tag_scheme", "iob1"))),
    "qa": Task(
        name="qa", module="models.qa",
        description="Extractive QA (SQuAD v1.1/v2.0): windows with doc_stride -> start/end logits -> answer span",
        demo_data="qa",
        demo_settings=(("input_format", "squad"), ("train_pattern", "train.json"), ("eval_pattern", "dev.json"))),
    "similarity": Task(
        name="similarity", module="models.similarity",
        description="Sentence similarity (STS-B): shared encoder, mean/[CLS] pooling, cosine regression",
        demo_data="sts",
        demo_settings=(("input_format", "glue_tsv"), ("train_pattern", "train.tsv"), ("eval_pattern", "dev.tsv"),
                       ("text_field", "sentence1"), ("text_b_field", "sentence2"), ("label_field", "score"))),
    "nli": Task(
        name="nli", module="models.similarity",
        description="Sentence-pair classification with a bi-encoder (NLI): [u, v, |u-v|] -> Dense -> softmax",
        demo_data="nli",
        demo_settings=(("input_format", "glue_tsv"), ("train_pattern", "train.tsv"), ("eval_pattern", "dev.tsv"),
                       ("text_field", "sentence1"), ("text_b_field", "sentence2"), ("label_field", "gold_label"),
                       ("num_classes", 3), ("label_names", ["entailment", "neutral", "contradiction"])),
        settings=(("similarity_objective", "classification"),)),
    "retrieval": Task(
        name="retrieval", module="models.retrieval",
        description="Dense retrieval: dual encoder, in-batch + hard negatives contrastive loss; corpus -> vector store",
        demo_data="retrieval",
        demo_settings=(("input_format", "beir"), ("train_pattern", "qrels/train.tsv"),
                       ("eval_pattern", "qrels/dev.tsv"), ("index_corpus", "{data}/corpus.jsonl"),
                       ("index_corpus_format", "beir"), ("train_steps", 600), ("learning_rate", 1e-3),
                       ("accuracy_threshold", 0.1))),
    "rerank": Task(
        name="rerank", module="models.rerank",
        description="Re-ranking: cross-encoder [CLS] query [SEP] passage [SEP] -> score; pointwise or listwise loss",
        demo_data="retrieval",
        demo_settings=(("input_format", "beir"), ("train_pattern", "qrels/train.tsv"),
                       ("eval_pattern", "qrels/dev.tsv"), ("num_negatives", 7), ("negative_pool", 0),
                       ("train_steps", 600), ("learning_rate", 1e-3), ("accuracy_threshold", 0.45))),
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"Unknown task {name!r}; known tasks: {', '.join(TASKS)}.") from None
