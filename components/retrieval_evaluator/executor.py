"""RetrievalEvaluator executor: retrieval quality over a whole corpus -> a ModelBlessing.

TFMA evaluates one example at a time; retrieval quality needs every query ranked against the
whole corpus. This evaluator:

1. reads a BEIR-layout eval set (corpus.jsonl, queries.jsonl, qrels; bad records counted);
2. embeds the corpus with the candidate's ``embed`` signature through Beam (the VectorIndexer's
   steps: it scales out the same way) and the queries with ``embed_query`` (``embed`` for a
   model without one);
3. ranks the corpus for every query by exact inner product (the embeddings are normalised:
   cosine), top ``max(k)``, and computes Recall@k, MRR@10 and nDCG@10 with the TREC
   definitions (``tfx_bert.retrieval_metrics``);
4. does the same for the baseline (the latest blessed model) when there is one, and for the
   pretrained ``encoder``'s zero-shot embeddings (``models/embedder.py``: its own pooling for a
   sentence-transformers import, else mean, normalised) when given, and blesses the candidate
   when ``gate_metric`` is at least ``threshold``, not below the baseline's and above the
   zero-shot encoder's (fine-tuning that does not beat the encoder it started from is not
   shipped), like TFMA's value and change thresholds;
5. reports BM25 over the same corpus (``tfx_bert.lexical``) and the hybrid of BM25 and the
   candidate's ranking (reciprocal rank fusion) beside them: the lexical baseline a dense
   retriever has to beat, and what fusing the two gains.

With ``min_retention`` (a distillation's StudentEvaluator: the candidate is a student, the
baseline its teacher) the gate is relative instead: blessed when ``gate_metric`` is at least
``min_retention`` times the teacher's, as TFMA's relative change threshold gates the other
tasks' students.

Outputs follow TFX's Evaluator: ``evaluation`` (``metrics.json``) and ``blessing`` (a
``BLESSED`` / ``NOT_BLESSED`` file and the ``blessed``, ``current_model_id`` and
``baseline_model_id`` custom properties the Pusher and LatestBlessedModelStrategy read).
"""
from __future__ import annotations

import collections
import os
import time

import numpy as np
import tensorflow as tf
from tfx.components.evaluator import constants
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from tfx_bert_app.components import beam_utils
from tfx_bert.corpus_embedding import embed_corpus, read_shards, serving_dir
from tfx_bert import beir, lexical, retrieval_metrics
from tfx_bert.retrieval import embed_in_batches, reciprocal_rank_fusion

DATA_DIR, QRELS, GATE_METRIC, THRESHOLD, BATCH_SIZE = "data_dir", "qrels", "gate_metric", "threshold", "batch_size"
MIN_RETENTION = "min_retention"
MAX_REGRESSION = "max_regression"
RECALL_KS = (1, 10, 100)
METRICS_FILE = "metrics.json"


def exact_top_k(query_vectors: np.ndarray, doc_vectors: np.ndarray, doc_ids: list, k: int,
                chunk: int = 1024) -> list[dict]:
    """{doc id: score} of the ``k`` best documents per query by inner product (exact search)."""
    k = min(k, len(doc_ids))
    runs = []
    for start in range(0, len(query_vectors), chunk):
        scores = query_vectors[start:start + chunk] @ doc_vectors.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        for row, columns in zip(scores, top):
            runs.append({doc_ids[c]: float(row[c]) for c in columns})
    return runs


def embed_queries(model_dir: str, texts: list[str], batch_size: int = 64) -> np.ndarray:
    import tensorflow_text  # noqa: F401  (the tokenizer ops in the SavedModel)

    signatures = tf.saved_model.load(model_dir).signatures
    embed = signatures["embed_query"] if "embed_query" in signatures else signatures["embed"]
    return embed_in_batches(embed, texts, batch_size)


