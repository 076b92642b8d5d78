"""The task registry: one typed entry per fine-tuning task, the only place tasks are listed.

A task is four small pieces, each in its own layer, tied together by its ``Task`` entry:

* **model code** (``models/<module>.py``): ``preprocessing_fn`` (Transform), ``run_fn`` (Trainer:
  head, loss, metrics, serving export) and ``eval_config(settings)`` (the TFMA EvalConfig: the
  community's metrics and the blessing threshold);
* **pipeline wiring** (``pipeline/task_wiring.py``): the ExampleGen that reads ``examples`` data
  and the ``evaluator`` (TFMA's Evaluator, or the retrieval evaluator);
* **configuration** (``tfx_bert/config.py``): its settings, tagged with ``for_tasks``; the
  entry's ``settings`` (always) and ``demo`` (embedded data and the loader settings that read it)
  are applied while the configuration loads, below anything the user sets;
* **serving** (``signature``, from ``tfx_bert/signatures.py``, which the export uses too) and the
  client that turns a response into task output (``tfx_bert/serving/task_clients.py``, by
  ``client``).

Adding a task: its model module, its demo data writer, a client if no existing one fits, and
one entry below. Dotted paths into the installed package, so containers and Beam workers import
them the same way; nothing here imports TensorFlow.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Literal

from tfx_bert import signatures

ExampleSource = Literal["text", "conll", "squad", "ranking"]
LabelKind = Literal["class", "multi", "similarity", "none"]
EvaluatorKind = Literal["tfma", "retrieval"]
ClientKind = Literal["classify", "multilabel", "entities", "answers", "similarity", "rerank"]


@dataclasses.dataclass(frozen=True)
class DemoData:
    """The embedded data a task runs on when no ``finetune.data_dir`` is set."""

    data: str  # a key of tfx_bert.demo_data.demo_paths()
    settings: tuple = ()  # (finetune key, value) pairs that read it ("{data}": its path)


@dataclasses.dataclass(frozen=True)
class Task:
    """What a fine-tuning task plugs into the pipeline, the Trainer, serving and the client."""

    name: str
    description: str
    module: str  # models.<module>: preprocessing_fn, run_fn, eval_config(settings)
    examples: ExampleSource  # the data the ExampleGen reads (pipeline/task_wiring.py)
    signature: signatures.Signature  # serving_default's inputs and outputs
    client: ClientKind  # how tfx_bert.serving.task_clients reads a response
    demo: DemoData
    labels: LabelKind = "class"  # text data: class ids, label sets, or (similarity) scores or classes
    evaluator: EvaluatorKind = "tfma"
    settings: tuple = ()  # (finetune key, value) pairs the task always uses (the user may still override)
    transform_settings: tuple = ("max_seq_length",)  # the finetune settings preprocessing_fn reads
    distillable: bool = False  # the module has distill_run_fn: a student trained on the teacher's outputs

    @property
    def preprocessing_fn(self) -> str:
        return f"{self.module}.preprocessing_fn"

    @property
    def run_fn(self) -> str:
        return f"{self.module}.run_fn"

    @property
    def distill_run_fn(self) -> str:
        """The student Trainer's entry point (``distillable`` tasks)."""
        return f"{self.module}.distill_run_fn"

    def load(self):
        """The task's model module (imports TF and TFMA: call only when building or running)."""
        return importlib.import_module(self.module)

    def config_defaults(self, demo_path: str | None) -> dict:
        """The task's layer of ``finetune`` settings: names, fixed settings and, with
        ``demo_path`` (no data configured), the embedded data and its loader settings."""
        layer = {"model_name": self.name, "pipeline_name": f"tfx-bert-{self.name}", **dict(self.settings)}
        if demo_path:
            layer["data_dir"] = demo_path
            layer.update({k: v.format(data=demo_path) if isinstance(v, str) else v for k, v in self.demo.settings})
        return layer


_TEXT_CSV = (("input_format", "csv"), ("train_pattern", "train/*.csv"), ("eval_pattern", "eval/*.csv"),
             ("text_field", "text"), ("text_b_field", ""))
_BEIR = (("input_format", "beir"), ("train_pattern", "qrels/train.tsv"), ("eval_pattern", "qrels/dev.tsv"))
_GLUE_PAIRS = (("input_format", "glue_tsv"), ("train_pattern", "train.tsv"), ("eval_pattern", "dev.tsv"),
               ("text_field", "sentence1"), ("text_b_field", "sentence2"))

