"""Ranking metrics with the TREC / BEIR definitions (what ``trec_eval`` and ``pytrec_eval``
compute, and what BEIR reports).

A run maps each query id to {doc id: score}; qrels map each query id to {doc id: relevance}
(graded, integers). Documents are ranked by score, highest first; ties are broken as
``trec_eval`` does, by doc id in descending string order. A document is relevant when its
relevance is > 0. Queries without relevant documents are left out (as ``trec_eval``); a query
the run misses scores 0.

* Recall@k: relevant documents in the top k / relevant documents.
* MRR@k (``recip_rank`` cut at k): 1 / rank of the first relevant document in the top k, else 0.
* nDCG@k (``ndcg_cut_k``): sum over the top k of rel_i / log2(i + 1), over the same sum for the
  ideal ordering of the judged relevances (linear gain, as trec_eval; not 2^rel - 1).
"""
from __future__ import annotations

import math


def ranked(run: dict[str, float]) -> list[str]:
    """Doc ids by score, highest first; ties by doc id, descending (trec_eval's order)."""
    return [doc for doc, _ in sorted(run.items(), key=lambda kv: (-kv[1], _Descending(kv[0])))]


class _Descending:
    __slots__ = ("value",)

    def __init__(self, value: str):
        self.value = value

    def __lt__(self, other: "_Descending") -> bool:
        return self.value > other.value


def recall_at(ranking: list[str], relevant: dict[str, int], k: int) -> float:
    positives = {d for d, r in relevant.items() if r > 0}
    return len(positives & set(ranking[:k])) / len(positives) if positives else 0.0


def reciprocal_rank_at(ranking: list[str], relevant: dict[str, int], k: int) -> float:
    for i, doc in enumerate(ranking[:k]):
        if relevant.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def ndcg_at(ranking: list[str], relevant: dict[str, int], k: int) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranking[:k]) if relevant.get(doc, 0) > 0)
    ideal = sorted((r for r in relevant.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def evaluate(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]],
             recall_ks=(1, 10, 100), mrr_k: int = 10, ndcg_k: int = 10) -> dict[str, float]:
    """Mean Recall@k, MRR@``mrr_k`` and nDCG@``ndcg_k`` over the judged queries with at least
    one relevant document."""
    queries = [q for q, docs in qrels.items() if any(r > 0 for r in docs.values())]
    totals = {f"recall@{k}": 0.0 for k in recall_ks}
    totals.update({f"mrr@{mrr_k}": 0.0, f"ndcg@{ndcg_k}": 0.0})
    for query in queries:
        ranking = ranked(run.get(query, {}))
        for k in recall_ks:
            totals[f"recall@{k}"] += recall_at(ranking, qrels[query], k)
        totals[f"mrr@{mrr_k}"] += reciprocal_rank_at(ranking, qrels[query], mrr_k)
        totals[f"ndcg@{ndcg_k}"] += ndcg_at(ranking, qrels[query], ndcg_k)
    return {name: value / len(queries) if queries else 0.0 for name, value in totals.items()}
