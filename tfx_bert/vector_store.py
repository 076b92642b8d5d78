"""The vector store: Milvus, embedded (Milvus Lite, a local file) by default.

Why Milvus: Milvus Lite runs in-process on a laptop with nothing to install beyond ``pymilvus``
and ``milvus-lite``, and the same ``MilvusClient`` API talks to a Milvus cluster (or Zilliz
Cloud) when a corpus outgrows one machine: only the URI changes (a file path -> Lite;
``http(s)://host:19530`` -> a server). Milvus Lite supports the ``FLAT`` (exact) and
``IVF_FLAT`` indexes; a cluster adds HNSW, IVF_PQ, DiskANN and the rest.

Writes are upserts keyed by document id, so re-indexing a corpus never duplicates a document,
and an interrupted run is completed by running it again. A collection counts as complete only
once ``mark_complete`` has recorded what was indexed (the corpus fingerprint and the count) in
a small manifest collection beside it; readers check it with ``completed()``.
"""
from __future__ import annotations

import collections
import json
import os

import numpy as np

ID, VECTOR = "id", "embedding"
MANIFEST_SUFFIX = "__manifest"
INDEX_TYPES = ("FLAT", "IVF_FLAT", "AUTOINDEX", "HNSW", "IVF_PQ", "IVF_SQ8", "DISKANN")
MAX_ID_LENGTH = 512


# pymilvus shares one connection among the clients of a URI in a process (closing one closes
# it for all), and Milvus Lite runs one local server per database file and process. Both are
# closed, and a Lite file released to other processes, when the last VectorStore on it closes.
_OPEN_STORES: collections.Counter = collections.Counter()


def _client(uri: str, token: str = ""):
    from pymilvus import MilvusClient

    lite = "://" not in uri  # Milvus Lite: a local database file
    if lite:
        os.makedirs(os.path.dirname(os.path.abspath(uri)), exist_ok=True)
    try:
        return MilvusClient(uri=uri, token=token) if token else MilvusClient(uri=uri)
    except Exception as e:  # pymilvus raises bare exceptions (AssertionError, MilvusException)
        hint = (" A Milvus Lite file is used by one process at a time: stop the other one (a running indexer "
                "or retriever) or use a Milvus server." if lite else " Is the Milvus server running and reachable?")
        raise RuntimeError(f"Cannot open the vector store at {uri}: {str(e).splitlines()[0]}.{hint}") from None


