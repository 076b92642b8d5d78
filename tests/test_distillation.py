"""models/distillation.py: the layer-taking student, each head's distillation loss moving a
student toward its teacher, and the teacher-relative gate blessing and refusing."""
import os

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from tfx_bert_app.models import keras_layers
from tfx_bert_app.models import distillation
from tfx_bert_app.models.distillation import weighted_distiller as distiller_lib


def test_layers_are_spread_from_first_to_last_as_distilbert_takes_them():
    assert distillation.layer_map(12, 6) == [0, 2, 4, 7, 9, 11]  # DistilBERT's initialisation
    assert distillation.layer_map(4, 4) == [0, 1, 2, 3]
    assert distillation.layer_map(2, 1) == [1]
    with pytest.raises(ValueError, match="1..4"):
        distillation.layer_map(4, 5)


def _classifier(num_layers=4, seed=1):
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=60, num_layers=num_layers, num_heads=2, hidden_dim=16,
                                             intermediate_dim=32, max_sequence_length=16)
    return keras_hub.models.BertClassifier(backbone=backbone, num_classes=3, preprocessor=None)


def _one_layer_student(num_heads: int, hidden_dim: int):
    """A 1-layer classifier of its own weights, for students of another shape than the teacher."""
    keras.utils.set_random_seed(7)
    return keras_hub.models.BertClassifier(
        backbone=keras_hub.models.BertBackbone(vocabulary_size=60, num_layers=1, num_heads=num_heads,
                                               hidden_dim=hidden_dim, intermediate_dim=32, max_sequence_length=16),
        num_classes=3, preprocessor=None)


def _tokenizer(vocab_dir):
    from tfx_bert import tokenization

    return tokenization.WordPieceTokenizer(tokenization.read_vocab(f"{vocab_dir}/vocab.txt"),
                                           tokenization.read_tokenizer_config(vocab_dir))


def _soft_target_loss_before_and_after(teacher, student, loss, x, learning_rate, batch_size, epochs):
    """``loss`` between the teacher's and the student's outputs on ``x``, before and after the
    student trains on the soft targets alone (alpha 1: the labels are ignored)."""
    teacher_outputs = teacher(x, training=False)
    before = float(loss.compute_loss(teacher_outputs, student(x, training=False)))
    model = distillation.distiller(teacher, student, loss, alpha=1.0)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, np.zeros(len(x["token_ids"]), "int32"), batch_size=batch_size, epochs=epochs, verbose=0)
    return before, float(loss.compute_loss(teacher_outputs, student(x, training=False)))


def _inputs(batch=4, seq=16, seed=0):
    rng = np.random.default_rng(seed)
    return {"token_ids": rng.integers(1, 60, (batch, seq)).astype("int32"),
            "segment_ids": np.zeros((batch, seq), "int32"), "padding_mask": np.ones((batch, seq), "int32")}


def test_a_student_with_all_layers_reproduces_the_teacher_and_half_takes_the_mapped_layers(tmp_path, tiny_vocab_dir):
    teacher = _classifier()
    x = _inputs()
    full = distillation.student_from_teacher(teacher, 4)
    np.testing.assert_allclose(full(x, training=False), teacher(x, training=False), atol=1e-6)

    half = distillation.student_from_teacher(teacher)  # 0: half of 4
    assert distillation.num_layers(half) == 2 and distillation.num_layers(teacher) == 4
    layers = dict((v.path, v.numpy()) for v in teacher.weights)
    for v in half.weights:
        source = v.path.replace("transformer_layer_1/", "transformer_layer_3/")  # map [0, 3]
        np.testing.assert_array_equal(v.numpy(), layers[source], err_msg=v.path)
    assert distillation.parameter_count(half) < distillation.parameter_count(teacher)

    # The teacher saved beside its SavedModel is what a student Trainer loads.
    serving = tmp_path / "model" / "Format-Serving"
    distillation.save_teacher(teacher, str(serving), _tokenizer(tiny_vocab_dir))
    loaded = distillation.load_teacher(str(serving))
    np.testing.assert_allclose(loaded(x, training=False), teacher(x, training=False), atol=1e-6)
    with pytest.raises(FileNotFoundError, match="no Keras task model"):
        distillation.load_teacher(str(tmp_path / "other" / "Format-Serving"))


def test_a_narrower_feed_forward_keeps_the_neurons_that_matter_and_drops_only_the_rest():
    """``ffn_keep``: with half of every layer's feed-forward neurons silenced in the teacher (their
    output rows zero), a student keeping half of them keeps exactly the live ones, in order, and
    computes the teacher's outputs; keeping fewer changes them."""
    teacher = _classifier()
    rng = np.random.default_rng(3)
    dead = {}
    for variable in teacher.weights:
        if variable.path.endswith("feedforward_output_dense/kernel"):
            layer = variable.path.split("/")[0]
            dead[layer] = np.sort(rng.choice(32, 16, replace=False))
            value = variable.numpy()
            value[dead[layer]] = 0.0
            variable.assign(value)
    x = _inputs()

    def states(model):  # the encoder's last hidden states (layer-normed: order 1, unlike the tiny logits)
        return distillation.backbone_of(model)(x, training=False)["sequence_output"]

    pruned = distillation.student_from_teacher(teacher, 4, ffn_keep=0.5)
    np.testing.assert_allclose(states(pruned), states(teacher), atol=1e-5)
    np.testing.assert_allclose(pruned(x, training=False), teacher(x, training=False), rtol=1e-4, atol=1e-7)
    weights = {v.path: v.numpy() for v in teacher.weights}
    for variable in pruned.weights:
        if "feedforward_intermediate_dense/kernel" in variable.path:
            layer = variable.path.split("/")[0]
            live = np.setdiff1d(np.arange(32), dead[layer])
            np.testing.assert_array_equal(variable.numpy(), weights[variable.path][:, live], err_msg=variable.path)
    assert distillation.parameter_count(pruned) < distillation.parameter_count(teacher)
    quarter = distillation.student_from_teacher(teacher, 4, ffn_keep=0.25)
    assert np.abs(states(quarter) - states(teacher)).max() > 1e-3  # 100x the tolerance above
    assert distillation.kept_neurons(np.ones((2, 4)), np.array([[1.0], [3.0], [2.0], [0.5]]), 2).tolist() == [1, 2]
    with pytest.raises(ValueError, match="ffn_keep must be in"):
        distillation.student_from_teacher(teacher, 2, ffn_keep=0.0)


