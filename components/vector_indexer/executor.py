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

import os
import time

from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from tfx_bert_app.components import beam_utils
from tfx_bert.corpus_embedding import corpus_fingerprint, embed_corpus, read_corpus, read_shards, serving_dir
from tfx_bert.vector_store import VectorStore

NAMESPACE = "tfx_bert.vector_indexer"
CORPUS_PATH, CORPUS_FORMAT = "corpus_path", "corpus_format"
STORE_URI, COLLECTION, INDEX_TYPE = "store_uri", "collection", "index_type"
BATCH_SIZE, STRICT = "batch_size", "strict"
FORMATS = ("beir", "msmarco")
SHARDS = "embeddings"


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
