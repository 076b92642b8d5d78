"""Lexical retrieval: BM25 over a corpus, the baseline any dense retriever must beat and a source
of hard negatives.

The scoring is ``bm25s`` (Lucene's BM25 variant, eager sparse scores in scipy: no JVM, no
server; indexing 100k passages takes seconds). Milvus 2.5 has BM25 full-text search too, but
Milvus Lite (this project's embedded store) does not run it, so one implementation serves the
laptop and the cluster alike. Text is lowercased and split on word characters; English stop
words are dropped (bm25s's defaults, the same for documents and queries).
"""
from __future__ import annotations

import json
import os

import numpy as np

DOC_IDS_FILE = "doc_ids.json"


def _tokenize(texts: list[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)


class BM25Index:
    """``search(queries, k)`` -> [(doc id, BM25 score), ...] per query, best first; documents
    sharing no term with a query are not returned (their score is 0)."""

    def __init__(self, retriever, doc_ids: list[str]):
        self._retriever, self.doc_ids = retriever, list(doc_ids)

    @classmethod
    def build(cls, corpus: dict[str, str], k1: float = 1.2, b: float = 0.75) -> "BM25Index":
        """An index of ``corpus`` ({doc id: text}); k1 and b as Lucene's defaults."""
        import bm25s

        if not corpus:
            raise ValueError("BM25 needs at least one document; the corpus is empty.")
        doc_ids = sorted(corpus)
        retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
        retriever.index(bm25s.tokenize([corpus[d] for d in doc_ids], stopwords="en", show_progress=False),
                        show_progress=False)
        return cls(retriever, doc_ids)

    def save(self, directory: str) -> None:
        self._retriever.save(directory)
        with open(os.path.join(directory, DOC_IDS_FILE), "w", encoding="utf-8") as f:
            json.dump(self.doc_ids, f)

    @classmethod
    def load(cls, directory: str) -> "BM25Index":
        import bm25s

        ids_path = os.path.join(directory, DOC_IDS_FILE)
        if not os.path.exists(ids_path):
            raise FileNotFoundError(f"{directory} is not a BM25 index (no {DOC_IDS_FILE}); build one with "
                                    "`tfx-bert retrieve --mode bm25 --corpus FILE --bm25-index DIR`.")
        with open(ids_path, encoding="utf-8") as f:
            doc_ids = json.load(f)
        return cls(bm25s.BM25.load(directory), doc_ids)

    def _scores(self, tokens: list[str]) -> np.ndarray:
        if not tokens:  # only stop words (bm25s fails on an empty query): nothing matches
            return np.zeros(len(self.doc_ids), np.float32)
        return np.asarray(self._retriever.get_scores(tokens), dtype=np.float32)

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every document (``doc_ids`` order) for one query."""
        return self._scores(_tokenize([query])[0])

    def search(self, queries: list[str], k: int = 10) -> list[list[tuple[str, float]]]:
        empty = [i for i, q in enumerate(queries) if not q.strip()]
        if empty:
            raise ValueError(f"Query {empty[0]} is empty; retrieval needs text.")
        k = min(k, len(self.doc_ids))
        results = []
        for tokens in _tokenize(queries):
            scores = self._scores(tokens)
            top = np.argpartition(-scores, k - 1)[:k]
            top = top[np.lexsort((top, -scores[top]))]  # best first; ties by position (doc id order)
            results.append([(self.doc_ids[i], float(scores[i])) for i in top if scores[i] > 0])
        return results

    retrieve = search  # the Retriever interface: RetrieveThenRerank and the hybrid take either
