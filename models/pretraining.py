"""BERT pretraining (MLM + NSP): model, tf.data input with dynamic masking, and the Trainer
``run_fn``.

The model is keras-hub's ``BertBackbone`` with a ``MaskedLMHead`` whose output projection is
tied to the token embedding matrix (plus an output bias), and an NSP head on the pooled
``[CLS]`` output.
"""
from __future__ import annotations

import json
import os
import time

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from components.pretraining_data import executor as pretraining_data
from models import encoder as encoder_lib
from models import optimization
from tfx_bert import features, registry

MLM, NSP = "mlm", "nsp"


def build_pretraining_model(backbone) -> keras.Model:
    """Backbone + tied MLM head + NSP head.

    Inputs: token_ids, segment_ids, padding_mask [batch, seq]; mask_positions [batch, preds].
    Outputs: {"mlm": logits [batch, preds, vocab], "nsp": logits [batch, 2]}.
    """
    inputs = {
        features.TOKEN_IDS: keras.Input((None,), dtype="int32", name=features.TOKEN_IDS),
        features.SEGMENT_IDS: keras.Input((None,), dtype="int32", name=features.SEGMENT_IDS),
        features.PADDING_MASK: keras.Input((None,), dtype="int32", name=features.PADDING_MASK),
        features.MASK_POSITIONS: keras.Input((None,), dtype="int32", name=features.MASK_POSITIONS),
    }
    outputs = backbone({k: inputs[k] for k in features.MODEL_INPUT_KEYS})
    mlm_logits = keras_hub.layers.MaskedLMHead(
        vocabulary_size=backbone.vocabulary_size,
        token_embedding=backbone.token_embedding,
        intermediate_activation="gelu",
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        name=MLM,
    )(outputs["sequence_output"], mask_positions=inputs[features.MASK_POSITIONS])
    nsp_logits = keras.layers.Dense(
        2, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02), name=NSP
    )(outputs["pooled_output"])
    return keras.Model(inputs, {MLM: mlm_logits, NSP: nsp_logits}, name="bert_pretraining")


