"""Entity tags: scheme conversion, spans and entity metrics, checked against seqeval."""
import random

import pytest
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.metrics.sequence_labeling import get_entities

from tfx_bert import tagging

TYPES = ["PER", "LOC", "ORG"]


def _random_sequences(rng, n, allow_invalid=True):
    sequences = []
    for _ in range(n):
        tags = []
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            if r < 0.4:
                tags.append("O")
            else:
                prefix = rng.choice("BI") if allow_invalid else ("I" if tags and tags[-1] != "O" and rng.random() < 0.5 else "B")
                entity_type = rng.choice(TYPES) if allow_invalid or prefix == "B" else tags[-1].split("-")[1]
                tags.append(f"{prefix}-{entity_type}")
        sequences.append(tags)
    return sequences


def test_spans_match_seqeval_on_random_sequences_including_invalid_ones():
    rng = random.Random(0)
    for tags in _random_sequences(rng, 2000):
        assert sorted(tagging.entities(tags)) == sorted(get_entities(tags)), tags


def test_metrics_match_seqeval_overall_and_per_type():
    rng = random.Random(1)
    true = _random_sequences(rng, 400, allow_invalid=False)
    predicted = [[t if rng.random() < 0.8 else rng.choice(["O", "B-PER", "I-PER", "B-LOC", "I-ORG"]) for t in s]
                 for s in true]
    ours = tagging.entity_scores(true, predicted)
    assert ours["precision"] == pytest.approx(precision_score(true, predicted))
    assert ours["recall"] == pytest.approx(recall_score(true, predicted))
    assert ours["f1"] == pytest.approx(f1_score(true, predicted))
    report = classification_report(true, predicted, output_dict=True)
    for entity_type in TYPES:
        for key, their_key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score"), ("support", "support")):
            assert ours["per_type"][entity_type][key] == pytest.approx(report[entity_type][their_key]), (entity_type, key)


def test_scheme_conversion_to_iob2():
    assert tagging.to_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"], "iob1") == \
        ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "B-ORG"]
    assert tagging.to_iob2(["S-PER", "B-LOC", "I-LOC", "E-LOC", "O"], "bioes") == \
        ["B-PER", "B-LOC", "I-LOC", "I-LOC", "O"]
    assert tagging.to_iob2(["B-PER", "I-PER"], "iob2") == ["B-PER", "I-PER"]
    # The entities are the same before and after conversion (CoNLL-2003's IOB1 files).
    iob1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC"]
    assert get_entities(iob1) == tagging.entities(tagging.to_iob2(iob1, "iob1"))
    with pytest.raises(ValueError, match="not valid BIOES"):
        tagging.to_iob2(["X-PER"], "bioes")
    with pytest.raises(ValueError, match="not valid IOB2"):
        tagging.to_iob2(["S-PER"], "iob2")


def test_tag_names():
    assert tagging.tag_names(["PER", "LOC"]) == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
