"""models/compression.py: float16 and int8 copies of a trained model for serving: smaller
SavedModels with the same answers (within each precision's error), servable ops, and the trained
model left as it was."""
import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

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