def test_a_student_on_another_encoder_takes_its_weights_and_a_new_head_then_learns_the_teacher(tmp_path, tiny_vocab_dir):
    """``distill.student_encoder_uri``: the teacher's task architecture (4 x 16) on a narrower,
    shallower pretrained encoder (2 x 8, saved as a keras-hub preset with the teacher's
    vocabulary): every backbone weight is the encoder's, the head is new and 8 wide, the
    teacher's dropout stays; soft targets move it toward the teacher."""
    from tfx_bert import tokenization

    teacher = _classifier(num_layers=4)
    keras.utils.set_random_seed(5)
    narrow = keras_hub.models.BertBackbone(vocabulary_size=60, num_layers=2, num_heads=2, hidden_dim=8,
                                           intermediate_dim=16, max_sequence_length=16, dropout=0.3)
    encoder_dir = tmp_path / "encoder"
    narrow.save_to_preset(str(encoder_dir))
    tokenizer = _tokenizer(tiny_vocab_dir)
    tokenization.write_vocab_dir(str(encoder_dir / "vocab"), tokenizer.vocab, tokenizer.config)

    student = distillation.student_from_encoder(teacher, str(encoder_dir))
    assert type(student) is type(teacher) and distillation.num_layers(student) == 2
    assert (student.backbone.hidden_dim, student.backbone.dropout) == (8, teacher.backbone.dropout)
    for mine, theirs in zip(student.backbone.weights, narrow.weights, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy(), err_msg=mine.path)
    assert student.output_dense.kernel.shape == (8, 3)  # the head follows the encoder's width

    before, after = _soft_target_loss_before_and_after(teacher, student, distillation.softmax_distillation(2.0),
                                                       _inputs(batch=16, seed=4), 0.01, 16, 40)
    assert after < 0.3 * before, (before, after)

    # A functional head (NER's CRF tagger): its layers were built 16 wide; they build anew.
    tagger, words = _tagger(), _word_inputs()
    tagger_student = distillation.student_from_encoder(tagger, str(encoder_dir))
    assert distillation.num_layers(tagger_student) == 2
    assert tagger_student(words, training=False).shape == tagger(words, training=False).shape


def test_a_teacher_fine_tuned_with_another_vocabulary_is_refused_naming_both(tmp_path, tiny_vocab_dir):
    """A teacher given by URI must read the Transform's token ids: the same vocabulary as the
    pipeline's encoder (an encoder dir holds vocab/vocab.txt), else the student learns noise."""
    from tests.helpers import TINY_WORDS, write_tiny_vocab
    from tfx_bert import tokenization

    serving = tmp_path / "teacher" / "Format-Serving"
    distillation.save_teacher(_classifier(num_layers=1), str(serving), _tokenizer(tiny_vocab_dir))
    same = write_tiny_vocab(tmp_path / "same" / "vocab")
    distillation.check_shared_vocabulary(str(serving), os.path.dirname(same))  # passes

    other = tmp_path / "other"
    vocab = tokenization.reserved_tokens() + ["cow" if w == "cat" else w for w in TINY_WORDS]  # one piece differs
    tokenization.write_vocab_dir(str(other / "vocab"), vocab, tokenization.TokenizerConfig(lower_case=True))
    piece = len(tokenization.reserved_tokens()) + TINY_WORDS.index("cat")
    with pytest.raises(ValueError, match=rf"another vocabulary .*piece {piece} is 'cat' against 'cow'.*encoder_uri"):
        distillation.check_shared_vocabulary(str(serving), str(other))
    longer = tmp_path / "longer"
    tokenization.write_vocab_dir(str(longer / "vocab"), tokenization.reserved_tokens() + TINY_WORDS + ["extra"],
                                 tokenization.TokenizerConfig(lower_case=True))
    with pytest.raises(ValueError, match=rf"{len(vocab)} against {len(vocab) + 1} pieces"):
        distillation.check_shared_vocabulary(str(serving), str(longer))


def _tagger(num_layers=4, seed=1, crf=True):
    from tfx_bert_app.models import ner

    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=60, num_layers=num_layers, num_heads=2, hidden_dim=16,
                                             intermediate_dim=32, max_sequence_length=16)
    return ner.build_tagger(backbone, num_tags=5, dropout=0.1, use_crf=crf)


def _word_inputs(batch=8, seed=0):
    """Tagger inputs with 2-6 words per row; the other word slots are padding (-1)."""
    x = _inputs(batch, seed=seed)
    rng = np.random.default_rng(seed)
    positions = np.full((batch, 8), -1, "int32")
    for row, words in enumerate(rng.integers(2, 7, batch)):
        positions[row, :words] = np.sort(rng.choice(np.arange(1, 15), words, replace=False))
    return {**x, "word_positions": positions}


