"""The query path of dense retrieval: query text -> embedding (the model's ``embed``
signature, in process or from a TF Serving endpoint) -> top-k documents from the vector store."""
from __future__ import annotations

from typing import Callable

import numpy as np

from tfx_bert.vector_store import VectorStore


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

        embed = tf.saved_model.load(model_dir).signatures["embed"]
        return cls(store, lambda texts: embed(text=tf.constant(list(texts)))["embedding"].numpy(), **kwargs)

    @classmethod
    def from_serving(cls, client, model_name: str, store: VectorStore, **kwargs) -> "Retriever":
        """Query embeddings from a TF Serving endpoint (``ServingClient``)."""
        return cls(store, lambda texts: client.embed(model_name, list(texts)), **kwargs)

    def retrieve(self, queries: list[str], k: int = 10) -> list[list[tuple[str, float]]]:
        empty = [i for i, q in enumerate(queries) if not q.strip()]
        if empty:
            raise ValueError(f"Query {empty[0]} is empty; retrieval needs text.")
        return self.store.search(self.embed(queries), k=k, nprobe=self.nprobe)
