"""VectorIndexer executor: a corpus -> embeddings (Beam) -> the vector store (idempotent).

1. Beam reads the corpus (BEIR ``corpus.jsonl`` or MS MARCO ``collection.tsv``; duplicate ids,
   empty texts and malformed lines are skipped and counted), batches documents, embeds each
   batch with the model's ``embed`` signature (raw text in: the training tokenizer is inside the
   SavedModel) and writes (id, embedding) shards into the output artifact. This part scales
   out: every worker loads the SavedModel once.
2. One writer upserts the shards into the store by document id, then records the corpus
   fingerprint and count as complete. Milvus Lite is one local file that one process writes,
   hence the single writer; rerunning after an interruption rewrites the same ids (no
   duplicates) and completes the manifest.
"""
from __future__ import annotations

import hashlib
import os
import time

import apache_beam as beam
import numpy as np
import tensorflow as tf
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from components import beam_utils
from tfx_bert import beir
from tfx_bert.vector_store import VectorStore

NAMESPACE = "tfx_bert.vector_indexer"
CORPUS_PATH, CORPUS_FORMAT = "corpus_path", "corpus_format"
STORE_URI, COLLECTION, INDEX_TYPE = "store_uri", "collection", "index_type"
BATCH_SIZE, STRICT = "batch_size", "strict"
FORMATS = ("beir", "msmarco")
SHARDS = "embeddings"


def read_corpus(path: str, corpus_format: str, strict: bool) -> tuple[dict, dict]:
    """(doc id -> text, counters) of a BEIR corpus.jsonl or an MS MARCO collection.tsv."""
    import collections

    counters = collections.Counter()
    reader = beir._Reader(counters, strict)
    if corpus_format == "beir":
        rows = reader.jsonl(path, ("title", "text"))
    else:
        rows = ((n, *line.partition("\t")[::2]) for n, line in reader.lines(path) if line.strip())
    corpus = reader.texts(((n, str(k).strip(), str(t).strip()) for n, k, t in rows), path, "doc")
    return corpus, counters


def corpus_fingerprint(corpus: dict) -> str:
    digest = hashlib.sha256()
    for doc_id in sorted(corpus):
        digest.update(f"{doc_id}\0{corpus[doc_id]}\n".encode())
    return digest.hexdigest()


class _Embed(beam.DoFn):
    def __init__(self, model_dir: str, signature: str = "embed"):
        self._model_dir, self._signature = model_dir, signature

    def setup(self):
        import tensorflow_text  # noqa: F401  (the tokenizer ops in the SavedModel)

        model = tf.saved_model.load(self._model_dir)
        if self._signature not in model.signatures:
            raise ValueError(f"{self._model_dir} has no {self._signature!r} signature (text -> embedding); index "
                             f"with a similarity / retrieval model (signatures: {sorted(model.signatures)}).")
        self._embed = model.signatures[self._signature]

    def process(self, batch):
        ids = [doc_id for doc_id, _ in batch]
        vectors = self._embed(text=tf.constant([text for _, text in batch]))["embedding"].numpy()
        beam_utils.counter(NAMESPACE, "embedded").inc(len(ids))
        example = tf.train.Example()
        example.features.feature["ids"].bytes_list.value.extend(i.encode() for i in ids)
        example.features.feature["vectors"].float_list.value.extend(vectors.reshape(-1).tolist())
        example.features.feature["dim"].int64_list.value.append(vectors.shape[1])
        yield example.SerializeToString()


def read_shards(pattern: str):
    """(ids, vectors [n, dim]) of every shard the Beam step wrote."""
    for path in sorted(tf.io.gfile.glob(pattern)):
        for record in tf.data.TFRecordDataset(path):
            feature = tf.train.Example.FromString(record.numpy()).features.feature
            ids = [i.decode() for i in feature["ids"].bytes_list.value]
            dim = feature["dim"].int64_list.value[0]
            yield ids, np.array(feature["vectors"].float_list.value, np.float32).reshape(-1, dim)


