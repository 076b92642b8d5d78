"""Vector store search latency (p50/p99 per query) and recall of the ANN index against exact
search, at 10k and 100k vectors, in Milvus Lite (``tfx_bert/vector_store.py``).

    .venv/bin/python benchmarks/vector_search.py [--sizes 10000,100000] [--queries 300]

Vectors: L2-normalised points around 200 random centres in 128 dimensions (clustered like text
embeddings, unlike uniform noise). Queries: fresh points from the same distribution. Baseline in the same run:
the same store with the exact ``FLAT`` index; recall@10 is against exact numpy inner-product
search. Index: ``IVF_FLAT`` with about 4 * sqrt(n) lists, at several ``nprobe`` settings.

Milvus Lite accepts the IVF_FLAT index but searches by brute force (its ``describe_index``
reports 0 indexed rows, and recall stays 1.0 even at nprobe=1 on uniform data): the recall
of a real ANN index against exact search needs a Milvus server; this script runs unchanged
against one (``--uri http://host:19530``).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

import numpy as np  # noqa: E402

from tfx_bert.vector_store import VectorStore  # noqa: E402

DIM = 128


def make_data(n: int, queries: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(200, DIM))
    x = centres[rng.integers(0, 200, n)] + 0.6 * rng.normal(size=(n, DIM))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype("float32")
    # Fresh points from the same distribution: their neighbours spread over several IVF lists.
    q = centres[rng.integers(0, 200, queries)] + 0.6 * rng.normal(size=(queries, DIM))
    return x, (q / np.linalg.norm(q, axis=1, keepdims=True)).astype("float32")


def timed_searches(store, queries, k, nprobe):
    latencies, results = [], []
    store.search(queries[:5], k, nprobe)  # warm up
    for q in queries:
        start = time.perf_counter()
        results.append([doc for doc, _ in store.search(q[None], k, nprobe)[0]])
        latencies.append(time.perf_counter() - start)
    return latencies, results


def recall(results, exact):
    return statistics.mean(len(set(r) & set(e)) / len(e) for r, e in zip(results, exact))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--uri", default="", help="a Milvus server (default: Milvus Lite files in a temp dir)")
    args = parser.parse_args()
    common.check_machine()
    print(f"{os.cpu_count()} CPUs; dim {DIM}; {args.queries} single-vector queries; top 10")
    for n in (int(s) for s in args.sizes.split(",")):
        x, q = make_data(n, args.queries)
        ids = [f"d{i}" for i in range(n)]
        exact = [[ids[i] for i in np.argsort(-scores)[:10]] for scores in q @ x.T]
        with tempfile.TemporaryDirectory() as tmp:
            rows = {}
            for index_type, nprobes in (("FLAT", (0,)), ("IVF_FLAT", (4, 16, 64))):
                uri = args.uri or os.path.join(tmp, f"{index_type}.db")
                store = VectorStore(uri, "bench", DIM, index_type=index_type)
                if store.client.has_collection("bench"):
                    store.client.drop_collection("bench")
                store.create(expected_count=n)
                start = time.perf_counter()
                store.upsert(ids, x, batch_size=5000)
                store.count()  # waits until the rows are visible
                load_s = time.perf_counter() - start
                indexed = store.client.describe_index("bench", "embedding").get("indexed_rows", "?")
                for nprobe in nprobes:
                    latencies, results = timed_searches(store, q, 10, nprobe)
                    rows[(index_type, nprobe)] = (np.percentile(latencies, 50) * 1e3, np.percentile(latencies, 99) * 1e3,
                                                  recall(results, exact), load_s, indexed)
                store.close()
        base_p50 = rows[("FLAT", 0)][0]
        print(f"\n{n} vectors:")
        for (index_type, nprobe), (p50, p99, r, load_s, indexed) in rows.items():
            label = index_type + (f" nprobe={nprobe}" if nprobe else " (exact)")
            print(f"  {label:<22} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  ({p50 / base_p50:4.2f} x FLAT)  "
                  f"recall@10 {r:.3f}  upsert {n / load_s:8.0f} vectors/s  indexed rows {indexed}")


if __name__ == "__main__":
    main()
