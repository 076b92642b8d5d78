"""The one fine-tuning loop: Transform's ``preprocessing_fn``, the Trainer's ``run_fn`` and the
student Trainer's ``distill_run_fn`` for every task.

Each asks the task (``tfx_bert.tasks.Task``, chosen by ``finetune.task``) for what differs: its
features, model, inputs, losses, metrics, post-training work and export; everything else is
written once here: seeding and determinism, the dtype policy, the optimizer and its schedule,
the fast kernels, TensorBoard logs, the training summary (printed and written as
``train_metrics.json``), transfer text for students, and saving the teacher for distillation.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os

import keras
import tensorflow as tf

from tfx_bert_app.models import class_weights, distillation, length_buckets, optimization, precision, windows
from tfx_bert_app.models import encoder as encoder_lib
from tfx_bert_app.models.fast_kernels import use_fast_kernels
from tfx_bert import features, run_summary, tasks
from tfx_bert.config import WARM_START_MODEL_DIR, FinetuneConfig, distill_settings_from, settings_from


@dataclasses.dataclass
class TrainerData:
    """What a task's hooks read in the Trainer: TFX's ``fn_args``, the Transform output and the
    typed settings."""

    fn_args: object
    transform_output: object  # tft.TFTransformOutput
    settings: FinetuneConfig
    distill: object = None  # the DistillConfig of a student's run; None: a teacher's
    # What the run decided after training that its export folds in: the temperature its logits are
    # divided by (models/calibration.py; 1: uncalibrated) and tuned per-label decision thresholds
    # (multi-label; None: the configured ones).
    temperature: float = 1.0
    decision_thresholds: list | None = None

    def dataset(self, files, training: bool, label_key: str | None = None, drop_final_batch: bool = False):
        """Transform's output ``files`` as batches of ``settings.batch_size`` (shuffled and
        repeated when ``training``): dicts, or (dict, label) with ``label_key``."""
        from tfx_bsl.public import tfxio

        options = tfxio.TensorFlowDatasetOptions(
            batch_size=self.settings.batch_size, label_key=label_key, shuffle=training,
            num_epochs=None if training else 1, drop_final_batch=drop_final_batch)
        return self.fn_args.data_accessor.tf_dataset_factory(files, options,
                                                             self.transform_output.transformed_metadata.schema)


def length_aware(dataset, settings: FinetuneConfig, task):
    """A task's input batches, each cut to its longest row (``finetune.train_length_bucket``),
    with the groups of side-by-side sequences the task names (``Task.stacked_sequences``)."""
    return length_buckets.length_aware(dataset, settings.max_seq_length, settings.train_length_bucket,
                                       task.stacked_sequences(settings))


def model_inputs(x: dict, keys=features.MODEL_INPUT_KEYS) -> dict:
    """The int32 model inputs ``keys`` of a batch of transformed features."""
    return {k: tf.cast(x[k], tf.int32) for k in keys}


def preprocessing_fn(inputs: dict, custom_config: dict) -> dict:
    """Transform's entry point for every task: raw features -> the task's model features, with
    the tokenizer of ``custom_config['encoder_dir']``."""
    settings = settings_from(custom_config)
    tokenizer = encoder_lib.load_tokenizer(custom_config["encoder_dir"])
    return tasks.get_task(settings.task).preprocess(inputs, settings, tokenizer)


def run_fn(fn_args) -> None:
    """The TFX Trainer's entry point for every task: the task's model on the encoder in
    ``base_model``, trained and exported; its Keras model saved beside the export for a student.

    ``custom_config``: the typed settings (``tfx_bert.config.trainer_settings``)."""
    settings = start(fn_args)
    task = tasks.get_task(settings.task)
    tokenizer = encoder_lib.load_tokenizer(fn_args.base_model)
    model = task.build_model(fn_args.base_model, settings, tokenizer)
    started = warm_start(model, task, settings, fn_args, tokenizer)
    data = trainer_data(fn_args, settings)
    trained, note = task.training_model(data, model, tokenizer)
    train_and_export(data, task, trained, model, settings.learning_rate, settings.export_precision, tokenizer,
                     task.describe(settings, fn_args.base_model) + started + note)
    save_task_model(model, task, settings, fn_args.serving_model_dir, tokenizer)


LABEL_SET_FILE = "label_set.json"  # beside the saved Keras model: what a warm start must match


def save_task_model(model, task, settings: FinetuneConfig, serving_model_dir: str, tokenizer) -> None:
    """The Keras task model beside its SavedModel, with its vocabulary and label set: what a
    student distils from and what a later run warm-starts from."""
    distillation.save_teacher(model, serving_model_dir, tokenizer)
    _write_json(os.path.join(os.path.dirname(distillation.teacher_path(serving_model_dir)), LABEL_SET_FILE),
                {"task": settings.task, **task.label_set(settings)})


def warm_start(model, task, settings: FinetuneConfig, fn_args, tokenizer) -> str:
    """With ``finetune.warm_start`` auto and a ``warm_start_model`` (the latest blessed model),
    loads its weights, head included, into ``model`` where its task, label set, vocabulary and
    weight shapes are this run's; otherwise the run starts from the encoder and the log says why.
    Records the choice in the model-run dir (``warm_start.json``, published on the Model by the
    executor); returns a note for the progress line."""
    previous = (fn_args.custom_config or {}).get(WARM_START_MODEL_DIR) if settings.warm_start == "auto" else None
    reason, weights = _blessed_weights(previous, model, task, settings, tokenizer) if previous else (
        "finetune.warm_start=off" if settings.warm_start == "off" else "this pipeline has no blessed model yet", None)
    if not reason:
        model.set_weights(weights)
    artifact = os.path.dirname(previous.rstrip("/")) if previous else ""
    print(f"  [warm start] {'from the blessed model ' + artifact if not reason else 'none, from the encoder: ' + reason}",
          flush=True)
    _write_json(os.path.join(fn_args.model_run_dir, "warm_start.json"),
                {"warm": not reason, "from": artifact, "reason": reason})
    return f", continuing from the blessed model {artifact}" if not reason else ""


def _blessed_weights(previous: str, model, task, settings: FinetuneConfig, tokenizer) -> tuple[str, list | None]:
    """("", the weights) of the blessed model at ``previous``, or (why it cannot be continued
    from, None)."""
    path = os.path.join(os.path.dirname(distillation.teacher_path(previous)), LABEL_SET_FILE)
    if not tf.io.gfile.exists(path):
        return f"the blessed model {previous} records no label set (trained before warm starts existed)", None
    with tf.io.gfile.GFile(path) as f:
        recorded = json.load(f)
    wanted = {"task": settings.task, **task.label_set(settings)}
    if recorded != wanted:
        changed = {k: (recorded.get(k), v) for k, v in wanted.items() if recorded.get(k) != v}
        return "the label set changed: " + "; ".join(f"{k} was {a!r}, is {b!r}" for k, (a, b) in changed.items()), None
    if list(distillation.teacher_tokenizer(previous).vocab) != list(tokenizer.vocab):
        return "the blessed model's vocabulary is not the encoder's", None
    weights = distillation.load_teacher(previous).get_weights()
    if [w.shape for w in weights] != [tuple(w.shape) for w in model.weights]:
        return "the blessed model's architecture differs from this run's (another encoder size or head)", None
    return "", weights


def _write_json(path: str, value) -> None:
    tf.io.gfile.makedirs(os.path.dirname(path))  # an orchestrator need not have made it (KFP on a local path)
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(value, indent=2))


def distill_run_fn(fn_args) -> None:
    """The student Trainer's entry point for every task: ``base_model`` is the fine-tuned
    teacher; the student (some of its layers, or another encoder: ``models/distillation``)
    learns the task's distillation loss on the teacher's outputs (through a Distiller) and the
    labels, is exported like a teacher, and the teacher and student are compared in a report.

    ``custom_config``: ``tfx_bert.config.distill_settings``."""
    settings = start(fn_args)
    d = distill_settings_from(fn_args.custom_config)
    task = tasks.get_task(settings.task)
    if (fn_args.custom_config or {}).get("encoder_dir"):  # the Transform's encoder (the pipeline passes it)
        distillation.check_shared_vocabulary(fn_args.base_model, fn_args.custom_config["encoder_dir"])
    teacher = distillation.load_teacher(fn_args.base_model)
    if d.student_encoder_uri:
        distillation.check_shared_vocabulary(fn_args.base_model, d.student_encoder_uri)
        student = distillation.student_from_encoder(teacher, d.student_encoder_uri)
    else:
        student = distillation.student_from_teacher(teacher, d.student_layers, d.ffn_keep)
    # Long texts (finetune.max_windows): both read each example's windows and pool their logits.
    model = distillation.distiller(windows.training_model(settings, task.wrap_teacher(teacher))[0],
                                   windows.training_model(settings, student)[0],
                                   task.distillation_loss(settings, d.temperature),
                                   d.alpha, d.hidden_weight, d.attention_weight, d.layer_mapping, d.relation_heads)
    terms = (f", hidden-state weight {d.hidden_weight}" if d.hidden_weight else "") + (
        f", attention weight {d.attention_weight}" if d.attention_weight else "") + (
        f" over {d.relation_heads} relation heads" if d.attention_weight and d.relation_heads else "") + (
        f", {d.layer_mapping} layers" if d.hidden_weight or d.attention_weight else "")
    what = (f"distilling a {distillation.num_layers(student)}-layer student from the "
            f"{distillation.num_layers(teacher)}-layer {task.model_kind} {fn_args.base_model} "
            f"(T={d.temperature}, alpha={d.alpha}{terms})")
    train_and_export(trainer_data(fn_args, settings, d), task, model, student, d.learning_rate, d.export_precision,
                     distillation.teacher_tokenizer(fn_args.base_model), what)
    distillation.report(teacher, student, fn_args.base_model, fn_args.serving_model_dir, fn_args.model_run_dir)


def trainer_data(fn_args, settings: FinetuneConfig, distill=None) -> TrainerData:
    import tensorflow_transform as tft

    # The Tuner's fn_args carry the Transform output as transform_graph_path only; the Trainer's
    # also as the older transform_output.
    graph = getattr(fn_args, "transform_graph_path", None) or fn_args.transform_output
    data = TrainerData(fn_args, tft.TFTransformOutput(graph), settings, distill)
    class_weights.resolve_balanced(data, tasks.get_task(settings.task))  # before anything compiles
    return data


def train_and_export(data: TrainerData, task, trained, model, learning_rate: float, precision_name: str, tokenizer,
                     what: str) -> None:
    """Fits ``trained`` (the task's ``model``, or a Distiller or teacher wrapper around it)
    ``fn_args.train_steps`` steps on the task's inputs, losses and metrics (a student, with
    ``distill.transfer_pattern``, on transfer text too), validated on the validation split every
    ``finetune.eval_every`` steps with the best round's weights kept (``fit``), lets the task
    finish (``after_training``), then exports ``model`` (its weights at ``precision_name``)."""
    fn_args, settings = data.fn_args, data.settings
    rounds, per_round = evaluation_plan(int(fn_args.train_steps), settings.eval_every if settings.has_validation else 0,
                                        settings.has_validation)
    monitor = compile_task(task, trained, model, settings, rounds * per_round, learning_rate)
    print(f"  [train] {what}, {rounds * per_round} steps of batch {settings.batch_size}"
          + (f", validated every {per_round} steps by {monitor} (best kept"
             + (f", stopping after {settings.patience} without improvement)" if settings.patience else ")")
             if settings.has_validation else ", no validation split: the last step's weights are exported"),
          flush=True)
    train_ds = length_aware(distillation.with_transfer_text(task.build_inputs(data, fn_args.train_files, True),
                                                            data.transform_output, data.distill, settings.batch_size,
                                                            settings.seed), settings, task)
    eval_ds = length_aware(task.build_inputs(data, fn_args.eval_files, False), settings, task)
    metrics = fit(trained, fn_args, train_ds, eval_ds if settings.has_validation else None, rounds * per_round,
                  rounds, monitor if settings.has_validation else "", settings.patience)
    metrics = task.after_training(data, trained, model, tokenizer, eval_ds, metrics)
    metrics = windows.report_cut(data, metrics)
    if (getattr(fn_args, "hyperparameters", None) or {}).get("values"):  # the Tuner's best, recorded with the model
        metrics["hyperparameters"] = {k: getattr(settings, k) for k in TUNED}
    report(metrics, fn_args.model_run_dir)
    task.export(model, data, tokenizer, precision_name)


def compile_task(task, trained, model, settings: FinetuneConfig, steps: int, learning_rate: float) -> str:
    """Compiles ``trained`` with the task's losses (of ``model``) and metrics and the optimizer
    over ``steps``; returns the metric that selects checkpoints and trials: the task's main
    Keras metric (its first: an accuracy, higher is better), else the loss."""
    metrics = task.build_metrics(settings)
    trained.compile(optimizer=optimizer(settings, steps, learning_rate),
                    loss=task.build_losses(model, settings), metrics=metrics)
    return metrics[0].name if metrics else "loss"


def evaluation_plan(train_steps: int, eval_every: int, validated: bool = True) -> tuple[int, int]:
    """(rounds, steps per round) of a run of ``train_steps``: a round per ``eval_every`` steps (0:
    five rounds; not ``validated``: one), all of the same length (Keras epochs); fewer rounds
    where equal ones would add more than a tenth to the run."""
    if not validated:
        return 1, train_steps
    rounds = max(1, min(train_steps, math.ceil(train_steps / eval_every) if eval_every else 5))
    while rounds > 1 and rounds * math.ceil(train_steps / rounds) - train_steps > train_steps // 10:
        rounds -= 1
    return rounds, math.ceil(train_steps / rounds)


def start(fn_args) -> FinetuneConfig:
    """The Trainer's typed settings (``custom_config``, see ``config.trainer_settings``), after
    seeding (and ``deterministic``: op determinism), setting the dtype policy of the models the
    run builds (``mixed_precision``, ``models/precision.py``) and checking there is an encoder."""
    settings = with_hyperparameters(settings_from(fn_args.custom_config),
                                    ((getattr(fn_args, "hyperparameters", None) or {}).get("values") or {}))
    settings.mixed_precision = precision.use_policy(settings.mixed_precision)
    keras.utils.set_random_seed(settings.seed)
    if settings.deterministic:
        tf.config.experimental.enable_op_determinism()
    if not fn_args.base_model:
        raise ValueError("The fine-tuning Trainer needs base_model: a pretrained encoder artifact.")
    return settings


TUNED = ("learning_rate", "batch_size")  # what the Tuner searches (models/tuning.py)


def with_hyperparameters(settings: FinetuneConfig, values: dict) -> FinetuneConfig:
    """``settings`` with the tuned ``values`` (the Tuner's best, or a trial's) in place; printed
    when they change anything."""
    chosen = {k: values[k] for k in TUNED if k in values}
    if not chosen:
        return settings
    tuned = copy.deepcopy(settings)
    for key, value in chosen.items():
        setattr(tuned, key, type(getattr(settings, key))(value))
    return tuned


def optimizer(settings: FinetuneConfig, train_steps: int, learning_rate: float | None = None):
    """AdamW with 10% linear warm-up then linear decay to 0 over ``train_steps``, peaking at
    ``learning_rate`` (default: the fine-tuning one)."""
    return optimization.adamw(learning_rate or settings.learning_rate, max(1, train_steps // 10), train_steps)


def fit(model, fn_args, train_dataset, validation_dataset, steps: int | None = None, rounds: int = 1,
        monitor: str = "", patience: int = 0, callbacks: list = ()) -> dict:
    """``steps`` (default ``fn_args.train_steps``) steps of ``model.fit`` in ``rounds`` rounds
    (Keras epochs) of equal length, each validated on ``fn_args.eval_steps`` batches of
    ``validation_dataset`` (None: not validated). With ``monitor`` (a metric's name; ``loss`` is
    lower-is-better, the others higher), the best round's weights are restored at the end (Keras's
    EarlyStopping, which with ``patience`` > 0 also stops after that many rounds without
    improvement). TensorBoard logs go to the model-run directory; dropout and layer norms run on
    ``models/fast_kernels.py``'s kernels; ``callbacks``: more Keras callbacks. Returns the exported round's metrics, with its
    ``best_step``, the ``steps_run`` and (validated) the ``validation_curve``."""
    use_fast_kernels(model)
    steps = int(steps or fn_args.train_steps)
    per_round = math.ceil(steps / rounds)
    callbacks = [keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir),
                 optimization.FailOnNonFiniteLoss("finetune.learning_rate"), *callbacks]
    selection = None
    if monitor and validation_dataset is not None:
        selection = keras.callbacks.EarlyStopping(monitor=f"val_{monitor}", mode="min" if monitor == "loss" else "max",
                                                  patience=patience or rounds, restore_best_weights=True)
        callbacks.append(selection)
    history = model.fit(
        train_dataset, steps_per_epoch=per_round, epochs=rounds, verbose=0,
        validation_data=validation_dataset, validation_steps=fn_args.eval_steps if validation_dataset else None,
        callbacks=callbacks).history
    done = len(next(iter(history.values()))) if history else rounds
    best = selection.best_epoch if selection and selection.best_weights is not None else done - 1
    metrics = {k: float(v[best]) for k, v in history.items()}
    metrics.update(best_step=(best + 1) * per_round, steps_run=done * per_round)
    if validation_dataset is not None and monitor:
        metrics["validation_metric"] = f"val_{monitor}"
        metrics["validation_curve"] = [{"step": (i + 1) * per_round, **{k: float(history[k][i]) for k in history}}
                                       for i in range(done)]
    return metrics


def report(metrics: dict, run_dir: str) -> None:
    """Prints the training metrics (and the validation curve, marking the exported step) and
    writes them to ``<run_dir>/train_metrics.json``."""
    curve = metrics.get("validation_curve") or []
    print("  [train] " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()) if isinstance(v, float)),
          flush=True)
    if curve:
        print("  [train] " + run_summary.format_curve(curve, metrics["best_step"], metrics["validation_metric"]), flush=True)
    _write_json(os.path.join(run_dir, run_summary.TRAIN_METRICS), metrics)


def dense_strings(tensor):
    """A string feature (dense or sparse, [batch] or [batch, 1]) -> [batch]."""
    if isinstance(tensor, tf.SparseTensor):
        tensor = tf.sparse.to_dense(tensor, default_value="")
    return tf.reshape(tensor, [-1])


def blessing_threshold(f: FinetuneConfig, scale: float = 1.0):
    """The blessing gate on a task's main metric: at least ``finetune.accuracy_threshold``, and
    at most ``finetune.max_regression`` below the baseline's (the latest blessed model) when there
    is one (TFMA's absolute change threshold). ``scale``: the metric's unit (SQuAD's F1 is in
    percent: 100)."""
    import tensorflow_model_analysis as tfma

    return tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": scale * f.accuracy_threshold}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -scale * f.max_regression - 1e-10}))


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