def lexical_baselines(data: beir.RetrievalData, dense_runs: dict) -> dict:
    """{"bm25": metrics, "hybrid": metrics}: BM25 over the same corpus, and BM25 fused with the
    candidate's dense ranking (reciprocal rank fusion), for the same queries and cut-offs."""
    query_ids = sorted(data.qrels)
    depth = max(RECALL_KS)
    bm25 = dict(zip(query_ids, lexical.BM25Index.build(data.corpus).search([data.queries[q] for q in query_ids],
                                                                            depth)))
    hybrid = {q: reciprocal_rank_fusion([sorted(dense_runs[q].items(), key=lambda item: -item[1]), bm25[q]])[:depth]
              for q in query_ids}
    return {name: retrieval_metrics.evaluate({q: dict(ranking) for q, ranking in runs.items()}, data.qrels,
                                             recall_ks=RECALL_KS)
            for name, runs in (("bm25", bm25), ("hybrid", hybrid))}


def verdict(value: float, threshold: float, baseline: float | None, zero_shot: float | None,
            min_retention: float = 0.0, max_regression: float = 0.0) -> bool:
    """Blessed: at least ``threshold``, at most ``max_regression`` below the baseline's, above the
    zero-shot encoder's;
    or, with ``min_retention`` (a student against its teacher, the baseline), at least that share
    of the teacher's."""
    if min_retention:
        if baseline is None:
            raise ValueError("min_retention gates a student against its teacher: the baseline_model (the teacher) "
                             "is missing.")
        return value >= min_retention * baseline - 1e-10
    return value >= threshold and (baseline is None or value >= baseline - max_regression - 1e-10) and (
        zero_shot is None or value > zero_shot)


