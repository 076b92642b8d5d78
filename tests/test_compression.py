"""models/compression.py: float16 and int8 copies of a trained model for serving: smaller
SavedModels with the same answers (within each precision's error), servable ops, and the trained
model left as it was."""
import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from tfx_bert_app.models import keras_layers
from tfx_bert_app.models import compression, distillation, export


def _classifier():
    keras.utils.set_random_seed(3)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=500, num_layers=2, num_heads=2, hidden_dim=64,
                                             intermediate_dim=256, max_sequence_length=32)
    return keras_hub.models.BertClassifier(backbone=backbone, num_classes=3, preprocessor=None)


def _inputs(batch=16, seq=32):
    rng = np.random.default_rng(0)
    return {"token_ids": rng.integers(1, 500, (batch, seq)).astype("int32"),
            "segment_ids": np.zeros((batch, seq), "int32"), "padding_mask": np.ones((batch, seq), "int32")}


def _export(model, directory):
    """The exports' pattern: the weights tracked by a tf.Module, a float32 signature over them."""
    module = tf.Module()
    export.track_weights(module, model)
    spec = {k: tf.TensorSpec([None, None], tf.int32, name=k) for k in ("token_ids", "segment_ids", "padding_mask")}

    @tf.function(autograph=False, input_signature=[spec])
    def serve(inputs):
        return {"logits": tf.cast(model(inputs, training=False), tf.float32)}

    module.serve = serve
    tf.saved_model.save(module, str(directory), signatures={"serving_default": serve.get_concrete_function()})
    return str(directory)


def test_float16_and_int8_copies_answer_like_the_model_in_smaller_servable_savedmodels(tmp_path):
    from tfx_bert.serving import op_check

    model, x = _classifier(), _inputs()
    reference = model(x, training=False).numpy()
    sizes = {}
    for precision, atol in (("float32", 0.0), ("float16", 0.02), ("int8", 0.1)):
        served = compression.for_serving(model, precision)
        directory = _export(served, tmp_path / precision)
        assert op_check.unsupported_ops(directory) == [], precision
        logits = tf.saved_model.load(directory).signatures["serving_default"](**x)["logits"].numpy()
        np.testing.assert_allclose(logits, reference, atol=max(atol, 1e-6), err_msg=precision)
        assert (logits.argmax(-1) == reference.argmax(-1)).mean() >= 0.9, precision
        sizes[precision] = distillation.saved_model_mb(f"{directory}/variables")  # the graph is the same size
    assert sizes["float16"] < 0.55 * sizes["float32"], sizes
    assert sizes["int8"] < 0.45 * sizes["float32"], sizes
    # The trained model stays float32 and unquantized: it is the teacher a distillation loads.
    assert {v.dtype for v in model.weights} == {"float32"}
    np.testing.assert_array_equal(model(x, training=False).numpy(), reference)


def test_an_unknown_precision_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="float32, float16, int8; got 'int4'"):
        compression.for_serving(_classifier(), "int4")



def _ranking_backbone(tokenizer):
    keras.utils.set_random_seed(4)
    return keras_hub.models.BertBackbone(vocabulary_size=tokenizer.vocabulary_size, num_layers=1, num_heads=2,
                                         hidden_dim=64, intermediate_dim=128, max_sequence_length=48)


def _served(directory, precision, variables_mb_float32, **inputs):
    """The export's ``serving_default`` outputs, after checking its ops and that its variables
    are smaller than the float32 weights."""
    from tfx_bert.serving import op_check

    assert op_check.unsupported_ops(str(directory)) == [], precision
    assert distillation.saved_model_mb(f"{directory}/variables") < 0.6 * variables_mb_float32, precision
    served = tf.saved_model.load(str(directory)).signatures["serving_default"](**inputs)
    assert all(v.dtype in (tf.float32, tf.string, tf.int32, tf.int64) for v in served.values()), served
    return {k: v.numpy() for k, v in served.items()}


