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

from tfx_bert_app.models import calibration, class_weights as class_weights_lib, compression, distillation, finetuning
from tfx_bert_app.models import slices, windows
from tfx_bert_app.models import export as export_lib
from tfx_bert_app.models import encoder as encoder_lib
from tfx_bert import features


def preprocess(inputs: dict, settings, tokenizer) -> dict:
    """Raw text (and label) -> token_ids, segment_ids, padding_mask (int64 [batch, seq], or an
    example's windows side by side with ``window_mask``: ``finetune.max_windows``) and
    ``windows_cut``."""
    texts_b = finetuning.dense_strings(inputs[features.TEXT_B]) if features.TEXT_B in inputs else None
    outputs = windows.text_features(tokenizer, finetuning.dense_strings(inputs[features.TEXT]), texts_b, settings)
    if features.LABEL in inputs:
        label = inputs[features.LABEL]
        if isinstance(label, tf.SparseTensor):
            label = tf.sparse.to_dense(label)
        outputs[features.LABEL] = tf.reshape(tf.cast(label, tf.int64), [-1])
    return outputs


def eval_config(f) -> tfma.EvalConfig:
    """TFMA: accuracy gates the blessing (at least ``finetune.accuracy_threshold``, and not
    below the baseline's); macro F1, per-class precision/recall/F1 and calibration plot, the
    confusion matrix, the ECE and, for two classes, Matthews correlation are reported."""
    classes = list(range(f.num_classes))
    accuracy_threshold = finetuning.blessing_threshold(f)
    # CalibrationPlot: TFMA's reliability diagram of each class's probability (the served,
    # temperature-scaled one), beside the ECE.
    per_class = [tfma.MetricConfig(class_name=name) for name in ("Precision", "Recall", "F1Score", "CalibrationPlot")]
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
                calibration.metric_config(multilabel=False, max_ece=f.setting("max_ece", 0.0)),
            ]),
            tfma.MetricsSpec(metrics=per_class, binarize=tfma.BinarizationOptions(class_ids={"values": classes})),
            tfma.MetricsSpec(metrics=[tfma.MetricConfig(class_name="F1Score", config='{"name": "macro_f1"}')],
                             binarize=tfma.BinarizationOptions(class_ids={"values": classes}),
                             aggregate=tfma.AggregationOptions(
                                 macro_average=True, class_weights={i: 1.0 for i in classes})),
        ],
    )


def build_model(encoder_dir: str, settings, tokenizer) -> keras.Model:
    """keras-hub's BertClassifier on the encoder: [CLS] -> pooler -> dropout -> Dense."""
    return keras_hub.models.BertClassifier(backbone=encoder_lib.load_backbone(encoder_dir),
                                           num_classes=settings.num_classes, preprocessor=None,
                                           dropout=settings.dropout)


def build_inputs(data, files, training: bool):
    """(model inputs, class id[, the class's weight: ``finetune.class_weights``, training only; a
    ``balanced`` setting is numbers by now, ``models/class_weights.py``])."""
    ds = data.dataset(files, training, label_key=features.LABEL)
    keys = windows.model_inputs(data.settings)
    ds = ds.map(lambda x, y: (finetuning.model_inputs(x, keys), tf.cast(tf.reshape(y, [-1]), tf.int32)))
    class_weights = [float(w) for w in data.settings.class_weights] if training else []
    if class_weights:
        weights = tf.constant(class_weights, tf.float32)
        ds = ds.map(lambda x, y: (x, y, tf.gather(weights, y)))
    return ds


def count_labels(data, files) -> list[int]:
    """Examples of each class id in ``files`` (``finetune.class_weights: balanced``)."""
    return class_weights_lib.label_counts((y for _, y in data.dataset(files, False, label_key=features.LABEL)),
                                          data.settings.num_classes)


def build_losses(model, settings):
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def build_metrics(settings) -> list:
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


def describe(settings, encoder_dir: str) -> str:
    return f"fine-tuning {settings.num_classes}-class classifier from {encoder_dir}"


def distillation_loss(settings, temperature: float):
    return distillation.softmax_distillation(temperature)


def training_model(data, model, tokenizer):
    """Windows (``finetune.max_windows`` > 1): ``fit`` trains the model on pooled windows."""
    return windows.training_model(data.settings, model)


def after_training(data, trained, model, tokenizer, eval_dataset, metrics: dict) -> dict:
    """``finetune.calibration: temperature``: the temperature fitted on the validation split
    (``models/calibration.py``), folded into the export; ECE and NLL before and after it in the
    run's metrics."""
    return calibration.after_training(data, windows.example_logits(data.settings, model), eval_dataset, metrics,
                                      multilabel=False)


def export(model, data, tokenizer, precision: str) -> None:
    names = [str(n) for n in data.settings.label_names] or [str(i) for i in range(data.settings.num_classes)]
    export_classifier(model, data.transform_output, data.fn_args.serving_model_dir, names, precision,
                      data.settings.export_length_bucket, data.temperature, slices.served_features(data.settings, tokenizer),
                      data.settings)


def export_classifier(classifier, tf_transform_output, export_dir: str, class_names, precision: str = "float32",
                      length_bucket: int = 0, temperature: float = 1.0, slice_features: tuple | None = None,
                      window_settings=None):
    """The served SavedModel: raw text (or a pair) -> ``probabilities`` (of the logits divided by
    the fitted ``temperature``; of a long text's windows pooled, ``window_settings``),
    ``class_ids`` and ``windows_cut``, plus TF Serving's classify signature; the weights at
    ``precision`` (``models.compression``)."""
    served = compression.for_serving(classifier, precision)
    windowed = windows.windowed(window_settings)  # None (no settings): one window
    logits_of = windows.example_logits(window_settings, served)

    def outputs_fn(transformed):
        logits = logits_of(finetuning.model_inputs(transformed, windows.model_inputs(window_settings)), training=False)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32) / temperature, axis=-1)
        return {features.PROBABILITIES: probabilities,
                features.CLASS_IDS: tf.argmax(probabilities, axis=-1),
                **windows.cut_output(transformed)}

    text_keys = tuple(k for k in (features.TEXT, features.TEXT_B) if k in tf_transform_output.raw_feature_spec())
    export_lib.export_text_model(served, tf_transform_output, export_dir, outputs_fn, text_keys=text_keys,
                                 class_names=tuple(class_names), length_bucket=0 if windowed else length_bucket,
                                 slice_features=slice_features)
