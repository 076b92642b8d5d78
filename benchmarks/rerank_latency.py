"""Retrieve-then-rerank latency per query: query embedding -> top-k from the vector store ->
cross-encoder scores for the k candidates -> re-ordered, against retrieval alone (the baseline,
same run).

    .venv/bin/python benchmarks/rerank_latency.py [--size tiny] [--queries 100]

The corpus is the demo retrieval set (600 documents of 3 sentences, Milvus Lite, FLAT). The
models are randomly initialised at the given size (latency does not depend on the weights) and
exported as the retrieval and rerank tasks export them (raw text in); the cross-encoder twice,
plain and with the exact-match cue (``finetune.exact_match``, the default). One query at a time,
in process; p50 / p99 over the queries after a warm-up.
"""
import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfx_bert_app.models import rerank, retrieval  # noqa: E402
from tfx_bert_app.models.keras_layers import build_sentence_encoder  # noqa: E402
from tfx_bert import beir, demo_data, registry, tokenization  # noqa: E402
from tfx_bert.retrieval import RetrieveThenRerank, Retriever  # noqa: E402
from tfx_bert.vector_store import VectorStore  # noqa: E402


def _percentiles(latencies):
    return np.percentile(latencies, 50) * 1e3, np.percentile(latencies, 99) * 1e3


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--candidates", type=int, nargs="+", default=[10, 20, 50])
    args = parser.parse_args()
    common.check_machine()
    with tempfile.TemporaryDirectory() as tmp:
        demo_data.write_retrieval_dataset(os.path.join(tmp, "data"))
        data = beir.read_beir(os.path.join(tmp, "data"), "train")
        words = sorted({w for text in list(data.corpus.values()) + list(data.queries.values()) for w in text.split()})
        tokenizer = tokenization.WordPieceTokenizer(tokenization.reserved_tokens() + words)
        size = registry.get_model_size(args.size)
        make_backbone = lambda: keras_hub.models.BertBackbone(**size.backbone_kwargs(tokenizer.vocabulary_size))  # noqa: E731
        tower = build_sentence_encoder(make_backbone(), "mean")
        retrieval.export_dual_encoder(tower, tower, os.path.join(tmp, "dual"), tokenizer, 64, 16)
        variants = {"plain": None, "exact match": rerank.special_ids(tokenizer)}
        for name, ignored in variants.items():
            rerank.export_cross_encoder(rerank.build_cross_encoder(make_backbone(), exact_match_ignored=ignored),
                                        os.path.join(tmp, name), tokenizer, 64)
        embed = tf.saved_model.load(os.path.join(tmp, "dual")).signatures["embed"]
        ids = sorted(data.corpus)
        vectors = np.concatenate([embed(text=tf.constant([data.corpus[d] for d in ids[i:i + 64]]))["embedding"].numpy()
                                  for i in range(0, len(ids), 64)])
        store = VectorStore(os.path.join(tmp, "milvus.db"), "bench", dim=vectors.shape[1], index_type="FLAT")
        store.create()
        store.upsert(ids, vectors)
        store.mark_complete("bench", len(ids))
        retriever = Retriever.from_saved_model(os.path.join(tmp, "dual"), store)
        scorers = {name: RetrieveThenRerank.saved_model_scorer(os.path.join(tmp, name)) for name in variants}
        queries = [data.queries[q] for q in sorted(data.queries)][:args.queries]
        rows = {}
        for k, name in [(0, "")] + [(k, name) for k in args.candidates for name in variants]:
            search = (lambda q: retriever.retrieve([q], 10)) if k == 0 else \
                RetrieveThenRerank(retriever, scorers[name], data.corpus, k=k).search
            for q in queries[:5]:
                search([q]) if k else search(q)  # warm-up (graph tracing for the shapes)
            latencies = []
            for q in queries:
                start = time.perf_counter()
                search([q]) if k else search(q)
                latencies.append(time.perf_counter() - start)
            rows[k, name] = _percentiles(latencies)
        store.close()
    base = rows[0, ""][0]
    print(f"{os.cpu_count()} CPUs; {len(ids)} documents; {args.size} models; {len(queries)} queries one at a time")
    print(f"  retrieve top 10 (baseline):                      p50 {base:7.2f} ms  p99 {rows[0, ''][1]:7.2f} ms  (1.00 x)")
    for (k, name), (p50, p99) in rows.items():
        if k:
            print(f"  retrieve {k:3d} + rerank ({name:11}) -> top 10:  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  "
                  f"({p50 / base:5.2f} x)")


if __name__ == "__main__":
    main()
