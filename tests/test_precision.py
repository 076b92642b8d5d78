"""models/precision.py: under each dtype policy, the encoder layers and every task head compute
in the policy's type, the matmuls run in it, what must stay float32 does, losses are float32,
and the served copy of a mixed model is float32."""
import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from tfx_bert import features
from tfx_bert_app.models import keras_layers
from tfx_bert_app.models import compression, ner, precision, pretraining, qa, rerank, retrieval, similarity

SEQ, BATCH = 8, 2
HALF = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


@pytest.fixture(autouse=True)
def float32_after():
    yield
    keras.mixed_precision.set_dtype_policy("float32")


def _backbone():
    return keras_hub.models.BertBackbone(vocabulary_size=60, num_layers=1, num_heads=2, hidden_dim=16,
                                         intermediate_dim=32, max_sequence_length=SEQ * 3)


def _inputs(suffix="", seq=SEQ):
    rng = np.random.default_rng(0)
    return {features.TOKEN_IDS + suffix: tf.constant(rng.integers(5, 60, (BATCH, seq)), tf.int32),
            features.SEGMENT_IDS + suffix: tf.zeros((BATCH, seq), tf.int32),
            features.PADDING_MASK + suffix: tf.ones((BATCH, seq), tf.int32)}


def _pretraining():
    return pretraining.build_pretraining_model(_backbone()), {
        **_inputs(), features.MASK_POSITIONS: tf.constant([[1, 2], [3, 4]], tf.int32)}


def _classifier():
    return keras_hub.models.BertClassifier(backbone=_backbone(), num_classes=3, preprocessor=None), _inputs()


def _tagger():
    return ner.build_tagger(_backbone(), 5, 0.1, use_crf=True), {
        **_inputs(), features.WORD_POSITIONS: tf.constant([[1, 2, 3, -1], [1, 4, -1, -1]], tf.int32)}


def _reader():
    return qa.build_span_model(_backbone(), 0.1), _inputs()


def _bi_encoder():
    return (similarity.build_pair_model(keras_layers.build_sentence_encoder(_backbone(), "mean"), "cosine"),
            {**_inputs(), **_inputs(similarity.SECOND)})


def _dual_encoder():
    tower = keras_layers.build_sentence_encoder(_backbone(), "mean")
    return (retrieval.build_dual_encoder(tower, tower, SEQ, 1, 0.05),
            {**_inputs(retrieval.QUERY_SUFFIX), **_inputs(), **_inputs(retrieval.NEGATIVES_SUFFIX)})


def _cross_encoder():
    return rerank.build_list_model(rerank.build_cross_encoder(_backbone()), SEQ, 3), _inputs(seq=3 * SEQ)


# task -> (builder, the output dtype under a mixed policy: the half type, or float32 where the
# head computes in float32 on purpose, number of float32 matmuls on purpose)
HEADS = {
    "pretraining (MLM + NSP)": (_pretraining, "half", 0),
    "classification": (_classifier, "half", 0),
    "ner (CRF)": (_tagger, "float32", 0),
    "qa": (_reader, "float32", 0),
    "similarity": (_bi_encoder, "float32", 0),
    "retrieval": (_dual_encoder, "float32", 1),  # the in-batch cosine matrix
    "rerank": (_cross_encoder, "half", 0),
}


@pytest.mark.parametrize("policy", precision.POLICIES)
@pytest.mark.parametrize("task", sorted(HEADS))
def test_encoder_and_head_compute_in_the_policy(task, policy):
    build, output_kind, float32_matmuls = HEADS[task]
    precision.use_policy(policy)
    model, inputs = build()
    half = HALF[policy]
    dtypes = precision.compute_dtypes(model)
    encoder_layers = {path: d for path, d in dtypes.items() if "transformer_layer" in path}
    assert encoder_layers and set(encoder_layers.values()) == {half}, encoder_layers
    assert {v.dtype for v in model.weights} == {"float32"}  # variables stay float32
    counts = precision.matmul_dtypes(model, inputs)
    expected_float32 = float32_matmuls if policy != "float32" else sum(counts.values())
    assert counts[half] > 0 and counts["float32"] == expected_float32, counts
    outputs = tf.nest.flatten(model(inputs, training=False))
    wanted = half if output_kind == "half" else "float32"
    assert {o.dtype.name for o in outputs} == {wanted}