class Executor(base_beam_executor.BaseBeamExecutor):
    def _runs(self, model_dir: str, data: beir.RetrievalData, work_dir: str, batch_size: int) -> dict:
        """{query id: {doc id: score}}: the top ``max(RECALL_KS)`` documents by exact cosine."""
        pipeline = self._make_beam_pipeline()
        embed_corpus(pipeline, data.corpus, model_dir, work_dir, batch_size)
        beam_utils.run_and_wait(pipeline)
        ids, vectors = [], []
        for shard_ids, shard_vectors in read_shards(os.path.join(work_dir, "part*")):
            ids.extend(shard_ids)
            vectors.append(shard_vectors)
        query_ids = sorted(data.qrels)
        query_vectors = embed_queries(model_dir, [data.queries[q] for q in query_ids])
        return dict(zip(query_ids, exact_top_k(query_vectors, np.concatenate(vectors), ids, max(RECALL_KS))))

    def _evaluate(self, model_dir: str, data: beir.RetrievalData, work_dir: str, batch_size: int) -> dict:
        return retrieval_metrics.evaluate(self._runs(model_dir, data, work_dir, batch_size), data.qrels,
                                          recall_ks=RECALL_KS)

    def _zero_shot(self, encoders, data: beir.RetrievalData, evaluation_uri: str, batch_size: int) -> dict | None:
        """The metrics of the pretrained encoder's zero-shot embedding model, or None."""
        if not encoders:
            return None
        from tfx_bert_app.models import embedder
        from tfx_bert_app.models import encoder as encoder_lib

        encoder_dir = encoder_lib.resolve_dir(os.path.join(encoders[0].uri, "Format-Serving"))
        model_dir = os.path.join(evaluation_uri, "zero_shot_model")
        embedder.export_embedder(encoder_dir, model_dir, embedder.embedder_settings(encoder_dir))
        return self._evaluate(model_dir, data, os.path.join(evaluation_uri, "zero_shot"), batch_size)

    def Do(self, input_dict, output_dict, exec_properties):
        props = dict(exec_properties)
        counts = collections.Counter()
        qrels_path = os.path.join(props[DATA_DIR], props[QRELS])
        data = beir.read_beir(props[DATA_DIR], counters=counts, qrels_path=qrels_path)
        if not data.qrels:
            raise ValueError(f"{qrels_path}: no judged queries to evaluate (skipped: {dict(counts)}).")
        model = artifact_utils.get_single_instance(input_dict["model"])
        evaluation = artifact_utils.get_single_instance(output_dict["evaluation"])
        blessing = artifact_utils.get_single_instance(output_dict["blessing"])
        batch_size, gate = int(props.get(BATCH_SIZE) or 64), props[GATE_METRIC]
        started = time.time()
        print(f"  [evaluate] retrieval of {len(data.qrels)} queries over {len(data.corpus)} documents", flush=True)
        candidate_runs = self._runs(serving_dir(model), data, os.path.join(evaluation.uri, "candidate"), batch_size)
        metrics = retrieval_metrics.evaluate(candidate_runs, data.qrels, recall_ks=RECALL_KS)
        lexical_metrics = lexical_baselines(data, candidate_runs)
        if gate not in metrics:
            raise ValueError(f"gate_metric {gate!r} is not one of {sorted(metrics)}.")
        baseline_artifacts = input_dict.get("baseline_model") or []
        baseline = baseline_artifacts[0] if baseline_artifacts else None
        baseline_metrics = (self._evaluate(serving_dir(baseline), data, os.path.join(evaluation.uri, "baseline"),
                                           batch_size) if baseline is not None else None)
        zero_shot = self._zero_shot(input_dict.get("encoder"), data, evaluation.uri, batch_size)
        min_retention = float(props.get(MIN_RETENTION) or 0.0)
        passed = verdict(metrics[gate], float(props[THRESHOLD]), baseline_metrics and baseline_metrics[gate],
                         zero_shot and zero_shot[gate], min_retention,
                         float(props.get(MAX_REGRESSION) or 0.0))
        retention = ({"min_retention": min_retention, "retention": metrics[gate] / baseline_metrics[gate]
                      if baseline_metrics[gate] else float("nan")} if min_retention else {})
        report = {"gate_metric": gate, "threshold": float(props[THRESHOLD]), "blessed": passed, **retention,
                  "candidate": metrics, "baseline": baseline_metrics, "zero_shot": zero_shot, **lexical_metrics,
                  "queries": len(data.qrels),
                  "documents": len(data.corpus), "counts": dict(counts), "seconds": round(time.time() - started, 2)}
        beam_utils.write_json(evaluation.uri, METRICS_FILE, report)
        blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
        if baseline is not None:
            blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline.uri)
            blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, baseline.id)
        marker = constants.BLESSED_FILE_NAME if passed else constants.NOT_BLESSED_FILE_NAME
        tf.io.gfile.makedirs(blessing.uri)
        with tf.io.gfile.GFile(os.path.join(blessing.uri, marker), "w") as f:
            f.write("")
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY,
                                         constants.BLESSED_VALUE if passed else constants.NOT_BLESSED_VALUE)
        shown = ", ".join(f"{k}={v:.3f}" for k, v in metrics.items())
        against = (f" (baseline {gate}={baseline_metrics[gate]:.3f})" if baseline_metrics else "") + (
            f" and > zero-shot encoder {gate}={zero_shot[gate]:.3f}" if zero_shot else "")
        if min_retention:
            against = (f" x teacher's ({baseline_metrics[gate]:.3f}): retention {retention['retention']:.1%} "
                       f"against {min_retention:.0%}")
        print(f"  [evaluate] BM25 {gate}={lexical_metrics['bm25'][gate]:.3f}, hybrid (dense + BM25, reciprocal rank "
              f"fusion) {gate}={lexical_metrics['hybrid'][gate]:.3f}", flush=True)
        bar = f"{min_retention}" if min_retention else f"{float(props[THRESHOLD])}"
        print(f"  [evaluate] {shown}; {gate} >= {bar}{against}: "
              f"{'BLESSED' if passed else 'NOT blessed'}", flush=True)
