"""TFMA metric for extractive QA: SQuAD exact match and F1 (``tfx_bert.squad``: the official
answer normalisation; 0-100 as the official scripts print them)."""
from __future__ import annotations

from typing import Iterable

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

from tfx_bert import squad

SQUAD_F1 = "squad_f1"
CONTEXT, ANSWER_TEXTS = "context", "answer_texts"


class SquadMetrics(metric_types.Metric):
    """``squad_f1`` and ``squad_exact_match``. Predictions are each question's answer span
    ([start, end) characters of the context, -1: no answer); the gold answers are the
    ``answer_texts`` feature (none: unanswerable, SQuAD 2.0)."""

    def __init__(self, name: str = SQUAD_F1):
        super().__init__(_computations, name=name)


metric_types.register_metric(SquadMetrics)


def _computations(name=SQUAD_F1, eval_config=None, model_names=None, output_names=None, sub_keys=None,
                  aggregation_type=None, class_weights=None, example_weighted=False):
    computations = []
    for model_name in model_names or [""]:
        for output_name in output_names or [""]:
            keys = {"f1": metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name),
                    "exact_match": metric_types.MetricKey(name="squad_exact_match", model_name=model_name,
                                                          output_name=output_name)}
            computations.append(metric_types.MetricComputation(
                keys=list(keys.values()),
                preprocessors=[metric_types.FeaturePreprocessor(feature_keys=[CONTEXT, ANSWER_TEXTS])],
                combiner=_SquadCombiner(keys, eval_config, model_name, output_name)))
    return computations


def _strings(value) -> list[str]:
    values = np.asarray(value if value is not None else [], dtype=object).reshape(-1)
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


class _SquadCombiner(beam.CombineFn):
    def __init__(self, keys, eval_config, model_name, output_name):
        self._keys, self._eval_config = keys, eval_config
        self._model_name, self._output_name = model_name, output_name

    def create_accumulator(self):
        return np.zeros(3)  # exact match sum, F1 sum, questions

    def add_input(self, accumulator, element):
        [context] = _strings(element.features[CONTEXT])
        gold = _strings(element.features.get(ANSWER_TEXTS) if ANSWER_TEXTS in element.features else None)
        for _, prediction, _ in metric_util.to_label_prediction_example_weight(
                element, eval_config=self._eval_config, model_name=self._model_name,
                output_name=self._output_name, flatten=False, squeeze=False, allow_none=True):
            start, end = (int(v) for v in np.asarray(prediction).reshape(-1)[:2])
            answer = context[start:end] if 0 <= start < end else ""
            exact, f1 = squad.score(answer, gold)
            accumulator += (exact, f1, 1)
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[np.ndarray]):
        return sum(accumulators, np.zeros(3))

    def extract_output(self, accumulator):
        total = max(1.0, accumulator[2])
        return {self._keys["exact_match"]: 100.0 * accumulator[0] / total,
                self._keys["f1"]: 100.0 * accumulator[1] / total}
