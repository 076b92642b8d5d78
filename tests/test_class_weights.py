"""models/class_weights.py: ``finetune.class_weights: balanced`` from the train split's label
counts, against scikit-learn's ``compute_class_weight("balanced")``, and the classifier's inputs
carrying them."""
import types

import numpy as np
import pytest
import tensorflow as tf
from sklearn.utils.class_weight import compute_class_weight

from tfx_bert import config as config_lib
from tfx_bert_app.models import class_weights


def _batches(labels, batch=16):
    ids = np.asarray(labels, np.int64)
    inputs = {k: np.zeros((len(ids), 4), np.int64) for k in ("token_ids", "segment_ids", "padding_mask")}
    return tf.data.Dataset.from_tensor_slices((inputs, ids)).batch(batch)


def test_balanced_weights_equal_the_formula_on_a_skewed_split():
    labels = [0] * 90 + [1] * 7 + [2] * 3
    counts = class_weights.label_counts(_batches(labels), 3)
    assert counts == [90, 7, 3]
    weights = class_weights.balanced(counts)
    np.testing.assert_allclose(weights, compute_class_weight("balanced", classes=np.arange(3), y=np.array(labels)))
    np.testing.assert_allclose(weights, [100 / (3 * 90), 100 / (3 * 7), 100 / (3 * 3)])
    with pytest.raises(ValueError, match=r"class id\(s\) \[2\] have no training example"):
        class_weights.balanced([5, 5, 0])


def test_the_classifier_trains_with_the_balanced_weight_of_each_examples_class(capsys):
    from tfx_bert_app.models import classification

    labels = [0] * 30 + [1] * 10
    settings = config_lib.load_config(demo=True, overrides=["finetune.class_weights=balanced"]).finetune
    assert settings.class_weights == ["balanced"]
    data = types.SimpleNamespace(settings=settings, dataset=lambda files, training, label_key: _batches(labels).map(
        lambda x, y: (x, tf.reshape(y, [-1, 1]))))
    x, y, w = next(iter(classification.build_inputs(data, ["train"], training=True).unbatch().batch(40)))
    np.testing.assert_allclose(w.numpy(), np.where(y.numpy() == 0, 40 / 60, 40 / 20), rtol=1e-6)
    assert "balanced class weights from the train split's label counts 0: 30 -> 0.667, 1: 10 -> 2.000" in \
        capsys.readouterr().out
    # Evaluation batches carry no weights.
    assert len(next(iter(classification.build_inputs(data, ["eval"], training=False)))) == 2


@pytest.mark.parametrize("value, message", [
    ("2,1,1", "must be balanced or have finetune.num_classes entries"),
    ("heavy,light", "must be numbers >= 0 or balanced"),
    ("-1,1", "must be numbers >= 0 or balanced")])
def test_class_weights_that_are_neither_numbers_per_class_nor_balanced_are_refused(value, message):
    with pytest.raises(ValueError, match=message):
        config_lib.load_config(demo=True, overrides=[f"finetune.class_weights={value}"])