def test_a_crf_tagger_teacher_saves_with_its_vocabulary_and_its_student_keeps_the_transitions(tmp_path, tiny_vocab_dir):
    from tfx_bert_app.models import crf as crf_lib

    teacher = _tagger()
    x = _word_inputs()
    tokenizer = _tokenizer(tiny_vocab_dir)
    serving = tmp_path / "model" / "Format-Serving"
    distillation.save_teacher(teacher, str(serving), tokenizer)
    loaded = distillation.load_teacher(str(serving))  # GatherWords and CRF are registered for Keras saving
    np.testing.assert_allclose(loaded(x, training=False), teacher(x, training=False), atol=1e-6)
    assert distillation.teacher_tokenizer(str(serving)).vocab == tokenizer.vocab

    full = distillation.student_from_teacher(loaded, 4)
    np.testing.assert_allclose(full(x, training=False), teacher(x, training=False), atol=1e-6)
    half = distillation.student_from_teacher(loaded)
    assert distillation.num_layers(half) == 2 and isinstance(half.get_layer("crf"), crf_lib.CRF)
    np.testing.assert_array_equal(half.get_layer("crf").transitions.numpy(), teacher.get_layer("crf").transitions.numpy())


def test_a_span_extractor_teacher_round_trips_and_its_full_student_reproduces_it(tmp_path, tiny_vocab_dir):
    from tfx_bert_app.models import qa

    keras.utils.set_random_seed(1)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=60, num_layers=2, num_heads=2, hidden_dim=16,
                                             intermediate_dim=32, max_sequence_length=16)
    teacher, x = qa.build_span_model(backbone, dropout=0.1), _inputs()
    x["padding_mask"][:, 12:] = 0
    serving = tmp_path / "model" / "Format-Serving"
    distillation.save_teacher(teacher, str(serving), _tokenizer(tiny_vocab_dir))
    loaded = distillation.load_teacher(str(serving))  # SpanLogits is registered for Keras saving
    full = distillation.student_from_teacher(loaded, 2)
    np.testing.assert_allclose(full(x, training=False), teacher(x, training=False), atol=1e-5)
    assert float(distillation.SpanDistillation(2.0).compute_loss(teacher(x), full(x))) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("objective", ["cosine", "classification"])
def test_a_bi_encoder_teacher_round_trips_and_its_full_student_reproduces_it(tmp_path, objective, tiny_vocab_dir):
    from tfx_bert_app.models import similarity

    keras.utils.set_random_seed(1)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=60, num_layers=2, num_heads=2, hidden_dim=16,
                                             intermediate_dim=32, max_sequence_length=16)
    teacher = similarity.build_pair_model(keras_layers.build_sentence_encoder(backbone, "mean"), objective)
    x = {**_inputs(), **{k + similarity.SECOND: v for k, v in _inputs(seed=1).items()}}
    serving = tmp_path / "model" / "Format-Serving"
    distillation.save_teacher(teacher, str(serving), _tokenizer(tiny_vocab_dir))
    loaded = distillation.load_teacher(str(serving))  # Pooling, Cosine, PairFeatures are registered
    full = distillation.student_from_teacher(loaded, 2)
    np.testing.assert_allclose(full(x, training=False), teacher(x, training=False), atol=1e-5)
    half = distillation.student_from_teacher(loaded, 1)
    assert distillation.num_layers(half.get_layer("sentence_encoder")) == 1  # the tower the export serves


def test_margin_mse_matches_the_students_margins_to_the_teachers_and_ignores_a_shift():
    teacher = np.array([[3.0, 1.0, 0.0], [0.5, 2.0, -1.0]], "float32")
    student = np.array([[1.0, 0.0, 0.5], [0.0, 0.0, 0.0]], "float32")
    # Margins: teacher [2, 3], [-1.5, 1.5]; student [1, 0.5], [0, 0]: squared gaps 1, 6.25, 2.25, 2.25.
    loss = distillation.MarginMSEDistillation()
    assert float(loss.compute_loss(teacher, student)) == pytest.approx((1 + 6.25 + 2.25 + 2.25) / 4)
    assert float(loss.compute_loss(teacher, teacher + 7.0)) == pytest.approx(0.0)  # a cross-encoder's scale is free


def test_in_batch_margin_mse_takes_each_querys_own_positive_and_negatives_from_the_score_matrix():
    # 2 queries, 2 hard negatives each: columns [p0, p1, n00, n01, n10, n11].
    student = np.array([[5.0, 9.0, 1.0, 2.0, 9.0, 9.0],
                        [9.0, 4.0, 9.0, 9.0, 3.0, 0.0]], "float32")
    teacher = np.array([[2.0, 0.0, 1.0], [1.0, 0.0, 0.0]], "float32")  # [positive, negatives] per query
    own = np.array([[5.0, 1.0, 2.0], [4.0, 3.0, 0.0]], "float32")
    expected = float(distillation.MarginMSEDistillation().compute_loss(teacher, own))
    assert float(distillation.InBatchMarginMSE().compute_loss(teacher, student)) == pytest.approx(expected)
    # Teacher margins [2, 1], [1, 1]; the own ones [4, 3], [1, 4]: squared gaps 4, 4, 0, 9.
    assert expected == pytest.approx((4 + 4 + 0 + 9) / 4)


