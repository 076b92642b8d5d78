"""A corpus's documents, read and embedded in Beam: what the VectorIndexer and the
RetrievalEvaluator share.

``read_corpus`` reads a BEIR ``corpus.jsonl`` or an MS MARCO ``collection.tsv`` (bad records
skipped and counted); ``embed_corpus`` adds the Beam steps that embed it with a SavedModel's
``embed`` signature into (ids, vectors) shards, which ``read_shards`` reads back.
"""
from __future__ import annotations

import hashlib
import os

import apache_beam as beam
import numpy as np
import tensorflow as tf

from tfx_bert import beir

NAMESPACE = "tfx_bert.vector_indexer"


def read_corpus(path: str, corpus_format: str, strict: bool) -> tuple[dict, dict]:
    """(doc id -> text, counters) of a BEIR corpus.jsonl or an MS MARCO collection.tsv."""
    import collections

    counters = collections.Counter()
    reader = beir.Reader(counters, strict)
    if corpus_format == "beir":
        rows = reader.documents(path, ("title", "text"))
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
        beam.metrics.Metrics.counter(NAMESPACE, "embedded").inc(len(ids))
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
