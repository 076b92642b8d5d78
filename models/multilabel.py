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
import tensorflow_transform as tft
from tfx_bsl.public import tfxio

from tfx_bert_app.models import encoder as encoder_lib
from tfx_bert_app.models import compression, distillation, export, finetuning, multilabel_metrics
from tfx_bert import features
from tfx_bert import signatures as sig
from tfx_bert.config import FinetuneConfig, settings_from


def thresholds(settings: FinetuneConfig) -> list[float]:
    """The decision threshold of each label, in ``label_names`` order."""
    return [float(t) for t in settings.label_thresholds] or [float(settings.decision_threshold)] * len(settings.label_names)


def preprocessing_fn(inputs: dict, custom_config: dict) -> dict:
    """Raw text (and the multi-hot label) -> token_ids, segment_ids, padding_mask (int64
    [batch, seq]) and ``label`` (int64 [batch, labels])."""
    settings = settings_from(custom_config)
    tokenizer = encoder_lib.load_tokenizer(custom_config["encoder_dir"])
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
        threshold=finetuning.blessing_threshold(f.accuracy_threshold)))


def _dataset(fn_args, files, tf_transform_output, batch_size: int, repeat: bool):
    options = tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=features.LABEL, shuffle=repeat,
                                             num_epochs=None if repeat else 1, drop_final_batch=False)
    ds = fn_args.data_accessor.tf_dataset_factory(files, options, tf_transform_output.transformed_metadata.schema)
    return ds.map(lambda x, y: ({k: tf.cast(x[k], tf.int32) for k in features.MODEL_INPUT_KEYS},
                                tf.cast(y, tf.float32)))


def decide(probabilities, label_thresholds, label_names) -> dict:
    """Probabilities [batch, labels] -> ``predicted`` (0/1, int64) and ``labels`` (the predicted
    names first, padded with "")."""
    chosen = probabilities >= tf.constant(label_thresholds, probabilities.dtype)
    names = tf.broadcast_to(tf.constant(list(label_names)), tf.shape(probabilities))
    return {sig.PREDICTED: tf.cast(chosen, tf.int64),
            sig.LABELS: tf.ragged.boolean_mask(names, chosen).to_tensor(default_value="",
                                                                         shape=[None, len(label_names)])}


def run_fn(fn_args) -> None:
    """TFX Trainer entry point: fine-tunes a multi-label classifier from the encoder in ``base_model``."""
    settings = finetuning.start(fn_args)
    classifier = keras_hub.models.BertClassifier(
        backbone=encoder_lib.load_backbone(fn_args.base_model), num_classes=len(settings.label_names),
        preprocessor=None, dropout=settings.dropout)
    _train_and_export(fn_args, settings, classifier, classifier, settings.learning_rate, settings.export_precision,
                      f"fine-tuning a {len(settings.label_names)}-label classifier from {fn_args.base_model}")
    distillation.save_teacher(classifier, fn_args.serving_model_dir, encoder_lib.load_tokenizer(fn_args.base_model))


def distill_run_fn(fn_args) -> None:
    """TFX Trainer entry point of the student: ``base_model`` is the fine-tuned multi-label
    classifier (the teacher); the student takes some of its layers and learns each label's
    sigmoid at temperature T (``distillation.SigmoidLogitsDistillation``) and the labels."""
    distillation.run_student(
        fn_args, distillation.SigmoidLogitsDistillation,
        lambda settings, d, model, student, what: _train_and_export(
            fn_args, settings, model, student, d.learning_rate, d.export_precision, what, d), "multi-label classifier")


def _train_and_export(fn_args, settings, model, classifier, learning_rate: float, precision: str, what: str,
                      distill=None) -> None:
    """Trains ``model`` (the classifier, or a Distiller around it) on the multi-hot labels (and a
    student, with ``distill.transfer_pattern``, on transfer text too), then exports
    ``classifier`` (its weights at ``precision``) behind the Transform graph with the per-label
    thresholds."""
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    names = [str(n) for n in settings.label_names]
    batch_size, train_steps = settings.batch_size, int(fn_args.train_steps)
    model.compile(optimizer=finetuning.optimizer(settings, train_steps, learning_rate),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[keras.metrics.BinaryAccuracy(name="label_accuracy", threshold=0.0)])
    print(f"  [train] {what}, {train_steps} steps of batch {batch_size}", flush=True)
    train_ds = _dataset(fn_args, fn_args.train_files, tf_transform_output, batch_size, True)
    train_ds = distillation.with_transfer_text(train_ds, tf_transform_output, distill, batch_size, settings.seed)
    finetuning.report(finetuning.fit(model, fn_args, train_ds,
                                     _dataset(fn_args, fn_args.eval_files, tf_transform_output, batch_size, False)),
                      fn_args.model_run_dir)
    label_thresholds = thresholds(settings)
    served = compression.for_serving(classifier, precision)

    def outputs_fn(transformed):
        logits = served({k: tf.cast(transformed[k], tf.int32) for k in features.MODEL_INPUT_KEYS}, training=False)
        probabilities = tf.sigmoid(tf.cast(logits, tf.float32))
        return {sig.PROBABILITIES: probabilities, **decide(probabilities, label_thresholds, names)}

    export.export_text_model(served, tf_transform_output, fn_args.serving_model_dir, outputs_fn,
                             text_keys=(features.TEXT,), class_names=tuple(names))
