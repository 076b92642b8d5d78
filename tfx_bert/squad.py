"""SQuAD v1.1 / v2.0: reading the JSON files and the official answer metrics.

Metrics follow the official evaluation scripts: answers are normalised (lower case, punctuation
removed, the articles a/an/the removed, whitespace collapsed); exact match is equality after
normalisation; F1 is over the normalised tokens (a bag, counting repeats); each score is the
maximum over the gold answers. SQuAD 2.0: a question without a gold answer scores 1 when the
prediction is empty and 0 otherwise (both metrics).
"""
from __future__ import annotations

import collections
import dataclasses
import json
import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    predicted_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted_tokens or not gold_tokens:  # SQuAD 2.0: both empty is a match
        return float(predicted_tokens == gold_tokens)
    common = collections.Counter(predicted_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def score(prediction: str, gold_answers: list[str]) -> tuple[float, float]:
    """(exact match, F1) of one prediction: the best over the gold answers; no gold answers
    (SQuAD 2.0 unanswerable) means the empty answer."""
    golds = [g for g in gold_answers if normalize_answer(g)] or [""]
    return max(exact_match(prediction, g) for g in golds), max(f1(prediction, g) for g in golds)


def evaluate(predictions: dict[str, str], gold: dict[str, list[str]]) -> dict:
    """Mean exact match and F1 (0-100, like the official scripts) over the gold questions; a
    question without a prediction scores 0 and counts, as in the v1.1 script (the v2.0 script
    leaves it out of the total and prints a warning)."""
    scores = [score(predictions.get(qid, None) or "", answers) if qid in predictions else (0.0, 0.0)
              for qid, answers in gold.items()]
    total = max(1, len(scores))
    return {"exact_match": 100.0 * sum(s[0] for s in scores) / total,
            "f1": 100.0 * sum(s[1] for s in scores) / total, "total": len(scores)}


@dataclasses.dataclass(frozen=True)
class Question:
    id: str
    question: str
    context: str
    answers: tuple  # ((text, start character), ...); empty: unanswerable (SQuAD 2.0)


def read_squad(path: str, counters: collections.Counter | None = None, strict: bool = False) -> list[Question]:
    """Questions of a SQuAD v1.1 / v2.0 JSON file (local or any ``tf.io.gfile`` path); see
    ``parse_squad``."""
    try:
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "rb") as f:
            raw = f.read()
    except ImportError:  # pragma: no cover - TF is always installed with the pipeline
        with open(path, "rb") as f:
            raw = f.read()
    return parse_squad(raw, path, counters, strict)


def parse_squad(raw: bytes, path: str, counters: collections.Counter | None = None,
                strict: bool = False) -> list[Question]:
    """Questions of the bytes of a SQuAD v1.1 / v2.0 JSON file (``path`` names it in errors).

    An answer whose ``answer_start`` does not point at its text in the context is dropped and
    counted (``bad_answer_start``); a question left without answers that is not marked
    ``is_impossible`` is skipped and counted (``no_valid_answer``); an empty question or
    context is skipped (``empty_text``). ``strict`` raises instead, naming the question id.
    """
    counters = counters if counters is not None else collections.Counter()
    try:
        data = json.loads(raw.decode("utf-8"))["data"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a SQuAD JSON file ({e})") from None

    def bad(kind: str, qid: str, detail: str) -> None:
        counters[f"skipped_{kind}"] += 1
        if strict:
            raise ValueError(f"{path}: question {qid}: {detail} (strict mode)")

    questions = []
    for article in data:
        for paragraph in article.get("paragraphs", []):
            context = paragraph.get("context", "")
            for qa in paragraph.get("qas", []):
                qid, text = str(qa.get("id", "")), qa.get("question", "").strip()
                if not text or not context.strip():
                    bad("empty_text", qid, "empty question or context")
                    continue
                answers = []
                for answer in qa.get("answers", []):
                    start, answer_text = answer.get("answer_start", -1), answer.get("text", "")
                    if (not isinstance(start, int) or not answer_text.strip()
                            or context[start:start + len(answer_text)] != answer_text):
                        counters["bad_answer_start"] += 1
                        if strict:
                            raise ValueError(f"{path}: question {qid}: answer {answer_text!r} is not at "
                                             f"answer_start {start} of the context (strict mode)")
                        continue
                    answers.append((answer_text, start))
                if not answers and not qa.get("is_impossible", False):
                    bad("no_valid_answer", qid, "no answer matches the context")
                    continue
                counters["questions"] += 1
                questions.append(Question(qid, text, context, tuple(answers)))
    return questions
