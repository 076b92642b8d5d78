"""models.rerank: the cross-encoder scores single pairs and candidate lists alike, and both
losses (listwise, pointwise) learn to rank the relevant passage first."""
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import ranking_tokenizer, tiny_backbone
from tfx_bert_app.models import rerank


@pytest.fixture(scope="module")
def tokenizer():
    return ranking_tokenizer()


def test_cross_encoder_scores_pairs_and_candidate_lists_alike(tmp_path, tokenizer):
    from tfx_bert.serving import op_check

    cross_encoder = rerank.build_cross_encoder(tiny_backbone(tokenizer.vocabulary_size))
    export_dir = str(tmp_path / "rerank")
    rerank.export_cross_encoder(cross_encoder, export_dir, tokenizer, 24)
    assert op_check.unsupported_ops(export_dir) == []
    served = tf.saved_model.load(export_dir)
    query, passages = "the chef bakes", ["the chef bakes bread .", "the sailor boat .", "a star ."]
    pair_scores = served.signatures["serving_default"](query=tf.constant([query] * 3),
                                                       text=tf.constant(passages))["score"].numpy()
    example = tf.train.Example()
    feature = example.features.feature
    feature["query"].bytes_list.value.append(query.encode())
    feature["text"].bytes_list.value.append(passages[0].encode())
    feature["negatives"].bytes_list.value.extend(p.encode() for p in passages[1:])
    list_scores = served.signatures["serving_tf_example"](examples=tf.constant([example.SerializeToString()]))
    np.testing.assert_allclose(list_scores["scores"].numpy()[0], pair_scores, rtol=1e-4, atol=1e-5)
    del feature["negatives"].bytes_list.value[1:]  # another num_negatives (a baseline trained apart) works too
    shorter = served.signatures["serving_tf_example"](examples=tf.constant([example.SerializeToString()]))
    np.testing.assert_allclose(shorter["scores"].numpy()[0], pair_scores[:2], rtol=1e-4, atol=1e-5)
    list_model = rerank.build_list_model(cross_encoder, 24, 3)
    packed = rerank.encode_candidates(tokenizer, tf.constant([query]), tf.constant([passages]), 24)
    np.testing.assert_allclose(list_model(packed).numpy()[0], pair_scores, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("loss_name", ["listwise", "pointwise"])
def test_both_rerank_losses_learn_to_put_the_relevant_passage_first(tokenizer, loss_name):
    tf.keras.utils.set_random_seed(7)
    queries = ["the chef bakes bread", "the rocket orbits the moon", "the sailor boat sea", "fresh warm soup"]
    passages = [["the chef bakes the bread .", "a star .", "the sailor boat ."],
                ["the rocket orbits the moon .", "fresh soup .", "the chef bakes ."],
                ["the sailor boat sea .", "the oven boils .", "the rocket orbits ."],
                ["fresh warm soup .", "the moon orbits .", "a sailor ."]]
    model = rerank.build_list_model(rerank.build_cross_encoder(tiny_backbone(tokenizer.vocabulary_size), dropout=0.0), 24, 3)
    loss, label_fn, metric = rerank.loss_and_labels(loss_name, 3)
    model.compile(optimizer=tf.keras.optimizers.Adam(3e-3), loss=loss, metrics=[metric])
    inputs = rerank.encode_candidates(tokenizer, tf.constant(queries), tf.constant(passages), 24)
    labels = label_fn(len(queries))
    history = model.fit(inputs, labels, epochs=40, batch_size=4, verbose=0).history["loss"]
    assert history[-1] < 0.5 * history[0]
    assert (np.argmax(model(inputs).numpy(), axis=1) == 0).all()
    with pytest.raises(ValueError, match="listwise"):
        rerank.loss_and_labels("pairwise", 3)


def test_exact_match_segments_mark_the_pieces_the_other_segment_has_and_start_where_the_plain_model_is(tmp_path,
                                                                                                    tokenizer):
    """MarkedBERT's cue: in ``[CLS] the chef bakes [SEP] the chef slices bread . [SEP]`` the
    pieces found on both sides ("the", "chef") get segment + 2, nothing else does (specials,
    padding, pieces of one side only); the widened backbone's two new segment rows copy the old
    ones, so the cross-encoder scores as the plain one does until it trains; it exports, serves
    and reloads."""
    from tfx_bert.serving import op_check

    packed = tokenizer.encode(tf.constant(["the chef bakes"]), 16, texts_b=tf.constant(["the chef slices bread ."]))
    marked = rerank.ExactMatchSegments(rerank.special_ids(tokenizer))(
        {k: tf.cast(v, tf.int32) for k, v in packed.items()})
    pieces = [tokenizer.vocab[i] for i in packed["token_ids"].numpy()[0]]
    first_sep, real = pieces.index("[SEP]"), packed["padding_mask"].numpy()[0]
    expected = [((i > first_sep) + 2 * (p in ("the", "chef"))) * int(r) for i, (p, r) in enumerate(zip(pieces, real))]
    assert marked["segment_ids"].numpy()[0].tolist() == expected, list(zip(pieces, marked["segment_ids"].numpy()[0]))
    assert {"token_ids", "padding_mask"} <= set(marked)

    backbone = tiny_backbone(tokenizer.vocabulary_size)
    plain = rerank.build_cross_encoder(backbone, dropout=0.0)
    matched = rerank.build_cross_encoder(backbone, dropout=0.0, exact_match_ignored=rerank.special_ids(tokenizer))
    matched.get_layer("score").set_weights(plain.get_layer("score").get_weights())
    inputs = {k: tf.cast(v, tf.int32) for k, v in packed.items()}
    np.testing.assert_allclose(matched(inputs).numpy(), plain(inputs).numpy(), rtol=1e-5, atol=1e-6)
    [wide] = [layer for layer in matched.layers if hasattr(layer, "num_segments")]
    assert wide.num_segments == 4
    export_dir = str(tmp_path / "marked")
    rerank.export_cross_encoder(matched, export_dir, tokenizer, 16)
    assert op_check.unsupported_ops(export_dir) == []
    served = tf.saved_model.load(export_dir).signatures["serving_default"](
        query=tf.constant(["the chef bakes"]), text=tf.constant(["the chef slices bread ."]))["score"]
    np.testing.assert_allclose(served.numpy(), plain(inputs).numpy(), rtol=1e-5, atol=1e-6)
    matched.save(str(tmp_path / "marked.keras"))
    import keras

    reloaded = keras.saving.load_model(str(tmp_path / "marked.keras"))
    np.testing.assert_allclose(reloaded(inputs).numpy(), plain(inputs).numpy(), rtol=1e-5, atol=1e-6)


def test_the_gate_names_the_metric_it_reports():
    """The gated MetricConfig carries the name its values are reported under (mrr@10), which the
    distillation summary matches them by."""
    from tfx_bert import config as config_lib
    from tfx_bert import distill_summary
    from tfx_bert_app.models import rerank_metrics

    f = config_lib.load_config(overrides=["finetune.task=rerank"]).finetune
    [gated] = [m for spec in rerank.eval_config(f).metrics_specs for m in spec.metrics if m.HasField("threshold")]
    assert rerank_metrics.MRR in distill_summary._metric_names(gated)
