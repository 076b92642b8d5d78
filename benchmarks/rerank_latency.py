"""Retrieve-then-rerank latency per query: the dual encoder's top k from the vector store,
re-scored by the cross-encoder, at k = 20 and 50, against retrieval alone in the same run.

    .venv/bin/python benchmarks/rerank_latency.py --retrieval-model DIR --rerank-model DIR \
        [--data DIR] [--queries 100] [--repeats 3]

The models are the retrieval and re-ranking pipelines' pushed versions (``serving/retrieval/N``,
``serving/rerank/N``), loaded in process (what ``tfx-bert retrieve`` does over gRPC, without the
network). The corpus: ``--data`` (BEIR layout), else the demo retrieval data written to a
temporary folder. Each query goes alone, as an interactive search does: embed the query, search
Milvus Lite (FLAT, exact), score the k candidates in one batch, sort. Medians over ``--repeats``
alternating rounds; the ratio to retrieval alone is the figure to compare across machines.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from tfx_bert import beir, demo_data  # noqa: E402
from tfx_bert.retrieval import RetrieveThenRerank, Retriever  # noqa: E402
from tfx_bert.vector_store import VectorStore  # noqa: E402


def per_query_ms(search, queries: list[str]) -> list[float]:
    out = []
    for query in queries:
        start = time.perf_counter()
        search(query)
        out.append((time.perf_counter() - start) * 1000)
    return out


def build_store(path: str, model_dir: str, corpus: dict) -> VectorStore:
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    embed = tf.saved_model.load(model_dir).signatures["embed"]
    ids = sorted(corpus)
    vectors = np.concatenate([embed(text=tf.constant([corpus[d] for d in ids[i:i + 256]]))["embedding"].numpy()
                              for i in range(0, len(ids), 256)])
    store = VectorStore(path, "bench", dim=vectors.shape[1], index_type="FLAT")
    store.create()
    store.upsert(ids, vectors)
    store.mark_complete("bench", len(ids))
    return store


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--retrieval-model", required=True)
    parser.add_argument("--rerank-model", required=True)
    parser.add_argument("--data", default="")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data or os.path.join(tmp, "retrieval")
        if not args.data:
            demo_data.write_retrieval_dataset(data_dir)
        data = beir.read_beir(data_dir, "dev")
        queries = [data.queries[q] for q in sorted(data.queries)][:args.queries]
        store = build_store(os.path.join(tmp, "milvus.db"), args.retrieval_model, data.corpus)
        retriever = Retriever.from_saved_model(args.retrieval_model, store)
        scorer = RetrieveThenRerank.saved_model_scorer(args.rerank_model)
        searches = {"retrieval alone, top 10": lambda q: retriever.retrieve([q], 10)}
        for k in (20, 50):
            searches[f"retrieve {k} + rerank"] = (
                lambda q, r=RetrieveThenRerank(retriever, scorer, data.corpus, k=k): r.search([q], 10))
        for search in searches.values():  # warm up: the first calls trace the signatures
            for query in queries[:3]:
                search(query)
        rounds = {name: [] for name in searches}
        for _ in range(args.repeats):
            for name, search in searches.items():
                rounds[name].append(per_query_ms(search, queries))
        store.close()
    print(f"{len(data.corpus)} documents, {len(queries)} queries one at a time, {args.repeats} rounds (2 cores)")
    base = statistics.median(statistics.median(r) for r in rounds["retrieval alone, top 10"])
    for name, per_round in rounds.items():
        p50 = statistics.median(statistics.median(r) for r in per_round)
        p99 = statistics.median(sorted(r)[int(0.99 * (len(r) - 1))] for r in per_round)
        print(f"  {name:26s} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   {p50 / base:5.2f}x retrieval alone")


if __name__ == "__main__":
    main()
