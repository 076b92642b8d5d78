"""models.pretraining: the MLM head tied to the token embeddings, and the input pipeline's
dynamic and static masking."""
import numpy as np
import tensorflow as tf

from tests.helpers import tiny_backbone
from tfx_bert import features
from tfx_bert_app.models import pretraining


def _write_instances(path, rows):
    with tf.io.TFRecordWriter(path, options="GZIP") as w:
        for ids, segs, label in rows:
            e = tf.train.Example()
            e.features.feature[features.TOKEN_IDS].int64_list.value.extend(ids)
            e.features.feature[features.SEGMENT_IDS].int64_list.value.extend(segs)
            e.features.feature[features.NEXT_SENTENCE_LABEL].int64_list.value.append(label)
            w.write(e.SerializeToString())


def test_mlm_head_is_tied_to_token_embeddings():
    backbone = tiny_backbone(40, 16)
    model = pretraining.build_pretraining_model(backbone)
    head = model.get_layer(pretraining.MLM)
    assert head.token_embedding is backbone.token_embedding
    embedding_vars = {id(v) for v in backbone.token_embedding.weights}
    # The head adds no [hidden, vocab] projection of its own: only a bias, dense + layer norm.
    own = [v for v in head.weights if id(v) not in embedding_vars]
    assert not any(tuple(v.shape) == (16, 40) for v in own)
    x = {features.TOKEN_IDS: np.ones((2, 8), "int32"), features.SEGMENT_IDS: np.zeros((2, 8), "int32"),
         features.PADDING_MASK: np.ones((2, 8), "int32"), features.MASK_POSITIONS: np.array([[1, 2], [3, 0]], "int32")}
    out = model(x)
    assert out[pretraining.MLM].shape == (2, 2, 40) and out[pretraining.NSP].shape == (2, 2)


def test_dataset_masks_dynamically_and_pads(tmp_path):
    rows = [([2] + list(range(10, 20)) + [3] + list(range(20, 25)) + [3], [0] * 12 + [1] * 6, i % 2) for i in range(8)]
    _write_instances(str(tmp_path / "a.gz"), rows)
    metadata = {"max_seq_length": 24, "vocab_size": 40,
                "special_ids": {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}}
    ds = pretraining.make_dataset(str(tmp_path / "*.gz"), metadata, 4, 5, 0.3, seed=1)
    (x1, y1, sw1), (x2, _, _) = list(ds.take(2))
    assert x1[features.TOKEN_IDS].shape == (4, 24)
    assert x1[features.MASK_POSITIONS].shape == (4, 5)
    mask = x1[features.PADDING_MASK].numpy()
    assert (mask.sum(axis=1) == 18).all()
    positions = x1[features.MASK_POSITIONS].numpy()
    weights = sw1[pretraining.MLM].numpy()
    tokens = x1[features.TOKEN_IDS].numpy()
    for row in range(4):
        chosen = positions[row][weights[row] > 0]
        assert len(chosen) >= 1
        assert tokens[row][0] == 2  # [CLS] stays
        assert not set(chosen) & {0, 11, 17}  # neither [CLS] nor [SEP] is ever chosen
    assert not np.array_equal(x1[features.TOKEN_IDS].numpy(), x2[features.TOKEN_IDS].numpy())
    baselines = pretraining.majority_baselines(ds, 2)
    assert 0 < baselines["mlm_unigram_baseline_accuracy"] <= 1
    assert baselines["nsp_majority_baseline_accuracy"] == 0.5


def test_dataset_uses_static_masks_as_written(tmp_path):
    path = str(tmp_path / "s.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as w:
        for i in range(4):
            e = tf.train.Example()
            f = e.features.feature
            f[features.TOKEN_IDS].int64_list.value.extend([2, 4, 11, 3, 12, 3])
            f[features.SEGMENT_IDS].int64_list.value.extend([0, 0, 0, 0, 1, 1])
            f[features.NEXT_SENTENCE_LABEL].int64_list.value.append(i % 2)
            f[features.MASK_POSITIONS].int64_list.value.extend([1, 0, 0])
            f[features.MASK_IDS].int64_list.value.extend([10, 0, 0])
            f[features.MASK_WEIGHTS].float_list.value.extend([1.0, 0.0, 0.0])
            w.write(e.SerializeToString())
    metadata = {"max_seq_length": 8, "vocab_size": 40, "masking": "static", "max_predictions_per_seq": 3,
                "special_ids": {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}}
    x, y, sw = next(iter(pretraining.make_dataset(path, metadata, 4, 3, 0.15, seed=1, repeat=False)))
    np.testing.assert_array_equal(x[features.TOKEN_IDS].numpy()[0], [2, 4, 11, 3, 12, 3, 0, 0])
    np.testing.assert_array_equal(x[features.MASK_POSITIONS].numpy()[0], [1, 0, 0])
    np.testing.assert_array_equal(y[pretraining.MLM].numpy()[0], [10, 0, 0])
    np.testing.assert_array_equal(sw[pretraining.MLM].numpy()[0], [1, 0, 0])
    np.testing.assert_array_equal(x[features.PADDING_MASK].numpy()[0], [1, 1, 1, 1, 1, 1, 0, 0])