def test_a_cross_encoder_teacher_round_trips_and_margin_mse_moves_its_half_student_toward_it(tmp_path, tiny_vocab_dir):
    from tfx_bert_app.models import rerank

    keras.utils.set_random_seed(1)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=60, num_layers=2, num_heads=2, hidden_dim=16,
                                             intermediate_dim=32, max_sequence_length=16)
    teacher = rerank.build_list_model(rerank.build_cross_encoder(backbone, dropout=0.0), 8, 4)
    x = _inputs(batch=16, seq=32, seed=3)  # 16 lists of 4 candidates of 8 pieces
    serving = tmp_path / "model" / "Format-Serving"
    distillation.save_teacher(teacher, str(serving), _tokenizer(tiny_vocab_dir))
    loaded = distillation.load_teacher(str(serving))  # Unstack and Restack are registered
    np.testing.assert_allclose(distillation.student_from_teacher(loaded, 2)(x, training=False),
                               teacher(x, training=False), atol=1e-5)

    keras.utils.set_random_seed(2)  # another model's weights in the student: far from the teacher
    other = keras_hub.models.BertBackbone(vocabulary_size=60, num_layers=2, num_heads=2, hidden_dim=16,
                                          intermediate_dim=32, max_sequence_length=16)
    student = distillation.student_from_teacher(rerank.build_list_model(rerank.build_cross_encoder(other, 0.0), 8, 4), 1)
    assert distillation.num_layers(student.get_layer("cross_encoder")) == 1  # the layer the export serves
    before, after = _soft_target_loss_before_and_after(loaded, student, distillation.MarginMSEDistillation(), x,
                                                       0.003, 8, 30)
    assert after < 0.3 * before, (before, after)


def _dual_encoder(shared: bool, seed: int, num_negatives: int = 1):
    from tfx_bert_app.models import retrieval
    from tfx_bert_app.models.keras_layers import build_sentence_encoder

    keras.utils.set_random_seed(seed)

    def tower(name):
        return build_sentence_encoder(keras_hub.models.BertBackbone(
            vocabulary_size=60, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
            max_sequence_length=16), "mean", name=name)

    doc_tower = tower("sentence_encoder")
    query_tower = doc_tower if shared else tower("query_encoder")
    return retrieval.build_dual_encoder(query_tower, doc_tower, 16, num_negatives, 0.05)


def _dual_inputs(batch=8, seed=3):
    """Queries of 8 pieces, passages and one hard negative each of 16."""
    parts = {"_query": _inputs(batch, 8, seed), "": _inputs(batch, 16, seed + 1), "_negatives": _inputs(batch, 16, seed + 2)}
    return {key + suffix: value for suffix, inputs in parts.items() for key, value in inputs.items()}


@pytest.mark.parametrize("shared", [True, False], ids=["shared_towers", "separate_towers"])
def test_a_dual_encoder_teacher_round_trips_and_its_students_take_each_towers_layers(tmp_path, tiny_vocab_dir, shared):
    from tfx_bert_app.models import retrieval

    teacher = _dual_encoder(shared, seed=1)
    x = _dual_inputs()
    serving = tmp_path / "model" / "Format-Serving"
    distillation.save_teacher(teacher, str(serving), _tokenizer(tiny_vocab_dir))
    loaded = distillation.load_teacher(str(serving))  # InBatchLogits, Unstack and Pooling are registered
    assert distillation.num_layers(loaded) == 2  # both towers, when separate, at one depth
    np.testing.assert_allclose(distillation.student_from_teacher(loaded, 2)(x, training=False),
                               teacher(x, training=False), atol=1e-4)
    half = distillation.student_from_teacher(loaded, 1)
    query_tower, doc_tower = retrieval.towers_of(half)
    assert (query_tower is doc_tower) == shared  # what the export serves: embed_query and embed
    assert distillation.num_layers(query_tower) == distillation.num_layers(doc_tower) == 1
    # Each tower's one layer is its own teacher tower's last (a separate query tower keeps its weights).
    teacher_query, _ = retrieval.towers_of(teacher)
    kernel = [v for v in query_tower.weights if "transformer_layer_0/" in v.path and "kernel" in v.path][0]
    source = [v for v in teacher_query.weights if v.path == kernel.path.replace("layer_0/", "layer_1/")][0]
    np.testing.assert_array_equal(kernel.numpy(), source.numpy())


def test_the_in_batch_score_matrix_kl_moves_a_dual_encoder_student_toward_its_teacher():
    """A retrieval student learns its teacher's softmax over every passage of the batch (other
    queries' positives and the hard negatives) for each query."""
    teacher = _dual_encoder(True, seed=1)
    student = distillation.student_from_teacher(_dual_encoder(True, seed=2), 1)  # other weights: far from it
    x = _dual_inputs(batch=8)
    assert teacher(x).shape == (8, 16)  # 8 queries x (8 positives + 8 hard negatives)
    before, after = _soft_target_loss_before_and_after(teacher, student, distillation.softmax_distillation(2.0), x,
                                                       0.003, 8, 30)
    assert after < 0.3 * before, (before, after)


def test_the_word_loss_counts_only_the_words_that_exist_and_moves_a_tagger_student_toward_its_teacher():
    from tfx_bert_app.models import ner

    teacher, x = _tagger(crf=False), _word_inputs(batch=32)
    marked = distillation.mark_padded_words(teacher, "word_positions")
    teacher_out = marked(x).numpy()
    present = x["word_positions"] >= 0
    assert np.isnan(teacher_out[~present]).all() and not np.isnan(teacher_out[present]).any()

    loss = distillation.WordLogitsDistillation(2.0)
    student_out = _tagger(crf=False, seed=2)(x).numpy()
    other_padding = np.where(present[..., None], student_out, 100.0 * np.random.default_rng(1).normal(size=student_out.shape))
    assert float(loss.compute_loss(teacher_out, student_out)) == pytest.approx(
        float(loss.compute_loss(teacher_out, other_padding)), rel=1e-6)  # padding slots do not count
    p = tf.nn.softmax(teacher_out[present] / 2.0).numpy()
    q = tf.nn.softmax(student_out[present] / 2.0).numpy()
    expected = float(np.mean(np.sum(p * np.log(p / q), -1))) * 4.0
    assert float(loss.compute_loss(teacher_out, student_out)) == pytest.approx(expected, rel=1e-4)

    student = distillation.student_from_teacher(_tagger(crf=False, seed=2), 2)  # another model's layers: far off
    before = float(loss.compute_loss(teacher_out, student(x).numpy()))
    model = distillation.distiller(marked, student, loss, alpha=1.0)
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss=ner.masked_softmax_loss)
    model.fit(x, np.zeros(x["word_positions"].shape, "int32"), batch_size=8, epochs=20, verbose=0)
    after = float(loss.compute_loss(teacher_out, student(x, training=False).numpy()))
    assert after < 0.3 * before, (before, after)


