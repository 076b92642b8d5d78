"""models.ner_metrics: TFMA's entity F1 combiner against the seqeval-verified tagging module."""
import random

import numpy as np
import pytest

from tfx_bert import tagging
from tfx_bert_app.models import ner_metrics

TYPES = ["PER", "LOC"]


def test_tfma_entity_metric_matches_the_tagging_module():
    from tensorflow_model_analysis.metrics import metric_types

    rng = random.Random(5)
    names = tagging.tag_names(TYPES)
    true = [[rng.randrange(len(names)) for _ in range(rng.randint(1, 8))] for _ in range(200)]
    predicted = [[t if rng.random() < 0.7 else rng.randrange(len(names)) for t in row] + [-1] * 3 for row in true]
    (computation,) = ner_metrics.EntityF1(entity_types=TYPES).computations()
    combiner = computation.combiner
    accumulator = combiner.create_accumulator()
    for label, prediction in zip(true, predicted):
        element = metric_types.StandardMetricInputs(label=np.array(label), prediction=np.array(prediction))
        accumulator = combiner.add_input(accumulator, element)
    result = {k.name: v for k, v in combiner.extract_output(combiner.merge_accumulators([accumulator])).items()}
    expected = tagging.entity_scores([[names[t] for t in r] for r in true],
                                     [[names[t] for t in r if t >= 0] for r in predicted])
    assert result["entity_f1"] == pytest.approx(expected["f1"])
    assert result["entity_precision"] == pytest.approx(expected["precision"])
    assert result["entity_recall"] == pytest.approx(expected["recall"])
    for entity_type in TYPES:
        assert result[f"entity_f1/{entity_type}"] == pytest.approx(expected["per_type"][entity_type]["f1"])
