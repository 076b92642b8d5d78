"""models/keras_layers.py: the layers several tasks' models share."""
import keras
import numpy as np
import tensorflow as tf

from tfx_bert_app.models import keras_layers


def test_mean_pooling_ignores_padding():
    sequence = tf.constant(np.arange(2 * 4 * 3, dtype="float32").reshape(2, 4, 3))
    mask = tf.constant([[1, 1, 0, 0], [1, 1, 1, 1]])
    pooled = keras_layers.Pooling("mean")(sequence, mask).numpy()
    np.testing.assert_allclose(pooled[0], sequence.numpy()[0, :2].mean(0))
    np.testing.assert_allclose(pooled[1], sequence.numpy()[1].mean(0))
    np.testing.assert_allclose(keras_layers.Pooling("cls")(sequence, mask).numpy(), sequence.numpy()[:, 0])


def test_in_batch_logits_are_cosines_over_the_temperature_with_each_querys_positive_on_the_diagonal():
    queries = tf.constant([[1.0, 0.0], [0.0, 2.0]])
    passages = tf.constant([[3.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    logits = keras_layers.InBatchLogits(0.5)(queries, passages).numpy()
    expected = np.array([[1.0, 0.0, 2 ** -0.5], [0.0, 1.0, 2 ** -0.5]]) / 0.5
    np.testing.assert_allclose(logits, expected, rtol=1e-6)


def test_unstack_and_restack_are_inverse_reshapes_between_lists_and_rows():
    lists = tf.reshape(tf.range(2 * 3 * 4), [2, 3 * 4])  # 2 examples, 3 candidates of 4 pieces
    rows = keras_layers.Unstack(4)(lists)
    assert rows.shape == (6, 4) and rows.numpy()[4].tolist() == [16, 17, 18, 19]
    scores = keras_layers.Restack(3)(tf.reduce_sum(rows, axis=1))
    assert scores.shape == (2, 3)
    assert keras.layers.deserialize(keras.layers.serialize(keras_layers.Restack(3))).num_candidates == 3


def test_unstack_by_count_splits_rows_of_any_width_and_keeps_its_count_when_saved():
    by_count = keras_layers.Unstack(4, count=3)
    lists = tf.reshape(tf.range(2 * 3 * 4), [2, 3 * 4])
    np.testing.assert_array_equal(by_count(lists).numpy(), keras_layers.Unstack(4)(lists).numpy())
    cut = lists[:, :6]  # three sequences of 2 pieces side by side (a cut training batch)
    assert by_count(cut).shape == (6, 2) and by_count(cut).numpy()[1].tolist() == [2, 3]
    assert keras.layers.deserialize(keras.layers.serialize(by_count)).count == 3