def _dense_head(out_shape, seed):
    """A small model with a task head's output shape: [batch] features -> ``out_shape``."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(32, activation="tanh")(inputs)
    outputs = keras.layers.Reshape(out_shape)(keras.layers.Dense(int(np.prod(out_shape)))(hidden))
    return keras.Model(inputs, outputs)


HEADS = {  # head: (build(seed), the distillation loss, distance between teacher and student outputs)
    "classification": (lambda s: _dense_head((3,), s), distillation.softmax_distillation(2.0), "kl"),
    "ner_tags_per_token": (lambda s: _dense_head((6, 5), s), distillation.softmax_distillation(2.0), "kl"),
    "qa_start_end_per_piece": (lambda s: _dense_head((6, 2), s), distillation.SpanDistillation(2.0), "span"),
    "rerank_listwise_scores": (lambda s: _dense_head((8,), s), distillation.softmax_distillation(1.0), "kl"),
    "multilabel": (lambda s: _dense_head((6,), s), distillation.SigmoidLogitsDistillation(2.0), "sigmoid"),
    "embeddings": (lambda s: _dense_head((16,), s), distillation.EmbeddingDistillation(), "mse"),
}


def _distance(kind, teacher_out, student_out):
    pairs = list(zip(keras.tree.flatten(teacher_out), keras.tree.flatten(student_out)))
    if kind == "mse":
        return sum(float(np.mean((t - s) ** 2)) for t, s in pairs)
    if kind == "span":  # start and end: distributions over the pieces (axis 1)
        return sum(float(np.mean(keras.losses.kl_divergence(tf.nn.softmax(np.swapaxes(t, 1, 2)),
                                                            tf.nn.softmax(np.swapaxes(s, 1, 2))))) for t, s in pairs)
    if kind == "sigmoid":
        return sum(float(np.mean(np.abs(tf.sigmoid(t) - tf.sigmoid(s)))) for t, s in pairs)
    return sum(float(np.mean(keras.losses.kl_divergence(tf.nn.softmax(t), tf.nn.softmax(s)))) for t, s in pairs)


@pytest.mark.parametrize("head", sorted(HEADS))
def test_each_heads_distillation_loss_moves_the_student_toward_the_teacher(head):
    build, loss, kind = HEADS[head]
    teacher, student = build(1), build(2)
    x = np.random.default_rng(0).normal(size=(256, 8)).astype("float32")
    before = _distance(kind, teacher.predict(x, verbose=0), student.predict(x, verbose=0))
    model = distillation.distiller(teacher, student, loss, alpha=1.0)  # soft targets only: no labels
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    dummy = keras.tree.map_structure(np.zeros_like, teacher.predict(x, verbose=0))
    model.fit(x, dummy, batch_size=32, epochs=15, verbose=0)
    after = _distance(kind, teacher.predict(x, verbose=0), student.predict(x, verbose=0))
    assert after < 0.3 * before, (before, after)
    assert not teacher.trainable  # the teacher is frozen: only the student's weights train
    assert [id(w) for w in model.trainable_weights] == [id(w) for w in student.trainable_weights]


def test_keras_default_kl_string_skips_the_softmax_so_the_project_passes_an_instance():
    """Why ``softmax_distillation`` exists: on logits, Keras 3.15's default gives a negative
    'KL' (it clips logits as if they were probabilities); the instance gives the true KL."""
    teacher, student = np.array([[2.0, -1.0, 0.5]]), np.array([[0.1, 0.3, -2.0]])
    default = float(keras.distillation.LogitsDistillation(1.0).compute_loss(teacher, student))
    ours = float(distillation.softmax_distillation(1.0).compute_loss(teacher, student))
    p, q = tf.nn.softmax(teacher).numpy(), tf.nn.softmax(student).numpy()
    assert ours == pytest.approx(float(np.sum(p * np.log(p / q))), rel=1e-4)
    assert default != pytest.approx(ours, rel=1e-2)


def _gate(candidate: float, teacher: float, min_retention: float) -> bool:
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.evaluators import metrics_validator
    from tensorflow_model_analysis.utils import config_util

    from tfx_bert import config as config_lib
    from tfx_bert_app.models import classification
    from tfx_bert_app.pipeline import task_wiring

    task_config = classification.eval_config(config_lib.load_config(demo=True).finetune)
    gate = task_wiring.retention_eval_config(task_config, min_retention)
    gate.model_specs[0].name = "candidate"
    gate.model_specs.add().CopyFrom(tfma.ModelSpec(name="baseline", is_baseline=True,
                                                   signature_name="serving_tf_example"))
    gate = config_util.update_eval_config_with_defaults(gate, has_baseline=True)  # as TFX's Evaluator does

    def key(model, is_diff=False):
        return tfma.metrics.MetricKey("sparse_categorical_accuracy", model_name=model, is_diff=is_diff,
                                      example_weighted=False)

    metrics = {key("candidate"): candidate, key("baseline"): teacher, key("candidate", True): candidate - teacher}
    return metrics_validator.validate_metrics(((), metrics), gate).validation_ok


def test_the_gate_blesses_a_student_that_keeps_min_retention_of_the_teacher_and_refuses_one_that_does_not():
    assert _gate(0.78, 0.80, 0.97)  # 97.5% kept
    assert not _gate(0.77, 0.80, 0.97)  # 96.25%
    assert _gate(0.50, 0.80, 0.6)  # 62.5% >= 60%
    assert _gate(0.85, 0.80, 0.97)  # better than the teacher
    assert not _gate(0.40, 0.80, 0.6)


def test_the_students_own_loss_honours_sample_weights_and_the_soft_targets_do_not_need_them():
    """Class weights reach a classifier's student as the dataset's sample weights: Keras 3.15's
    Distiller drops them; ``distillation.distiller`` applies them to the student's loss."""
    teacher, student = _classifier(num_layers=2), _classifier(num_layers=1, seed=3)
    x, y = _inputs(batch=8, seed=5), np.array([0, 1, 2, 0, 1, 2, 0, 1])
    weights = np.array([4.0, 1.0, 0.0, 4.0, 1.0, 0.0, 4.0, 1.0], "float32")
    labels_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    predicted = student(x, training=False)

    model = distillation.distiller(teacher, student, distillation.softmax_distillation(2.0), alpha=0.0)  # labels only
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    weighted = float(model.compute_loss(x, y, predicted, sample_weight=weights, training=False))
    assert weighted == pytest.approx(float(labels_loss(y, predicted, sample_weight=weights)), rel=1e-5)
    assert weighted != pytest.approx(float(labels_loss(y, predicted)), rel=1e-3)  # what Keras's own computes
    assert float(model.compute_loss(x, y, predicted, training=False)) == pytest.approx(
        float(labels_loss(y, predicted)), rel=1e-5)

    soft = distillation.distiller(teacher, student, distillation.softmax_distillation(2.0), alpha=1.0)  # soft only
    soft.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert float(soft.compute_loss(x, y, predicted, sample_weight=weights, training=False)) == pytest.approx(
        float(soft.compute_loss(x, y, predicted, training=False)), rel=1e-5)


