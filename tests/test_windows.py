"""models.windows: long texts in windows. The same Transform graph feeds training and serving, so a
long text's windows (ids) and its pooled output are the same in both; what max_windows leaves out
is counted, never dropped silently; QA's windows are the same code."""
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import qa_tokenizer, tiny_backbone
from tfx_bert import config as config_lib
from tfx_bert import features
from tfx_bert_app.models import windows

SEQ, STRIDE = 16, 6
LONG = " ".join(["anna bakes the warm bread ."] * 8)  # 48 pieces: 8 windows of 14 every 6 pieces


@pytest.fixture(scope="module")
def tokenizer():
    return qa_tokenizer()


def _settings(**values):
    return config_lib.settings_from({"task": "sentiment", "max_seq_length": SEQ, "doc_stride": STRIDE, **values})


def _windows_of(tokenizer, ids, first=()):
    """The expected rows: [CLS] (first [SEP]) slice [SEP], slices every STRIDE pieces."""
    cls, sep, pad = tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id
    room = SEQ - 2 - (len(first) + 1 if first else 0)
    starts = [0] + list(range(STRIDE, max(1, len(ids) - room + STRIDE), STRIDE))
    rows = []
    for start in starts:
        row = [cls] + (list(first) + [sep] if first else []) + list(ids[start:start + room]) + [sep]
        rows.append(row + [pad] * (SEQ - len(row)))
    return rows


def test_a_long_texts_windows_cover_it_with_the_stride_and_the_rest_is_counted(tokenizer):
    ids = tokenizer.tokenize(tf.constant([LONG])).to_list()[0]
    expected = _windows_of(tokenizer, ids)
    assert len(expected) == 7
    out = windows.transformed_windows(tokenizer, tf.constant([LONG, "anna bakes ."]), SEQ, STRIDE, 4)
    rows = out[features.TOKEN_IDS].numpy().reshape(2, 4, SEQ)
    assert rows[0].tolist() == expected[:4]
    assert out[windows.WINDOW_MASK].numpy().tolist() == [[1, 1, 1, 1], [1, 0, 0, 0]]
    assert out[windows.WINDOWS_CUT].numpy().tolist() == [3, 0]  # 7 windows needed, 4 kept
    assert rows[1, 1:].sum() == 0  # no window past a short text's one

    # A pair: the second text windowed, the first (cut to half a window) in every window.
    first = tokenizer.tokenize(tf.constant(["what bakes"])).to_list()[0]
    pair = windows.transformed_windows(tokenizer, tf.constant([LONG]), SEQ, STRIDE, 3, first_texts=tf.constant(["what bakes"]))
    assert pair[features.TOKEN_IDS].numpy().reshape(3, SEQ).tolist() == _windows_of(tokenizer, ids, first)[:3]
    segments = pair[features.SEGMENT_IDS].numpy().reshape(3, SEQ)
    assert (segments[:, :len(first) + 2] == 0).all() and (segments[:, len(first) + 2] == 1).all()


def test_one_window_packs_as_bert_does_and_still_counts_what_it_cuts(tokenizer):
    settings = _settings()  # max_windows 1
    texts = tf.constant([LONG, "anna bakes ."])
    out = windows.text_features(tokenizer, texts, None, settings)
    packed = tokenizer.encode(texts, SEQ)
    for key in features.MODEL_INPUT_KEYS:
        np.testing.assert_array_equal(out[key].numpy(), tf.cast(packed[key], tf.int64).numpy())
    assert windows.WINDOW_MASK not in out
    assert out[windows.WINDOWS_CUT].numpy().tolist() == [6, 0]  # the 6 windows past the first


def test_qa_windows_are_the_shared_ones(tokenizer):
    """QA's question + context windows come from the same packing (the question as first segment)."""
    from tfx_bert_app.models import qa_spans

    question, context = "what bakes", LONG
    qa = qa_spans.make_windows(tokenizer, tf.constant([question]), tf.constant([context]), SEQ, STRIDE, 4)
    first = tokenizer.tokenize(tf.constant([question])).to_list()[0]
    ids = qa_spans.context_pieces(tokenizer, tf.constant([context]))[0].to_list()[0]
    assert qa[features.TOKEN_IDS].numpy().tolist() == _windows_of(tokenizer, ids, first)


