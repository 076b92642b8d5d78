"""Evaluation by slice (``finetune.slices``): TFMA slicing specs, the gate per slice, and the
derived slice features the served model computes.

A slice is a feature key. A column of the data (a source, a domain: any field TaskExampleGen
reads beside the text, ``finetune.slices: [source]``) is a feature of the examples TFMA reads.
Two keys are derived from the text with the model's own tokenizer, by the SavedModel's
``transformed_features`` signature (the name TFMA's TransformedFeaturesExtractor calls by default,
so the Evaluator slices on them without further configuration):

* ``length_bucket``: the example's WordPiece pieces (both texts, with [CLS] and [SEP]) against
  ``max_seq_length``: ``<= a quarter``, ``<= half``, ``<= max``, and ``> max (cut)`` for the texts
  training and serving truncate (``> max (windows)`` when they read them in windows);
* ``unknown_rate_bucket``: the share of [UNK] pieces: ``0%``, ``< 5%``, ``5-20%``, ``>= 20%``
  (text the vocabulary does not cover: another language, another domain, noise).

The gate: by default only the overall slice must pass the task's thresholds (the slices are
reported); with ``finetune.min_slice_size`` > 0 every slice of at least that many examples must
(TFMA omits smaller slices, whose metrics are noise). The run summary names the worst slice
(``tfx_bert/run_summary.worst_slice``).
"""
from __future__ import annotations

import tensorflow as tf
import tensorflow_model_analysis as tfma

from tfx_bert import config, tokenization

DERIVED = config.DERIVED_SLICES
LENGTH_BUCKET, UNKNOWN_RATE_BUCKET = DERIVED
SIGNATURE = "transformed_features"  # TFMA's default preprocessing function name
UNKNOWN_RATE_NAMES = ("0%", "< 5%", "5-20%", ">= 20%")  # no [UNK]; under 5%; under 20%; the rest


def length_names(max_seq_length: int, windowed: bool = False) -> list[str]:
    """The length buckets' names, shortest first; the longest texts are cut, or read in windows
    (``finetune.max_windows`` > 1)."""
    return [f"<= {max_seq_length // 4}", f"<= {max_seq_length // 2}", f"<= {max_seq_length}",
            f"> {max_seq_length} ({'windows' if windowed else 'cut'})"]


def length_bucket(lengths, max_seq_length: int, windowed: bool = False):
    """Pieces per example (int [batch]) -> the length bucket's name (string [batch])."""
    bounds = tf.constant([max_seq_length // 4, max_seq_length // 2, max_seq_length], lengths.dtype)
    index = tf.reduce_sum(tf.cast(lengths[:, None] > bounds[None, :], tf.int32), axis=1)
    return tf.gather(tf.constant(length_names(max_seq_length, windowed)), index)


def unknown_rate_bucket(unknown, pieces):
    """[UNK] pieces and all pieces per example (int [batch]) -> the rate bucket's name."""
    rate = tf.cast(unknown, tf.float32) / tf.cast(tf.maximum(pieces, 1), tf.float32)
    index = tf.where(unknown == 0, 0, tf.where(rate < 0.05, 1, tf.where(rate < 0.2, 2, 3)))
    return tf.gather(tf.constant(UNKNOWN_RATE_NAMES), index)


def add_signature(module, signatures: dict, tokenizer: tokenization.WordPieceTokenizer, text_keys: tuple,
                  max_seq_length: int, windowed: bool = False) -> None:
    """Adds the ``transformed_features`` signature (serialized tf.Examples -> ``length_bucket``
    and ``unknown_rate_bucket``) to a served model's ``module`` and ``signatures``."""
    spec = {key: tf.io.FixedLenFeature([], tf.string, default_value="") for key in text_keys}
    unknown_id = tokenizer.unk_id

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transformed_features(serialized):
        parsed = tf.io.parse_example(serialized, spec)
        pieces = [tokenizer.tokenize(parsed[key]) for key in text_keys]  # ragged [batch, pieces]
        counts = tf.add_n([tf.cast(p.row_lengths(), tf.int64) for p in pieces])
        unknown = tf.add_n([tf.reduce_sum(tf.cast(tf.equal(p, unknown_id), tf.int64), axis=1) for p in pieces])
        total = counts + 1 + len(text_keys)  # [CLS] and a [SEP] per text
        return {LENGTH_BUCKET: length_bucket(total, max_seq_length, windowed),
                UNKNOWN_RATE_BUCKET: unknown_rate_bucket(unknown, counts)}

    module.transformed_features = transformed_features
    signatures[SIGNATURE] = transformed_features.get_concrete_function()


def served_features(settings, tokenizer) -> tuple | None:
    """What ``export_text_model`` needs for the derived slice features ((tokenizer,
    max_seq_length, windowed)) when ``finetune.slices`` names one; else None (no signature)."""
    from tfx_bert_app.models import windows

    return ((tokenizer, settings.max_seq_length, windows.windowed(settings))
            if any(key in DERIVED for key in settings.slices) else None)


def with_slices(eval_config: tfma.EvalConfig, slices, min_slice_size: int) -> tfma.EvalConfig:
    """``eval_config`` with a slicing spec per key of ``slices`` besides the overall one. With
    ``min_slice_size`` 0 the thresholds keep to the overall slice (TFMA applies a metric's
    threshold to every slice); else every slice of at least that many examples is gated."""
    config = tfma.EvalConfig()
    config.CopyFrom(eval_config)
    if not slices:
        return config
    del config.slicing_specs[:]
    config.slicing_specs.extend([tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[key]) for key in slices])
    if min_slice_size:
        config.options.min_slice_size.value = min_slice_size
        return config
    for spec in config.metrics_specs:
        for metric in spec.metrics:
            if metric.HasField("threshold"):
                metric.per_slice_thresholds.add(slicing_specs=[tfma.SlicingSpec()]).threshold.CopyFrom(metric.threshold)
                metric.ClearField("threshold")
    return config


def forgive_omitted_slices(evaluation_uri: str) -> bool:
    """Drops the validation failures TFMA records for slices it omitted for having fewer than
    ``min_slice_size`` examples (it aggregates no metric for them, then fails each threshold as
    "Metric not found."), rewriting the evaluation's validation result; returns whether the
    result changed to passing. Slices below the minimum are not gated, the others are."""
    from tensorflow_model_analysis.proto import validation_result_pb2

    omitted = {record.slice_key.SerializeToString() for record in tfma.load_metrics(evaluation_uri)
               if record.slice_key.single_slice_keys and not record.metric_keys_and_values}
    result = tfma.load_validation_result(evaluation_uri)
    if result.validation_ok or not omitted:
        return False
    kept = [s for s in result.metric_validations_per_slice
            if s.slice_key.SerializeToString() not in omitted
            or any(f.message != "Metric not found." for f in s.failures)]
    if len(kept) == len(result.metric_validations_per_slice):
        return False
    fixed = validation_result_pb2.ValidationResult()
    fixed.CopyFrom(result)
    del fixed.metric_validations_per_slice[:]
    fixed.metric_validations_per_slice.extend(kept)
    fixed.validation_ok = not kept and not fixed.missing_slices and not fixed.missing_cross_slices
    [path] = tf.io.gfile.glob(f"{evaluation_uri}/validations*")
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(fixed.SerializeToString())
    return fixed.validation_ok