TASKS: dict[str, Task] = {t.name: t for t in (
    Task("sentiment", "Sequence classification of one text: [CLS] -> dropout -> Dense -> softmax",
         "tfx_bert_app.models.classification", "text", signatures.CLASSIFICATION, "classify",
         DemoData("sentiment", _TEXT_CSV + (("label_field", "label"), ("num_classes", 2), ("label_names", []))),
         distillable=True),
    Task("pair_classification",
         "Sentence-pair classification (GLUE MRPC/QNLI/RTE style): [CLS] a [SEP] b [SEP] -> softmax",
         "tfx_bert_app.models.classification", "text", signatures.PAIR_CLASSIFICATION, "classify",
         DemoData("pairs", (("input_format", "glue_tsv"), ("train_pattern", "train.tsv"), ("eval_pattern", "dev.tsv"),
                            ("text_field", "#1 String"), ("text_b_field", "#2 String"), ("label_field", "Quality"),
                            ("num_classes", 2), ("label_names", []))),
         distillable=True),
    Task("multilabel", "Multi-label classification: [CLS] -> Dense -> a sigmoid per label, a threshold per label",
         "tfx_bert_app.models.multilabel", "text", signatures.MULTILABEL, "multilabel",
         DemoData("multilabel", _TEXT_CSV + (("label_field", "labels"), ("label_delimiter", "|"),
                                             ("label_names", ["garden", "kitchen", "music", "sea", "space", "sports"]),
                                             ("accuracy_threshold", 0.5))),
         labels="multi", transform_settings=("max_seq_length", "label_names"), distillable=True),
    Task("ner", "Named-entity recognition: first word piece -> Dense -> softmax or CRF; entity spans",
         "tfx_bert_app.models.ner", "conll", signatures.NER, "entities",
         DemoData("ner", (("input_format", "conll"), ("train_pattern", "train.txt"), ("eval_pattern", "dev.txt"),
                          ("entity_types", ["PER", "LOC", "ORG"]), ("tag_scheme", "iob1"))),
         labels="none", distillable=True),
    Task("qa", "Extractive QA (SQuAD v1.1/v2.0): windows with doc_stride -> start/end logits -> answer span",
         "tfx_bert_app.models.qa", "squad", signatures.QA, "answers",
         DemoData("qa", (("input_format", "squad"), ("train_pattern", "train.json"), ("eval_pattern", "dev.json"))),
         labels="none", transform_settings=("max_seq_length", "doc_stride", "max_query_length", "max_windows"),
         distillable=True),
    Task("similarity", "Sentence similarity (STS-B): shared encoder, mean/[CLS] pooling, cosine regression",
         "tfx_bert_app.models.similarity", "text", signatures.SIMILARITY_PAIR, "similarity",
         DemoData("sts", _GLUE_PAIRS + (("label_field", "score"),)), labels="similarity", distillable=True),
    Task("nli", "Sentence-pair classification with a bi-encoder (NLI): [u, v, |u-v|] -> Dense -> softmax",
         "tfx_bert_app.models.similarity", "text", signatures.SIMILARITY_PAIR, "similarity",
         DemoData("nli", _GLUE_PAIRS + (("label_field", "gold_label"), ("num_classes", 3),
                                        ("label_names", ["entailment", "neutral", "contradiction"]))),
         labels="similarity", settings=(("similarity_objective", "classification"),), distillable=True),
    Task("retrieval",
         "Dense retrieval: dual encoder, in-batch + hard negatives contrastive loss; corpus -> vector store",
         "tfx_bert_app.models.retrieval", "ranking", signatures.RETRIEVAL, "rerank",
         DemoData("retrieval", _BEIR + (("index_corpus", "{data}/corpus.jsonl"), ("index_corpus_format", "beir"),
                                        ("train_steps", 600), ("learning_rate", 1e-3), ("accuracy_threshold", 0.1))),
         labels="none", evaluator="retrieval", transform_settings=("max_seq_length", "max_query_length", "num_negatives"),
         distillable=True),
    Task("rerank",
         "Re-ranking: cross-encoder [CLS] query [SEP] passage [SEP] -> score; pointwise or listwise loss",
         "tfx_bert_app.models.rerank", "ranking", signatures.RERANK, "rerank",
         DemoData("retrieval", _BEIR + (("num_negatives", 7), ("negative_pool", 0), ("train_steps", 600),
                                        ("learning_rate", 1e-3), ("accuracy_threshold", 0.45))),
         labels="none", transform_settings=("max_seq_length", "num_negatives"), distillable=True),
)}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"Unknown task {name!r}; known tasks: {', '.join(TASKS)}.") from None
