"""Calibrated probabilities: temperature scaling and the expected calibration error (ECE).

Fine-tuned BERTs are over-confident (Desai & Durrett 2020, "Calibration of Pre-trained
Transformers"): a softmax of logits trained with cross-entropy says 0.99 where the model is right
80% of the time. Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural
Networks") divides every logit by one number T fitted after training on the validation split (the
temperature that minimises its negative log-likelihood); the export folds T into the served graph.
One positive T rescales a row's logits alike, so the predicted class never changes: only the
probabilities do. For multi-label heads the same T divides each label's logit before its sigmoid.

ECE: the examples binned by confidence (15 equal-width bins, as Guo et al.), the
example-weighted mean of |accuracy - confidence| per bin. Top-label for a softmax head (the
confidence is the highest probability, "accurate" that it is the label); per label for a
multi-label head (each probability against that label's 0/1 truth).
``ExpectedCalibrationError`` is the TFMA metric of it (TFMA ships calibration plots but no ECE),
so the Evaluator reports it and the gate may bound it (``finetune.max_ece``).

Written here, not taken from a library: TFMA has no ECE and Keras no temperature scaling.
"""
from __future__ import annotations

import json
import math
from typing import Iterable

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_types, metric_util

ECE = "expected_calibration_error"
BINS = 15
# The temperatures searched (log-uniformly): 0.05 sharpens 20x, 20 flattens 20x; a fit at either
# end means the logits carry no usable confidence, and the report shows it.
_LOG_BOUNDS = (math.log(0.05), math.log(20.0))


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def probabilities(logits, temperature: float = 1.0, multilabel: bool = False) -> np.ndarray:
    """Softmax (sigmoid per label when ``multilabel``) of ``logits / temperature``."""
    scaled = np.asarray(logits, np.float64) / temperature
    if multilabel:
        return 1.0 / (1.0 + np.exp(-scaled))
    return np.exp(_log_softmax(scaled))


def negative_log_likelihood(logits, labels, temperature: float = 1.0, multilabel: bool = False) -> float:
    """Mean NLL of the labels (class ids; multi-hot rows when ``multilabel``) under
    ``logits / temperature``."""
    scaled = np.asarray(logits, np.float64) / temperature
    if multilabel:
        y = np.asarray(labels, np.float64)
        # log(1 + e^-|z|) + max(z, 0) - y z: the stable binary cross-entropy of a logit.
        return float(np.mean(np.logaddexp(0.0, -np.abs(scaled)) + np.maximum(scaled, 0.0) - y * scaled))
    ids = np.asarray(labels, np.int64).reshape(-1)
    return float(-_log_softmax(scaled)[np.arange(len(ids)), ids].mean())


def fit_temperature(logits, labels, multilabel: bool = False) -> float:
    """The T in [0.05, 20] that minimises the NLL of ``labels`` under ``logits / T``: a golden-
    section search over log T (the NLL is unimodal in it). No examples: 1."""
    if len(np.asarray(labels)) == 0:
        return 1.0
    lo, hi = _LOG_BOUNDS
    ratio = (math.sqrt(5) - 1) / 2

    def loss(log_t):
        return negative_log_likelihood(logits, labels, math.exp(log_t), multilabel)

    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    loss_a, loss_b = loss(a), loss(b)
    while hi - lo > 1e-4:
        if loss_a <= loss_b:
            hi, b, loss_b = b, a, loss_a
            a = hi - ratio * (hi - lo)
            loss_a = loss(a)
        else:
            lo, a, loss_a = a, b, loss_b
            b = lo + ratio * (hi - lo)
            loss_b = loss(b)
    return math.exp((lo + hi) / 2)


def _confidence_and_correct(probs: np.ndarray, labels, multilabel: bool) -> tuple[np.ndarray, np.ndarray]:
    if multilabel:
        return probs.reshape(-1), np.asarray(labels, np.float64).reshape(-1)
    ids = np.asarray(labels, np.int64).reshape(-1)
    return probs.max(axis=-1), (probs.argmax(axis=-1) == ids).astype(np.float64)


