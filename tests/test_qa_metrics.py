"""models.qa_metrics: TFMA's SQuAD exact match and F1 against the official definitions."""
import random

import numpy as np
import pytest

from tests.helpers import qa_contexts
from tfx_bert import squad
from tfx_bert_app.models import qa_metrics


def test_tfma_squad_metric_matches_the_official_definitions():
    from tensorflow_model_analysis.metrics import metric_types

    rng = random.Random(8)
    pairs = qa_contexts(30, seed=6)
    (computation,) = qa_metrics.SquadMetrics().computations()
    combiner = computation.combiner
    accumulator = combiner.create_accumulator()
    predictions, gold = {}, {}
    for n, (context, question) in enumerate(pairs):
        answers = [a["text"] for a in question["answers"]]
        if answers and rng.random() < 0.5:
            start = question["answers"][0]["answer_start"] + rng.choice([0, 0, 2, -4])
            end = start + len(answers[0]) + rng.choice([0, 5])
        else:
            start, end = (rng.randrange(len(context) - 5), 0) if rng.random() < 0.5 else (-1, -1)
            end = start + 5 if start >= 0 else -1
        predictions[str(n)] = context[start:end] if start >= 0 else ""
        gold[str(n)] = answers
        features = {"context": np.array([context.encode()], dtype=object),
                    "answer_texts": np.array([a.encode() for a in answers], dtype=object)}
        element = metric_types.StandardMetricInputs(prediction=np.array([start, end]), features=features)
        accumulator = combiner.add_input(accumulator, element)
    result = {k.name: v for k, v in combiner.extract_output(combiner.merge_accumulators([accumulator])).items()}
    expected = squad.evaluate(predictions, gold)
    assert result["squad_f1"] == pytest.approx(expected["f1"])
    assert result["squad_exact_match"] == pytest.approx(expected["exact_match"])
    assert 0 < expected["exact_match"] < 100
