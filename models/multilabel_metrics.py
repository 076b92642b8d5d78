"""TFMA metric for multi-label classification: what the multi-label community reports.

Micro and macro F1, micro precision / recall, per-label precision / recall / F1, subset
accuracy (exact match of the whole label set) and Hamming loss, the definitions of
scikit-learn's ``f1_score(average="micro" | "macro", zero_division=0)``, ``accuracy_score`` and
``hamming_loss`` on multi-hot arrays. Labels are each example's multi-hot ``label`` feature;
predictions are the model's 0/1 decisions per label (``predicted``: probability >= the label's
threshold).
"""
from __future__ import annotations

from typing import Iterable

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

MICRO_F1 = "micro_f1"


class MultiLabelMetrics(metric_types.Metric):
    """``micro_f1`` (the gate), ``macro_f1``, ``micro_precision``, ``micro_recall``,
    ``subset_accuracy``, ``hamming_loss`` and ``precision/<label>``, ``recall/<label>``,
    ``f1/<label>``."""

    def __init__(self, name: str = MICRO_F1, label_names=()):
        super().__init__(_computations, name=name, label_names=tuple(label_names))


metric_types.register_metric(MultiLabelMetrics)


def _computations(name=MICRO_F1, eval_config=None, model_names=None, output_names=None, sub_keys=None,
                  aggregation_type=None, class_weights=None, example_weighted=False, label_names=()):
    computations = []
    for model_name in model_names or [""]:
        for output_name in output_names or [""]:
            def key(metric, model_name=model_name, output_name=output_name):
                return metric_types.MetricKey(name=metric, model_name=model_name, output_name=output_name)
            names = [name, "macro_f1", "micro_precision", "micro_recall", "subset_accuracy", "hamming_loss"]
            names += [f"{m}/{label}" for label in label_names for m in ("precision", "recall", "f1")]
            keys = {n: key(n) for n in names}
            computations.append(metric_types.MetricComputation(
                keys=list(keys.values()), preprocessors=None,
                combiner=_Combiner(keys, name, eval_config, model_name, output_name, label_names)))
    return computations


def scores(counts: dict, label_names) -> dict:
    """{metric name: value} from summed counts: per-label ``tp``, ``fp``, ``fn`` arrays,
    ``exact`` (examples whose whole set matched), ``examples``."""
    tp, fp, fn = (np.asarray(counts[k], np.float64) for k in ("tp", "fp", "fn"))

    def ratio(a, b):
        return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    f1 = ratio(2 * tp, 2 * tp + fp + fn)
    micro_p, micro_r = float(ratio(tp.sum(), tp.sum() + fp.sum())), float(ratio(tp.sum(), tp.sum() + fn.sum()))
    examples = max(counts["examples"], 1)
    result = {"micro_f1": float(ratio(2 * tp.sum(), 2 * tp.sum() + fp.sum() + fn.sum())),
              "macro_f1": float(f1.mean()) if len(f1) else 0.0, "micro_precision": micro_p, "micro_recall": micro_r,
              "subset_accuracy": counts["exact"] / examples,
              "hamming_loss": float((fp.sum() + fn.sum()) / (examples * max(len(tp), 1)))}
    for i, label in enumerate(label_names):
        result.update({f"precision/{label}": float(precision[i]), f"recall/{label}": float(recall[i]),
                       f"f1/{label}": float(f1[i])})
    return result


class _Combiner(beam.CombineFn):
    def __init__(self, keys, name, eval_config, model_name, output_name, label_names):
        self._keys, self._name, self._eval_config = keys, name, eval_config
        self._model_name, self._output_name = model_name, output_name
        self._labels = list(label_names)

    def create_accumulator(self):
        width = len(self._labels)
        return {"tp": np.zeros(width), "fp": np.zeros(width), "fn": np.zeros(width), "exact": 0, "examples": 0}

    def add_input(self, accumulator, element):
        for label, prediction, _ in metric_util.to_label_prediction_example_weight(
                element, eval_config=self._eval_config, model_name=self._model_name,
                output_name=self._output_name, flatten=False, squeeze=False):
            truth = np.asarray(label).reshape(-1)[:len(self._labels)] > 0.5
            predicted = np.asarray(prediction).reshape(-1)[:len(self._labels)] > 0.5
            accumulator["tp"] += truth & predicted
            accumulator["fp"] += ~truth & predicted
            accumulator["fn"] += truth & ~predicted
            accumulator["exact"] += int(np.array_equal(truth, predicted))
            accumulator["examples"] += 1
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[dict]):
        result = self.create_accumulator()
        for accumulator in accumulators:
            for k in result:
                result[k] = result[k] + accumulator[k]
        return result

    def extract_output(self, accumulator):
        values = scores(accumulator, self._labels)
        values[self._name] = values.pop("micro_f1") if self._name != "micro_f1" else values["micro_f1"]
        return {self._keys[n]: v for n, v in values.items()}