def bin_sums(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> np.ndarray:
    """[bins, 3]: per confidence bin, (count, sum of confidence, sum of correct)."""
    index = np.minimum((np.asarray(confidence) * bins).astype(np.int64), bins - 1)
    sums = np.zeros((bins, 3))
    np.add.at(sums, index, np.stack([np.ones_like(confidence), confidence, correct], axis=-1))
    return sums


def ece_from_bins(sums: np.ndarray) -> float:
    total = sums[:, 0].sum()
    return float(np.abs(sums[:, 2] - sums[:, 1]).sum() / total) if total else 0.0


def expected_calibration_error(probs, labels, multilabel: bool = False, bins: int = BINS) -> float:
    """ECE of ``probs`` ([examples, classes]) against ``labels`` (class ids; multi-hot rows
    when ``multilabel``)."""
    confidence, correct = _confidence_and_correct(np.asarray(probs, np.float64), labels, multilabel)
    return ece_from_bins(bin_sums(confidence, correct, bins))


def calibrate(logits, labels, multilabel: bool = False) -> dict:
    """The fitted temperature with the validation split's ECE and NLL before and after it (the
    run's report, ``train_metrics.json`` ``calibration``)."""
    fitted = fit_temperature(logits, labels, multilabel)
    # At a bound of the search the NLL had no minimum inside it: a validation split the model gets
    # all right pulls T to 0 (any sharpening lowers its NLL), which would serve 0/1 probabilities.
    # Such a fit says nothing about new data: the logits stay as trained.
    at_bound = min(abs(math.log(fitted) - bound) for bound in _LOG_BOUNDS) < 1e-2
    temperature = 1.0 if at_bound else fitted
    return {"temperature": temperature, "fitted_temperature": fitted, "at_bound": at_bound,
            "examples": int(len(np.asarray(labels))),
            "ece_before": expected_calibration_error(probabilities(logits, 1.0, multilabel), labels, multilabel),
            "ece_after": expected_calibration_error(probabilities(logits, temperature, multilabel), labels, multilabel),
            "nll_before": negative_log_likelihood(logits, labels, 1.0, multilabel),
            "nll_after": negative_log_likelihood(logits, labels, temperature, multilabel)}


def collect_logits(model, dataset) -> tuple[np.ndarray, np.ndarray]:
    """(logits, labels) of ``model`` over every batch of ``dataset`` ((inputs, labels) batches)."""
    logits, labels = [], []
    for x, y in dataset:
        logits.append(np.asarray(model(x, training=False), np.float64))
        labels.append(np.asarray(y))
    if not logits:
        return np.zeros((0, 0)), np.zeros((0,))
    return np.concatenate(logits), np.concatenate(labels)


def metric_config(multilabel: bool, max_ece: float = 0.0) -> tfma.MetricConfig:
    """The TFMA metric config of ``ExpectedCalibrationError``, bounded by ``max_ece`` (0: reported
    only)."""
    threshold = (tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(upper_bound={"value": max_ece}))
                 if max_ece else None)
    return tfma.MetricConfig(class_name="ExpectedCalibrationError", module=__name__,
                             config=json.dumps({"per_label": multilabel}), threshold=threshold)


class ExpectedCalibrationError(metric_types.Metric):
    """TFMA metric ``expected_calibration_error`` of the served probabilities (top-label for a
    softmax head, each label's with ``per_label``: a multi-label head's)."""

    def __init__(self, name: str = ECE, per_label: bool = False):
        super().__init__(_computations, name=name, per_label=per_label)


metric_types.register_metric(ExpectedCalibrationError)


def _computations(name=ECE, eval_config=None, model_names=None, output_names=None, sub_keys=None,
                  aggregation_type=None, class_weights=None, example_weighted=False, per_label=False):
    computations = []
    for model_name in model_names or [""]:
        for output_name in output_names or [""]:
            key = metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name)
            computations.append(metric_types.MetricComputation(
                keys=[key], preprocessors=None,
                combiner=_Combiner(key, eval_config, model_name, output_name, per_label)))
    return computations


class _Combiner(beam.CombineFn):
    def __init__(self, key, eval_config, model_name, output_name, multilabel):
        self._key, self._eval_config = key, eval_config
        self._model_name, self._output_name, self._multilabel = model_name, output_name, multilabel

    def create_accumulator(self):
        return np.zeros((BINS, 3))

    def add_input(self, accumulator, element):
        for label, prediction, _ in metric_util.to_label_prediction_example_weight(
                element, eval_config=self._eval_config, model_name=self._model_name,
                output_name=self._output_name, flatten=False, squeeze=False):
            probs = np.asarray(prediction, np.float64).reshape(1, -1)
            labels = np.asarray(label).reshape(1, -1) if self._multilabel else np.asarray(label).reshape(-1)[:1]
            confidence, correct = _confidence_and_correct(probs, labels, self._multilabel)
            accumulator = accumulator + bin_sums(confidence, correct)
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[np.ndarray]):
        return sum(accumulators, self.create_accumulator())

    def extract_output(self, accumulator):
        return {self._key: ece_from_bins(accumulator)}


def after_training(data, model, eval_dataset, metrics: dict, multilabel: bool, collected=None) -> dict:
    """With ``finetune.calibration: temperature`` and a validation split (``eval_dataset`` is then
    it; the eval split stays the gate's): fits the temperature on the model's validation logits
    (``collected``: (logits, labels) already computed), sets ``data.temperature`` for the export
    and adds ``calibration`` to ``metrics``."""
    settings = data.settings
    if settings.setting("calibration", "none") != "temperature":
        return metrics
    if not settings.has_validation:
        print("  [calibration] none: no validation split to fit the temperature on (finetune.validation_percent)",
              flush=True)
        return metrics
    logits, labels = collected or collect_logits(model, eval_dataset)
    report = calibrate(logits, labels, multilabel)
    data.temperature = report["temperature"]
    if report["at_bound"]:
        print(f"  [calibration] none: the temperature fitted on {report['examples']} validation examples went to "
              f"the end of its range ({report['fitted_temperature']:.3f}; a split the model gets all right has no "
              f"finite optimum): the logits are served as trained", flush=True)
        return {**metrics, "calibration": report}
    print(f"  [calibration] temperature {report['temperature']:.3f} fitted on {report['examples']} validation "
          f"examples: ECE {report['ece_before']:.4f} -> {report['ece_after']:.4f}, "
          f"NLL {report['nll_before']:.4f} -> {report['nll_after']:.4f}", flush=True)
    return {**metrics, "calibration": report}
