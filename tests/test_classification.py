"""models.classification's TFMA configuration (accuracy, F1, MCC, per class, ECE), run by TFMA
itself on predictions written next to labels, against scikit-learn's definitions (ECE against
models/calibration.py's), and the gate's bound on the ECE."""

import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, precision_score, recall_score

from tests.helpers import run_tfma
from tfx_bert import config as config_lib


@pytest.mark.parametrize("num_classes", [2, 3])
def test_classification_metrics_match_sklearn(tmp_path, num_classes):
    from tfx_bert_app.models import calibration, classification

    rng = np.random.default_rng(num_classes)
    labels = rng.integers(0, num_classes, 300)
    logits = rng.normal(size=(300, num_classes)) + 1.5 * np.eye(num_classes)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    examples = []
    for label, p in zip(labels, probabilities):
        example = tf.train.Example()
        example.features.feature["label"].int64_list.value.append(int(label))
        example.features.feature["probabilities"].float_list.value.extend(p.tolist())
        examples.append(example)
    # The gate's ECE bound (finetune.max_ece): one this fixture passes (2 classes), one it fails (3).
    max_ece = 0.9 if num_classes == 2 else 0.001
    f = config_lib.load_config(demo=True, overrides=[f"finetune.num_classes={num_classes}",
                                                     f"finetune.max_ece={max_ece}"]).finetune
    metrics, validation = run_tfma(tmp_path, classification.eval_config(f), examples)
    ece = calibration.expected_calibration_error(probabilities, labels)
    assert metrics[("expected_calibration_error", None)] == pytest.approx(ece, abs=1e-6)
    failed = {failure.metric_key.name for per_slice in validation.metric_validations_per_slice
              for failure in per_slice.failures}
    assert ("expected_calibration_error" in failed) == (ece > max_ece), (ece, failed)
    # TFMA's calibration plot of each class: its buckets hold every example's probability.
    import tensorflow_model_analysis as tfma

    plots = [kv for record in tfma.load_plots(str(tmp_path / "out")) if not record.slice_key.single_slice_keys
             for kv in record.plot_keys_and_values if kv.value.HasField("calibration_histogram_buckets")]
    assert sorted(kv.key.sub_key.class_id.value for kv in plots) == list(range(num_classes))
    for kv in plots:
        assert sum(b.num_weighted_examples.value for b in kv.value.calibration_histogram_buckets.buckets) == 300
    predicted = probabilities.argmax(1)
    assert metrics[("sparse_categorical_accuracy", None)] == pytest.approx(accuracy_score(labels, predicted), abs=1e-6)
    assert metrics[("example_count", None)] == 300
    for c in range(num_classes):
        binary_true, binary_pred = labels == c, probabilities[:, c] > 0.5  # TFMA binarizes at 0.5
        assert metrics[("precision", c)] == pytest.approx(precision_score(binary_true, binary_pred), abs=1e-5)
        assert metrics[("recall", c)] == pytest.approx(recall_score(binary_true, binary_pred), abs=1e-5)
        assert metrics[("f1_score", c)] == pytest.approx(f1_score(binary_true, binary_pred), abs=1e-5)
    per_class_f1 = [f1_score(labels == c, probabilities[:, c] > 0.5) for c in range(num_classes)]
    assert metrics[("macro_f1", None)] == pytest.approx(np.mean(per_class_f1), abs=1e-5)
    if num_classes == 2:
        # With two classes, thresholding class 1 at 0.5 is the argmax: GLUE's MCC and F1.
        assert metrics[("matthews_correlation_coefficient", 1)] == pytest.approx(matthews_corrcoef(labels, predicted), abs=1e-5)
        assert metrics[("macro_f1", None)] == pytest.approx(f1_score(labels, predicted, average="macro"), abs=1e-5)
