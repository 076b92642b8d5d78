"""BulkInferrer's executor (TFX's, with the model loaded by tf.saved_model.load) and the
ServedModel step that hands it a pushed version, on a small model this test saves."""
import os

import pytest
import tensorflow as tf
from tfx.proto import bulk_inferrer_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import proto_utils

from tests.helpers import new_artifact, run_executor
from tests.test_scoring import _save_tiny_model
from tfx_bert import scoring, signatures
from tfx_bert_app.components.bulk_inferrer import executor as ex
from tfx_bert_app.components.served_model import executor as served_ex


def _examples(tmp_path, texts):
    examples = new_artifact(standard_artifacts.Examples, tmp_path / "examples")
    examples.split_names = artifact_utils.encode_split_names(["score", "other"])
    for split, rows in (("score", texts), ("other", ["never scored"])):
        os.makedirs(os.path.join(examples.uri, f"Split-{split}"))
        with tf.io.TFRecordWriter(os.path.join(examples.uri, f"Split-{split}", "data.gz"), "GZIP") as writer:
            for record in scoring.serialized_examples({"text": rows}):
                writer.write(record)
    return examples


def _props(output_example_spec=None):
    return {"model_spec": proto_utils.proto_to_json(bulk_inferrer_pb2.ModelSpec(
                model_signature_name=[signatures.SCORE_EXAMPLES])),
            "data_spec": proto_utils.proto_to_json(bulk_inferrer_pb2.DataSpec(example_splits=["score"])),
            "output_example_spec": proto_utils.proto_to_json(output_example_spec) if output_example_spec else None}


def test_a_pushed_version_is_scored_row_by_row_on_beam(tmp_path):
    base = tmp_path / "serving" / "m"
    _save_tiny_model(base / "5")
    _save_tiny_model(base / "12")
    model = new_artifact(standard_artifacts.Model, tmp_path / "model")
    served_ex.Executor().Do({}, {"model": [model]}, {served_ex.MODEL_BASE: str(base), served_ex.VERSION: ""})
    assert model.get_string_custom_property("pushed_version") == "12"  # the newest, chosen when it runs
    assert os.path.exists(os.path.join(model.uri, "Format-Serving", "saved_model.pb"))

    texts = ["héllo", "a", "twelve chars"] * 7
    result = new_artifact(standard_artifacts.InferenceResult, tmp_path / "result")
    run_executor(ex.Executor, {"examples": [_examples(tmp_path, texts)], "model": [model]},
                 {"inference_result": [result]}, _props(), str(tmp_path / "tmp"))
    logs = list(scoring.read_logs(result.uri))
    assert len(logs) == len(texts)  # the "other" split is not scored
    lengths = sorted((tf.train.Example.FromString(log.predict_log.request.inputs["examples"].string_val[0])
                      .features.feature["text"].bytes_list.value[0].decode(),
                      tf.make_ndarray(log.predict_log.response.outputs["length"]).tolist()) for log in logs)
    assert lengths == sorted((t, [len(t)]) for t in texts)


def test_what_this_bulk_inferrer_cannot_do_is_a_clear_error(tmp_path):
    model = new_artifact(standard_artifacts.Model, tmp_path / "model")
    _save_tiny_model(tmp_path / "model" / "Format-Serving", with_scoring=False)
    inputs = {"examples": [_examples(tmp_path, ["a"])], "model": [model]}
    result = new_artifact(standard_artifacts.InferenceResult, tmp_path / "result")
    with pytest.raises(ValueError, match="has no score_examples signature: it was exported before batch scoring"):
        run_executor(ex.Executor, inputs, {"inference_result": [result]}, _props(), str(tmp_path / "tmp"))
    spec = bulk_inferrer_pb2.OutputExampleSpec(output_columns_spec=[bulk_inferrer_pb2.OutputColumnsSpec(
        predict_output=bulk_inferrer_pb2.PredictOutput(output_columns=[
            bulk_inferrer_pb2.PredictOutputCol(output_key="length", output_column="length")]))])
    out = new_artifact(standard_artifacts.Examples, tmp_path / "out")
    with pytest.raises(ValueError, match="writes the inference_result .* only"):
        run_executor(ex.Executor, inputs, {"inference_result": [result], "output_examples": [out]},
                     _props(spec), str(tmp_path / "tmp"))
    with pytest.raises(FileNotFoundError, match=r"no pushed versions under .*: push a model there first"):
        served_ex.Executor().Do({}, {"model": [model]}, {served_ex.MODEL_BASE: str(tmp_path), served_ex.VERSION: "3"})
