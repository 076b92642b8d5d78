"""Multi-label classification (several labels per text: topics, tags, toxicity types): the task module.

[CLS] -> pooler -> dropout -> Dense(one logit per label) -> a sigmoid per label, i.e. keras-hub's
``BertClassifier`` with binary cross-entropy; a label is predicted when its probability reaches
its threshold (``finetune.label_thresholds``, default ``finetune.decision_threshold``). Data:
TaskExampleGen (CSV / TSV with a delimited label column such as ``sports|music``, or JSONL with
a JSON list), written as a multi-hot ``label`` over ``finetune.label_names``. Metrics (TFMA,
``models.multilabel_metrics``): micro F1 (the blessing gate), macro F1, per-label precision /
recall / F1, subset accuracy and Hamming loss. Serving: ``serving_default(text)`` ->
``probabilities`` [batch, labels], ``predicted`` (0/1 per label) and ``labels`` (the predicted
label names, padded with ""); TF Serving's Classify API scores every label.
"""
from __future__ import annotations

import json

import keras
import numpy as np
import keras_hub
import tensorflow as tf
import tensorflow_model_analysis as tfma

from tfx_bert_app.models import encoder as encoder_lib
from tfx_bert_app.models import calibration, class_weights, compression, distillation, finetuning, multilabel_metrics
from tfx_bert_app.models import windows
from tfx_bert_app.models import export as export_lib, slices
from tfx_bert import features
from tfx_bert import signatures as sig
from tfx_bert.config import FinetuneConfig


def thresholds(settings: FinetuneConfig) -> list[float]:
    """The configured decision threshold of each label, in ``label_names`` order (``tuned``: the
    default until the run has tuned them)."""
    given = [] if settings.task_settings.tuned() else settings.label_thresholds
    return [float(t) for t in given] or [float(settings.decision_threshold)] * len(settings.label_names)


def preprocess(inputs: dict, settings, tokenizer) -> dict:
    """Raw text (and the multi-hot label) -> token_ids, segment_ids, padding_mask (int64
    [batch, seq], or windows side by side: ``models/windows.py``), ``windows_cut`` and
    ``label`` (int64 [batch, labels])."""
    outputs = windows.text_features(tokenizer, finetuning.dense_strings(inputs[features.TEXT]), None, settings)
    if features.LABEL in inputs:
        label = inputs[features.LABEL]
        if isinstance(label, tf.SparseTensor):
            label = tf.sparse.to_dense(label)
        outputs[features.LABEL] = tf.reshape(tf.cast(label, tf.int64), [-1, len(settings.label_names)])
    return outputs


def eval_config(f) -> tfma.EvalConfig:
    """TFMA: micro F1 gates the blessing (at least ``finetune.accuracy_threshold``, not below the
    baseline's); macro F1, per-label scores, subset accuracy and Hamming loss are reported."""
    return finetuning.gated_eval_config(sig.PREDICTED, tfma.MetricConfig(
        class_name="MultiLabelMetrics", module="tfx_bert_app.models.multilabel_metrics",
        config=json.dumps({"name": multilabel_metrics.MICRO_F1, "label_names": [str(n) for n in f.label_names]}),
        threshold=finetuning.blessing_threshold(f)))


def decide(probabilities, label_thresholds, label_names) -> dict:
    """Probabilities [batch, labels] -> ``predicted`` (0/1, int64) and ``labels`` (the predicted
    names first, padded with "")."""
    chosen = probabilities >= tf.constant(label_thresholds, probabilities.dtype)
    names = tf.broadcast_to(tf.constant(list(label_names)), tf.shape(probabilities))
    return {sig.PREDICTED: tf.cast(chosen, tf.int64),
            sig.LABELS: tf.ragged.boolean_mask(names, chosen).to_tensor(default_value="",
                                                                         shape=[None, len(label_names)])}


def build_model(encoder_dir: str, settings, tokenizer) -> keras.Model:
    """keras-hub's BertClassifier with one logit per label."""
    return keras_hub.models.BertClassifier(backbone=encoder_lib.load_backbone(encoder_dir),
                                           num_classes=len(settings.label_names), preprocessor=None,
                                           dropout=settings.dropout)


def build_inputs(data, files, training: bool):
    """(model inputs, multi-hot labels as floats)."""
    return data.dataset(files, training, label_key=features.LABEL).map(
        lambda x, y: (finetuning.model_inputs(x, windows.model_inputs(data.settings)), tf.cast(y, tf.float32)))


def build_losses(model, settings):
    """Binary cross-entropy per label, each label's positive term weighted by its
    ``finetune.class_weights`` entry (``balanced``: negatives / positives in the train split)."""
    weights = [float(w) for w in settings.class_weights]
    if not weights:
        return keras.losses.BinaryCrossentropy(from_logits=True)
    positive = tf.constant(weights, tf.float32)

    def weighted_binary_crossentropy(labels, logits):
        return tf.reduce_mean(tf.nn.weighted_cross_entropy_with_logits(
            tf.cast(labels, tf.float32), tf.cast(logits, tf.float32), positive))
    return weighted_binary_crossentropy


