"""BM25 (``tfx_bert/lexical.py``) against dense search on the same number of passages: index
build time, per-query latency (p50 / p99) and hard-negative mining throughput
(``tfx_bert/mining.py``), BM25 and dense miners in the same run.

    .venv/bin/python benchmarks/lexical_search.py [--docs 100000] [--queries 300]

Passages: Zipf-distributed pseudo-words (``benchmarks/common.py``), 30-80 words each (MS MARCO's
passages average about 55). Queries: 3-6 words of a random passage. Dense baseline: the same
number of L2-normalised 128-d vectors searched exactly in Milvus Lite (FLAT) and in numpy; the
query's embedding is not included (a tiny model's ``embed_query`` adds a few ms, see
``benchmarks/serving_throughput.py``). Mining: ``mining.mine`` for ``--mine`` queries (top 30, 3
negatives each), BM25 first stage vs the dense miner (numpy exact inner product).
"""
import argparse
import os
import random
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.common import lexicon  # noqa: E402
from tfx_bert import mining  # noqa: E402
from tfx_bert.lexical import BM25Index  # noqa: E402
from tfx_bert.vector_store import VectorStore  # noqa: E402

DIM = 128


def make_corpus(n: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    words = lexicon(20_000, seed)
    cum, total = [], 0.0
    for rank in range(len(words)):
        total += 1.0 / (rank + 1)
        cum.append(total)
    return {f"p{i:07d}": " ".join(rng.choices(words, cum_weights=cum, k=rng.randint(30, 80))) for i in range(n)}


def make_queries(corpus: dict, n: int, seed: int = 1) -> tuple[dict, dict]:
    rng = random.Random(seed)
    ids = sorted(corpus)
    queries, qrels = {}, {}
    for i in range(n):
        doc = ids[rng.randrange(len(ids))]
        words = corpus[doc].split()
        start = rng.randrange(max(1, len(words) - 6))
        queries[f"q{i}"] = " ".join(words[start:start + rng.randint(3, 6)])
        qrels[f"q{i}"] = {doc: 1}
    return queries, qrels


def latencies(fn, items) -> list[float]:
    out = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - start) * 1000)
    return out


def show(name: str, ms: list[float]) -> None:
    ms = sorted(ms)
    print(f"  {name:32s} p50 {statistics.median(ms):7.2f} ms   p99 {ms[int(0.99 * (len(ms) - 1))]:7.2f} ms", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--mine", type=int, default=1000)
    args = parser.parse_args()
    common.check_machine()

    corpus = make_corpus(args.docs)
    queries, qrels = make_queries(corpus, max(args.queries, args.mine))
    texts = [queries[q] for q in sorted(queries)][:args.queries]
    print(f"{args.docs:,} passages, {len(texts)} queries (one at a time, top 10)", flush=True)

    start = time.perf_counter()
    index = BM25Index.build(corpus)
    print(f"  BM25 index build                 {time.perf_counter() - start:7.1f} s", flush=True)
    index.search(texts[:5], 10)
    bm25 = latencies(lambda q: index.search([q], 10), texts)
    show("BM25 query", bm25)
    recall = statistics.mean(next(iter(qrels[q])) in {d for d, _ in hits}
                             for q, hits in zip(sorted(queries)[:len(texts)], index.search(texts, 10)))
    print(f"  BM25 recall@10 of the source passage: {recall:.3f}", flush=True)

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(args.docs, DIM)).astype("float32")
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    query_vectors = vectors[rng.integers(0, args.docs, len(texts))] + 0.1 * rng.normal(size=(len(texts), DIM)).astype("float32")
    with tempfile.TemporaryDirectory() as tmp:
        store = VectorStore(os.path.join(tmp, "milvus.db"), "bench", dim=DIM, index_type="FLAT")
        store.create()
        ids = sorted(corpus)
        start = time.perf_counter()
        for i in range(0, args.docs, 10_000):
            store.upsert(ids[i:i + 10_000], vectors[i:i + 10_000])
        print(f"  Milvus Lite insert (FLAT)        {time.perf_counter() - start:7.1f} s", flush=True)
        store.search(query_vectors[:5], 10)
        milvus = latencies(lambda v: store.search(v[None], 10), query_vectors)
        store.close()
    show("dense, Milvus Lite exact", milvus)
    numpy_exact = latencies(lambda v: np.argpartition(-(vectors @ v), 10)[:10], query_vectors)
    show("dense, numpy exact", numpy_exact)
    print(f"  BM25 / Milvus Lite p50: {statistics.median(bm25) / statistics.median(milvus):.2f}x", flush=True)

    mine_ids = sorted(queries)[:args.mine]
    mine_queries = {q: queries[q] for q in mine_ids}
    mine_qrels = {q: qrels[q] for q in mine_ids}
    settings = mining.MiningSettings(num_negatives=3, rank_max=30)
    bm25_miner = mining.bm25_miner(corpus)  # an index build, timed above
    start = time.perf_counter()
    mining.mine(mine_queries, mine_qrels, *bm25_miner, settings)
    bm25_seconds = time.perf_counter() - start
    position = {q: i for i, q in enumerate(mine_ids)}
    query_table = vectors[rng.integers(0, args.docs, len(mine_ids))]
    embed = lambda texts: query_table[[position[text_ids[t]] for t in texts]]  # noqa: E731
    text_ids = {queries[q]: q for q in mine_ids}
    start = time.perf_counter()
    mining.mine(mine_queries, mine_qrels, *mining.dense_miner(sorted(corpus), vectors, embed), settings)
    dense_seconds = time.perf_counter() - start
    print(f"  mining {len(mine_ids)} queries: BM25 {len(mine_ids) / bm25_seconds:,.0f} queries/s, dense exact {len(mine_ids) / dense_seconds:,.0f} queries/s (corpus embeddings given)", flush=True)


if __name__ == "__main__":
    main()
