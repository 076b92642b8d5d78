"""tfx_bert_app.models.embedder and ``tfx-bert export-embedder``: a published encoder served as
a sentence-embedding model without fine-tuning, equal to what sentence-transformers computes,
served over gRPC and retrieving from a corpus indexed in Milvus Lite."""
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import PUBLISHED
from tfx_bert import cli
from tfx_bert.serving import op_check, server
from tfx_bert.serving.client import ServingClient



@pytest.fixture(scope="module")
def st_embedder(tmp_path_factory):
    output = str(tmp_path_factory.mktemp("embedder") / "st")
    assert cli.main(["export-embedder", "--encoder", os.path.join(PUBLISHED, "st_mean_normalize"),
                     "--output", output]) == 0
    return output


def test_a_sentence_transformers_model_embeds_raw_text_as_sentence_transformers_does(st_embedder, references):
    """Its own pooling (mean), normalisation and length (24) by default; the whole path from raw
    text (in-graph tokenizer, encoder, pooling) against ``SentenceTransformer.encode``."""
    settings = json.load(open(os.path.join(st_embedder, "assets.extra", "embedder.json")))
    assert (settings["pooling"], settings["normalize"], settings["max_seq_length"]) == ("mean", True, 24)
    assert op_check.unsupported_ops(st_embedder) == []
    embed = tf.saved_model.load(st_embedder).signatures["embed"]
    embeddings = embed(text=tf.constant(references["texts"]))["embedding"].numpy()
    assert np.abs(embeddings - np.array(references["st_mean_normalize"]["embeddings"])).max() < 1e-4


def test_overrides_for_any_encoder(tmp_path, references):
    """A Hugging Face BERT with [CLS] pooling, not normalised: the reference's [CLS] states."""
    output = str(tmp_path / "cls")
    assert cli.main(["export-embedder", "--encoder", os.path.join(PUBLISHED, "hf_uncased_gelu"), "--output", output,
                     "--pooling", "cls", "--no-normalize", "--max-seq-length", "24"]) == 0
    reference = references["hf_uncased_gelu"]
    embeddings = tf.saved_model.load(output).signatures["serving_default"](
        text=tf.constant(references["texts"]))["embedding"].numpy()
    assert np.abs(embeddings - np.array(reference["sequence_output"])[:, 0]).max() < 1e-4
    assert cli.main(["export-embedder", "--encoder", str(tmp_path), "--output", str(tmp_path / "x")]) == 2


@pytest.mark.slow  # a server and Milvus Lite
def test_served_and_indexed_it_retrieves(st_embedder, tmp_path):
    from tfx_bert.corpus_embedding import corpus_fingerprint
    from tfx_bert.retrieval import Retriever
    from tfx_bert.vector_store import VectorStore

    base = tmp_path / "serving" / "st"
    shutil.copytree(st_embedder, base / "1")
    running = server.start_server({"st": str(base)}, port=0)
    docs = {"d1": "the cat sat on the mat", "d2": "money in the river bank", "d3": "a very good movie",
            "d4": "hello world of dogs", "d5": "東京 and 中文 text"}
    try:
        with ServingClient(f"127.0.0.1:{running.port}") as client:
            served = client.embed("st", list(docs.values()))
            local = tf.saved_model.load(st_embedder).signatures["embed"](text=tf.constant(list(docs.values())))
            assert np.abs(served - local["embedding"].numpy()).max() < 1e-6
            store = VectorStore(str(tmp_path / "milvus.db"), "docs", dim=served.shape[1])
            store.create(expected_count=len(docs))
            store.upsert(list(docs), served)
            store.mark_complete(corpus_fingerprint(docs), len(docs))  # as the VectorIndexer finishes
            hits = Retriever.from_serving(client, "st", store).retrieve(list(docs.values()), k=2)
    finally:
        running.stop()
    assert [h[0][0] for h in hits] == list(docs)  # each text finds itself first
    assert all(h[0][1] == pytest.approx(1.0, abs=1e-4) for h in hits)
