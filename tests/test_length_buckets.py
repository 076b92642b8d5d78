"""models/length_buckets.py: training batches cut to their longest row, with the losses and
the real positions' outputs of the full length."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import tiny_backbone
from tfx_bert import features
from tfx_bert_app.models import length_buckets, ner, qa, similarity
from tfx_bert_app.models.keras_layers import build_sentence_encoder

FULL, VOCAB = 32, 40


def _batch(lengths, suffix="", full=FULL, seed=0):
    """Model inputs of rows with ``lengths`` real pieces, padded to ``full``."""
    rng = np.random.default_rng(seed)
    mask = np.array([[1] * n + [0] * (full - n) for n in lengths], np.int32)
    ids = np.where(mask > 0, rng.integers(5, VOCAB, mask.shape), 0).astype(np.int32)
    ids[:, 0] = 2  # [CLS]
    segments = np.where(mask > 0, (np.arange(full)[None] >= np.array(lengths)[:, None] // 2), 0).astype(np.int32)
    return {features.TOKEN_IDS + suffix: ids, features.SEGMENT_IDS + suffix: segments * mask,
            features.PADDING_MASK + suffix: mask}


@pytest.mark.parametrize("lengths, bucket, expected", [
    ([3, 7, 12], 8, 16),  # the longest, 12, rounded up to 16
    ([16, 2], 8, 16),  # exactly at a bucket edge
    ([31, 1], 8, 32),  # rounded up past the full length: the full length
    ([32, 32], 16, 32),  # rows at the full length
    ([0, 0], 16, 16),  # no real piece at all: one bucket
    ([5], 1, 5),
])
def test_the_length_is_the_longest_row_rounded_up_to_the_bucket_and_at_most_the_full_one(lengths, bucket, expected):
    assert int(length_buckets.bucketed_length(tf.constant(_batch(lengths)[features.PADDING_MASK]), bucket)) == expected


def test_the_last_real_position_counts_not_the_number_of_real_ones():
    mask = tf.constant([[1, 1, 0, 0, 0, 1, 0, 0]])  # a real piece after a gap keeps its place
    assert int(length_buckets.bucketed_length(mask, 2)) == 6


def test_each_one_sequence_group_is_cut_on_its_own_and_other_inputs_are_left_as_they_are():
    inputs = {**_batch([3, 5]), **_batch([20, 9], suffix="_b", seed=1),
              **_batch([4, 4], suffix="_negatives", full=3 * FULL, seed=2),  # 3 sequences side by side
              features.WORD_POSITIONS: np.array([[1, 2, -1], [1, 3, 4]], np.int32)}
    cut = length_buckets.cut_batch({k: tf.constant(v) for k, v in inputs.items()}, FULL, 8)
    assert {k: tuple(v.shape) for k, v in cut.items()} == {
        "token_ids": (2, 8), "segment_ids": (2, 8), "padding_mask": (2, 8),
        "token_ids_b": (2, 24), "segment_ids_b": (2, 24), "padding_mask_b": (2, 24),
        "token_ids_negatives": (2, 96), "segment_ids_negatives": (2, 96), "padding_mask_negatives": (2, 96),
        "word_positions": (2, 3)}
    for key, value in cut.items():
        np.testing.assert_array_equal(value.numpy(), inputs[key][:, :value.shape[1]])
        assert not inputs[key][:, value.shape[1]:].any(), key  # only padding was cut


def _side_by_side(lengths, count: int, suffix: str, seed: int = 0):
    """Inputs of rows of ``count`` sequences side by side (``lengths``: each sequence's real pieces, row by row)."""
    return {k: v.reshape(len(lengths) // count, count * FULL) for k, v in _batch(lengths, suffix, seed=seed).items()}


def _stacked_batch():
    """Two queries (24 wide, 5 and 11 real pieces), their positives and 3 hard negatives each."""
    return {**_batch([5, 11], suffix="_query", full=24), **_batch([4, 6], seed=1),
            **_side_by_side([3, 9, 2, 5, 1, 4], 3, "_negatives", seed=2)}


def test_side_by_side_sequences_are_cut_to_the_longest_of_them_where_the_task_names_them():
    inputs = _stacked_batch()
    cut = length_buckets.cut_batch({k: tf.constant(v) for k, v in inputs.items()}, FULL, 8,
                                   {"_negatives": 3, "_query": 1})
    assert {k: tuple(v.shape) for k, v in cut.items() if k.startswith("token_ids")} == {
        "token_ids": (2, 8), "token_ids_query": (2, 16), "token_ids_negatives": (2, 3 * 16)}  # 9 -> 16 each
    for key, value in cut.items():
        count = 3 if key.endswith("_negatives") else 1
        full = inputs[key].reshape(2, count, -1)
        width = value.shape[1] // count
        np.testing.assert_array_equal(value.numpy().reshape(2, count, width), full[:, :, :width], err_msg=key)
        assert not full[:, :, width:].any(), key  # only padding was cut
    unnamed = length_buckets.cut_batch({k: tf.constant(v) for k, v in inputs.items()}, FULL, 8)
    assert unnamed["token_ids_negatives"].shape == (2, 3 * FULL) and unnamed["token_ids_query"].shape == (2, 24)


def test_a_cut_batch_gives_the_dual_encoder_the_list_model_and_the_pair_packer_the_full_lengths_outputs():
    from types import SimpleNamespace

    from tfx_bert_app.models import rerank, retrieval

    tf.keras.utils.set_random_seed(0)
    x = {k: tf.constant(v) for k, v in _stacked_batch().items()}
    cut = length_buckets.cut_batch(x, FULL, 8, retrieval.stacked_sequences(SimpleNamespace(num_negatives=3)))
    tower = build_sentence_encoder(tiny_backbone(VOCAB, FULL), "mean")
    dual = retrieval.build_dual_encoder(tower, tower, FULL, 3, 0.05)
    np.testing.assert_allclose(dual(cut, training=False).numpy(), dual(x, training=False).numpy(), atol=1e-5)
    # The re-ranker teacher's pairs: the same pieces, whatever the widths they came in.
    full_pairs, cut_pairs = retrieval.PackPairs(FULL, 3)(x), retrieval.PackPairs(FULL, 3)(cut)
    for row in range(8):
        real = lambda pairs: pairs["token_ids"][row][pairs["padding_mask"][row] > 0].numpy().tolist()  # noqa: E731
        assert real(cut_pairs) == real(full_pairs), row

    lists = _side_by_side([3, 9, 2, 5, 1, 4], 3, "")
    cut_lists = length_buckets.cut_batch({k: tf.constant(v) for k, v in lists.items()}, FULL, 8,
                                         rerank.stacked_sequences(SimpleNamespace(num_negatives=2)))
    assert cut_lists[features.TOKEN_IDS].shape == (2, 3 * 16)
    model = rerank.build_list_model(rerank.build_cross_encoder(tiny_backbone(VOCAB, FULL), 0.0), FULL, 3)
    np.testing.assert_allclose(model(cut_lists, training=False).numpy(), model(lists, training=False).numpy(),
                               atol=1e-5)


def test_datasets_of_inputs_labels_and_weights_keep_their_form_and_bucket_0_changes_nothing():
    x, y = _batch([3, 12]), np.array([0, 1])
    pairs = tf.data.Dataset.from_tensors((x, y, np.ones(2, np.float32)))
    [(cut, labels, weights)] = list(length_buckets.length_aware(pairs, FULL, 16))
    assert cut[features.TOKEN_IDS].shape == (2, 16) and list(labels.numpy()) == [0, 1] and weights.shape == (2,)
    [alone] = list(length_buckets.length_aware(tf.data.Dataset.from_tensors(x), FULL, 16))
    assert alone[features.PADDING_MASK].shape == (2, 16)
    assert length_buckets.length_aware(pairs, FULL, 0) is pairs
    assert length_buckets.length_aware(pairs, 64, 16) is pairs  # no group of that length: untouched


def _classifier():
    import keras_hub

    return keras_hub.models.BertClassifier(backbone=tiny_backbone(VOCAB, FULL), num_classes=3, preprocessor=None)


def _pair_model():
    return similarity.build_pair_model(build_sentence_encoder(tiny_backbone(VOCAB, FULL), "mean"), "cosine")


# kind -> (the task's model, its loss given the model)
MODELS = {
    "classifier": (_classifier, lambda model: keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
    "span": (lambda: qa.build_span_model(tiny_backbone(VOCAB, FULL), 0.1), lambda model: qa.span_loss),
    "tagger": (lambda: ner.build_tagger(tiny_backbone(VOCAB, FULL), 5, 0.1, False),
               lambda model: ner.masked_softmax_loss),
    "crf tagger": (lambda: ner.build_tagger(tiny_backbone(VOCAB, FULL), 5, 0.1, True),
                   lambda model: ner.crf_loss(model.get_layer("crf"))),
    "pair": (_pair_model, lambda model: keras.losses.MeanSquaredError()),
}


def _task_batch(kind: str):
    """(inputs, labels) of four rows of 2-13 pieces, in the kind's form."""
    lengths = [2, 13, 6, 9]
    x = _batch(lengths)
    if kind == "pair":
        return {**x, **_batch([4, 3, 11, 7], suffix="_b", seed=3)}, np.array([0.2, 0.9, 0.5, 0.0], np.float32)
    if kind == "span":  # start and end inside each row's real pieces
        return x, np.array([[1, 1], [3, 9], [0, 0], [2, 8]], np.int32)
    if kind.endswith("tagger"):
        x[features.WORD_POSITIONS] = np.array([[1, -1, -1], [1, 4, 12], [2, 5, -1], [1, 3, 8]], np.int32)
        return x, np.array([[1, -1, -1], [0, 2, 4], [3, 1, -1], [2, 0, 1]], np.int32)
    return x, np.array([0, 2, 1, 2], np.int32)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_a_cut_batch_gives_each_task_model_the_full_lengths_outputs_and_loss(kind):
    tf.keras.utils.set_random_seed(0)
    build, loss_of = MODELS[kind]
    model = build()
    x, y = _task_batch(kind)
    cut = length_buckets.cut_batch({k: tf.constant(v) for k, v in x.items()}, FULL, 8)
    assert cut[features.TOKEN_IDS].shape[1] == 16
    full_out, cut_out = model(x, training=False), model(cut, training=False)
    if kind == "span":  # per position: the cut one's positions are the full one's first
        np.testing.assert_allclose(cut_out.numpy(), full_out.numpy()[:, :16], atol=1e-5)
    else:
        np.testing.assert_allclose(cut_out.numpy(), full_out.numpy(), atol=1e-5)
    loss = loss_of(model)
    np.testing.assert_allclose(float(loss(y, cut_out)), float(loss(y, full_out)), rtol=1e-5, atol=1e-6)
