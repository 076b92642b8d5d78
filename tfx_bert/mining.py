"""Hard-negative mining: a first-stage ranker (BM25, a dense model, or both fused) ranks the whole corpus for
each training query, and the negatives are taken from its ranking, minus the positives and the
probable false negatives.

The filters are sentence-transformers' ``mine_hard_negatives`` ones: a rank window
(``rank_min``: skip the very top, where unjudged relevant documents concentrate; ``rank_max``:
how deep to go) and an absolute ``margin`` (a negative must score below the query's weakest
positive minus the margin: RocketQA's denoising, without a cross-encoder; off by default, as in
sentence-transformers: on fully judged data the hardest candidates are true negatives). ``sampling`` "top"
keeps the best-ranked survivors, "random" draws them (seeded by the query id) from the window.
"""
from __future__ import annotations

import dataclasses
import random
import zlib
from typing import Callable, Literal

import numpy as np

Ranking = list  # [(doc id, score), ...], best first


@dataclasses.dataclass(frozen=True)
class MiningSettings:
    num_negatives: int
    rank_min: int = 0
    rank_max: int = 30
    margin: float = float("-inf")  # -inf: no filter (complete judgements, as the demo's)
    sampling: Literal["top", "random"] = "top"

    def __post_init__(self):
        if not 0 <= self.rank_min < self.rank_max:
            raise ValueError(f"Mining needs 0 <= rank_min < rank_max (got {self.rank_min}, {self.rank_max}).")
        if self.num_negatives < 1 or self.num_negatives > self.rank_max - self.rank_min:
            raise ValueError(f"num_negatives {self.num_negatives} must be 1 .. rank_max - rank_min "
                             f"({self.rank_max - self.rank_min}).")


def select_negatives(query_id: str, ranking: Ranking, positives: set, positive_score: float,
                     settings: MiningSettings) -> list[str]:
    """The negatives for one query from its ranking: positives dropped, then ranks
    [rank_min, rank_max) of what is left, then scores below ``positive_score - margin``."""
    window = [(d, s) for d, s in ranking if d not in positives][settings.rank_min:settings.rank_max]
    kept = [d for d, s in window if s < positive_score - settings.margin]
    if settings.sampling == "random" and len(kept) > settings.num_negatives:
        return random.Random(zlib.crc32(query_id.encode("utf-8"))).sample(kept, settings.num_negatives)
    return kept[:settings.num_negatives]


def mine(queries: dict, qrels: dict, rank: Callable[[list[str], int], list[Ranking]],
         score_positives: Callable[[str, list[str]], list[float]], settings: MiningSettings) -> dict[str, list[str]]:
    """{query id: negatives} for every query in ``qrels`` (ids sorted): ``rank(texts, k)`` ranks
    the corpus, ``score_positives(query text, doc ids)`` scores a query's positives (so the margin
    applies even to a positive ranked below the window). A query may get fewer than
    ``num_negatives`` (the filters left too few); the caller decides how to fill."""
    query_ids = sorted(qrels)
    depth = settings.rank_max + max(sum(r > 0 for r in qrels[q].values()) for q in query_ids)
    rankings = rank([queries[q] for q in query_ids], depth)
    negatives = {}
    for query_id, ranking in zip(query_ids, rankings):
        positives = {d for d, r in qrels[query_id].items() if r > 0}
        positive_score = min(score_positives(queries[query_id], sorted(positives)))
        negatives[query_id] = select_negatives(query_id, ranking, positives, positive_score, settings)
    return negatives


def bm25_miner(corpus: dict):
    """(rank, score_positives) over ``corpus`` by BM25 (``tfx_bert.lexical``)."""
    from tfx_bert.lexical import BM25Index

    index = BM25Index.build(corpus)
    position = {d: i for i, d in enumerate(index.doc_ids)}

    def score_positives(query: str, doc_ids: list[str]) -> list[float]:
        scores = index.scores(query)
        return [float(scores[position[d]]) for d in doc_ids]

    return index.search, score_positives


