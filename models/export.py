"""Serving export shared by fine-tuning tasks: raw text in, task outputs out.

The SavedModel holds the Transform graph (tensorflow-text WordPiece, the same tokenizer
training used) and the Keras model in one ``tf.Module``. Signatures:

* ``serving_default``: ``text`` (and ``text_b`` for pair tasks) string [batch] -> outputs;
* ``serving_tf_example``: serialized tf.Example [batch] -> outputs (for TFMA);
* ``score_examples``: serialized tf.Example [batch] with ``serving_default``'s inputs as features
  -> ``serving_default``'s outputs (batch scoring with BulkInferrer; every task's export has it);
* ``classification`` (classifiers): TF Serving's classify signature, ``inputs`` (serialized
  tf.Example) -> ``classes`` and ``scores``, so the Classify and MultiInference APIs work.
* ``transformed_features`` (with ``finetune.slices`` naming a derived key): serialized
  tf.Example -> the derived slice features TFMA slices the evaluation by (``models/slices.py``).

Keras 3 models and TFT's tf-keras ``transform_features_layer`` cannot share a Keras save, so both
are tracked by a plain ``tf.Module`` and saved with ``tf.saved_model.save``.
"""
from __future__ import annotations

from typing import Callable

import tensorflow as tf

from tfx_bert import features, tokenization
from tfx_bert import signatures as sig


def track_weights(module, *models) -> None:
    """Makes ``module`` (a SavedModel's root) hold the models' weights and nothing else: tracking
    a compiled Keras model itself saves its optimizer's slots too (AdamW: three times the
    weights, 5.9 MB instead of 1.9 MB for the demo classifier), which serving never reads."""
    seen, weights = set(), []
    for model in models:
        for variable in model.variables:
            if id(variable) not in seen:
                seen.add(id(variable))
                weights.append(variable)
    module.model_weights = weights


def reshape_to_spec(tensor, spec):
    """Raw strings [batch] -> the shape of their raw feature ``spec`` (what the Transform graph takes)."""
    return tf.reshape(tensor, [-1] + list(spec.shape)) if isinstance(spec, tf.io.FixedLenFeature) else tensor


def export_text_model(
    model,
    tf_transform_output,
    export_dir: str,
    outputs_fn: Callable[[dict], dict],
    text_keys: tuple = (features.TEXT,),
    label_key: str = features.LABEL,
    class_names: tuple | None = None,
    length_bucket: int = 0,
    slice_features: tuple | None = None,
) -> None:
    """Saves ``model`` behind the Transform graph with raw-text and tf.Example signatures.

    ``outputs_fn(transformed_features)`` runs the model and returns the dict of named outputs.
    With ``class_names`` (classifiers whose outputs hold ``probabilities``) it also adds TF
    Serving's ``classification`` signature. ``length_bucket``: the Transform graph's fixed-length
    inputs are cut to the batch's longest row (``tokenization.trim_padding``). ``slice_features``:
    (tokenizer, max_seq_length) adds the ``transformed_features`` signature TFMA slices on
    (``models/slices.py``).
    """
    module = tf.Module()
    track_weights(module, model)
    module.tft_layer = tf_transform_output.transform_features_layer()
    raw_spec = dict(tf_transform_output.raw_feature_spec())
    raw_spec.pop(label_key, None)

    def run(raw_features):
        transformed = module.tft_layer(raw_features)
        transformed.pop(label_key, None)
        return outputs_fn(tokenization.trim_padding(transformed, length_bucket))

    text_signature = [tf.TensorSpec([None], tf.string, name=key) for key in text_keys]
    # Every serving function here (and in the task modules) is traced with autograph=False: it is
    # plain TF ops, and autograph's source conversion of keras / TFT / tensorflow-text internals
    # took about 5 s of each export (a Python `if` on a tensor now fails at export, in the tests).

    @tf.function(autograph=False, input_signature=text_signature)
    def serve_text(*texts):
        raw = {key: reshape_to_spec(t, raw_spec[key]) for key, t in zip(text_keys, texts)}
        return run(raw)

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_tf_example(serialized):
        return run(tf.io.parse_example(serialized, raw_spec))

    module.serve_text = serve_text
    module.serve_tf_example = serve_tf_example
    signatures = {
        "serving_default": serve_text.get_concrete_function(),
        "serving_tf_example": serve_tf_example.get_concrete_function(),
    }
    if class_names:
        names = tf.constant([list(class_names)])

        @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify(serialized):
            scores = run(tf.io.parse_example(serialized, raw_spec))[features.PROBABILITIES]
            return {"classes": tf.tile(names, [tf.shape(scores)[0], 1]), "scores": scores}

        module.classify = classify
        signatures["classification"] = classify.get_concrete_function()
    if slice_features:
        from tfx_bert_app.models import slices

        slices.add_signature(module, signatures, slice_features[0], text_keys, *slice_features[1:])
    save_served_model(module, export_dir, signatures)
    if class_names:
        set_method_names(export_dir, {"classification": CLASSIFY_METHOD_NAME})


def save_served_model(module, export_dir: str, signatures: dict) -> None:
    """``tf.saved_model.save`` of a task's served model, with the ``score_examples`` signature
    added: every input of ``serving_default`` read from a string feature of the same name."""
    serve = signatures[sig.SERVING_DEFAULT]
    names = [spec.name for spec in serve.structured_input_signature[0]]
    spec = {name: tf.io.FixedLenFeature([], tf.string, default_value="") for name in names}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def score_examples(serialized):
        parsed = tf.io.parse_example(serialized, spec)
        return serve(*[parsed[name] for name in names])

    module.score_examples = score_examples
    tf.saved_model.save(module, export_dir,
                        signatures={**signatures, sig.SCORE_EXAMPLES: score_examples.get_concrete_function()})


CLASSIFY_METHOD_NAME = "tensorflow/serving/classify"
REGRESS_METHOD_NAME = "tensorflow/serving/regress"


def set_method_names(export_dir: str, methods: dict[str, str]) -> None:
    """Marks signatures as TF Serving classify/regress ones.

    TF2's ``tf.saved_model.save`` writes every signature with the predict method; TF Serving's
    Classify and Regress APIs accept only signatures whose ``method_name`` says so, and the
    loaders ignore it, so it is set in saved_model.pb after saving.
    """
    import os

    from tfx_bert.serving.op_check import read_saved_model

    path = os.path.join(export_dir, "saved_model.pb")
    saved_model = read_saved_model(export_dir)
    for meta_graph in saved_model.meta_graphs:
        for name, method in methods.items():
            meta_graph.signature_def[name].method_name = method
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(saved_model.SerializeToString())
