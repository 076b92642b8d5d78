"""models/class_weights.py: ``finetune.class_weights: balanced`` from the train split's label
counts, against scikit-learn's ``compute_class_weight("balanced")``, resolved before the Trainer
compiles; the classifier's inputs and NER's per-tag loss carrying them; the settings' rules."""
import types

import numpy as np
import pytest
import tensorflow as tf
from sklearn.utils.class_weight import compute_class_weight

from tfx_bert import config as config_lib
from tfx_bert import tasks
from tfx_bert_app.models import class_weights


def _classifier_data(labels, *overrides, batch=16):
    """A stand-in for the Trainer's data: ``dataset`` serves (inputs, class id) batches of ``labels``."""
    ids = np.asarray(labels, np.int64).reshape(-1, 1)
    inputs = {k: np.zeros((len(ids), 4), np.int64) for k in ("token_ids", "segment_ids", "padding_mask")}
    settings = config_lib.load_config(demo=True, overrides=list(overrides)).finetune
    return types.SimpleNamespace(settings=settings, fn_args=types.SimpleNamespace(train_files=["train"]),
                                 dataset=lambda files, training, label_key: tf.data.Dataset.from_tensor_slices(
                                     (inputs, ids)).batch(batch))


def test_balanced_weights_equal_the_formula_on_a_skewed_split():
    labels = [0] * 90 + [1] * 7 + [2] * 3
    counts = class_weights.label_counts([labels[:50], labels[50:], [-1, -1]], 3)  # -1: no word (NER)
    assert counts == [90, 7, 3]
    weights = class_weights.balanced(counts)
    np.testing.assert_allclose(weights, compute_class_weight("balanced", classes=np.arange(3), y=np.array(labels)))
    np.testing.assert_allclose(weights, [100 / (3 * 90), 100 / (3 * 7), 100 / (3 * 3)])
    with pytest.raises(ValueError, match=r"class id\(s\) \[2\] have no training example"):
        class_weights.balanced([5, 5, 0])


def test_the_classifier_trains_with_the_balanced_weight_of_each_examples_class(capsys):
    from tfx_bert_app.models import classification

    data = _classifier_data([0] * 30 + [1] * 10, "finetune.class_weights=balanced")
    assert data.settings.class_weights == ["balanced"]
    class_weights.resolve_balanced(data, tasks.get_task("sentiment"))
    assert data.settings.class_weights == pytest.approx([40 / 60, 40 / 20])
    assert "balanced class weights from the train split's label counts 0: 30 -> 0.667, 1: 10 -> 2.000" in \
        capsys.readouterr().out
    x, y, w = next(iter(classification.build_inputs(data, ["train"], training=True).unbatch().batch(40)))
    np.testing.assert_allclose(w.numpy(), np.where(y.numpy() == 0, 40 / 60, 40 / 20), rtol=1e-6)
    assert len(next(iter(classification.build_inputs(data, ["eval"], training=False)))) == 2  # no weights
    # Weights given as numbers are left as they are.
    given = _classifier_data([0, 1], "finetune.class_weights=1,3")
    class_weights.resolve_balanced(given, tasks.get_task("sentiment"))
    assert given.settings.class_weights == ["1", "3"]


