"""BERT pretraining (MLM + NSP): model, tf.data input with dynamic masking, and the Trainer
``run_fn``.

The model is keras-hub's ``BertBackbone`` with a ``MaskedLMHead`` whose output projection is
tied to the token embedding matrix (plus an output bias), and an NSP head on the pooled
``[CLS]`` output.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from tfx_bert_app.models import encoder as encoder_lib
from tfx_bert_app.models import optimization, precision, whole_word_masking
from tfx_bert_app.models.fast_kernels import use_fast_kernels
from tfx_bert import features, registry
from tfx_bert.pretraining_metadata import read_metadata

MLM, NSP = "mlm", "nsp"


class PretrainingModel(keras.Model):
    """A functional Keras model that also trains under MultiWorkerMirroredStrategy.

    Works around two Keras 3.15 bugs under CollectiveAllReduceStrategy: the trainer builds
    metrics by ``strategy.reduce``-ing the first (nested) batch, which fails for dicts
    (keras-team/keras#20329, open), so this builds from the local replica's batch; and it
    reduces step logs with ``axis=0``, which fails for scalars, so logs travel as shape [1].
    """

    def _multi_worker(self) -> bool:
        return isinstance(self._distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy)

    def train_step(self, data):
        logs = super().train_step(data)
        return {k: tf.reshape(v, [1]) for k, v in logs.items()} if self._multi_worker() else logs

    def test_step(self, data):
        logs = super().test_step(data)
        return {k: tf.reshape(v, [1]) for k, v in logs.items()} if self._multi_worker() else logs

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = keras.tree.map_structure(
                    lambda v: (self._distribute_strategy.experimental_local_results(v)[0]
                               if isinstance(v, tf.distribute.DistributedValues) else v),
                    next(it))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)


@keras.saving.register_keras_serializable(package="tfx_bert")
class TiedMaskedLMHead(keras_hub.layers.MaskedLMHead):
    """keras-hub's ``MaskedLMHead`` with the tied output projection in the compute dtype.

    Under a mixed policy keras-hub's head leaves it: the token embedding is a Keras ``Embedding``
    (``autocast=False``, so its lookup table stays float32), and its ``reverse`` matmul takes
    that float32 table, so the bfloat16 / float16 activations are promoted and the largest
    matmul of pretraining (hidden x vocabulary, forward and backward) runs in float32, and the
    logits leave float32 (keras-hub's own ``BertMaskedLM`` behaves the same; measured in
    benchmarks/pretraining_throughput.py). Here both the table and the output bias are cast to
    the compute dtype; the loss casts the logits back to float32 (Keras losses compute in
    float32), so the softmax stays numerically safe.
    """

    def call(self, inputs, mask_positions):
        x = tf.gather(inputs, mask_positions, batch_dims=1)
        x = self._intermediate_layer_norm(self._intermediate_dense(x))
        table = keras.ops.cast(self.token_embedding.embeddings, self.compute_dtype)
        logits = keras.ops.matmul(x, keras.ops.transpose(table))
        logits = keras.ops.add(logits, keras.ops.cast(self._bias, self.compute_dtype))
        return self.activation(logits) if self.activation is not None else logits


# This project's own heads: keras-hub's MaskedLMHead as BertMaskedLM builds it (Keras's exact
# GELU, keras-hub's epsilon). An imported checkpoint's heads compute its own (pretrained_heads.py).
DEFAULT_HEAD = {"hidden_act": "gelu", "layer_norm_epsilon": 1e-5}


def build_pretraining_model(backbone, hidden_act: str = DEFAULT_HEAD["hidden_act"],
                            layer_norm_epsilon: float = DEFAULT_HEAD["layer_norm_epsilon"]) -> keras.Model:
    """Backbone + tied MLM head + NSP head; the MLM head's transform computes ``hidden_act``
    (a Hugging Face name, models/encoder.py) and LayerNorm ``layer_norm_epsilon``.

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
    mlm_logits = TiedMaskedLMHead(
        vocabulary_size=backbone.vocabulary_size,
        token_embedding=backbone.token_embedding,
        intermediate_activation=encoder_lib.gelu_for(hidden_act),
        layer_norm_epsilon=layer_norm_epsilon,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        name=MLM,
    )(outputs["sequence_output"], mask_positions=inputs[features.MASK_POSITIONS])
    nsp_logits = keras.layers.Dense(
        2, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02), name=NSP
    )(outputs["pooled_output"])
    return PretrainingModel(inputs, {MLM: mlm_logits, NSP: nsp_logits}, name="bert_pretraining")


