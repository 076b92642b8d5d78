"""Sequence classification (sentiment): Transform ``preprocessing_fn`` and Trainer ``run_fn``.

[CLS] -> pooler -> dropout -> Dense -> softmax, i.e. keras-hub's ``BertClassifier`` on a
backbone warm-started from the pretrained encoder.
"""
from __future__ import annotations

import json
import os

import keras
import keras_hub
import tensorflow as tf
import tensorflow_transform as tft
from tfx_bsl.public import tfxio

from models import encoder as encoder_lib
from models import export, optimization
from tfx_bert import features


def _dense_strings(tensor):
    if isinstance(tensor, tf.SparseTensor):
        tensor = tf.sparse.to_dense(tensor, default_value="")
    return tf.reshape(tensor, [-1])


def preprocessing_fn(inputs: dict, custom_config: dict) -> dict:
    """Raw text (and label) -> token_ids, segment_ids, padding_mask (int64 [batch, seq]).

    ``custom_config``: ``encoder_dir`` (whose vocabulary to use) and ``max_seq_length``.
    """
    tokenizer = encoder_lib.load_tokenizer(custom_config["encoder_dir"])
    seq_len = int(custom_config["max_seq_length"])
    texts_b = _dense_strings(inputs[features.TEXT_B]) if features.TEXT_B in inputs else None
    packed = tokenizer.encode(_dense_strings(inputs[features.TEXT]), seq_len, texts_b)
    outputs = {key: tf.cast(value, tf.int64) for key, value in packed.items()}
    if features.LABEL in inputs:
        label = inputs[features.LABEL]
        if isinstance(label, tf.SparseTensor):
            label = tf.sparse.to_dense(label)
        outputs[features.LABEL] = tf.reshape(tf.cast(label, tf.int64), [-1])
    return outputs


def _dataset(fn_args, files, tf_transform_output, batch_size: int, repeat: bool):
    options = tfxio.TensorFlowDatasetOptions(
        batch_size=batch_size, label_key=features.LABEL, shuffle=repeat,
        num_epochs=None if repeat else 1, drop_final_batch=False)
    ds = fn_args.data_accessor.tf_dataset_factory(
        files, options, tf_transform_output.transformed_metadata.schema)
    return ds.map(lambda x, y: ({k: tf.cast(x[k], tf.int32) for k in features.MODEL_INPUT_KEYS},
                                tf.cast(tf.reshape(y, [-1]), tf.int32)))


def run_fn(fn_args) -> None:
    """TFX Trainer entry point: fine-tunes a classifier from the encoder in ``base_model``.

    ``custom_config``: num_classes, batch_size, learning_rate, dropout, seed.
    """
    config = dict(fn_args.custom_config or {})
    keras.utils.set_random_seed(int(config.get("seed", 12345)))
    if not fn_args.base_model:
        raise ValueError("The fine-tuning Trainer needs base_model: a pretrained encoder artifact.")
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    batch_size = int(config.get("batch_size", 32))
    train_steps = int(fn_args.train_steps)
    num_classes = int(config.get("num_classes", 2))

    backbone = encoder_lib.load_backbone(fn_args.base_model)
    classifier = keras_hub.models.BertClassifier(
        backbone=backbone, num_classes=num_classes, preprocessor=None,
        dropout=float(config.get("dropout", 0.1)))
    classifier.compile(
        optimizer=optimization.adamw(float(config.get("learning_rate", 5e-4)),
                                     max(1, train_steps // 10), train_steps),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    train_ds = _dataset(fn_args, fn_args.train_files, tf_transform_output, batch_size, True)
    eval_ds = _dataset(fn_args, fn_args.eval_files, tf_transform_output, batch_size, False)
    print(f"  [train] fine-tuning {num_classes}-class classifier from {fn_args.base_model}, "
          f"{train_steps} steps of batch {batch_size}", flush=True)
    history = classifier.fit(
        train_ds, steps_per_epoch=train_steps, epochs=1, verbose=0,
        validation_data=eval_ds, validation_steps=fn_args.eval_steps,
        callbacks=[keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir)])
    metrics = {k: float(v[-1]) for k, v in history.history.items()}
    print("  [train] " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())), flush=True)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "train_metrics.json"), "w") as f:
        f.write(json.dumps(metrics, indent=2))

    def outputs_fn(transformed):
        logits = classifier({k: tf.cast(transformed[k], tf.int32) for k in features.MODEL_INPUT_KEYS},
                            training=False)
        probabilities = tf.nn.softmax(logits, axis=-1)
        return {features.PROBABILITIES: probabilities,
                features.CLASS_IDS: tf.argmax(probabilities, axis=-1)}

    export.export_text_model(classifier, tf_transform_output, fn_args.serving_model_dir, outputs_fn,
                             class_names=tuple(str(i) for i in range(num_classes)))