def dense_miner(doc_ids: list[str], doc_vectors: np.ndarray, embed_queries: Callable[[list[str]], np.ndarray]):
    """(rank, score_positives) by exact inner product of normalised embeddings (the corpus
    embedded once by the model being trained). Query vectors are computed once, in batches, by
    ``rank``; ``score_positives`` reuses them."""
    position = {d: i for i, d in enumerate(doc_ids)}
    query_vectors: dict[str, np.ndarray] = {}

    def rank(texts: list[str], k: int, chunk: int = 256) -> list[Ranking]:
        rankings, k = [], min(k, len(doc_ids))
        for start in range(0, len(texts), chunk):  # a [chunk, corpus] score matrix at a time
            vectors = embed_queries(texts[start:start + chunk])
            query_vectors.update(zip(texts[start:start + chunk], vectors))
            scores = vectors @ doc_vectors.T
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            for row, columns in zip(scores, top):
                columns = columns[np.lexsort((columns, -row[columns]))]  # best first; ties by position
                rankings.append([(doc_ids[c], float(row[c])) for c in columns])
        return rankings

    def score_positives(query: str, ids: list[str]) -> list[float]:
        if query not in query_vectors:
            query_vectors[query] = embed_queries([query])[0]
        return [float(doc_vectors[position[d]] @ query_vectors[query]) for d in ids]

    return rank, score_positives


def hybrid_miner(first, second, depth: int = 100, rrf_k: int = 60):
    """(rank, score_positives) by reciprocal rank fusion of two miners' rankings (each ``depth``
    deep; e.g. a dense model's and BM25's), the candidates a ``HybridRetriever`` hands a
    re-ranker. A document's score is its fused one, sum 1 / (rrf_k + rank); a positive outside
    both lists scores 0. Rank-based, so a margin in either miner's units does not apply: the
    config refuses one."""
    from tfx_bert.retrieval import reciprocal_rank_fusion

    fused: dict[str, dict[str, float]] = {}

    def rank(texts: list[str], k: int) -> list[Ranking]:
        lists = zip(first[0](texts, max(depth, k)), second[0](texts, max(depth, k)))
        rankings = [reciprocal_rank_fusion([a, b], rrf_k) for a, b in lists]
        fused.update((text, dict(ranking)) for text, ranking in zip(texts, rankings))
        return [ranking[:k] for ranking in rankings]

    def score_positives(query: str, doc_ids: list[str]) -> list[float]:
        if query not in fused:
            rank([query], depth)
        return [fused[query].get(d, 0.0) for d in doc_ids]

    return rank, score_positives


def saved_model_miner(model_dir: str, corpus: dict, batch_size: int = 256):
    """(rank, score_positives) by a served embedding model (``embed`` for documents,
    ``embed_query`` for queries, else ``embed``): the retrieval pipeline's pushed dual encoder, so
    a re-ranker trains on the candidates that first stage returns."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the tokenizer ops in the SavedModel)

    try:
        signatures = tf.saved_model.load(model_dir).signatures
    except (OSError, ValueError) as e:
        raise ValueError(f"negative_model {model_dir}: not a loadable SavedModel ({e}).") from e
    if "embed" not in signatures:
        raise ValueError(f"negative_model {model_dir} has no embed signature (it has {sorted(signatures)}): "
                         "give a retrieval or similarity model.")
    from tfx_bert.retrieval import embed_in_batches

    embed_docs, embed_queries = signatures["embed"], signatures.get("embed_query", signatures["embed"])
    doc_ids = sorted(corpus)
    return dense_miner(doc_ids, embed_in_batches(embed_docs, [corpus[d] for d in doc_ids], batch_size),
                       lambda texts: embed_in_batches(embed_queries, list(texts), batch_size))


def first_stage(miner: str, corpus: dict, model_dir: str = ""):
    """(rank, score_positives) of ``negative_miner`` ``bm25``, ``dense`` (``model_dir`` ranks the
    corpus) or ``hybrid`` (both, fused as ``retrieve --mode hybrid`` fuses them)."""
    if miner == "bm25":
        return bm25_miner(corpus)
    if miner == "dense":
        return saved_model_miner(model_dir, corpus)
    if miner == "hybrid":
        return hybrid_miner(saved_model_miner(model_dir, corpus), bm25_miner(corpus))
    raise ValueError(f"Unknown negative miner {miner!r}: bm25, dense or hybrid.")
