"""Sequence classification of one text or a pair (sentiment, GLUE): the task module.

[CLS] -> pooler -> dropout -> Dense -> softmax, i.e. keras-hub's ``BertClassifier`` on a
backbone warm-started from the pretrained encoder; optional class weights in the loss. Data:
TaskExampleGen (GLUE TSV, CSV, TSV, JSONL). Metrics (TFMA): accuracy (the blessing threshold,
and no worse than the latest blessed model), macro F1, per-class precision / recall / F1, the
confusion matrix, and Matthews correlation (GLUE's CoLA metric) for two classes.
"""
from __future__ import annotations


import keras
import keras_hub
import tensorflow as tf
import tensorflow_model_analysis as tfma
import tensorflow_transform as tft
from tfx_bsl.public import tfxio

from tfx_bert_app.models import compression, distillation, export, finetuning
from tfx_bert_app.models import encoder as encoder_lib
from tfx_bert import features
from tfx_bert.config import settings_from


def preprocessing_fn(inputs: dict, custom_config: dict) -> dict:
    """Raw text (and label) -> token_ids, segment_ids, padding_mask (int64 [batch, seq]).

    ``custom_config``: ``encoder_dir`` (whose vocabulary to use) and ``max_seq_length``.
    """
    tokenizer = encoder_lib.load_tokenizer(custom_config["encoder_dir"])
    seq_len = settings_from(custom_config).max_seq_length
    texts_b = finetuning.dense_strings(inputs[features.TEXT_B]) if features.TEXT_B in inputs else None
    packed = tokenizer.encode(finetuning.dense_strings(inputs[features.TEXT]), seq_len, texts_b)
    outputs = {key: tf.cast(value, tf.int64) for key, value in packed.items()}
    if features.LABEL in inputs:
        label = inputs[features.LABEL]
        if isinstance(label, tf.SparseTensor):
            label = tf.sparse.to_dense(label)
        outputs[features.LABEL] = tf.reshape(tf.cast(label, tf.int64), [-1])
    return outputs


def eval_config(f) -> tfma.EvalConfig:
    """TFMA: accuracy gates the blessing (at least ``finetune.accuracy_threshold``, and not
    below the baseline's); macro F1, per-class precision/recall/F1, the confusion matrix and,
    for two classes, Matthews correlation are reported."""
    classes = list(range(f.num_classes))
    accuracy_threshold = finetuning.blessing_threshold(f.accuracy_threshold)
    per_class = [tfma.MetricConfig(class_name=name) for name in ("Precision", "Recall", "F1Score")]
    if f.num_classes == 2:
        per_class.append(tfma.MetricConfig(class_name="MatthewsCorrelationCoefficient"))
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name="serving_tf_example", label_key=features.LABEL,
                                    prediction_key=features.PROBABILITIES)],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(metrics=[
                tfma.MetricConfig(class_name="ExampleCount"),
                tfma.MetricConfig(class_name="SparseCategoricalAccuracy", threshold=accuracy_threshold),
                tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
            ]),
            tfma.MetricsSpec(metrics=per_class, binarize=tfma.BinarizationOptions(class_ids={"values": classes})),
            tfma.MetricsSpec(metrics=[tfma.MetricConfig(class_name="F1Score", config='{"name": "macro_f1"}')],
                             binarize=tfma.BinarizationOptions(class_ids={"values": classes}),
                             aggregate=tfma.AggregationOptions(
                                 macro_average=True, class_weights={i: 1.0 for i in classes})),
        ],
    )


def _dataset(fn_args, files, tf_transform_output, batch_size: int, repeat: bool, class_weights=()):
    options = tfxio.TensorFlowDatasetOptions(
        batch_size=batch_size, label_key=features.LABEL, shuffle=repeat,
        num_epochs=None if repeat else 1, drop_final_batch=False)
    ds = fn_args.data_accessor.tf_dataset_factory(
        files, options, tf_transform_output.transformed_metadata.schema)
    ds = ds.map(lambda x, y: ({k: tf.cast(x[k], tf.int32) for k in features.MODEL_INPUT_KEYS},
                              tf.cast(tf.reshape(y, [-1]), tf.int32)))
    if class_weights:
        weights = tf.constant(class_weights, tf.float32)
        ds = ds.map(lambda x, y: (x, y, tf.gather(weights, y)))
    return ds


