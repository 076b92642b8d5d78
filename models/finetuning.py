"""What every fine-tuning task's ``run_fn`` shares: the start checks, the Keras ``fit`` with
TensorBoard logs, and the training summary (printed and written as ``train_metrics.json``)."""
from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from tfx_bert_app.models import optimization, precision
from tfx_bert_app.models.fast_kernels import use_fast_kernels
from tfx_bert import features
from tfx_bert.config import FinetuneConfig, settings_from


def start(fn_args) -> FinetuneConfig:
    """The Trainer's typed settings (``custom_config``, see ``config.trainer_settings``), after
    seeding (and ``deterministic``: op determinism), setting the dtype policy of the models the
    run builds (``mixed_precision``, ``models/precision.py``) and checking there is an encoder."""
    settings = settings_from(fn_args.custom_config)
    settings.mixed_precision = precision.use_policy(settings.mixed_precision)
    keras.utils.set_random_seed(settings.seed)
    if settings.deterministic:
        tf.config.experimental.enable_op_determinism()
    if not fn_args.base_model:
        raise ValueError("The fine-tuning Trainer needs base_model: a pretrained encoder artifact.")
    return settings


def optimizer(settings: FinetuneConfig, train_steps: int, learning_rate: float | None = None):
    """AdamW with 10% linear warm-up then linear decay to 0 over ``train_steps``, peaking at
    ``learning_rate`` (default: the fine-tuning one)."""
    return optimization.adamw(learning_rate or settings.learning_rate, max(1, train_steps // 10), train_steps)


def fit(model, fn_args, train_dataset, eval_dataset, steps: int | None = None) -> dict:
    """``steps`` (default ``fn_args.train_steps``) steps of ``model.fit`` (TensorBoard logs in the
    model-run directory, validation on ``fn_args.eval_steps`` batches; dropout and layer norms on
    ``models/fast_kernels.py``'s kernels); returns the last metrics."""
    use_fast_kernels(model)
    history = model.fit(
        train_dataset, steps_per_epoch=int(steps or fn_args.train_steps), epochs=1, verbose=0,
        validation_data=eval_dataset, validation_steps=fn_args.eval_steps,
        callbacks=[keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir),
                   optimization.FailOnNonFiniteLoss("finetune.learning_rate")])
    return {k: float(v[-1]) for k, v in history.history.items()}


def report(metrics: dict, run_dir: str) -> None:
    """Prints the training metrics and writes them to ``<run_dir>/train_metrics.json``."""
    print("  [train] " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())), flush=True)
    with tf.io.gfile.GFile(os.path.join(run_dir, "train_metrics.json"), "w") as f:
        f.write(json.dumps(metrics, indent=2))


def dense_strings(tensor):
    """A string feature (dense or sparse, [batch] or [batch, 1]) -> [batch]."""
    if isinstance(tensor, tf.SparseTensor):
        tensor = tf.sparse.to_dense(tensor, default_value="")
    return tf.reshape(tensor, [-1])


def blessing_threshold(lower_bound: float):
    """The blessing gate on a task's main metric: at least ``lower_bound``, and no worse than the
    baseline (the latest blessed model) when there is one."""
    import tensorflow_model_analysis as tfma

    return tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": lower_bound}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -1e-10}))


def gated_eval_config(prediction_key: str, metric, label_key: str | None = features.LABEL):
    """The TFMA EvalConfig of a task gated by one metric: the ``serving_tf_example`` signature's
    ``prediction_key`` (and ``label_key``; None: the metric reads labels from the features), the
    overall slice, the example count and ``metric`` (a ``tfma.MetricConfig`` with its
    threshold)."""
    import tensorflow_model_analysis as tfma

    labels = {"label_key": label_key} if label_key else {}
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name="serving_tf_example", prediction_key=prediction_key, **labels)],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[tfma.MetricsSpec(metrics=[tfma.MetricConfig(class_name="ExampleCount"), metric])])
