"""models.rerank_metrics: MRR / nDCG over candidate lists (ties count against the relevant
passage) and the TFMA combiner's average over queries."""
import numpy as np
import pytest

from tfx_bert_app.models import rerank_metrics


def test_candidate_list_metrics_break_ties_against_the_relevant_passage():
    assert rerank_metrics.candidate_list_metrics([0.9, 0.1, 0.2], 1) == (1.0, 1.0)
    mrr, ndcg = rerank_metrics.candidate_list_metrics([0.5, 0.7, 0.1, 0.6], 1)
    assert mrr == pytest.approx(1 / 3) and ndcg == pytest.approx(1 / np.log2(4))
    assert rerank_metrics.candidate_list_metrics([0.3, 0.3, 0.3], 1)[0] == pytest.approx(1 / 3)  # all tied: last
    assert rerank_metrics.candidate_list_metrics([0.0] + [1.0] * 10, 2) == (0.0, 0.0)  # rank 11: outside the cut


def test_ranking_metric_combiner_averages_over_queries():
    from tensorflow_model_analysis.metrics import metric_types

    (computation,) = rerank_metrics.RankingMetrics().computations()
    combiner = computation.combiner
    accumulator = combiner.create_accumulator()
    for scores in ([0.9, 0.1, 0.2], [0.1, 0.5, 0.2]):
        accumulator = combiner.add_input(accumulator, metric_types.StandardMetricInputs(
            label=np.array([1]), prediction=np.array(scores)))
    result = {k.name: v for k, v in combiner.extract_output(accumulator).items()}
    assert result["mrr@10"] == pytest.approx((1 + 1 / 3) / 2)
    assert result["ndcg@10"] == pytest.approx((1 + 1 / np.log2(4)) / 2)