class VectorStore:
    """One collection of (id, embedding) in Milvus, searched by inner product (cosine for
    L2-normalised embeddings). ``dim=0`` opens an existing collection as it is."""

    def __init__(self, uri: str, collection: str, dim: int = 0, index_type: str = "IVF_FLAT", nlist: int = 0,
                 token: str = ""):
        if index_type not in INDEX_TYPES:
            raise ValueError(f"index_type {index_type!r} is not one of {INDEX_TYPES}.")
        self.uri, self.collection, self.dim, self.index_type = uri, collection, int(dim), index_type
        self.nlist = int(nlist)
        self.client = _client(uri, token)
        self._lite_file = os.path.realpath(uri) if "://" not in uri else ""
        self._key = self._lite_file or uri
        _OPEN_STORES[self._key] += 1
        if not self.dim:  # an existing collection: read its dimension and index
            if not self.client.has_collection(collection):
                raise ValueError(f"No collection {collection!r} at {uri}; index a corpus into it first.")
            fields = self.client.describe_collection(collection)["fields"]
            self.dim = int([f for f in fields if f["name"] == VECTOR][0]["params"]["dim"])
            self.index_type = self.client.describe_index(collection, VECTOR).get("index_type", index_type)

    def create(self, expected_count: int = 0) -> None:
        """Creates the collection and its index unless it exists (then checks the dimension)."""
        from pymilvus import DataType

        if self.client.has_collection(self.collection):
            fields = self.client.describe_collection(self.collection)["fields"]
            dims = [f.get("params", {}).get("dim") for f in fields if f["name"] == VECTOR]
            if dims and int(dims[0]) != self.dim:
                raise ValueError(f"Collection {self.collection!r} at {self.uri} holds {dims[0]}-d vectors, not "
                                 f"{self.dim}-d; index into a new collection or drop it.")
            return
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(ID, DataType.VARCHAR, is_primary=True, max_length=MAX_ID_LENGTH)
        schema.add_field(VECTOR, DataType.FLOAT_VECTOR, dim=self.dim)
        index = self.client.prepare_index_params()
        params = {}
        if self.index_type.startswith("IVF"):
            # Milvus's rule of thumb: about 4 * sqrt(n) lists.
            params["nlist"] = self.nlist or max(16, int(4 * np.sqrt(max(1, expected_count))))
        index.add_index(VECTOR, index_type=self.index_type, metric_type="IP", params=params)
        self.client.create_collection(self.collection, schema=schema, index_params=index)

    def upsert(self, ids: list[str], vectors: np.ndarray, batch_size: int = 1000) -> int:
        """Writes (id, vector) rows; an id already there is replaced, never duplicated."""
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim or len(ids) != len(vectors):
            raise ValueError(f"upsert takes {len(ids)} ids and [n, {self.dim}] vectors, got {vectors.shape}.")
        for start in range(0, len(ids), batch_size):
            rows = [{ID: str(i), VECTOR: v.tolist()} for i, v in
                    zip(ids[start:start + batch_size], vectors[start:start + batch_size])]
            self.client.upsert(self.collection, rows)
        return len(ids)

    def count(self) -> int:
        result = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(result[0]["count(*)"])

    def search(self, queries: np.ndarray, k: int = 10, nprobe: int = 16) -> list[list[tuple[str, float]]]:
        """Top ``k`` (id, score) per query vector, best first."""
        queries = np.asarray(queries, np.float32).reshape(-1, self.dim)
        params = {"params": {"nprobe": int(nprobe)}} if self.index_type.startswith("IVF") else {}
        hits = self.client.search(self.collection, data=queries.tolist(), limit=int(k), search_params=params,
                                  output_fields=[ID])
        return [[(str(h["id"]), float(h["distance"])) for h in row] for row in hits]

    # --- completeness --------------------------------------------------------------------

    def _manifest(self) -> str:
        return self.collection + MANIFEST_SUFFIX

    def mark_complete(self, fingerprint: str, count: int) -> None:
        """Records that the collection holds ``count`` documents of the corpus ``fingerprint``."""
        from pymilvus import DataType

        name = self._manifest()
        if not self.client.has_collection(name):
            schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field(ID, DataType.VARCHAR, is_primary=True, max_length=64)
            schema.add_field("manifest", DataType.VARCHAR, max_length=4096)
            schema.add_field(VECTOR, DataType.FLOAT_VECTOR, dim=2)  # Milvus needs a vector field
            index = self.client.prepare_index_params()
            index.add_index(VECTOR, index_type="FLAT", metric_type="IP")
            self.client.create_collection(name, schema=schema, index_params=index)
        record = json.dumps({"fingerprint": fingerprint, "count": int(count), "index_type": self.index_type,
                             "dim": self.dim})
        self.client.upsert(name, [{ID: "manifest", "manifest": record, VECTOR: [0.0, 0.0]}])

    def completed(self) -> dict | None:
        """The manifest of the last complete indexing run, or None (never run, or interrupted
        before it finished)."""
        name = self._manifest()
        if not self.client.has_collection(name):
            return None
        rows = self.client.query(name, filter=f'{ID} == "manifest"', output_fields=["manifest"])
        return json.loads(rows[0]["manifest"]) if rows else None

    def clear_complete(self) -> None:
        """Marks the collection as being (re)written: readers see it incomplete until
        ``mark_complete``."""
        if self.client.has_collection(self._manifest()):
            self.client.delete(self._manifest(), filter=f'{ID} == "manifest"')

    def close(self) -> None:
        """Closes the connection; the last store on a Milvus Lite file in this process also stops
        its local server, so another process can open the file."""
        if self.client is None:
            return
        client, self.client = self.client, None
        _OPEN_STORES[self._key] -= 1
        if _OPEN_STORES[self._key] > 0:
            return  # another store in this process still uses the connection
        del _OPEN_STORES[self._key]
        client.close()
        if self._lite_file:
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(self._lite_file)
