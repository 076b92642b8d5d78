"""tfx_bert.retrieval_metrics against pytrec_eval (trec_eval's own code): graded relevance,
ties, MRR's cut-off and queries with no results."""
import random

import pytest

from tfx_bert import retrieval_metrics


def test_metrics_match_pytrec_eval_with_graded_relevance_and_ties():
    import pytrec_eval

    rng = random.Random(4)
    docs = [f"d{i}" for i in range(60)]
    qrels, run = {}, {}
    for q in range(40):
        judged = rng.sample(docs, rng.randint(1, 8))
        qrels[f"q{q}"] = {d: rng.choice([0, 1, 1, 2, 3]) for d in judged}
        # Scores rounded to one decimal: many ties, broken by doc id as trec_eval does.
        run[f"q{q}"] = {d: round(rng.random(), 1) for d in rng.sample(docs, 30)}
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.1,10,100", "recip_rank"})
    reference = evaluator.evaluate(run)
    ours_any = False
    for query, scores in reference.items():
        if not any(r > 0 for r in qrels[query].values()):
            continue
        ranking = retrieval_metrics.ranked(run[query])
        assert retrieval_metrics.ndcg_at(ranking, qrels[query], 10) == pytest.approx(scores["ndcg_cut_10"], abs=1e-9)
        for k in (1, 10, 100):
            assert retrieval_metrics.recall_at(ranking, qrels[query], k) == pytest.approx(scores[f"recall_{k}"], abs=1e-9)
        # trec_eval's recip_rank has no cut; with the cut at the whole ranking they agree.
        assert retrieval_metrics.reciprocal_rank_at(ranking, qrels[query], len(ranking)) == pytest.approx(
            scores["recip_rank"], abs=1e-9)
        ours_any = True
    assert ours_any
    summary = retrieval_metrics.evaluate(run, qrels)
    assert 0 < summary["ndcg@10"] < 1 and summary["recall@100"] >= summary["recall@10"] >= summary["recall@1"]


def test_mrr_cut_and_missing_queries():
    qrels = {"a": {"x": 1}, "b": {"y": 1}, "c": {"z": 0}}
    run = {"a": {f"n{i}": 1.0 - i / 100 for i in range(12)} | {"x": 0.5}}  # x ranks 13th
    result = retrieval_metrics.evaluate(run, qrels, recall_ks=(100,))
    assert result["mrr@10"] == 0.0 and result["recall@100"] == pytest.approx(0.5)  # "b" missing: 0; "c" unjudged
