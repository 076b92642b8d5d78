"""Retrieval groundwork: ranking metrics against pytrec_eval (trec_eval's own code), and the
BEIR / MS MARCO readers with bad records counted."""
import json
import random

import pytest

from tfx_bert import beir, retrieval_metrics


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


def test_beir_reader_counts_bad_records(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"_id": "d1", "title": "Paris", "text": "is the capital of France."},
        {"_id": "d1", "title": "", "text": "a duplicate id"},
        {"_id": "d2", "title": "", "text": ""},
        {"_id": "d3", "text": "Berlin is in Germany."}]) + "\nnot json\n")
    (tmp_path / "queries.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"_id": "q1", "text": "capital of france"}, {"_id": "q2", "text": "  "}, {"_id": "q3", "text": "germany"}]))
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq3\td3\t2\nq9\td1\t1\nq3\td7\t1\nq1\td1\n")
    data = beir.read_beir(str(tmp_path))
    assert data.corpus == {"d1": "Paris is the capital of France.", "d3": "Berlin is in Germany."}
    assert data.queries == {"q1": "capital of france", "q3": "germany"}
    assert data.qrels == {"q1": {"d1": 1}, "q3": {"d3": 2}}
    c = data.counters
    assert (c["skipped_duplicate_doc_id"], c["skipped_empty_doc"], c["skipped_invalid_json"], c["skipped_empty_query"],
            c["skipped_unknown_query_id"], c["skipped_unknown_doc_id"], c["skipped_malformed_line"]) == (1, 1, 1, 1, 1, 1, 1)
    with pytest.raises(ValueError, match=r"corpus.jsonl:2: duplicate doc id: doc id 'd1' seen before"):
        beir.read_beir(str(tmp_path), strict=True)


def test_msmarco_reader(tmp_path):
    (tmp_path / "collection.tsv").write_text("0\tThe first passage.\n1\tThe second passage.\nbroken line\n")
    (tmp_path / "queries.tsv").write_text("10\twhat is first\n11\twhat is second\n")
    (tmp_path / "qrels.tsv").write_text("10\t0\t0\t1\n11 0 1 1\n12\t0\t1\t1\n")
    data = beir.read_msmarco(str(tmp_path / "collection.tsv"), str(tmp_path / "queries.tsv"), str(tmp_path / "qrels.tsv"))
    assert data.qrels == {"10": {"0": 1}, "11": {"1": 1}}
    assert data.counters["skipped_malformed_line"] == 1 and data.counters["skipped_unknown_query_id"] == 1
