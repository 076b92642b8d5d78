"""Named-entity tags: schemes, label sets, spans and the CoNLL / seqeval entity metrics.

Data may come tagged IOB1 (CoNLL-2003's original files), IOB2 or BIOES; it is converted to IOB2
at ingestion, and models predict IOB2. Entities are read from tags the way ``seqeval``'s default
(conlleval-compatible) mode reads them, and scored by exact span-and-type match.
"""
from __future__ import annotations

import collections

SCHEMES = ("iob1", "iob2", "bioes")
OUTSIDE = "O"


def tag_names(entity_types) -> list[str]:
    """IOB2 label set: ``O`` then ``B-T``, ``I-T`` per entity type, in the given order."""
    names = [OUTSIDE]
    for entity_type in entity_types:
        names += [f"B-{entity_type}", f"I-{entity_type}"]
    return names


def _split(tag: str) -> tuple[str, str]:
    if tag == OUTSIDE or "-" not in tag:
        return tag, ""
    prefix, entity_type = tag.split("-", 1)
    return prefix, entity_type


def to_iob2(tags: list[str], scheme: str) -> list[str]:
    """Converts a sentence's tags from ``scheme`` to IOB2; raises ValueError on a tag the
    scheme does not have."""
    if scheme not in SCHEMES:
        raise ValueError(f"tag scheme {scheme!r} is not one of {SCHEMES}")
    allowed = {"iob1": "IB", "iob2": "IB", "bioes": "BIES"}[scheme]
    result, previous = [], OUTSIDE
    for tag in tags:
        prefix, entity_type = _split(tag)
        if tag != OUTSIDE and (prefix not in allowed or not entity_type):
            raise ValueError(f"tag {tag!r} is not valid {scheme.upper()}")
        if tag == OUTSIDE:
            new = OUTSIDE
        elif scheme == "iob1":
            prev_prefix, prev_type = _split(previous)
            starts = prefix == "B" or previous == OUTSIDE or prev_type != entity_type
            new = f"{'B' if starts else 'I'}-{entity_type}"
        elif scheme == "bioes":
            new = f"{'B' if prefix in 'BS' else 'I'}-{entity_type}"
        else:
            new = tag
        result.append(new)
        previous = tag
    return result


def entities(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, first, last) spans in IOB2/IOB1 tags, inclusive, as seqeval's default mode and
    conlleval read them: a span starts at B, at an I after O, or at an I whose type changes."""
    spans, start, current = [], None, None
    for i, tag in enumerate(list(tags) + [OUTSIDE]):
        prefix, entity_type = _split(tag)
        starts = prefix == "B" or (prefix in ("I", "E", "S") and entity_type != current)
        ends = tag == OUTSIDE or starts
        if current is not None and ends:
            spans.append((current, start, i - 1))
            current = None
        if starts:
            start, current = i, entity_type
    return spans


def entity_scores(true_sequences, predicted_sequences) -> dict:
    """Entity-level precision / recall / F1 (exact match), micro over all types and per type.

    Returns {"precision", "recall", "f1", "per_type": {type: {precision, recall, f1, support}}}.
    """
    true_counts, predicted_counts, correct = collections.Counter(), collections.Counter(), collections.Counter()
    for true_tags, predicted_tags in zip(true_sequences, predicted_sequences):
        true_spans, predicted_spans = set(entities(true_tags)), set(entities(predicted_tags))
        for span in true_spans:
            true_counts[span[0]] += 1
        for span in predicted_spans:
            predicted_counts[span[0]] += 1
        for span in true_spans & predicted_spans:
            correct[span[0]] += 1

    def prf(c, p, t):
        precision = c / p if p else 0.0
        recall = c / t if t else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": precision, "recall": recall, "f1": f1}

    types = sorted(set(true_counts) | set(predicted_counts))
    result = prf(sum(correct.values()), sum(predicted_counts.values()), sum(true_counts.values()))
    result["per_type"] = {t: dict(prf(correct[t], predicted_counts[t], true_counts[t]), support=true_counts[t])
                          for t in types}
    return result
