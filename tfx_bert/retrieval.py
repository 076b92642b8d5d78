"""The query path of dense retrieval: query text -> embedding (the model's ``embed_query``
signature, or ``embed`` for a similarity model; in process or from a TF Serving endpoint) ->
top-k documents from the vector store; or fused with BM25's ranking (``HybridRetriever``,
reciprocal rank fusion); optionally re-scored by a cross-encoder (``RetrieveThenRerank``).
Every retriever has ``retrieve(queries, k)`` -> [(doc id, score), ...] per query, best first."""
from __future__ import annotations

from typing import Callable

import numpy as np

from tfx_bert.vector_store import VectorStore


def embed_in_batches(signature, texts: list[str], batch_size: int = 256) -> np.ndarray:
    """A served ``embed`` / ``embed_query`` signature over ``texts``, ``batch_size`` at a time ->
    [len(texts), dim]."""
    import tensorflow as tf

    return np.concatenate([signature(text=tf.constant(list(texts[i:i + batch_size])))["embedding"].numpy()
                           for i in range(0, len(texts), batch_size)])


class Retriever:
    """``retrieve(queries, k)`` -> [(doc id, score), ...] per query, best first."""

    def __init__(self, store: VectorStore, embed: Callable[[list[str]], np.ndarray], nprobe: int = 16):
        self.store, self.embed, self.nprobe = store, embed, nprobe
        if store.completed() is None:
            raise RuntimeError(f"Collection {store.collection!r} at {store.uri} is not completely indexed (an "
                               "indexing run was interrupted or never ran); run the VectorIndexer again.")

    @classmethod
    def from_saved_model(cls, model_dir: str, store: VectorStore, **kwargs) -> "Retriever":
        import tensorflow as tf
        import tensorflow_text  # noqa: F401

        signatures = tf.saved_model.load(model_dir).signatures
        embed = signatures["embed_query"] if "embed_query" in signatures else signatures["embed"]
        return cls(store, lambda texts: embed(text=tf.constant(list(texts)))["embedding"].numpy(), **kwargs)

    @classmethod
    def from_serving(cls, client, model_name: str, store: VectorStore, **kwargs) -> "Retriever":
        """Query embeddings from a TF Serving endpoint (``ServingClient``)."""
        signature = "embed_query" if "embed_query" in client.signature_names(model_name) else "embed"
        return cls(store, lambda texts: client.embed(model_name, list(texts), signature), **kwargs)

    def retrieve(self, queries: list[str], k: int = 10) -> list[list[tuple[str, float]]]:
        empty = [i for i, q in enumerate(queries) if not q.strip()]
        if empty:
            raise ValueError(f"Query {empty[0]} is empty; retrieval needs text.")
        return self.store.search(self.embed(queries), k=k, nprobe=self.nprobe)


def reciprocal_rank_fusion(rankings: list[list[tuple[str, float]]], k: int = 60,
                           weights: list[float] | None = None) -> list[tuple[str, float]]:
    """One ranking from several (Cormack et al., 2009): a document scores sum_i w_i / (k + rank_i),
    rank from 1, over the rankings it appears in; ties keep the first ranking's order. Rank-based,
    so a cosine and a BM25 score need no common scale."""
    weights = weights or [1.0] * len(rankings)
    fused: dict[str, float] = {}
    for weight, ranking in zip(weights, rankings):
        for rank, (doc, _) in enumerate(ranking, start=1):
            fused[doc] = fused.get(doc, 0.0) + weight / (k + rank)
    return sorted(fused.items(), key=lambda item: -item[1])  # stable: first-seen order on ties


class HybridRetriever:
    """Dense and BM25 rankings (each ``depth`` deep) fused by reciprocal rank fusion."""

    def __init__(self, dense, lexical, depth: int = 100, rrf_k: int = 60, lexical_weight: float = 1.0):
        self.dense, self.lexical, self.depth, self.rrf_k = dense, lexical, depth, rrf_k
        self.weights = [1.0, lexical_weight]

    def retrieve(self, queries: list[str], k: int = 10) -> list[list[tuple[str, float]]]:
        depth = max(self.depth, k)
        return [reciprocal_rank_fusion([dense, lexical], self.rrf_k, self.weights)[:k]
                for dense, lexical in zip(self.dense.retrieve(queries, depth), self.lexical.retrieve(queries, depth))]


class RetrieveThenRerank:
    """Top ``k`` candidates from a retriever (dense, BM25 or hybrid), re-scored by a cross-encoder
    (``score(query, passages) -> scores``) and re-ordered: ``search(queries)`` ->
    [(doc id, cross-encoder score), ...] per query, best first. ``corpus`` maps doc ids to the
    text the cross-encoder reads (the vector store holds only ids and vectors)."""

    def __init__(self, retriever: Retriever, score: Callable[[str, list[str]], np.ndarray], corpus: dict,
                 k: int = 20):
        self.retriever, self.score, self.corpus, self.k = retriever, score, corpus, k

    @staticmethod
    def saved_model_scorer(model_dir: str) -> Callable[[str, list[str]], np.ndarray]:
        """A re-ranking SavedModel's ``serving_default(query, text)``, in process."""
        import tensorflow as tf
        import tensorflow_text  # noqa: F401

        serve = tf.saved_model.load(model_dir).signatures["serving_default"]
        return lambda query, passages: serve(query=tf.constant([query] * len(passages)),
                                             text=tf.constant(passages))["score"].numpy()

    @staticmethod
    def serving_scorer(client, model_name: str) -> Callable[[str, list[str]], np.ndarray]:
        """A re-ranking model on a TF Serving endpoint: one Predict per query."""
        return lambda query, passages: client.rerank_scores(model_name, query, passages)

    def search(self, queries: list[str], top_n: int = 10) -> list[list[tuple[str, float]]]:
        results = []
        for query, hits in zip(queries, self.retriever.retrieve(queries, self.k)):
            missing = [doc for doc, _ in hits if doc not in self.corpus]
            if missing:
                raise KeyError(f"Document {missing[0]!r} is in the vector store but not in the corpus given for "
                               "re-ranking; index and re-rank the same corpus.")
            if not hits:
                results.append([])
                continue
            scores = self.score(query, [self.corpus[doc] for doc, _ in hits])
            order = sorted(range(len(hits)), key=lambda i: -float(scores[i]))
            results.append([(hits[i][0], float(scores[i])) for i in order[:top_n]])
        return results
