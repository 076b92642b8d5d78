"""TFMA metric for re-ranking: MRR@10 and nDCG@10 of each query's candidate list as the model
orders it (``tfx_bert.retrieval_metrics``' TREC definitions).

Each example is one query with its candidates, the judged-relevant passage first (relevance:
the label) and ``num_negatives`` non-relevant ones; the prediction is one score per candidate.
Ties are broken against the relevant passage (it ranks after every candidate scoring the same),
so a model that scores everything alike gets no credit.
"""
from __future__ import annotations

from typing import Iterable

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

from tfx_bert import retrieval_metrics

MRR = "mrr@10"
NDCG = "ndcg@10"


def candidate_list_metrics(scores, relevance: int, k: int = 10) -> tuple[float, float]:
    """(MRR@k, nDCG@k) of one candidate list whose first candidate is the relevant one."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    run = {f"{i:06d}": float(s) for i, s in enumerate(scores)}  # candidate 0 has the smallest id: loses ties
    ranking = retrieval_metrics.ranked(run)
    judged = {"000000": max(1, int(relevance))}
    return (retrieval_metrics.reciprocal_rank_at(ranking, judged, k), retrieval_metrics.ndcg_at(ranking, judged, k))


class RankingMetrics(metric_types.Metric):
    """``mrr@10`` and ``ndcg@10`` averaged over the queries (examples)."""

    def __init__(self, name: str = MRR):
        super().__init__(_computations, name=name)


metric_types.register_metric(RankingMetrics)


def _computations(name=MRR, eval_config=None, model_names=None, output_names=None, sub_keys=None,
                  aggregation_type=None, class_weights=None, example_weighted=False):
    computations = []
    for model_name in model_names or [""]:
        for output_name in output_names or [""]:
            keys = {"mrr": metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name),
                    "ndcg": metric_types.MetricKey(name=NDCG, model_name=model_name, output_name=output_name)}
            computations.append(metric_types.MetricComputation(
                keys=list(keys.values()), preprocessors=None,
                combiner=_RankingCombiner(keys, eval_config, model_name, output_name)))
    return computations


class _RankingCombiner(beam.CombineFn):
    def __init__(self, keys, eval_config, model_name, output_name):
        self._keys, self._eval_config = keys, eval_config
        self._model_name, self._output_name = model_name, output_name

    def create_accumulator(self):
        return np.zeros(3)  # MRR sum, nDCG sum, queries

    def add_input(self, accumulator, element):
        for label, prediction, _ in metric_util.to_label_prediction_example_weight(
                element, eval_config=self._eval_config, model_name=self._model_name,
                output_name=self._output_name, flatten=False, squeeze=False, allow_none=True):
            relevance = int(np.asarray(label).reshape(-1)[0]) if label is not None else 1
            mrr, ndcg = candidate_list_metrics(prediction, relevance)
            accumulator += (mrr, ndcg, 1)
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[np.ndarray]):
        return sum(accumulators, np.zeros(3))

    def extract_output(self, accumulator):
        total = max(1.0, accumulator[2])
        return {self._keys["mrr"]: accumulator[0] / total, self._keys["ndcg"]: accumulator[1] / total}
