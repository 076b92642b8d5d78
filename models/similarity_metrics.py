"""TFMA metric for sentence similarity: Pearson and Spearman correlation of the predicted
similarity with the gold score (STS-B's metrics; Spearman with average ranks for ties, as
``scipy.stats.spearmanr``). The combiner keeps every (score, prediction) pair: correlations
are not decomposable, and evaluation sets are small enough (STS-B dev: 1,500 pairs)."""
from __future__ import annotations

from typing import Iterable

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

SPEARMAN, PEARSON = "spearman", "pearson"


class Correlation(metric_types.Metric):
    """``spearman`` and ``pearson`` of the prediction with the label."""

    def __init__(self, name: str = SPEARMAN):
        super().__init__(_computations, name=name)


metric_types.register_metric(Correlation)


def _computations(name=SPEARMAN, eval_config=None, model_names=None, output_names=None, sub_keys=None,
                  aggregation_type=None, class_weights=None, example_weighted=False):
    computations = []
    for model_name in model_names or [""]:
        for output_name in output_names or [""]:
            keys = {"spearman": metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name),
                    "pearson": metric_types.MetricKey(name=PEARSON, model_name=model_name, output_name=output_name)}
            computations.append(metric_types.MetricComputation(
                keys=list(keys.values()), preprocessors=None,
                combiner=_CorrelationCombiner(keys, eval_config, model_name, output_name)))
    return computations


def ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    result = np.empty(len(values))
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        result[order[start:end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return result


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else 0.0


class _CorrelationCombiner(beam.CombineFn):
    def __init__(self, keys, eval_config, model_name, output_name):
        self._keys, self._eval_config = keys, eval_config
        self._model_name, self._output_name = model_name, output_name

    def create_accumulator(self):
        return ([], [])

    def add_input(self, accumulator, element):
        for label, prediction, _ in metric_util.to_label_prediction_example_weight(
                element, eval_config=self._eval_config, model_name=self._model_name,
                output_name=self._output_name, flatten=False, squeeze=False):
            accumulator[0].extend(np.asarray(label, np.float64).reshape(-1).tolist())
            accumulator[1].extend(np.asarray(prediction, np.float64).reshape(-1).tolist())
        return accumulator

    def merge_accumulators(self, accumulators: Iterable):
        labels, predictions = [], []
        for a in accumulators:
            labels.extend(a[0])
            predictions.extend(a[1])
        return (labels, predictions)

    def extract_output(self, accumulator):
        labels, predictions = np.array(accumulator[0]), np.array(accumulator[1])
        if len(labels) < 2:
            return {self._keys["spearman"]: 0.0, self._keys["pearson"]: 0.0}
        return {self._keys["spearman"]: pearson(ranks(labels), ranks(predictions)),
                self._keys["pearson"]: pearson(labels, predictions)}