def run_fn(fn_args) -> None:
    """TFX Trainer entry point: fine-tunes a classifier from the encoder in ``base_model``.

    ``custom_config``: the typed settings (``tfx_bert.config.trainer_settings``).
    """
    settings = finetuning.start(fn_args)
    backbone = encoder_lib.load_backbone(fn_args.base_model)
    classifier = keras_hub.models.BertClassifier(
        backbone=backbone, num_classes=settings.num_classes, preprocessor=None, dropout=settings.dropout)
    _train_and_export(fn_args, settings, classifier, classifier, settings.learning_rate, settings.export_precision,
                      f"fine-tuning {settings.num_classes}-class classifier from {fn_args.base_model}")
    distillation.save_teacher(classifier, fn_args.serving_model_dir, encoder_lib.load_tokenizer(fn_args.base_model))


def distill_run_fn(fn_args) -> None:
    """TFX Trainer entry point of the student: ``base_model`` is the fine-tuned classifier (the
    teacher); the student takes some of its layers and learns its soft targets and the labels.

    ``custom_config``: ``tfx_bert.config.distill_settings``.
    """
    distillation.run_student(
        fn_args, distillation.softmax_distillation,
        lambda settings, d, model, student, what: _train_and_export(
            fn_args, settings, model, student, d.learning_rate, d.export_precision, what, d), "classifier")


def _train_and_export(fn_args, settings, model, classifier, learning_rate: float, precision: str, what: str,
                      distill=None) -> None:
    """Trains ``model`` (the classifier, or a Distiller around it) ``fn_args.train_steps`` steps
    on the labels (and a student, with ``distill.transfer_pattern``, on transfer text too), then
    exports ``classifier`` (its weights at ``precision``) behind the Transform graph."""
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    batch_size, train_steps, num_classes = settings.batch_size, int(fn_args.train_steps), settings.num_classes
    model.compile(
        optimizer=finetuning.optimizer(settings, train_steps, learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    class_weights = [float(w) for w in settings.class_weights]
    train_ds = _dataset(fn_args, fn_args.train_files, tf_transform_output, batch_size, True, class_weights)
    train_ds = distillation.with_transfer_text(train_ds, tf_transform_output, distill, batch_size, settings.seed)
    eval_ds = _dataset(fn_args, fn_args.eval_files, tf_transform_output, batch_size, False)
    print(f"  [train] {what}, {train_steps} steps of batch {batch_size}", flush=True)
    finetuning.report(finetuning.fit(model, fn_args, train_ds, eval_ds), fn_args.model_run_dir)

    names = [str(n) for n in settings.label_names] or [str(i) for i in range(num_classes)]
    export_classifier(classifier, tf_transform_output, fn_args.serving_model_dir, names, precision)


def export_classifier(classifier, tf_transform_output, export_dir: str, class_names, precision: str = "float32"):
    """The served SavedModel: raw text (or a pair) -> ``probabilities`` and ``class_ids``, plus
    TF Serving's classify signature; the weights at ``precision`` (``models.compression``)."""
    served = compression.for_serving(classifier, precision)

    def outputs_fn(transformed):
        logits = served({k: tf.cast(transformed[k], tf.int32) for k in features.MODEL_INPUT_KEYS}, training=False)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        return {features.PROBABILITIES: probabilities,
                features.CLASS_IDS: tf.argmax(probabilities, axis=-1)}

    text_keys = tuple(k for k in (features.TEXT, features.TEXT_B) if k in tf_transform_output.raw_feature_spec())
    export.export_text_model(served, tf_transform_output, export_dir, outputs_fn, text_keys=text_keys,
                             class_names=tuple(class_names))
