"""models/calibration.py: the temperature fit, ECE by hand, the TFMA metric against the numpy one,
and the Trainer step that fits on the validation split and hands the temperature to the export."""
import types

import numpy as np
import pytest

from tfx_bert_app.models import calibration


def _over_confident(multilabel=False, scale=3.0, n=4000, seed=0):
    """Labels drawn from the probabilities of ``base`` logits (so ``base`` is calibrated), and
    the logits a model ``scale`` times too sure would give: the right temperature is ``scale``."""
    rng = np.random.default_rng(seed)
    if multilabel:
        base = rng.normal(size=(n, 4))
        labels = (rng.random((n, 4)) < 1 / (1 + np.exp(-base))).astype(int)
    else:
        base = rng.normal(size=(n, 3)) * 1.5
        p = np.exp(base) / np.exp(base).sum(1, keepdims=True)
        labels = np.array([rng.choice(3, p=row) for row in p])
    return scale * base, labels


@pytest.mark.parametrize("multilabel", [False, True], ids=["softmax", "sigmoid"])
def test_temperature_scaling_lowers_the_ece_of_an_over_confident_model_and_keeps_its_decisions(multilabel):
    logits, labels = _over_confident(multilabel)
    report = calibration.calibrate(logits, labels, multilabel)
    assert report["temperature"] == pytest.approx(3.0, rel=0.15)
    assert report["ece_after"] < 0.5 * report["ece_before"], report
    assert report["nll_after"] < report["nll_before"]
    before = calibration.probabilities(logits, 1.0, multilabel)
    after = calibration.probabilities(logits, report["temperature"], multilabel)
    if multilabel:  # a sigmoid keeps its side of 0.5
        np.testing.assert_array_equal(before >= 0.5, after >= 0.5)
    else:
        np.testing.assert_array_equal(before.argmax(1), after.argmax(1))
    # A calibrated model is left about as it is.
    calibrated = calibration.fit_temperature(logits / 3.0, labels, multilabel)
    assert calibrated == pytest.approx(1.0, rel=0.15)


def test_ece_is_the_weighted_gap_between_accuracy_and_confidence_per_bin():
    # Bin [0.9, 0.967): two examples at 0.95, one right -> |0.5 - 0.95| x 2; bin [0.6, 0.667):
    # one at 0.6, right -> |1 - 0.6| x 1. Over 3 examples.
    probs = np.array([[0.95, 0.05], [0.05, 0.95], [0.6, 0.4]])
    labels = np.array([0, 0, 0])
    assert calibration.expected_calibration_error(probs, labels) == pytest.approx((0.45 * 2 + 0.4) / 3)
    # Per label for multi-label heads: each probability against its 0/1 truth.
    assert calibration.expected_calibration_error(np.array([[0.9, 0.1]]), np.array([[1, 0]]), multilabel=True) == \
        pytest.approx((0.1 + 0.1) / 2)


def test_the_tfma_metric_equals_the_numpy_ece():
    import apache_beam as beam
    from apache_beam.testing import util as beam_util
    from tensorflow_model_analysis.metrics import metric_types

    logits, labels = _over_confident(n=300, seed=4)
    probs = calibration.probabilities(logits)
    [computation] = calibration.ExpectedCalibrationError().computations()
    inputs = [metric_types.StandardMetricInputs(labels=np.array([label]), predictions=p, example_weights=np.array([1.0]))
              for label, p in zip(labels, probs)]
    expected = calibration.expected_calibration_error(probs, labels)

    def check(result):
        [values] = result
        [(key, value)] = values.items()
        assert key.name == calibration.ECE and value == pytest.approx(expected, abs=1e-9)

    with beam.Pipeline() as p:
        out = p | beam.Create(inputs) | beam.CombineGlobally(computation.combiner)
        beam_util.assert_that(out, check)


def test_the_trainer_step_fits_on_the_validation_batches_and_hands_the_temperature_to_the_export(capsys):
    import keras
    import tensorflow as tf

    from tfx_bert import config as config_lib
    from tfx_bert_app.models import finetuning

    logits, labels = _over_confident(n=600, seed=2)
    model = keras.layers.Lambda(lambda x: x)  # "the model" returns the fixture's logits
    validation = tf.data.Dataset.from_tensor_slices((logits.astype("float32"), labels)).batch(64)
    settings = config_lib.load_config(demo=True).finetune
    data = finetuning.TrainerData(types.SimpleNamespace(), None, settings)
    metrics = calibration.after_training(data, model, validation, {"loss": 1.0}, multilabel=False)
    assert data.temperature == pytest.approx(metrics["calibration"]["temperature"]) and data.temperature > 2
    assert metrics["calibration"]["examples"] == 600 and metrics["loss"] == 1.0
    assert "[calibration] temperature" in capsys.readouterr().out

    # Off, or with no validation split (the eval split is the gate's): nothing is fitted.
    for change in ({"calibration": "none"}, {"validation_percent": 0}):
        f = config_lib.load_config(demo=True, overrides=[f"finetune.{k}={v}" for k, v in change.items()]).finetune
        untouched = finetuning.TrainerData(types.SimpleNamespace(), None, f)
        assert calibration.after_training(untouched, model, validation, {}, multilabel=False) == {}
        assert untouched.temperature == 1.0


def test_a_calibration_setting_that_is_not_known_is_refused():
    from tfx_bert import config as config_lib

    with pytest.raises(ValueError, match="finetune.calibration must be temperature or none, not 'platt'"):
        config_lib.load_config(demo=True, overrides=["finetune.calibration=platt"])
    with pytest.raises(ValueError, match="finetune.max_ece must be in"):
        config_lib.load_config(demo=True, overrides=["finetune.max_ece=2"])


def test_a_validation_split_the_model_gets_all_right_leaves_the_logits_as_trained():
    """Separable validation data: every sharpening lowers the NLL, the fit runs to the end of its
    range, and serving 0/1 probabilities from it would be over-confident: T stays 1."""
    labels = np.array([0, 1, 2, 0, 1, 2])
    logits = np.eye(3)[labels] * 4.0
    report = calibration.calibrate(logits, labels)
    assert report["at_bound"] and report["fitted_temperature"] == pytest.approx(0.05, rel=0.02)
    assert report["temperature"] == 1.0
    assert report["ece_after"] == pytest.approx(report["ece_before"])
