"""models/multilabel.py's after-training step: per-label thresholds tuned for F1 on the
validation batches only (after the temperature), handed to the export; the settings' rules."""
import types

import numpy as np
import pytest
import tensorflow as tf

from tfx_bert import config as config_lib
from tfx_bert_app.models import calibration, finetuning, multilabel

LABELS = ["garden", "kitchen", "music"]


def _settings(*overrides):
    return config_lib.load_config(demo=True, overrides=["finetune.task=multilabel",
                                                        f"finetune.label_names={','.join(LABELS)}", *overrides]).finetune


def test_each_labels_threshold_maximises_its_f1_and_ties_go_to_the_default():
    probabilities = np.array([[0.9, 0.2, 0.1], [0.35, 0.3, 0.2], [0.3, 0.6, 0.1], [0.1, 0.7, 0.2]])
    labels = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0]])
    chosen = multilabel.tune_thresholds(probabilities, labels, 0.5)
    # garden: 0.35 takes both positives and no negative (F1 1); kitchen: anything in (0.3, 0.6]
    # is perfect and 0.5 (the default, a candidate) is nearest; music has no positive: the default.
    assert chosen == [pytest.approx(0.35), pytest.approx(0.5), 0.5]


def test_thresholds_are_tuned_on_the_validation_batches_after_calibration_and_reach_the_export(capsys):
    rng = np.random.default_rng(1)
    truth = (rng.random((400, 3)) < 0.3).astype(int)
    # A model whose music logit is shifted down by 2: at 0.5 it misses most music examples.
    logits = (truth * 2.0 - 1.0) * 2.0 + rng.normal(size=(400, 3)) + np.array([0.0, 0.0, -2.5])
    validation = tf.data.Dataset.from_tensor_slices((logits.astype("float32"), truth.astype("float32"))).batch(50)
    settings = _settings("finetune.label_thresholds=tuned")
    data = finetuning.TrainerData(types.SimpleNamespace(), None, settings)
    model = tf.keras.layers.Lambda(lambda x: x)
    metrics = multilabel.after_training(data, None, model, None, validation, {})
    expected = multilabel.tune_thresholds(calibration.probabilities(logits, data.temperature, multilabel=True),
                                          truth, 0.5)
    assert data.decision_thresholds == pytest.approx(expected)
    assert metrics["decision_thresholds"] == dict(zip(LABELS, data.decision_thresholds))
    assert data.decision_thresholds[2] < 0.5 and "calibration" in metrics
    assert "[thresholds] tuned on the validation split" in capsys.readouterr().out
    # The music F1 at the tuned thresholds beats the one at 0.5 on this data.
    p = calibration.probabilities(logits, data.temperature, multilabel=True)[:, 2]

    def f1(t):
        predicted = p >= t
        return 2 * (predicted & (truth[:, 2] == 1)).sum() / (predicted.sum() + truth[:, 2].sum())

    assert f1(data.decision_thresholds[2]) > f1(0.5) + 0.1
    # Configured thresholds (not tuned): nothing tuned, the export takes the configured ones.
    fixed = finetuning.TrainerData(types.SimpleNamespace(), None, _settings("finetune.calibration=none"))
    assert multilabel.after_training(fixed, None, model, None, validation, {}) == {}
    assert fixed.decision_thresholds is None and multilabel.thresholds(fixed.settings) == [0.5] * 3


@pytest.mark.parametrize("overrides, message", [
    (["finetune.label_thresholds=tuned", "finetune.validation_percent=0"], "fits the thresholds on the validation"),
    (["finetune.label_thresholds=high,low,mid"], "must be numbers in \\(0, 1\\)"),
    (["finetune.label_thresholds=0.3,0.4"], "must be tuned or have one entry per finetune.label_names entry"),
    (["finetune.calibration=isotonic"], "finetune.calibration must be temperature or none")])
def test_threshold_and_calibration_settings_that_cannot_work_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        _settings(*overrides)