def _transform(tmp_path, settings, tokenizer, rows, module=None, spec=None):
    """A real Transform analysis (tf.Transform on Beam) of ``module``'s preprocessing
    (classification's by default) over ``rows``, written as the Trainer and the export read it:
    its TFTransformOutput."""
    import apache_beam as beam
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

    from tfx_bert_app.models import classification

    module = module or classification
    spec = spec or {features.TEXT: tf.io.FixedLenFeature([], tf.string),
                    features.LABEL: tf.io.FixedLenFeature([], tf.int64)}
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=str(tmp_path / "tft_tmp")):
        raw = pipeline | beam.Create(rows)
        transform_fn = (raw, metadata) | tft_beam.AnalyzeDataset(
            lambda inputs: module.preprocess(inputs, settings, tokenizer))
        _ = transform_fn | tft_beam.WriteTransformFn(str(tmp_path / "transform"))
    metadata_io.write_metadata(metadata, str(tmp_path / "transform" / tft.TFTransformOutput.RAW_METADATA_DIR))
    return tft.TFTransformOutput(str(tmp_path / "transform"))


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_training_and_serving_read_the_same_windows_and_pool_them_alike(tmp_path, tokenizer, pooling):
    import keras_hub

    from tfx_bert.serving import task_clients
    from tfx_bert_app.models import classification

    settings = _settings(max_windows=4, window_pooling=pooling)
    texts = [LONG, "anna bakes .", " ".join(["boris boils the fresh soup ."] * 3)]
    transform_output = _transform(tmp_path, settings, tokenizer,
                                  [{features.TEXT: t, features.LABEL: i % 2} for i, t in enumerate(texts)])
    # What Transform writes for training: its graph over the raw examples.
    written = transform_output.transform_raw_features(
        {features.TEXT: tf.constant(texts), features.LABEL: tf.constant([0, 1, 0], tf.int64)})
    transformed = [{k: v[i].numpy() for k, v in written.items()} for i in range(len(texts))]
    model = keras_hub.models.BertClassifier(backbone=tiny_backbone(tokenizer.vocabulary_size, SEQ), num_classes=2,
                                            preprocessor=None)
    trained, note = windows.training_model(settings, model)
    assert "up to 4 windows" in note and trained.trainable_weights
    batch = {k: tf.constant(np.stack([row[k] for row in transformed])) for k in windows.model_inputs(settings)}
    training_logits = trained(batch, training=False).numpy()
    # Pooled by hand from the model's logits of each real window.
    for i, row in enumerate(transformed):
        real = np.asarray(row[windows.WINDOW_MASK]) > 0
        window_logits = model({k: tf.reshape(tf.cast(row[k], tf.int32), [-1, SEQ])[real]
                               for k in features.MODEL_INPUT_KEYS}).numpy()
        np.testing.assert_allclose(training_logits[i], getattr(window_logits, pooling)(0), rtol=1e-5, atol=1e-6)

    export_dir = str(tmp_path / "export")
    classification.export_classifier(model, transform_output, export_dir, ["neg", "pos"], window_settings=settings)
    served = tf.saved_model.load(export_dir).signatures["serving_default"](text=tf.constant(texts))
    np.testing.assert_allclose(served[features.PROBABILITIES].numpy(), tf.nn.softmax(training_logits).numpy(),
                               rtol=1e-5, atol=1e-6)
    assert served[features.WINDOWS_CUT].numpy().tolist() == [3, 0, 0]
    decoded = task_clients.decode_classes({features.TEXT: texts}, {k: v.numpy() for k, v in served.items()})
    assert [d[features.WINDOWS_CUT] for d in decoded] == [3, 0, 0]  # in the response, not dropped silently


def _ner_settings(**values):
    return config_lib.settings_from({"task": "ner", "max_seq_length": SEQ, "doc_stride": STRIDE,
                                     "entity_types": ["PER"], **values})