def serving_dir(model_artifact) -> str:
    """A Model artifact's SavedModel directory (``<uri>/Format-Serving``, or the uri itself)."""
    model_dir = os.path.join(model_artifact.uri, "Format-Serving")
    return model_dir if tf.io.gfile.exists(model_dir) else model_artifact.uri


def embed_corpus(pipeline, corpus: dict, model_dir: str, shards_dir: str, batch_size: int, signature: str = "embed"):
    """Adds the Beam steps that embed ``corpus`` (id -> text) in batches with the model's
    ``signature`` and write (ids, vectors) shards under ``shards_dir`` (``read_shards`` reads
    them back). Every worker loads the SavedModel once."""
    return (pipeline
            | f"Documents[{signature}]" >> beam.Create(sorted(corpus.items()))
            | f"Batch[{signature}]" >> beam.BatchElements(min_batch_size=batch_size, max_batch_size=batch_size)
            | f"Embed[{signature}]" >> beam.ParDo(_Embed(model_dir, signature))
            | f"Write[{signature}]" >> beam.io.WriteToTFRecord(os.path.join(shards_dir, "part")))


class Executor(base_beam_executor.BaseBeamExecutor):
    def Do(self, input_dict, output_dict, exec_properties):
        props = dict(exec_properties)
        if props[CORPUS_FORMAT] not in FORMATS:
            raise ValueError(f"corpus_format {props[CORPUS_FORMAT]!r} is not one of {FORMATS}.")
        model = artifact_utils.get_single_instance(input_dict["model"])
        model_dir = serving_dir(model)
        index = artifact_utils.get_single_instance(output_dict["index"])
        blessing = input_dict.get("model_blessing")
        if blessing and not artifact_utils.get_single_instance(blessing).get_int_custom_property("blessed"):
            print("  [index] the model is not blessed: the store is left as it is", flush=True)
            index.set_int_custom_property("documents", 0)
            beam_utils.write_json(index.uri, "index_report.json", {"skipped": "model not blessed"})
            return
        started = time.time()
        corpus, counts = read_corpus(props[CORPUS_PATH], props[CORPUS_FORMAT], bool(props[STRICT]))
        if not corpus:
            raise ValueError(f"{props[CORPUS_PATH]}: no documents to index; skipped: {dict(counts)}.")
        print(f"  [index] embedding {len(corpus)} documents with {model_dir}", flush=True)
        shards = os.path.join(index.uri, SHARDS)
        pipeline = self._make_beam_pipeline()
        embed_corpus(pipeline, corpus, model_dir, shards, int(props[BATCH_SIZE]))
        counts.update(beam_utils.read_counters(beam_utils.run_and_wait(pipeline), NAMESPACE))
        embed_seconds = time.time() - started

        store = None
        written = 0
        for ids, vectors in read_shards(os.path.join(shards, "part*")):
            if store is None:
                store = VectorStore(props[STORE_URI], props[COLLECTION], vectors.shape[1], index_type=props[INDEX_TYPE])
                store.create(expected_count=len(corpus))
                store.clear_complete()
            written += store.upsert(ids, vectors)
        fingerprint = corpus_fingerprint(corpus)
        store.mark_complete(fingerprint, written)
        total = store.count()
        store.close()
        report = {"corpus_path": props[CORPUS_PATH], "store_uri": props[STORE_URI], "collection": props[COLLECTION],
                  "index_type": props[INDEX_TYPE], "documents": written, "collection_count": total,
                  "counts": dict(counts), "embed_seconds": round(embed_seconds, 2),
                  "docs_per_second": round(written / max(embed_seconds, 1e-9), 1), "fingerprint": fingerprint}
        beam_utils.write_json(index.uri, "index_report.json", report)
        for key in ("store_uri", "collection", "index_type", "fingerprint"):
            index.set_string_custom_property(key, str(report[key]))
        index.set_int_custom_property("documents", written)
        print(f"  [index] {written} documents in {props[COLLECTION]!r} at {props[STORE_URI]} "
              f"({report['docs_per_second']} docs/s embedding); skipped: "
              f"{ {k: v for k, v in counts.items() if k.startswith('skipped')} }", flush=True)