def test_the_hidden_state_term_moves_the_students_last_hidden_states_toward_the_teachers():
    """``distill.hidden_weight``: 1 - cosine of the last hidden states over the real tokens
    (padding ignored), through a learned projection when the student is narrower (8 -> 16; none
    for the teacher's own layers); with that term, training brings the student's hidden states
    toward the teacher's."""
    teacher = _classifier(num_layers=2)
    same_width = distillation.distiller(teacher, distillation.student_from_teacher(teacher, 1),
                                        distillation.softmax_distillation(2.0), alpha=1.0, hidden_weight=1.0)
    assert same_width.hidden_projection is None
    student = _one_layer_student(num_heads=2, hidden_dim=8)
    x = _inputs(batch=16, seed=6)
    x["padding_mask"][:, 10:] = 0
    model = distillation.distiller(teacher, student, distillation.softmax_distillation(2.0), alpha=1.0,
                                   hidden_weight=1.0)
    assert model.hidden_projection.kernel.shape == (8, 16)
    assert model.embedding_projection is None  # the last layers only
    # TinyBERT (``all``) also compares the embeddings, through a projection of their own (W_e),
    # trained with the student.
    tiny = distillation.distiller(teacher, student, distillation.softmax_distillation(2.0), alpha=1.0,
                                  hidden_weight=1.0, layer_mapping="all")
    assert tiny.embedding_projection.kernel.shape == (8, 16)
    trained = {id(w) for w in tiny.trainable_weights}
    assert id(tiny.embedding_projection.kernel) in trained and id(tiny.hidden_projection.kernel) in trained
    before = float(model.hidden_state_loss(x))
    # Only the real tokens count: what the padded positions hold changes nothing.
    moved = {**x, "token_ids": np.where(x["padding_mask"] == 1, x["token_ids"], 7).astype("int32")}
    assert float(model.hidden_state_loss(moved)) == pytest.approx(before, rel=1e-4)
    distillation_only = distillation.distiller(teacher, student, distillation.softmax_distillation(2.0), alpha=1.0)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    y = np.zeros(16, "int32")
    distillation_only.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert float(model.compute_loss(x, y, student(x), training=False)) == pytest.approx(
        float(distillation_only.compute_loss(x, y, student(x), training=False)) + before, rel=1e-4)
    model.fit(x, y, batch_size=16, epochs=40, verbose=0)
    after = float(model.hidden_state_loss(x))
    assert after < 0.5 * before, (before, after)
    with pytest.raises(ValueError, match="fed one sequence.*hidden_weight=0"):
        model.hidden_state_loss({"token_ids_a": x["token_ids"]})


def test_the_attention_term_is_zero_for_an_identical_student_and_moves_a_half_student_toward_the_teacher():
    """``distill.attention_weight`` (MiniLM): KL between the last layers' attention
    distributions and value relations over the real tokens; 0 for a student that is the
    teacher; training with it brings a 1-layer student's relations toward the 4-layer
    teacher's; a student with other heads is refused."""
    teacher = _classifier(num_layers=4)
    x = _inputs(batch=16, seed=6)
    x["padding_mask"][:, 10:] = 0
    same = distillation.distiller(teacher, distillation.student_from_teacher(teacher, 4),
                                  distillation.softmax_distillation(2.0), alpha=1.0, attention_weight=1.0)
    assert float(same.attention_loss(x)) == pytest.approx(0.0, abs=1e-5)
    # The relations are distributions over the real keys only.
    states = same._states["teacher"]({k: x[k] for k in distillation.BACKBONE_INPUTS})
    attention, relations = distillation.layer_relations(distillation.backbone_of(teacher), 3, states[3],
                                                        x["padding_mask"], False)
    assert attention.shape == relations.shape == (16, 2, 16, 16)
    np.testing.assert_allclose(np.asarray(relations).sum(-1), 1.0, rtol=1e-5)
    assert float(np.abs(np.asarray(relations)[..., 10:]).max()) < 1e-6
    assert float(np.abs(np.asarray(attention)[..., 10:]).max()) < 1e-6

    student = distillation.student_from_teacher(_classifier(num_layers=4, seed=2), 1)  # another model's weights
    model = distillation.distiller(teacher, student, distillation.softmax_distillation(2.0), alpha=1.0,
                                   attention_weight=1.0)
    before = float(model.attention_loss(x))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, np.zeros(16, "int32"), batch_size=16, epochs=30, verbose=0)
    after = float(model.attention_loss(x))
    assert after < 0.5 * before, (before, after)

    four_heads = _one_layer_student(num_heads=4, hidden_dim=16)
    with pytest.raises(ValueError, match="teacher has 2, the student 4"):
        distillation.distiller(teacher, four_heads, distillation.softmax_distillation(2.0), alpha=1.0,
                               attention_weight=1.0)