def test_ner_weights_each_words_loss_by_its_tag_and_balances_rare_tags():
    from tfx_bert import features
    from tfx_bert_app.models import ner

    settings = config_lib.load_config(demo=True, overrides=["finetune.task=ner", "finetune.class_weights=balanced"]
                                      ).finetune
    num_tags = 1 + 2 * len(settings.entity_types)  # O, B- and I- of PER, LOC, ORG

    def data_of(tags):
        return types.SimpleNamespace(settings=settings, fn_args=types.SimpleNamespace(train_files=["train"]),
                                     dataset=lambda files, training: tf.data.Dataset.from_tensor_slices(
                                         {features.WORD_TAGS: tags}).batch(1))

    sparse = np.array([[0, 0, 0, 1, 2, -1], [0, 0, 3, 0, -1, -1]])  # -1: no word; I-LOC and ORG never occur
    assert ner.count_labels(data_of(sparse), ["train"]) == [6, 1, 1, 1, 0, 0, 0]
    with pytest.raises(ValueError, match=r"class id\(s\) \[4, 5, 6\] have no training example"):
        class_weights.resolve_balanced(data_of(sparse), tasks.get_task("ner"))
    every = np.array([[0, 0, 0, 1, 2, 3, 4], [0, 5, 6, 0, -1, -1, -1]])  # O x5, each other tag once
    class_weights.resolve_balanced(data_of(every), tasks.get_task("ner"))
    np.testing.assert_allclose(settings.class_weights, [11 / (7 * 5)] + [11 / 7] * 6)

    tags = sparse
    weights = [0.5, 2.0, 3.0] + [1.0] * (num_tags - 3)  # given by hand
    logits = tf.random.stateless_normal([2, 6, num_tags], seed=[1, 2])
    settings.class_weights = weights
    loss = ner.build_losses(types.SimpleNamespace(layers=[]), settings)(tf.constant(tags), logits)
    per_word = tf.nn.sparse_softmax_cross_entropy_with_logits(np.maximum(tags, 0), logits).numpy()
    expected = sum(per_word[i, j] * weights[t] for i, row in enumerate(tags) for j, t in enumerate(row) if t >= 0) / 9
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert ner.build_losses(types.SimpleNamespace(layers=[]), config_lib.load_config(
        demo=True, overrides=["finetune.task=ner"]).finetune) is ner.masked_softmax_loss  # none given: unweighted


def test_multilabel_weights_each_labels_positives_by_its_negatives_and_balances_rare_labels(capsys):
    from tfx_bert_app.models import multilabel

    settings = config_lib.load_config(demo=True, overrides=["finetune.task=multilabel",
                                                            "finetune.class_weights=balanced"]).finetune
    k = len(settings.label_names)
    rng = np.random.default_rng(0)
    labels = (rng.random((200, k)) < np.linspace(0.05, 0.5, k)).astype(np.int64)  # label 0 rare, the last common
    data = types.SimpleNamespace(settings=settings, fn_args=types.SimpleNamespace(train_files=["train"]),
                                 dataset=lambda files, training, label_key: tf.data.Dataset.from_tensor_slices(
                                     ({"token_ids": np.zeros((200, 4), np.int64)}, labels)).batch(32))
    class_weights.resolve_balanced(data, tasks.get_task("multilabel"))
    positives = labels.sum(0)
    np.testing.assert_allclose(settings.class_weights, (200 - positives) / positives)
    # scikit-learn's balanced weights of each label as a binary task: the same positive / negative ratio.
    for label, weight in enumerate(settings.class_weights):
        negative, positive = compute_class_weight("balanced", classes=np.arange(2), y=labels[:, label])
        assert weight == pytest.approx(positive / negative)
    assert f"0: {positives[0]} of 200 positive -> " in capsys.readouterr().out
    logits = tf.constant(rng.normal(size=(200, k)), tf.float32)
    loss = multilabel.build_losses(None, settings)(tf.constant(labels), logits)
    p = tf.sigmoid(logits).numpy()
    expected = -np.mean(np.array(settings.class_weights) * labels * np.log(p) + (1 - labels) * np.log(1 - p))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match=r"label\(s\) \[1\] are positive in no \(or every\)"):
        class_weights.positive_weights([(10, 3), (10, 0)])


@pytest.mark.parametrize("overrides, message", [
    (["finetune.task=multilabel", "finetune.class_weights=1,2"], "one positive weight per finetune.label_names entry"),
    (["finetune.class_weights=2,1,1"], "must be balanced or have finetune.num_classes entries"),
    (["finetune.class_weights=heavy,light"], "must be numbers >= 0 or balanced"),
    (["finetune.class_weights=-1,1"], "must be numbers >= 0 or balanced"),
    (["finetune.task=ner", "finetune.class_weights=1,2"], "one weight per IOB2 tag"),
    (["finetune.task=ner", "finetune.crf=true", "finetune.class_weights=balanced"], "a CRF's likelihood")])
def test_class_weights_that_cannot_work_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        config_lib.load_config(demo=True, overrides=overrides)