def test_each_word_sits_in_the_window_where_it_has_the_most_context(tokenizer):
    words = tf.ragged.constant([LONG.split()])  # 48 words, a piece each
    out = windows.word_features(tokenizer, tokenizer.tokenize_words(words), _ner_settings(max_windows=4),
                                tf.ragged.constant([list(range(48))], tf.int64))
    positions = out[features.WORD_POSITIONS].numpy()[0]
    token_ids = out[features.TOKEN_IDS].numpy()[0]
    ids = tokenizer.tokenize(tf.constant([LONG])).to_list()[0]
    # Windows of 14 pieces every 6: piece p is in windows starting at 0, 6, 12, ...; the chosen
    # one leaves the most pieces on its shorter side (run_squad.py's _check_is_max_context).
    for word in range(48):
        candidates = [w for w in range(4) if 6 * w <= word < 6 * w + 14]
        if not candidates:
            assert positions[word] == -1 and out[features.WORD_TAGS].numpy()[0, word] == -1  # past the 4 windows
            continue
        best = max(candidates, key=lambda w: min(word - 6 * w, 6 * w + 13 - word) + 0.01 * 14)
        assert positions[word] == best * SEQ + 1 + word - 6 * best, word
        assert token_ids[positions[word]] == ids[word]  # the word's own piece
        assert out[features.WORD_TAGS].numpy()[0, word] == word
    assert positions[10] // SEQ == 1 and positions[8] // SEQ == 0  # 4 pieces either side in window 1; 5 then 8 in 0
    assert out[windows.WINDOWS_CUT].numpy().tolist() == [3]


def test_a_windowed_tagger_tags_an_entity_after_the_first_window_and_serves_it(tmp_path, tokenizer):
    """A tagger trained on windows tags a name past the first window, in Transform's rows and in
    the served graph alike; the one-window tagger cannot see it and the response says so."""
    import keras

    from tfx_bert.serving import task_clients
    from tfx_bert_app.models import ner

    def sentence(rng, name_at):
        words = [rng.choice("the warm fresh bread soup oven bakes boils".split()) for _ in range(40)]
        words[name_at] = rng.choice(["anna", "boris"])
        return words, [1 if w in ("anna", "boris") else 0 for w in words]  # B-PER, O

    rng = np.random.default_rng(0)
    rows = [sentence(rng, int(rng.integers(0, 40))) for _ in range(64)]
    settings = _ner_settings(max_windows=4)
    transform_output = _transform(tmp_path, settings, tokenizer, [{features.TOKENS: w, features.TAGS: t} for w, t in rows],
                                  module=ner, spec={features.TOKENS: tf.io.VarLenFeature(tf.string),
                                                    features.TAGS: tf.io.VarLenFeature(tf.int64)})
    written = transform_output.transform_raw_features({
        features.TOKENS: tf.ragged.constant([w for w, _ in rows]).to_sparse(),
        features.TAGS: tf.ragged.constant([t for _, t in rows], tf.int64).to_sparse()})
    x = {k: tf.cast(written[k], tf.int32) for k in ner.MODEL_INPUTS}
    keras.utils.set_random_seed(0)
    model = ner.build_tagger(tiny_backbone(tokenizer.vocabulary_size, SEQ), 3, 0.0, False, window_len=SEQ)
    model.compile(optimizer=keras.optimizers.Adam(5e-3), loss=ner.masked_softmax_loss)
    model.fit(x, tf.cast(written[features.WORD_TAGS], tf.int32), batch_size=16, epochs=25, verbose=0)

    export_dir = str(tmp_path / "export")
    ner.export_tagger(model, transform_output, export_dir, ["PER"], settings, tokenizer)
    text = " ".join(["the warm bread bakes"] * 6 + ["anna bakes the soup ."])  # anna: word 24, window 3
    served = tf.saved_model.load(export_dir).signatures["serving_default"](text=tf.constant([text]))
    assert served["entity_texts"].numpy()[0].tolist()[:1] == [b"anna"]
    assert served[features.WINDOWS_CUT].numpy().tolist() == [0]
    # Transform's rows and the served graph read the same windows: the same tag for every word.
    transformed = transform_output.transform_raw_features({
        features.TOKENS: tf.ragged.constant([text.split()]).to_sparse(),
        features.TAGS: tf.ragged.constant([[0] * len(text.split())], tf.int64).to_sparse()})
    logits = model({k: tf.cast(transformed[k], tf.int32) for k in ner.MODEL_INPUTS})
    tags = ner.decode(model, logits, tf.cast(transformed[features.WORD_POSITIONS], tf.int32)).numpy()[0]
    served_tags = [t.decode() for t in served["word_tags"].numpy()[0]]
    assert served_tags == [["O", "B-PER"][t] for t in tags[:len(served_tags)]]

    one_window = _ner_settings()  # BERT's packing: the words past 14 pieces have no tag, and are counted
    packed = windows.word_features(tokenizer, tokenizer.tokenize_words(tf.ragged.constant([text.split()])), one_window)
    assert (packed[features.WORD_POSITIONS].numpy()[0, 14:] == -1).all()
    assert packed[windows.WINDOWS_CUT].numpy().tolist() == [3]
    decoded = task_clients.decode_entities({features.TEXT: [text]}, {k: v.numpy() for k, v in served.items()})
    assert decoded[0]["entities"][0]["text"] == "anna" and decoded[0][features.WINDOWS_CUT] == 0


