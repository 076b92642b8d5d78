"""VectorIndexer: a BEIR corpus embedded with Beam into Milvus Lite, idempotently; the query
path finds documents; ranking metrics over it."""
import json
import os

import keras_hub
import numpy as np
import pytest
from tfx.types import standard_artifacts

from tests.helpers import new_artifact, run_executor
from tfx_bert import retrieval_metrics, tokenization
from tfx_bert.retrieval import Retriever
from tfx_bert.vector_store import VectorStore
from tfx_bert_app.components.vector_indexer import executor as ex
from tfx_bert_app.components.vector_indexer.component import VectorIndex
from tfx_bert_app.models import keras_layers
from tfx_bert_app.models import similarity

WORDS = "the warm fresh soup bread chef bakes boils oven rocket moon orbits star sailor boat sea . a".split()


@pytest.fixture(scope="module")
def bi_encoder(tmp_path_factory):
    tokenizer = tokenization.WordPieceTokenizer(tokenization.reserved_tokens() + WORDS)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=tokenizer.vocabulary_size, num_layers=1, num_heads=2,
                                             hidden_dim=16, intermediate_dim=32, max_sequence_length=16)
    encoder = keras_layers.build_sentence_encoder(backbone, "mean")
    model_dir = tmp_path_factory.mktemp("model")
    similarity.export_bi_encoder(similarity.build_pair_model(encoder, "cosine"), encoder,
                                 str(model_dir / "Format-Serving"), tokenizer, 16, "cosine")
    return str(model_dir)


def _corpus(path):
    docs = [{"_id": f"d{i}", "title": "", "text": " ".join(np.random.default_rng(i).choice(WORDS[:-2], 6))}
            for i in range(40)]
    docs.append({"_id": "d3", "text": "a duplicate id"})
    docs.append({"_id": "empty", "text": ""})
    path.write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    return {d["_id"]: d["text"] for d in docs[:40]}


def _index(tmp_path, bi_encoder, corpus_path, store_uri, name):
    model = new_artifact(standard_artifacts.Model, bi_encoder)
    model.uri = bi_encoder
    index = new_artifact(VectorIndex, tmp_path / name)
    props = {ex.CORPUS_PATH: str(corpus_path), ex.CORPUS_FORMAT: "beir", ex.STORE_URI: store_uri,
             ex.COLLECTION: "docs", ex.INDEX_TYPE: "FLAT", ex.BATCH_SIZE: 8, ex.STRICT: 0}
    run_executor(ex.Executor, {"model": [model]}, {"index": [index]}, props, str(tmp_path / "tmp" / name))
    return json.load(open(os.path.join(index.uri, "index_report.json")))


@pytest.mark.slow  # Beam embedding into Milvus Lite, twice: about 25 s
def test_index_is_idempotent_complete_and_searchable(tmp_path, bi_encoder):
    corpus = _corpus(tmp_path / "corpus.jsonl")
    store_uri = str(tmp_path / "vectors" / "milvus.db")
    first = _index(tmp_path, bi_encoder, tmp_path / "corpus.jsonl", store_uri, "first")
    assert first["documents"] == 40 and first["collection_count"] == 40
    assert first["counts"]["skipped_duplicate_doc_id"] == 1 and first["counts"]["skipped_empty_doc"] == 1
    assert first["counts"]["embedded"] == 40
    second = _index(tmp_path, bi_encoder, tmp_path / "corpus.jsonl", store_uri, "second")  # a rerun
    assert second["collection_count"] == 40 and second["fingerprint"] == first["fingerprint"]

    store = VectorStore(store_uri, "docs", 16, index_type="FLAT")
    assert store.completed()["count"] == 40
    retriever = Retriever.from_saved_model(os.path.join(bi_encoder, "Format-Serving"), store)
    queries = {f"q{i}": corpus[f"d{i}"] for i in range(0, 40, 4)}
    hits = retriever.retrieve(list(queries.values()), k=10)
    run = {q: dict(row) for q, row in zip(queries, hits)}
    qrels = {q: {f"d{q[1:]}": 1} for q in queries}
    # A document's own text embeds to the same vector: found first (unless an identical text ties).
    assert retrieval_metrics.evaluate(run, qrels, recall_ks=(10,))["recall@10"] == 1.0
    with pytest.raises(ValueError, match="Query 0 is empty"):
        retriever.retrieve(["  "])
    store.close()
    import contextlib
    import io

    from tfx_bert import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["retrieve", "--store-uri", store_uri, "--collection", "docs", "--model-dir",
                         os.path.join(bi_encoder, "Format-Serving"), "--k", "3", corpus["d4"]]) == 0
    assert json.loads(out.getvalue().strip().splitlines()[-1])["hits"][0]["id"] == "d4"
    store = VectorStore(store_uri, "docs")  # an existing collection, opened as it is
    assert (store.dim, store.index_type) == (16, "FLAT")
    store.clear_complete()
    with pytest.raises(RuntimeError, match="not completely indexed"):
        Retriever.from_saved_model(os.path.join(bi_encoder, "Format-Serving"), store)
    store.close()