def test_minilm_v2_relation_heads_let_a_student_with_other_heads_and_width_learn_the_teachers_relations():
    """``distill.relation_heads`` (MiniLM v2): query-query, key-key and value-value relations over
    that many relation heads (the heads concatenated and split again). A student of another
    head count and width is accepted; relations are distributions over the real keys; with as
    many relation heads as attention heads, the value relation is MiniLM v1's; a student that is
    the teacher scores 0; training moves a 4-head, 8-wide student toward a 2-head, 16-wide
    teacher; a count that does not divide a width is refused."""
    teacher = _classifier(num_layers=2)
    x = _inputs(batch=16, seed=6)
    x["padding_mask"][:, 10:] = 0
    loss = distillation.softmax_distillation(2.0)
    backbone = distillation.backbone_of(teacher)
    states = distiller_lib._layer_states(backbone)({k: x[k] for k in distillation.BACKBONE_INPUTS})
    relations = distillation.multi_head_relations(backbone, 1, states[1], x["padding_mask"], False, num_heads=4)
    assert len(relations) == 3 and all(r.shape == (16, 4, 16, 16) for r in relations)
    for r in relations:
        np.testing.assert_allclose(np.asarray(r).sum(-1), 1.0, rtol=1e-5)
        assert float(np.abs(np.asarray(r)[..., 10:]).max()) < 1e-6
    _, v1_values = distillation.layer_relations(backbone, 1, states[1], x["padding_mask"], False)
    _, _, v2_values = distillation.multi_head_relations(backbone, 1, states[1], x["padding_mask"], False, num_heads=2)
    np.testing.assert_allclose(np.asarray(v2_values), np.asarray(v1_values), rtol=1e-5, atol=1e-6)

    same = distillation.distiller(teacher, distillation.student_from_teacher(teacher, 2), loss, alpha=1.0,
                                  attention_weight=1.0, relation_heads=4)
    assert float(same.attention_loss(x)) == pytest.approx(0.0, abs=1e-5)
    student = _one_layer_student(num_heads=4, hidden_dim=8)
    with pytest.raises(ValueError, match="set distill.relation_heads"):
        distillation.distiller(teacher, student, loss, alpha=1.0, attention_weight=1.0)
    with pytest.raises(ValueError, match=r"relation_heads=3 must divide the teacher's width \(16\)"):
        distillation.distiller(teacher, student, loss, alpha=1.0, attention_weight=1.0, relation_heads=3)
    model = distillation.distiller(teacher, student, loss, alpha=1.0, attention_weight=1.0, relation_heads=2)
    before = float(model.attention_loss(x))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, np.zeros(16, "int32"), batch_size=16, epochs=30, verbose=0)
    after = float(model.attention_loss(x))
    assert after < 0.5 * before, (before, after)


def test_all_layer_mapping_compares_every_student_layer_with_the_teacher_layer_it_starts_from():
    """``distill.layer_mapping: all`` (TinyBERT's intermediate layers): the pairs follow
    ``layer_map``; a student that is the teacher scores 0 on both terms; a 2-of-4 student's
    hidden term is the mean of three terms: the embeddings' (TinyBERT's embedding layer) and its
    two layers', against teacher layers 0 and 3."""
    teacher = _classifier(num_layers=4)
    x = _inputs(batch=8, seed=6)
    x["padding_mask"][:, 12:] = 0
    loss = distillation.softmax_distillation(2.0)
    full = distillation.distiller(teacher, distillation.student_from_teacher(teacher, 4), loss, alpha=1.0,
                                  hidden_weight=1.0, attention_weight=1.0, layer_mapping="all")
    assert full.layer_pairs == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert float(full.hidden_state_loss(x)) == pytest.approx(0.0, abs=1e-5)
    assert float(full.attention_loss(x)) == pytest.approx(0.0, abs=1e-5)
    student = distillation.student_from_teacher(_classifier(num_layers=4, seed=2), 2)
    every = distillation.distiller(teacher, student, loss, alpha=1.0, hidden_weight=1.0, layer_mapping="all")
    assert every.layer_pairs == [(0, 0), (1, 3)]
    assert every.hidden_pairs == [(-1, -1), (0, 0), (1, 3)]
    last = distillation.distiller(teacher, student, loss, alpha=1.0, hidden_weight=1.0)
    assert last.layer_pairs == last.hidden_pairs == [(1, 3)]
    inputs = {k: x[k] for k in distillation.BACKBONE_INPUTS}
    teacher_states, student_states = every._both_states(inputs, False)
    mask = x["padding_mask"].astype("float32")

    def one_minus_cosine(t, s):
        t, s = np.asarray(t), np.asarray(s)
        cosine = (t * s).sum(-1) / np.linalg.norm(t, axis=-1) / np.linalg.norm(s, axis=-1)
        return ((1 - cosine) * mask).sum() / mask.sum()

    expected = (one_minus_cosine(teacher_states[0], student_states[0])  # the embeddings
                + one_minus_cosine(teacher_states[1], student_states[1])
                + one_minus_cosine(teacher_states[4], student_states[2])) / 3
    assert float(every.hidden_state_loss(x)) == pytest.approx(expected, rel=1e-4)
    assert float(last.hidden_state_loss(x)) == pytest.approx(
        one_minus_cosine(teacher_states[4], student_states[2]), rel=1e-4)
    with pytest.raises(ValueError, match="layer_mapping must be last or all"):
        distillation.distiller(teacher, student, loss, alpha=1.0, hidden_weight=1.0, layer_mapping="middle")


