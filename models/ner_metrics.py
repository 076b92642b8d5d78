"""TFMA metric for NER: entity-level precision / recall / F1 with exact span match, overall and
per entity type (``tfx_bert.tagging``, the seqeval / conlleval definition)."""
from __future__ import annotations

import collections
from typing import Iterable

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

from tfx_bert import tagging

ENTITY_F1 = "entity_f1"


class EntityF1(metric_types.Metric):
    """``entity_precision``, ``entity_recall``, ``entity_f1`` and ``entity_f1/<TYPE>``.

    Labels are each example's IOB2 tag ids per word (the ``tags`` feature); predictions are the
    model's tag ids per word (-1 past the last word).
    """

    def __init__(self, name: str = ENTITY_F1, entity_types=()):
        super().__init__(_computations, name=name, entity_types=tuple(entity_types))


metric_types.register_metric(EntityF1)


def _keys(name, model_name, output_name, entity_types):
    def key(metric):
        return metric_types.MetricKey(name=metric, model_name=model_name, output_name=output_name)
    keys = {"precision": key("entity_precision"), "recall": key("entity_recall"), "f1": key(name)}
    keys.update({f"f1/{t}": key(f"{name}/{t}") for t in entity_types})
    return keys


def _computations(name=ENTITY_F1, eval_config=None, model_names=None, output_names=None, sub_keys=None,
                  aggregation_type=None, class_weights=None, example_weighted=False, entity_types=()):
    computations = []
    for model_name in model_names or [""]:
        for output_name in output_names or [""]:
            keys = _keys(name, model_name, output_name, entity_types)
            computations.append(metric_types.MetricComputation(
                keys=list(keys.values()), preprocessors=None,
                combiner=_EntityCombiner(keys, eval_config, model_name, output_name, entity_types)))
    return computations


class _EntityCombiner(beam.CombineFn):
    def __init__(self, keys, eval_config, model_name, output_name, entity_types):
        self._keys, self._eval_config = keys, eval_config
        self._model_name, self._output_name = model_name, output_name
        self._tag_names = tagging.tag_names(entity_types)
        self._types = list(entity_types)

    def create_accumulator(self):
        return collections.Counter()

    def _tags(self, ids) -> list[str]:
        return [self._tag_names[i] if 0 <= i < len(self._tag_names) else tagging.OUTSIDE for i in ids]

    def add_input(self, accumulator, element):
        # Selects this model's (candidate / baseline) label and prediction, whole sequences.
        for label, prediction, _ in metric_util.to_label_prediction_example_weight(
                element, eval_config=self._eval_config, model_name=self._model_name,
                output_name=self._output_name, flatten=False, squeeze=False):
            self._add(accumulator, label, prediction)
        return accumulator

    def _add(self, accumulator, label, prediction):
        true_ids = np.asarray(label).reshape(-1).astype(int).tolist()
        predicted_ids = np.asarray(prediction).reshape(-1).astype(int).tolist()[:len(true_ids)]
        predicted_ids += [0] * (len(true_ids) - len(predicted_ids))  # words cut off: tagged O
        true_spans = set(tagging.entities(self._tags(true_ids)))
        predicted_spans = set(tagging.entities(self._tags(predicted_ids)))
        for span in true_spans:
            accumulator[("true", span[0])] += 1
        for span in predicted_spans:
            accumulator[("predicted", span[0])] += 1
        for span in true_spans & predicted_spans:
            accumulator[("correct", span[0])] += 1

    def merge_accumulators(self, accumulators: Iterable[collections.Counter]):
        result = collections.Counter()
        for accumulator in accumulators:
            result.update(accumulator)
        return result

    def extract_output(self, accumulator):
        def f1(kind_filter):
            c = sum(v for (k, t), v in accumulator.items() if k == "correct" and kind_filter(t))
            p = sum(v for (k, t), v in accumulator.items() if k == "predicted" and kind_filter(t))
            t_ = sum(v for (k, t), v in accumulator.items() if k == "true" and kind_filter(t))
            precision = c / p if p else 0.0
            recall = c / t_ if t_ else 0.0
            return precision, recall, (2 * precision * recall / (precision + recall) if precision + recall else 0.0)

        precision, recall, overall = f1(lambda t: True)
        result = {self._keys["precision"]: precision, self._keys["recall"]: recall, self._keys["f1"]: overall}
        for entity_type in self._types:
            result[self._keys[f"f1/{entity_type}"]] = f1(lambda t, e=entity_type: t == e)[2]
        return result