def make_dataset(file_pattern, metadata: dict, batch_size: int, max_predictions: int,
                 masked_lm_prob: float, seed: int, repeat: bool = True) -> tf.data.Dataset:
    """Instances -> dynamically masked, padded batches of (inputs, labels, sample_weights)."""
    ids = metadata["special_ids"]
    seq_len = int(metadata["max_seq_length"])
    masker = keras_hub.layers.MaskedLMMaskGenerator(
        vocabulary_size=int(metadata["vocab_size"]),
        mask_selection_rate=masked_lm_prob,
        mask_token_id=ids["mask"],
        mask_selection_length=max_predictions,
        unselectable_token_ids=[ids["pad"], ids["cls"], ids["sep"]],
        mask_token_rate=0.8,
        random_token_rate=0.1,
    )
    spec = {
        features.TOKEN_IDS: tf.io.RaggedFeature(tf.int64),
        features.SEGMENT_IDS: tf.io.RaggedFeature(tf.int64),
        features.NEXT_SENTENCE_LABEL: tf.io.FixedLenFeature([], tf.int64),
    }
    files = tf.data.Dataset.list_files(file_pattern, shuffle=repeat, seed=seed)
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP", num_parallel_reads=tf.data.AUTOTUNE)
    if repeat:
        ds = ds.shuffle(10_000, seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(batch_size, drop_remainder=repeat)
    ds = ds.map(lambda records: tf.io.parse_example(records, spec), num_parallel_calls=tf.data.AUTOTUNE)

    def mask(batch):
        token_ids = tf.cast(batch[features.TOKEN_IDS], tf.int32)
        masked = masker(token_ids)
        x = {
            features.TOKEN_IDS: masked["token_ids"].to_tensor(ids["pad"], shape=[None, seq_len]),
            features.SEGMENT_IDS: tf.cast(batch[features.SEGMENT_IDS], tf.int32).to_tensor(0, shape=[None, seq_len]),
            features.PADDING_MASK: tf.cast(token_ids.to_tensor(ids["pad"], shape=[None, seq_len]) != ids["pad"], tf.int32),
            features.MASK_POSITIONS: tf.cast(masked["mask_positions"], tf.int32),
        }
        y = {MLM: tf.cast(masked["mask_ids"], tf.int32), NSP: tf.cast(batch[features.NEXT_SENTENCE_LABEL], tf.int32)}
        sw = {MLM: tf.cast(masked["mask_weights"], tf.float32), NSP: tf.ones_like(y[NSP], tf.float32)}
        return x, y, sw

    return ds.map(mask, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def majority_baselines(dataset: tf.data.Dataset, steps: int) -> dict:
    """Accuracy of always predicting the most frequent masked token (MLM) and the most frequent
    NSP label: the bars the model must beat, measured on the same evaluation batches."""
    mlm_counts: dict[int, float] = {}
    nsp_counts = np.zeros(2)
    for _, y, sw in dataset.take(steps):
        labels, weights = y[MLM].numpy().ravel(), sw[MLM].numpy().ravel()
        for label, weight in zip(labels[weights > 0], weights[weights > 0]):
            mlm_counts[int(label)] = mlm_counts.get(int(label), 0.0) + float(weight)
        nsp_counts += np.bincount(y[NSP].numpy().ravel(), minlength=2)[:2]
    mlm_total = sum(mlm_counts.values())
    return {
        "mlm_unigram_baseline_accuracy": max(mlm_counts.values()) / mlm_total if mlm_total else 0.0,
        "nsp_majority_baseline_accuracy": float(nsp_counts.max() / max(nsp_counts.sum(), 1)),
    }


class ThroughputLogger(keras.callbacks.Callback):
    """Logs examples/s and the learning rate to TensorBoard and prints progress."""

    def __init__(self, log_dir: str, batch_size: int, seq_len: int, total_steps: int, every: int = 50):
        super().__init__()
        self._writer = tf.summary.create_file_writer(os.path.join(log_dir, "throughput"))
        self._batch, self._seq, self._total, self._every = batch_size, seq_len, total_steps, every
        self._start = self._last = None
        self._step = 0

    def on_train_begin(self, logs=None):
        self._start = self._last = time.time()

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._step % self._every and self._step != self._total:
            return
        now = time.time()
        rate = self._every * self._batch / max(now - self._last, 1e-9)
        self._last = now
        lr = self.model.optimizer.learning_rate
        lr = float(keras.ops.convert_to_numpy(lr(self.model.optimizer.iterations) if callable(lr) else lr))
        with self._writer.as_default(step=self._step):
            tf.summary.scalar("examples_per_second", rate)
            tf.summary.scalar("tokens_per_second", rate * self._seq)
            tf.summary.scalar("learning_rate", lr)
        shown = ", ".join(f"{k}={v:.4f}" for k, v in sorted((logs or {}).items()) if "loss" in k or "accuracy" in k)
        print(f"  [train] step {self._step}/{self._total}  {rate:.0f} ex/s  lr={lr:.2e}  {shown}", flush=True)


def _examples_uri(file_patterns) -> str:
    """The Examples artifact URI from Trainer file patterns like ``<uri>/Split-train/*``."""
    return os.path.dirname(os.path.dirname(file_patterns[0]))


def run_fn(fn_args) -> None:
    """TFX Trainer entry point for pretraining.

    ``custom_config``: model_size, batch_size, learning_rate, warmup_steps,
    max_predictions_per_seq, masked_lm_prob, seed. Writes the encoder artifact (keras-hub preset
    + vocabulary) to ``serving_model_dir`` and TensorBoard logs to ``model_run_dir``.
    """
    config = dict(fn_args.custom_config or {})
    keras.utils.set_random_seed(int(config.get("seed", 12345)))
    metadata = pretraining_data.read_metadata(_examples_uri(fn_args.train_files))
    size = registry.get_model_size(config.get("model_size", "tiny"))
    batch_size = int(config.get("batch_size", 32))
    max_predictions = int(config.get("max_predictions_per_seq", 20))
    masked_lm_prob = float(config.get("masked_lm_prob", 0.15))
    seed = int(config.get("seed", 12345))
    train_steps, eval_steps = int(fn_args.train_steps), int(fn_args.eval_steps or 1)

    train_ds = make_dataset(fn_args.train_files, metadata, batch_size, max_predictions, masked_lm_prob, seed)
    eval_ds = make_dataset(fn_args.eval_files, metadata, batch_size, max_predictions, masked_lm_prob,
                           seed + 1, repeat=False).cache()

    backbone = keras_hub.models.BertBackbone(**size.backbone_kwargs(int(metadata["vocab_size"])))
    model = build_pretraining_model(backbone)
    model.compile(
        optimizer=optimization.adamw(float(config.get("learning_rate", 1e-3)),
                                     int(config.get("warmup_steps", 100)), train_steps),
        loss={MLM: keras.losses.SparseCategoricalCrossentropy(
                  from_logits=True, reduction="mean_with_sample_weight"),  # BERT: mean over real predictions
              NSP: keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
        weighted_metrics={MLM: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                          NSP: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]},
    )
    print(f"  [train] pretraining BERT-{size.name} ({backbone.count_params():,} backbone params), "
          f"vocab {metadata['vocab_size']}, seq {metadata['max_seq_length']}, "
          f"batch {batch_size}, {train_steps} steps", flush=True)
    log_every = max(1, min(100, train_steps // 10))
    model.fit(
        train_ds,
        steps_per_epoch=train_steps,
        epochs=1,
        verbose=0,
        callbacks=[
            keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq=log_every),
            ThroughputLogger(fn_args.model_run_dir, batch_size, int(metadata["max_seq_length"]),
                             train_steps, every=log_every),
        ],
    )
    results = model.evaluate(eval_ds.take(eval_steps), return_dict=True, verbose=0)
    results = {k: float(v) for k, v in results.items()}
    results["mlm_perplexity"] = float(np.exp(min(results.get("mlm_loss", 0.0), 50.0)))
    results.update(majority_baselines(eval_ds, eval_steps))
    print("  [eval] " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(results.items())), flush=True)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "eval_metrics.json"), "w") as f:
        f.write(json.dumps(results, indent=2))
    encoder_lib.save_encoder(fn_args.serving_model_dir, backbone, metadata["vocab_dir"], results)
