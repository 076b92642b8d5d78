"""The dual encoder's second round: hard negatives mined by the model itself (ANCE, RocketQA;
sentence-transformers' ``mine_hard_negatives`` with a model).

After ``train_steps``, the trained towers embed the whole corpus and the training queries; each
query's ranking over the corpus (exact inner product, ``tfx_bert.mining.dense_miner``) gives its
negatives: positives dropped, ranks [``negative_rank_min``, ``negative_rank_max``) of the rest,
and with ``mining_margin`` set only candidates scoring below the query's weakest positive minus
the margin (probable false negatives out). Then ``mining_steps`` more steps train on them, the
in-batch negatives as before. Seeded like the first round, so a rerun mines the same negatives.

The data are the task's BEIR directory (``corpus.jsonl``, ``queries.jsonl``, the train qrels),
which BertTrainer passes as ``data_dir`` (a Kubeflow run parameter, like the ExampleGen's).
"""
from __future__ import annotations

import os
import time

import numpy as np
import tensorflow as tf

from tfx_bert_app.models import finetuning
from tfx_bert_app.models.retrieval import compile_dual_encoder, encode_examples
from tfx_bert import beir, mining
from tfx_bert.config import TASK_DATA_DIR


def embed(tower, tokenizer, texts: list[str], seq_len: int, batch_size: int = 256) -> np.ndarray:
    """Normalised embeddings of ``texts`` by one tower, in batches."""
    return np.concatenate([
        tf.math.l2_normalize(tower(dict(tokenizer.encode(tf.constant(texts[i:i + batch_size]), seq_len)),
                                   training=False), -1).numpy()
        for i in range(0, len(texts), batch_size)]) if texts else np.zeros((0, 0), np.float32)


def mine_pairs(data: beir.RetrievalData, towers, tokenizer, settings) -> tuple[list, dict]:
    """(training pairs with model-mined negatives, what mining did: counts and seconds)."""
    query_tower, doc_tower = towers
    started = time.time()
    doc_ids = sorted(data.corpus)
    doc_vectors = embed(doc_tower, tokenizer, [data.corpus[d] for d in doc_ids], settings.max_seq_length)
    rank, score = mining.dense_miner(
        doc_ids, doc_vectors, lambda texts: embed(query_tower, tokenizer, list(texts), settings.max_query_length))
    mined = mining.mine(data.queries, data.qrels, rank, score, mining.MiningSettings(
        num_negatives=settings.num_negatives, rank_min=settings.negative_rank_min,
        rank_max=settings.negative_rank_max, margin=settings.mining_margin))
    pairs = list(beir.training_pairs(data, settings.num_negatives, settings.negative_pool, mined))
    stats = {"mined_queries": len(mined), "short_queries": sum(len(n) < settings.num_negatives for n in mined.values()),
             "mining_seconds": round(time.time() - started, 1)}
    return pairs, stats


def pairs_dataset(pairs: list, tokenizer, settings, seed: int) -> tf.data.Dataset:
    """Training pairs -> the dual encoder's batches (inputs, in-batch labels), shuffled, repeated."""
    columns = (tf.constant([p.query for p in pairs]), tf.constant([p.text for p in pairs]),
               tf.constant([p.negatives for p in pairs]))
    ds = tf.data.Dataset.from_tensor_slices(columns).shuffle(len(pairs), seed=seed).repeat()
    ds = ds.batch(settings.batch_size, drop_remainder=True)  # every step the same number of negatives
    return ds.map(lambda q, t, n: ({k: tf.cast(v, tf.int32) for k, v in encode_examples(tokenizer, settings, q, t, n).items()},
                                   tf.range(tf.shape(q)[0]))).prefetch(tf.data.AUTOTUNE)


def train_on_mined_negatives(fn_args, settings, model, towers, tokenizer, eval_dataset) -> dict:
    """Mines with ``towers`` (query, document), trains ``model`` ``settings.mining_steps`` more
    steps on the result; returns the round's metrics (the mining counts among them)."""
    data_dir = (fn_args.custom_config or {}).get(TASK_DATA_DIR)
    if not data_dir:
        raise ValueError("finetune.mining_steps needs the task's BEIR directory (BertTrainer's data_dir); "
                         "this Trainer was built without it.")
    data = beir.read_beir(data_dir, qrels_path=os.path.join(data_dir, settings.train_pattern))
    pairs, stats = mine_pairs(data, towers, tokenizer, settings)
    print(f"  [mine] {stats['mined_queries']} training queries ranked {len(data.corpus)} documents with the trained "
          f"model in {stats['mining_seconds']} s; negatives from ranks {settings.negative_rank_min}-"
          f"{settings.negative_rank_max} ({stats['short_queries']} queries filled from the sample); "
          f"{settings.mining_steps} more steps", flush=True)
    compile_dual_encoder(model, settings, settings.mining_steps)
    metrics = finetuning.fit(model, fn_args, pairs_dataset(pairs, tokenizer, settings, settings.seed), eval_dataset,
                             steps=settings.mining_steps)
    return {**metrics, **{k: float(v) for k, v in stats.items()}}