def test_transfer_text_that_matches_no_file_is_refused_naming_the_pattern(tmp_path):
    from tfx_bert.config import DistillConfig

    d = DistillConfig(transfer_pattern=str(tmp_path / "corpus" / "*.txt"))
    with pytest.raises(ValueError, match=r"transfer_pattern '.*corpus/\*\.txt' matches no file"):
        distillation.with_transfer_text(None, None, d, 8)


class _TextTransform:
    """What ``with_transfer_text`` reads of a TFT output, for raw ``columns`` (plus a label): the
    raw feature spec, and a transform that passes the texts through as the model's inputs."""

    def __init__(self, columns):
        self.columns = columns

    def raw_feature_spec(self):
        spec = {c: tf.io.FixedLenFeature([], tf.string) for c in self.columns}
        return {**spec, "label": tf.io.FixedLenFeature([], tf.int64)}

    def transform_features_layer(self):
        return lambda raw: {c: tf.reshape(raw[c], [-1]) for c in self.columns}


@pytest.mark.parametrize("columns", [("text",), ("text", "text_b")])
def test_transfer_text_mixes_lines_at_weight_zero_and_pairs_a_line_with_the_next(tmp_path, columns):
    """About ``transfer_share`` of the examples are the files' lines (blank ones skipped) through
    the task's transform, each with a zero label at sample weight 0; the labelled ones keep
    weight 1. A pair task (text, text_b) gets a line and the next; a task with other inputs is
    refused."""
    from tfx_bert.config import DistillConfig

    lines = [f"line {i}" for i in range(40)]
    (tmp_path / "a.txt").write_text("\n".join(lines[:20]) + "\n\n" + "\n".join(lines[20:]) + "\n")
    labelled = tf.data.Dataset.from_tensor_slices(
        ({c: [f"labelled {i}" for i in range(64)] for c in columns}, np.ones(64, "int64"))).repeat().batch(8)
    d = DistillConfig(transfer_pattern=str(tmp_path / "*.txt"), transfer_share=0.5)
    mixed = distillation.with_transfer_text(labelled, _TextTransform(columns), d, 8, seed=3)
    seen = {"labelled": 0, "transfer": 0}
    for x, y, w in mixed.take(40):
        for i in range(8):
            texts = [x[c][i].numpy().decode() for c in columns]
            if texts[0].startswith("labelled"):
                assert (int(y[i]), float(w[i])) == (1, 1.0)
                seen["labelled"] += 1
                continue
            assert (int(y[i]), float(w[i])) == (0, 0.0)
            first = lines.index(texts[0])
            if len(columns) == 2:
                assert first % 2 == 0 and texts[1] == lines[first + 1], texts
            seen["transfer"] += 1
    assert 0.35 < seen["transfer"] / 320 < 0.65, seen
    with pytest.raises(ValueError, match=r"carry \['question', 'text'\], not one 'text'"):
        distillation.with_transfer_text(labelled, _TextTransform(("text", "question")), d, 8)


class _WordTransform:
    """A tagger's TFT output as ``with_transfer_text`` reads it: ``tokens`` (and ``tags``) raw
    features; the transform gives each sentence's first word and word count."""

    def raw_feature_spec(self):
        return {"tokens": tf.io.VarLenFeature(tf.string), "tags": tf.io.VarLenFeature(tf.int64),
                "text": tf.io.FixedLenFeature([], tf.string)}  # CoNLL examples carry the sentence too

    def transform_features_layer(self):
        def transform(raw):
            words = tf.sparse.to_dense(raw["tokens"], default_value="")
            return {"first_word": words[:, 0], "count": tf.reduce_sum(tf.cast(words != "", tf.int64), axis=1),
                    "text": tf.reshape(raw["text"], [-1])}
        return transform


def test_transfer_text_for_a_tagger_is_a_lines_words_with_no_tags(tmp_path):
    """A tagger's transfer examples: each line's words, split as BERT splits raw text
    (punctuation on its own), every tag -1 so the tag losses skip them; the dataset keeps its
    (inputs, tags) form."""
    from tfx_bert.config import DistillConfig

    lines = [f"word{i},again now" for i in range(30)]
    (tmp_path / "a.txt").write_text("\n".join(lines) + "\n")
    labelled = tf.data.Dataset.from_tensor_slices(
        ({"first_word": ["labelled"] * 16, "count": np.full(16, 2, "int64"), "text": ["labelled x"] * 16},
         np.zeros((16, 4), "int32"))).repeat().batch(8)
    d = DistillConfig(transfer_pattern=str(tmp_path / "*.txt"), transfer_share=0.5)
    mixed = distillation.with_transfer_text(labelled, _WordTransform(), d, 8, seed=1)
    assert len(mixed.element_spec) == 2
    transfer = 0
    for x, tags in mixed.take(10):
        for i in range(8):
            if x["first_word"][i].numpy() == b"labelled":
                assert tags[i].numpy().tolist() == [0] * 4
                continue
            assert x["text"][i].numpy().decode() in lines and x["text"][i].numpy().decode().startswith(
                x["first_word"][i].numpy().decode() + ",")
            assert int(x["count"][i]) == 4 and tags[i].numpy().tolist() == [-1] * 4  # word, ",", again, now
            transfer += 1
    assert 0.3 < transfer / 80 < 0.7, transfer
