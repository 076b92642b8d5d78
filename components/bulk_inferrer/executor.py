"""TFX's BulkInferrer executor, loading the model the way TF2 does.

The stock executor hands tfx_bsl's RunInference the SavedModel path, and tfx_bsl loads it into a
TF1 ``Session`` (``tf.compat.v1.saved_model.loader.load``). The models this project exports
(Keras 3 weights behind a TFT graph, saved with ``tf.saved_model.save``) load that way but fail
on the first batch ("Could not find variable logits/bias"). Here tfx_bsl's ``load_override_fn``
loads them with ``tf.saved_model.load`` instead, on each Beam worker, after registering
tensorflow-text's ops (tensorflow/tfx#3901: "Op type not registered 'RegexSplitWithOffsets'");
batching, the PredictionLogs and their output are tfx_bsl's and TFX's own.

Only the InferenceResult output (PredictionLogs) is written: ``output_examples`` is refused
with a message, as it would need an OutputExampleSpec of each task's outputs.
"""
from __future__ import annotations

import os

import apache_beam as beam
from tfx.components.bulk_inferrer import executor as tfx_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from tfx_bert import scoring
from tfx_bert import signatures as sig

PREDICTION_LOGS = "prediction_logs"  # TFX's file name: <inference_result>/prediction_logs-*.gz


class _Tf2Session:
    """What tfx_bsl's Predict handler calls (``run(fetches, feed_dict)``), over a TF2-loaded
    signature that takes one string tensor of serialized examples."""

    def __init__(self, model_path: str, signature_name: str):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the tokenizer's ops on this worker)

        self._model = tf.saved_model.load(model_path)
        self._function = self._model.signatures[signature_name]
        (self._input_name,) = self._function.structured_input_signature[1]

    def run(self, fetches: dict, feed_dict: dict) -> dict:
        import tensorflow as tf

        (serialized,) = feed_dict.values()
        outputs = self._function(**{self._input_name: tf.constant(serialized, dtype=tf.string)})
        return {alias: outputs[alias].numpy() for alias in fetches}


class _LoadWithTf2:
    """A picklable ``load_override_fn`` (Beam ships it to the workers)."""

    def __init__(self, signature_name: str):
        self.signature_name = signature_name

    def __call__(self, model_path: str, tags) -> _Tf2Session:
        return _Tf2Session(model_path, self.signature_name)


class Executor(tfx_executor.Executor):
    """BulkInferrer's executor with the model loaded by ``tf.saved_model.load``."""

    def _run_model_inference(self, data_spec, output_example_spec, examples, output_examples,
                             inference_result, inference_endpoint) -> None:
        from tfx_bsl.public.beam import run_inference
        from tensorflow_serving.apis import prediction_log_pb2

        if output_examples is not None:
            raise ValueError("this BulkInferrer writes the inference_result (PredictionLogs) only; "
                             "leave output_example_spec unset.")
        (signature_name,) = inference_endpoint.saved_model_spec.signature_name or ["serving_default"]
        if signature_name == sig.SCORE_EXAMPLES:
            scoring.check_scorable(None, inference_endpoint.saved_model_spec.model_path)
        (examples_artifact,) = examples
        splits = [s for s in artifact_utils.decode_split_names(examples_artifact.split_names)
                  if not data_spec.example_splits or s in data_spec.example_splits]
        if not splits:
            raise ValueError(f"none of the splits {list(data_spec.example_splits)} is in {examples_artifact.uri}")
        with self._make_beam_pipeline() as pipeline:
            logs = [pipeline
                    | f"ReadData[{split}]" >> beam.io.ReadFromTFRecord(
                        io_utils.all_files_pattern(artifact_utils.get_split_uri([examples_artifact], split)))
                    | f"RunInference[{split}]" >> run_inference.RunInference(
                        inference_endpoint, load_override_fn=_LoadWithTf2(signature_name))
                    for split in splits]
            _ = (logs | "Flatten" >> beam.Flatten(pipeline=pipeline)
                 | "WritePredictionLogs" >> beam.io.WriteToTFRecord(
                     os.path.join(inference_result.uri, PREDICTION_LOGS), file_name_suffix=".gz",
                     coder=beam.coders.ProtoCoder(prediction_log_pb2.PredictionLog)))