def test_a_windowed_taggers_student_keeps_its_windows_and_a_full_one_reproduces_it(tokenizer):
    from tfx_bert_app.models import distillation, ner

    words = tf.ragged.constant([LONG.split(), "anna bakes .".split()])
    x = {k: tf.cast(v, tf.int32) for k, v in windows.word_features(
        tokenizer, tokenizer.tokenize_words(words), _ner_settings(max_windows=4)).items() if k in ner.MODEL_INPUTS}
    teacher = ner.build_tagger(tiny_backbone(tokenizer.vocabulary_size, SEQ), 3, 0.0, True, window_len=SEQ)
    full = distillation.student_from_teacher(teacher, student_layers=1)  # the tiny teacher's one layer
    np.testing.assert_allclose(full(x).numpy(), teacher(x).numpy(), rtol=1e-5, atol=1e-5)
    assert [type(layer).__name__ for layer in full.layers].count("UnfoldWindows") == 3


def test_a_student_distils_the_teachers_pooled_window_logits(tokenizer):
    import keras
    import keras_hub

    from tfx_bert_app.models import distillation

    settings = _settings(max_windows=4)
    x = {k: tf.cast(v, tf.int32) for k, v in windows.transformed_windows(
        tokenizer, tf.constant([LONG, "anna bakes .", LONG[:60]] * 4), SEQ, STRIDE, 4).items() if k != windows.WINDOWS_CUT}
    keras.utils.set_random_seed(1)
    teacher, student = (keras_hub.models.BertClassifier(backbone=tiny_backbone(tokenizer.vocabulary_size, SEQ),
                                                        num_classes=2, preprocessor=None) for _ in range(2))
    head = teacher.get_layer("logits")
    head.kernel.assign(head.kernel * 300.0)  # a confident teacher, unlike the fresh student
    pooled_teacher, pooled_student = (windows.training_model(settings, m)[0] for m in (teacher, student))

    def gap():  # KL(teacher || student) of the pooled predictions
        p, q = tf.nn.softmax(pooled_teacher(x)), tf.nn.softmax(pooled_student(x))
        return float(tf.reduce_mean(tf.reduce_sum(p * tf.math.log(p / q), -1)))

    before = gap()
    model = distillation.distiller(pooled_teacher, pooled_student, distillation.softmax_distillation(1.0), alpha=1.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, np.zeros(12, "int32"), batch_size=12, epochs=30, verbose=0)
    assert before > 0.01 and gap() < 0.2 * before, (before, gap())


def test_window_settings_are_checked():
    with pytest.raises(ValueError, match="max_windows"):
        config_lib.load_config(demo=True, overrides=["finetune.max_windows=0"])
    with pytest.raises(ValueError, match="window_pooling"):
        config_lib.load_config(demo=True, overrides=["finetune.window_pooling=sum"])
    with pytest.raises(ValueError, match="distill.hidden_weight"):
        config_lib.load_config(demo=True, overrides=["finetune.max_windows=3", "distill.enabled=true",
                                                     "distill.hidden_weight=1"])