def make_dataset(file_pattern, metadata: dict, batch_size: int, max_predictions: int,
                 masked_lm_prob: float, seed: int, repeat: bool = True) -> tf.data.Dataset:
    """Instances -> dynamically masked, padded batches of (inputs, labels, sample_weights)."""
    ids = metadata["special_ids"]
    seq_len = int(metadata["max_seq_length"])
    if metadata.get("whole_word_masking") and metadata.get("masking", "dynamic") == "dynamic":
        masker = whole_word_masking.whole_word_masker(
            metadata["continuation_ids"], int(metadata["vocab_size"]), (ids["pad"], ids["cls"], ids["sep"]),
            masked_lm_prob, max_predictions, ids["mask"])
    else:
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
    static = metadata.get("masking", "dynamic") == "static"
    if static:  # masks were drawn by PretrainingDataGen (dupe_factor copies)
        predictions = int(metadata["max_predictions_per_seq"])
        spec[features.MASK_POSITIONS] = tf.io.FixedLenFeature([predictions], tf.int64)
        spec[features.MASK_IDS] = tf.io.FixedLenFeature([predictions], tf.int64)
        spec[features.MASK_WEIGHTS] = tf.io.FixedLenFeature([predictions], tf.float32)
    files = tf.data.Dataset.list_files(file_pattern, shuffle=repeat, seed=seed)
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP", num_parallel_reads=tf.data.AUTOTUNE)
    if repeat:
        ds = ds.shuffle(10_000, seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(batch_size, drop_remainder=repeat)
    ds = ds.map(lambda records: tf.io.parse_example(records, spec), num_parallel_calls=tf.data.AUTOTUNE)

    def mask(batch):
        token_ids = tf.cast(batch[features.TOKEN_IDS], tf.int32)
        if static:
            masked = {"token_ids": token_ids, "mask_positions": batch[features.MASK_POSITIONS],
                      "mask_ids": batch[features.MASK_IDS], "mask_weights": batch[features.MASK_WEIGHTS]}
        else:
            masked = masker(token_ids)
        x = {
            features.TOKEN_IDS: masked["token_ids"].to_tensor(ids["pad"], shape=[None, seq_len]),
            features.SEGMENT_IDS: tf.cast(batch[features.SEGMENT_IDS], tf.int32).to_tensor(0, shape=[None, seq_len]),
            features.PADDING_MASK: tf.cast(tf.sequence_mask(token_ids.row_lengths(), seq_len), tf.int32),
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

    def __init__(self, log_dir: str, batch_size: int, seq_len: int, total_steps: int, every: int = 50,
                 start_step: int = 0):
        super().__init__()
        self._writer = tf.summary.create_file_writer(os.path.join(log_dir, "throughput"))
        self._batch, self._seq, self._total, self._every = batch_size, seq_len, total_steps, every
        self._start = self._last = None
        self._step = start_step

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


@dataclasses.dataclass
class PretrainingSettings:
    """What the pretraining run_fn reads from the Trainer's ``custom_config``."""

    model_size: str = "tiny"
    batch_size: int = 32  # global, across all replicas
    batch_size_per_replica: int = 0  # > 0: the global batch is this x the strategy's replicas
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    optimizer: str = "adamw"  # adamw | lamb
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    seed: int = 12345
    deterministic: bool = False  # enable_op_determinism (with static masking: reruns agree)
    dropout: float = 0.1
    distribution: str = "default"  # default | mirrored | multi_worker | tpu
    tpu: str = ""
    mixed_precision: str = ""  # "" | mixed_bfloat16 | mixed_float16 (loss scaling on)
    jit_compile: bool = False  # XLA
    checkpoint_dir: str = ""  # stable across restarts: resume from here
    checkpoint_every: int = 200

    @classmethod
    def from_custom_config(cls, config: dict | None) -> "PretrainingSettings":
        # Keys of TFX's Vertex Trainer extension pass through to run_fn; they are not ours.
        config = {k: v for k, v in (config or {}).items() if not k.startswith("ai_platform_")}
        known = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise ValueError(f"Unknown pretraining custom_config keys {unknown}; known: {sorted(known)}")
        return cls(**config)


class StepCheckpoint(keras.callbacks.Callback):
    """Saves model + optimizer (hence the step counter) every ``every`` steps."""

    def __init__(self, manager: tf.train.CheckpointManager, every: int):
        super().__init__()
        self._manager, self._every = manager, max(1, every)

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step % self._every == 0:
            self._manager.save(checkpoint_number=step)


def _restore(model, manager) -> int:
    """Restores the newest checkpoint, if any; returns the step training resumes at."""
    if not manager or not manager.latest_checkpoint:
        return 0
    model.optimizer.build(model.trainable_variables)
    manager.checkpoint.restore(manager.latest_checkpoint).expect_partial()
    return int(model.optimizer.iterations.numpy())


PRETRAINING_WEIGHTS = "pretraining_model.weights.h5"


def train(settings: PretrainingSettings, metadata: dict, train_files, eval_files, train_steps: int,
          eval_steps: int, log_dir: str, warm_start_dir: str | None = None):
    """Builds, trains (resuming from ``settings.checkpoint_dir``) and evaluates the pretraining
    model; with ``warm_start_dir`` (an earlier phase's encoder artifact) it starts from that
    phase's weights, heads included. Returns (backbone, model, eval_metrics)."""
    from tfx_bert_app.models import distribution

    keras.utils.set_random_seed(settings.seed)
    if settings.deterministic:
        tf.config.experimental.enable_op_determinism()
    precision.use_policy(settings.mixed_precision)
    strategy = distribution.make_strategy(settings.distribution, settings.tpu)
    if settings.batch_size_per_replica:
        settings = dataclasses.replace(
            settings, batch_size=settings.batch_size_per_replica * strategy.num_replicas_in_sync)
    train_ds = distribution.distribute(strategy, make_dataset(
        train_files, metadata, settings.batch_size, settings.max_predictions_per_seq,
        settings.masked_lm_prob, settings.seed), settings.batch_size)
    eval_ds = make_dataset(eval_files, metadata, settings.batch_size, settings.max_predictions_per_seq,
                           settings.masked_lm_prob, settings.seed + 1, repeat=False).take(eval_steps).cache()
    with strategy.scope():
        backbone, model, heads = _build(settings, metadata, warm_start_dir)
        use_fast_kernels(model)
        model.compile(
            optimizer=optimization.make_optimizer(settings.optimizer, settings.learning_rate,
                                                  settings.warmup_steps, train_steps),
            loss={MLM: keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True, reduction="mean_with_sample_weight"),  # BERT: mean over real predictions
                  NSP: keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
            weighted_metrics={MLM: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                              NSP: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]},
            jit_compile=settings.jit_compile,
        )
    manager = None
    if settings.checkpoint_dir:
        checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
        manager = tf.train.CheckpointManager(checkpoint, settings.checkpoint_dir, max_to_keep=2)
    start_step = _restore(model, manager)
    seq_len = int(metadata["max_seq_length"])
    print(f"  [train] pretraining BERT {backbone.num_layers} layers x {backbone.hidden_dim} "
          f"({backbone.count_params():,} backbone params), "
          f"vocab {metadata['vocab_size']}, seq {seq_len}, global batch {settings.batch_size} on "
          f"{strategy.num_replicas_in_sync} replica(s), {train_steps} steps, {settings.optimizer}"
          + (f", {settings.mixed_precision}" if settings.mixed_precision else "")
          + (", XLA" if settings.jit_compile else ""), flush=True)
    if start_step:
        print(f"  [train] resumed from {manager.latest_checkpoint} at step {start_step}", flush=True)
    remaining = max(0, train_steps - start_step)
    log_every = max(1, min(100, train_steps // 10))
    callbacks = [keras.callbacks.TensorBoard(log_dir=log_dir, update_freq=log_every),
                 ThroughputLogger(log_dir, settings.batch_size, seq_len, train_steps, every=log_every,
                                  start_step=start_step),
                 optimization.FailOnNonFiniteLoss("pretrain.learning_rate", start_step)]
    if manager:
        callbacks.append(StepCheckpoint(manager, settings.checkpoint_every))
    if remaining:
        model.fit(train_ds, steps_per_epoch=remaining, epochs=1, verbose=0, callbacks=callbacks)
    if manager:
        manager.save(checkpoint_number=int(model.optimizer.iterations.numpy()))
    results = model.evaluate(distribution.distribute(strategy, eval_ds, settings.batch_size),
                             return_dict=True, verbose=0)
    results = {k: float(v) for k, v in results.items()}
    results["mlm_perplexity"] = float(np.exp(min(results.get("mlm_loss", 0.0), 50.0)))
    results.update(majority_baselines(eval_ds, eval_steps))
    results["steps"] = int(model.optimizer.iterations.numpy())
    print("  [eval] " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(results.items())), flush=True)
    return backbone, model, results, heads


def _build(settings: PretrainingSettings, metadata: dict, warm_start_dir: str | None):
    """(backbone, model, heads config): a new BERT of ``settings.model_size``, or the model in
    ``warm_start_dir`` (an earlier phase's or run's model, or a checkpoint pretrain.init_from
    imported), its architecture and heads as they are there."""
    from tfx_bert_app.models import pretrained_heads

    if not warm_start_dir:
        size = registry.get_model_size(settings.model_size)
        backbone = keras_hub.models.BertBackbone(
            **size.backbone_kwargs(int(metadata["vocab_size"]), dropout=settings.dropout))
        return backbone, build_pretraining_model(backbone), {**DEFAULT_HEAD, "loaded": {}}
    if not pretrained_heads.is_pretraining_dir(warm_start_dir):
        raise FileNotFoundError(f"{os.path.join(warm_start_dir, PRETRAINING_WEIGHTS)} is missing: base_model must be "
                                "a pretraining Trainer's output or an imported checkpoint (pretrain.init_from).")
    backbone, model, heads = pretrained_heads.load_pretraining_model(warm_start_dir, dropout=settings.dropout)
    if backbone.vocabulary_size != int(metadata["vocab_size"]):
        raise ValueError(f"The instances were made with a vocabulary of {metadata['vocab_size']} tokens; the model in "
                         f"{warm_start_dir} has {backbone.vocabulary_size}: use the model's own vocabulary.")
    new = [h for h, loaded in heads.get("loaded", {}).items() if not loaded]
    print(f"  [train] continuing from {heads.get('source') or warm_start_dir}"
          + (f" (new, untrained: {', '.join(new)})" if new else ""), flush=True)
    return backbone, model, heads


def _examples_uri(file_patterns) -> str:
    """The Examples artifact URI from Trainer file patterns like ``<uri>/Split-train/*``."""
    return os.path.dirname(os.path.dirname(file_patterns[0]))


def run_fn(fn_args) -> None:
    """TFX Trainer entry point for pretraining (``custom_config``: see PretrainingSettings).

    Writes the encoder artifact (keras-hub preset + vocabulary) to ``serving_model_dir`` and
    TensorBoard logs to ``model_run_dir``; resumes from ``checkpoint_dir`` after a restart.
    """
    from tfx_bert_app.models import pretrained_heads

    settings = PretrainingSettings.from_custom_config(fn_args.custom_config)
    examples_uri = _examples_uri(fn_args.train_files)
    metadata = read_metadata(examples_uri)
    if settings.checkpoint_dir:
        # One directory per (data, settings, steps): a restarted Trainer with the same inputs
        # resumes; new data or settings start afresh.
        key = json.dumps([examples_uri, dataclasses.asdict(settings), int(fn_args.train_steps)], sort_keys=True)
        settings = dataclasses.replace(settings, checkpoint_dir=os.path.join(
            settings.checkpoint_dir, hashlib.sha1(key.encode()).hexdigest()[:16]))
    backbone, model, results, heads = train(settings, metadata, fn_args.train_files, fn_args.eval_files,
                                     int(fn_args.train_steps), int(fn_args.eval_steps or 1), fn_args.model_run_dir,
                                     warm_start_dir=getattr(fn_args, "base_model", None))
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "eval_metrics.json"), "w") as f:
        f.write(json.dumps(results, indent=2))
    encoder_lib.save_encoder(fn_args.serving_model_dir, backbone, metadata["vocab_dir"], results)
    # The whole pretraining model (heads too), so a later phase can continue from it.
    model.save_weights(os.path.join(fn_args.serving_model_dir, PRETRAINING_WEIGHTS))
    # How its MLM head computes (and, continued from a checkpoint, which one): read back by fill-mask
    # and by a later run that continues from this one.
    pretrained_heads.write_heads_config(fn_args.serving_model_dir, heads)
    if settings.checkpoint_dir:  # the encoder artifact now holds the result
        tf.io.gfile.rmtree(settings.checkpoint_dir)