def count_labels(data, files) -> list[tuple[int, int]]:
    """Per label, (examples, positives) in ``files`` (``finetune.class_weights: balanced``)."""
    examples, positives = 0, np.zeros(len(data.settings.label_names), np.int64)
    for _, y in data.dataset(files, False, label_key=features.LABEL):
        y = np.asarray(y).reshape(-1, len(positives))
        examples, positives = examples + len(y), positives + (y > 0).sum(0)
    return [(examples, int(p)) for p in positives]


def balanced_weights(counts) -> list[float]:
    return class_weights.positive_weights(counts)


def build_metrics(settings) -> list:
    return [keras.metrics.BinaryAccuracy(name="label_accuracy", threshold=0.0)]


def describe(settings, encoder_dir: str) -> str:
    return f"fine-tuning a {len(settings.label_names)}-label classifier from {encoder_dir}"


def distillation_loss(settings, temperature: float):
    """Each label's sigmoid at temperature T (``distillation.SigmoidLogitsDistillation``)."""
    return distillation.SigmoidLogitsDistillation(temperature)


def tune_thresholds(probabilities, labels, default: float) -> list[float]:
    """Per label, the threshold (one of its validation probabilities) at which predicting
    ``p >= threshold`` has the highest F1 on ``labels``; ties go to the one nearest
    ``default``. A label without a positive example keeps ``default`` (no F1 to maximise)."""
    probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels) > 0.5
    chosen = []
    for p, truth in zip(probabilities.T, labels.T):
        if not truth.any():
            chosen.append(float(default))
            continue
        candidates = np.unique(np.clip(np.append(p, default), 1e-4, 1 - 1e-4))
        predicted = p[None, :] >= candidates[:, None]
        tp = (predicted & truth).sum(1)
        f1 = 2 * tp / (predicted.sum(1) + truth.sum())
        best = np.flatnonzero(f1 >= f1.max() - 1e-12)
        chosen.append(float(candidates[best[np.argmin(np.abs(candidates[best] - default))]]))
    return chosen


def training_model(data, model, tokenizer):
    """Windows (``finetune.max_windows`` > 1): ``fit`` trains the model on pooled windows."""
    return windows.training_model(data.settings, model)


def after_training(data, trained, model, tokenizer, eval_dataset, metrics: dict) -> dict:
    """On the validation split: the temperature (``finetune.calibration``) and, with
    ``finetune.label_thresholds: tuned``, each label's F1-maximising threshold on the calibrated
    probabilities; both folded into the export and reported in the run's metrics."""
    settings = data.settings
    tuned = settings.task_settings.tuned()
    if settings.calibration != "temperature" and not tuned:
        return metrics
    model = windows.example_logits(settings, model)
    collected = calibration.collect_logits(model, eval_dataset)
    metrics = calibration.after_training(data, model, eval_dataset, metrics, multilabel=True, collected=collected)
    if tuned:
        logits, labels = collected
        chosen = tune_thresholds(calibration.probabilities(logits, data.temperature, multilabel=True), labels,
                                 settings.decision_threshold)
        data.decision_thresholds = chosen
        names = [str(n) for n in settings.label_names]
        metrics = {**metrics, "decision_thresholds": dict(zip(names, chosen))}
        print("  [thresholds] tuned on the validation split for each label's F1: "
              + ", ".join(f"{n} {t:.3f}" for n, t in zip(names, chosen)), flush=True)
    return metrics


def export(model, data, tokenizer, precision: str) -> None:
    """The classifier (its weights at ``precision``) behind the Transform graph, with the
    temperature (``data.temperature``) and the per-label thresholds (tuned, else configured) in
    the graph."""
    settings = data.settings
    names = [str(n) for n in settings.label_names]
    label_thresholds = data.decision_thresholds or thresholds(settings)
    temperature = data.temperature
    served = compression.for_serving(model, precision)
    logits_of = windows.example_logits(settings, served)

    def outputs_fn(transformed):
        logits = logits_of(finetuning.model_inputs(transformed, windows.model_inputs(settings)), training=False)
        probabilities = tf.sigmoid(tf.cast(logits, tf.float32) / temperature)
        return {sig.PROBABILITIES: probabilities, **decide(probabilities, label_thresholds, names),
                **windows.cut_output(transformed)}

    export_lib.export_text_model(served, data.transform_output, data.fn_args.serving_model_dir, outputs_fn,
                                 text_keys=(features.TEXT,), class_names=tuple(names),
                                 length_bucket=0 if windows.windowed(settings) else settings.export_length_bucket,
                                 slice_features=slices.served_features(settings, tokenizer))