def _float32_mb(model):
    return distillation.parameter_count(model) * 4 / 2**20


TEXTS = ["the chef bakes the warm bread .", "the rocket orbits the moon ."]


def test_qa_export_precision_serves_compressed_weights_with_answers_close_to_float32s(tmp_path):
    from tests.helpers import qa_tokenizer
    from tfx_bert_app.models import qa

    tokenizer = qa_tokenizer()
    model = qa.build_span_model(_ranking_backbone(tokenizer), 0.1)
    settings = {"max_seq_length": 48, "doc_stride": 10, "max_query_length": 12, "max_answer_length": 6,
                "n_best_size": 3, "no_answer_threshold": 0.0}
    inputs = {"question": tf.constant(["what does anna bake ?", "who bakes ?"]),
              "context": tf.constant(["anna bakes the warm bread .", "boris boils the fresh soup ."])}
    qa.export_reader(model, str(tmp_path / "float32"), tokenizer, settings)
    reference = tf.saved_model.load(str(tmp_path / "float32")).signatures["serving_default"](**inputs)
    qa.export_reader(model, str(tmp_path / "float16"), tokenizer, settings, "float16")
    served = _served(tmp_path / "float16", "float16", _float32_mb(model), **inputs)
    np.testing.assert_allclose(served["nbest_scores"], reference["nbest_scores"].numpy(), atol=0.05)


@pytest.mark.parametrize("task, precision", [("rerank", "int8"), ("retrieval", "float16"), ("similarity", "float16")])
def test_ranking_and_similarity_exports_serve_compressed_weights_with_float32_outputs_near_the_models(
        tmp_path, task, precision):
    """``export_precision`` reaches the re-ranking, retrieval and similarity exports as it does
    the classifiers': smaller variables, TF Serving's ops, float32 outputs near the float32
    model's own."""
    from tests.helpers import ranking_tokenizer
    from tfx_bert_app.models import rerank, retrieval, similarity

    tokenizer = ranking_tokenizer()
    backbone, texts, queries = _ranking_backbone(tokenizer), tf.constant(TEXTS), tf.constant(["the chef", "the moon"])
    atol = 0.05 if precision == "float16" else 0.2
    if task == "rerank":
        cross_encoder = rerank.build_cross_encoder(backbone)
        rerank.export_cross_encoder(cross_encoder, str(tmp_path), tokenizer, 24, precision)
        served = _served(tmp_path, precision, _float32_mb(cross_encoder), query=queries, text=texts)
        expected = cross_encoder(dict(tokenizer.encode(queries, 24, texts_b=texts)), training=False).numpy()
        np.testing.assert_allclose(served["score"], expected, atol=atol)
        return
    tower = keras_layers.build_sentence_encoder(backbone, "mean")

    def embed(strings, length):
        return tf.math.l2_normalize(tower(dict(tokenizer.encode(strings, length)), training=False), -1).numpy()

    if task == "retrieval":
        retrieval.export_dual_encoder(tower, tower, str(tmp_path), tokenizer, 16, 8, precision)
        served = _served(tmp_path, precision, _float32_mb(tower), query=queries, text=texts)
        np.testing.assert_allclose(served["score"], (embed(queries, 8) * embed(texts, 16)).sum(-1), atol=atol)
        return
    model = similarity.build_pair_model(tower, "classification", num_classes=3)
    texts_b = tf.constant(["the chef bakes the soup .", "a rocket ."])
    similarity.export_bi_encoder(model, tower, str(tmp_path), tokenizer, 16, "classification", precision)
    served = _served(tmp_path, precision, _float32_mb(model), text=texts, text_b=texts_b)
    np.testing.assert_allclose(served["similarity"], (embed(texts, 16) * embed(texts_b, 16)).sum(-1), atol=atol)
    probabilities = tf.nn.softmax(model(similarity.encode_pair(tokenizer, texts, texts_b, 16), training=False))
    np.testing.assert_allclose(served["probabilities"], probabilities.numpy(), atol=atol)
