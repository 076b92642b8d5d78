"""Corpus embedding throughput (docs/s) of the VectorIndexer's Beam step with 1 and 2 workers,
and retrieve-then-score latency per query (query embedding + vector search).

    .venv/bin/python benchmarks/index_throughput.py [--docs 4000] [--size tiny]

The encoder is a randomly initialised bi-encoder of the given size (throughput does not depend
on the weights) over the demo vocabulary, exported as the similarity task exports it (raw text
in). Documents are demo-corpus sentences. Medians of 3 runs each; the baseline is the same
step with one in-process worker. Indexing (upsert) time is reported apart from embedding.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
from tfx.dsl.components.base import base_beam_executor  # noqa: E402
from tfx.types import standard_artifacts  # noqa: E402

from tfx_bert_app.components.vector_indexer import executor as ex  # noqa: E402
from tfx_bert_app.components.vector_indexer.component import VectorIndex  # noqa: E402
from tfx_bert_app.models import keras_layers
from tfx_bert_app.models import similarity  # noqa: E402
from tfx_bert import demo_data, registry, tokenization  # noqa: E402
from tfx_bert.beam_options import direct_runner_args  # noqa: E402
from tfx_bert.retrieval import Retriever  # noqa: E402
from tfx_bert.vector_store import VectorStore  # noqa: E402

ONE = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
TWO = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=4000)
    parser.add_argument("--size", default="tiny")
    args = parser.parse_args()
    common.check_machine()
    import random

    rng = random.Random(0)
    topics = sorted(demo_data.TOPICS)
    docs = [" ".join(demo_data._sentence(rng, demo_data.TOPICS[rng.choice(topics)], rng.choice(demo_data.NAMES))
                     for _ in range(3)) for _ in range(args.docs)]
    words = sorted({w for d in docs for w in d.split()})
    tokenizer = tokenization.WordPieceTokenizer(tokenization.reserved_tokens() + words)
    size = registry.get_model_size(args.size)
    backbone = keras_hub.models.BertBackbone(**size.backbone_kwargs(tokenizer.vocabulary_size, dropout=0.1))
    encoder = keras_layers.build_sentence_encoder(backbone, "mean")
    with tempfile.TemporaryDirectory() as tmp:
        model = standard_artifacts.Model()
        model.uri = os.path.join(tmp, "model")
        similarity.export_bi_encoder(similarity.build_pair_model(encoder, "cosine"), encoder,
                                     os.path.join(model.uri, "Format-Serving"), tokenizer, 64, "cosine")
        with open(os.path.join(tmp, "corpus.jsonl"), "w") as f:
            for i, d in enumerate(docs):
                f.write(json.dumps({"_id": f"d{i}", "text": d}) + "\n")
        rates = {}
        for label, beam_args in (("1 worker (baseline)", ONE), ("2 workers", TWO)):
            runs = []
            for attempt in range(3):
                index = VectorIndex()
                index.uri = os.path.join(tmp, f"index-{len(rates)}-{attempt}")
                props = {ex.CORPUS_PATH: os.path.join(tmp, "corpus.jsonl"), ex.CORPUS_FORMAT: "beir",
                         ex.STORE_URI: os.path.join(tmp, "milvus.db"), ex.COLLECTION: "bench", ex.INDEX_TYPE: "IVF_FLAT",
                         ex.BATCH_SIZE: 64, ex.STRICT: 0}
                context = base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=direct_runner_args(beam_args),
                                                                      tmp_dir=os.path.join(tmp, "beam"))
                ex.Executor(context).Do({"model": [model]}, {"index": [index]}, props)
                with open(os.path.join(index.uri, "index_report.json")) as f:
                    runs.append(json.load(f)["docs_per_second"])
            rates[label] = statistics.median(runs)
        store = VectorStore(os.path.join(tmp, "milvus.db"), "bench")
        retriever = Retriever.from_saved_model(os.path.join(model.uri, "Format-Serving"), store)
        queries = docs[:200]
        retriever.retrieve(queries[:5], 10)
        latencies = []
        for q in queries:
            start = time.perf_counter()
            retriever.retrieve([q], 10)
            latencies.append(time.perf_counter() - start)
        store.close()
    base = rates["1 worker (baseline)"]
    print(f"{os.cpu_count()} CPUs; {args.docs} documents of 3 sentences; {args.size} encoder; median of 3 runs")
    for label, rate in rates.items():
        print(f"  embedding, {label:<20} {rate:8.0f} docs/s  ({rate / base:4.2f} x)")
    print(f"  query -> embedding -> top 10 (in process): p50 {np.percentile(latencies, 50) * 1e3:.2f} ms, "
          f"p99 {np.percentile(latencies, 99) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