def test_pretraining_head_keeps_the_tied_projection_in_the_policy():
    """keras-hub's MaskedLMHead runs the tied vocabulary projection in float32 under a mixed
    policy (the embedding table does not autocast) and returns float32 logits; this one does not."""
    precision.use_policy("mixed_bfloat16")
    backbone = _backbone()
    values = {"sequence": tf.random.normal([BATCH, SEQ, 16]), "positions": tf.constant([[1, 2], [3, 4]], tf.int32)}

    def head_model(head_class):
        inputs = {"sequence": keras.Input((SEQ, 16)), "positions": keras.Input((2,), dtype="int32")}
        head = head_class(token_embedding=backbone.token_embedding, intermediate_activation="gelu")
        model = keras.Model(inputs, head(inputs["sequence"], mask_positions=inputs["positions"]))
        return model, precision.matmul_dtypes(model, values), tf.function(model)(values).dtype

    model, matmuls, graph_dtype = head_model(pretraining.TiedMaskedLMHead)
    assert (matmuls, graph_dtype, model(values).dtype) == ({"bfloat16": 2}, tf.bfloat16, tf.bfloat16)
    model, matmuls, graph_dtype = head_model(keras_hub.layers.MaskedLMHead)
    assert (matmuls, graph_dtype) == ({"bfloat16": 1, "float32": 1}, tf.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a bfloat16 tensor"):
        model(values)  # eagerly, keras-hub's head does not even run


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_training_steps_have_float32_losses(policy):
    precision.use_policy(policy)
    model, inputs = _pretraining()
    model.compile(optimizer=keras.optimizers.AdamW(1e-3),
                  loss={pretraining.MLM: keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        pretraining.NSP: keras.losses.SparseCategoricalCrossentropy(from_logits=True)})
    if policy == "mixed_float16":  # Keras scales the loss so float16 gradients do not underflow
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    labels = {pretraining.MLM: tf.constant([[7, 8], [9, 10]]), pretraining.NSP: tf.constant([0, 1])}
    first = model.evaluate(inputs, labels, verbose=0, return_dict=True)["loss"]
    for _ in range(20):
        logs = model.train_on_batch(inputs, labels, return_dict=True)
    assert np.isfinite(logs["loss"]) and logs["loss"] < first
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        labels[pretraining.NSP], model(inputs)[pretraining.NSP])
    assert loss.dtype == tf.float32


def test_a_mixed_model_is_served_as_a_float32_copy():
    precision.use_policy("mixed_bfloat16")
    model, inputs = _classifier()
    precision.use_policy("float32")
    served = compression.for_serving(model, "float32")
    assert served is not model
    assert set(precision.compute_dtypes(served).values()) == {"float32"}
    assert precision.matmul_dtypes(served, inputs)["bfloat16"] == 0
    np.testing.assert_allclose(served(inputs), tf.cast(model(inputs), tf.float32), atol=0.05)
    float32_model, _ = _classifier()
    assert compression.for_serving(float32_model, "float32") is float32_model


def test_policies_are_named_or_refused():
    assert precision.use_policy("") == "float32" and keras.mixed_precision.dtype_policy().name == "float32"
    assert precision.use_policy("mixed_bfloat16") == "mixed_bfloat16"
    assert precision.resolve("auto") == ("mixed_float16" if tf.config.list_physical_devices("GPU") else "float32")
    with pytest.raises(ValueError, match="mixed_precision must be one of float32, mixed_bfloat16, mixed_float16"):
        precision.use_policy("bfloat16")
