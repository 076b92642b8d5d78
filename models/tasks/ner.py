"""Named-entity recognition over CoNLL data: a tag per word, entity spans out."""
from __future__ import annotations

import dataclasses
from typing import Literal

from tfx_bert import signatures, tagging
from tfx_bert.serving import task_clients
from tfx_bert.task_settings import WindowSettings
from tfx_bert.tasks import DemoData, Task
from tfx_bert_app.models.tasks.classification import class_weight_checks


@dataclasses.dataclass
class NerSettings(WindowSettings):
    entity_types: list = dataclasses.field(default_factory=list)  # e.g. PER, LOC, ORG, MISC
    tag_scheme: Literal["iob1", "iob2", "bioes"] = "iob2"  # iob1: CoNLL-2003's files
    crf: bool = False  # a CRF over the tag logits (Viterbi in-graph) instead of softmax
    # The softmax tagger's loss per word: a weight per IOB2 tag (O, B-<type>, I-<type> for each of
    # entity_types, in that order; empty: all 1), or [balanced]: n / (k n_t) from the train split's
    # word tags, so rare entity tags are not drowned by O.
    class_weights: list = dataclasses.field(default_factory=list)

    def checks(self, finetune) -> list[tuple[bool, str]]:
        tags = len(tagging.tag_names(self.entity_types))
        return [*super().checks(finetune),
                (bool(self.entity_types),
                 "the ner task needs finetune.entity_types (e.g. --set finetune.entity_types=PER,LOC,ORG)"),
                *class_weight_checks(self.class_weights, tags, f"one weight per IOB2 tag ({tags}: O, then B- and "
                                                                      f"I- of each entity type)"),
                (not self.class_weights or not self.crf,
                 "finetune.class_weights weight the softmax tagger's per-word loss; a CRF's likelihood is one per "
                 "sentence (set finetune.crf=false, or drop the weights)")]


class NerTask(Task):
    name = "ner"
    description = "Named-entity recognition: first word piece -> Dense -> softmax or CRF; entity spans"
    module = "tfx_bert_app.models.ner"
    label_settings = ("entity_types",)  # what the outputs mean (a warm start keeps them)
    signature = signatures.NER
    model_kind = "tagger"  # names the teacher in a student's progress line
    Settings = NerSettings
    data_defaults = (("input_format", "conll"), ("train_pattern", "train.txt"), ("eval_pattern", "dev.txt"))
    demo = DemoData("ner", "write_ner_dataset", "dev.txt", (("entity_types", ["PER", "LOC", "ORG"]),
                                                          ("tag_scheme", "iob1")))
    feeds_one_sequence = True
    reads_transfer_text = True
    transform_settings = ("max_seq_length", "max_windows", "doc_stride")

    def example_gen_args(self, finetune, negative_model: str = "") -> dict:
        types = list(finetune.entity_types)
        return dict(input_format="conll", label_names=types, num_classes=max(1, len(types)),
                    tag_scheme=finetune.tag_scheme)

    def decode(self, inputs: dict, outputs: dict) -> list[dict]:
        return task_clients.decode_entities(inputs, outputs)
