"""The data gate's executor (components/data_gate): schema anomalies, a new label value, label
drift against the blessed model's data, a clean span passing, and allow_anomalies."""
import json
import os

import pytest
import tensorflow as tf
from tfx.types import artifact_utils, standard_artifacts

from tests.helpers import new_artifact, write_tiny_vocab
from tfx_bert import data_profile
from tfx_bert_app.components.artifacts import DataGateResult
from tfx_bert_app.components.data_gate import executor as ex

PROPS = {ex.LABEL_LINF: 0.1, ex.LENGTH_JS: 0.1, ex.UNKNOWN_JS: 0.1, ex.ALLOW_ANOMALIES: 0}


def _examples(path, rows, unknown_labels=0):
    """An Examples artifact whose train split holds ``rows`` ((text, label) pairs)."""
    examples = new_artifact(standard_artifacts.Examples, path)
    examples.split_names = artifact_utils.encode_split_names(["train"])
    os.makedirs(path / "Split-train")
    with tf.io.TFRecordWriter(str(path / "Split-train" / "data.gz"), options="GZIP") as writer:
        for text, label in rows:
            example = tf.train.Example()
            example.features.feature["text"].bytes_list.value.append(text.encode())
            example.features.feature["label"].int64_list.value.append(label)
            writer.write(example.SerializeToString())
    examples.set_json_value_custom_property("ingestion_counts", {"train_records": len(rows),
                                                                 **({"skipped_unknown_label": unknown_labels}
                                                                    if unknown_labels else {})})
    return examples


def _anomalies(path, features=()):
    """An ExampleValidator output whose train split reports ``features`` as anomalous."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    anomalies = new_artifact(standard_artifacts.ExampleAnomalies, path)
    anomalies.split_names = artifact_utils.encode_split_names(["train"])
    os.makedirs(path / "Split-train")
    proto = anomalies_pb2.Anomalies()
    for feature in features:
        proto.anomaly_info[feature].short_description = "Unexpected string values"
        proto.anomaly_info[feature].description = "Examples contain values missing from the schema: 2."
    (path / "Split-train" / "SchemaDiff.pb").write_bytes(proto.SerializeToString())
    return anomalies


@pytest.fixture
def encoder(tmp_path):
    """An encoder directory holding only a vocabulary (what the gate's tokenizer needs)."""
    write_tiny_vocab(tmp_path / "encoder" / "vocab")
    return new_artifact(standard_artifacts.Model, tmp_path / "encoder")


def _gate(tmp_path, name, examples, anomalies, encoder, baseline=None, **props):
    result = new_artifact(DataGateResult, tmp_path / name / "result")
    inputs = {"examples": [examples], "anomalies": [anomalies], "encoder": [encoder],
              "baseline_model": [baseline] if baseline is not None else []}
    ex.Executor().Do(inputs, {"result": [result]}, {**PROPS, **props})
    report = json.load(open(os.path.join(result.uri, ex.RESULT_FILE)))
    assert result.get_int_custom_property(ex.PASSED) == int(report["passed"])
    return report, result


def _rows(positive_share, n=200):
    return [(f"the film was good number {i}" if i < positive_share * n else f"a dull plot {i}",
             int(i < positive_share * n)) for i in range(n)]


def test_a_clean_span_passes_and_its_profile_becomes_the_next_baseline(tmp_path, encoder):
    report, result = _gate(tmp_path, "first", _examples(tmp_path / "e1", _rows(0.5)), _anomalies(tmp_path / "a1"),
                           encoder)
    assert report["passed"] and report["anomalies"] == [] and report["profile"]["labels"] == {"0": 100, "1": 100}
    blessed = new_artifact(standard_artifacts.Model, tmp_path / "model")  # the Trainer copies the profile here
    os.makedirs(blessed.uri)
    tf.io.gfile.copy(os.path.join(result.uri, ex.PROFILE_FILE), os.path.join(blessed.uri, ex.PROFILE_FILE))
    same, _ = _gate(tmp_path, "same", _examples(tmp_path / "e2", _rows(0.52)), _anomalies(tmp_path / "a2"),
                    encoder, blessed)
    assert same["passed"] and same["baseline_model"] == blessed.uri

    drifted, drifted_result = _gate(tmp_path, "drifted", _examples(tmp_path / "e3", _rows(0.9)),
                                    _anomalies(tmp_path / "a3"), encoder, blessed)
    assert not drifted["passed"]
    assert [(a["feature"], a["measure"], a["threshold"]) for a in drifted["anomalies"]] == [
        ("label", "L-infinity distance", 0.1)]
    assert drifted["anomalies"][0]["value"] == pytest.approx(0.4)
    assert drifted_result.get_string_custom_property("anomalies") == "label: L-infinity distance 0.4 > 0.1"

    allowed, allowed_result = _gate(tmp_path, "allowed", _examples(tmp_path / "e4", _rows(0.9)),
                                    _anomalies(tmp_path / "a4"), encoder, blessed, allow_anomalies=1)
    assert allowed["passed"] and allowed["allowed_anomalies"] and allowed_result.get_int_custom_property("passed") == 1


def test_a_new_label_value_and_schema_anomalies_stop_the_span(tmp_path, encoder):
    report, _ = _gate(tmp_path, "new", _examples(tmp_path / "e", _rows(0.5), unknown_labels=7),
                      _anomalies(tmp_path / "a", ["label"]), encoder)
    assert not report["passed"]
    found = [str(data_profile.Anomaly(**a)) for a in report["anomalies"]]
    assert found == ["label: schema (train): Unexpected string values: Examples contain values missing from the "
                     "schema: 2.", "label: rows with a label outside the label set 7 > 0"]
