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
import keras_hub
import tensorflow as tf
import tensorflow_model_analysis as tfma

from tfx_bert_app.models import encoder as encoder_lib
from tfx_bert_app.models import compression, distillation, export as export_lib, finetuning, multilabel_metrics
from tfx_bert import features
from tfx_bert import signatures as sig
from tfx_bert.config import FinetuneConfig


def thresholds(settings: FinetuneConfig) -> list[float]:
    """The decision threshold of each label, in ``label_names`` order."""
    return [float(t) for t in settings.label_thresholds] or [float(settings.decision_threshold)] * len(settings.label_names)


def preprocess(inputs: dict, settings, tokenizer) -> dict:
    """Raw text (and the multi-hot label) -> token_ids, segment_ids, padding_mask (int64
    [batch, seq]) and ``label`` (int64 [batch, labels])."""
    packed = tokenizer.encode(finetuning.dense_strings(inputs[features.TEXT]), settings.max_seq_length)
    outputs = {key: tf.cast(value, tf.int64) for key, value in packed.items()}
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
        lambda x, y: (finetuning.model_inputs(x), tf.cast(y, tf.float32)))


def build_losses(model, settings):
    return keras.losses.BinaryCrossentropy(from_logits=True)


def build_metrics(settings) -> list:
    return [keras.metrics.BinaryAccuracy(name="label_accuracy", threshold=0.0)]


def describe(settings, encoder_dir: str) -> str:
    return f"fine-tuning a {len(settings.label_names)}-label classifier from {encoder_dir}"


def distillation_loss(settings, temperature: float):
    """Each label's sigmoid at temperature T (``distillation.SigmoidLogitsDistillation``)."""
    return distillation.SigmoidLogitsDistillation(temperature)


def export(model, data, tokenizer, precision: str) -> None:
    """The classifier (its weights at ``precision``) behind the Transform graph, with the
    per-label thresholds in the graph."""
    settings = data.settings
    names = [str(n) for n in settings.label_names]
    label_thresholds = thresholds(settings)
    served = compression.for_serving(model, precision)

    def outputs_fn(transformed):
        logits = served(finetuning.model_inputs(transformed), training=False)
        probabilities = tf.sigmoid(tf.cast(logits, tf.float32))
        return {sig.PROBABILITIES: probabilities, **decide(probabilities, label_thresholds, names)}

    export_lib.export_text_model(served, data.transform_output, data.fn_args.serving_model_dir, outputs_fn,
                                 text_keys=(features.TEXT,), class_names=tuple(names),
                                 length_bucket=settings.export_length_bucket)
