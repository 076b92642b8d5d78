"""tfx_bert.scoring: the served model's batch-scoring input, the scored file, and the checks
before a scoring run. BulkInferrer itself runs in tests/test_bulk_inferrer.py, and over every
task's served model in tests/test_tasks.py (the ``score_examples`` signature against Predict)."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tfx_bert import scoring, signatures, tasks


def _save_tiny_model(path, inputs=("text",), with_scoring=True):
    """A served model of ``inputs`` -> {"length": characters of the first input}."""
    from tfx_bert_app.models import export

    module = tf.Module()
    specs = [tf.TensorSpec([None], tf.string, name=name) for name in inputs]

    @tf.function(autograph=False, input_signature=specs)
    def serve(*texts):
        return {"length": tf.strings.length(texts[0], unit="UTF8_CHAR")}

    module.serve = serve
    signatures_ = {signatures.SERVING_DEFAULT: serve.get_concrete_function()}
    if with_scoring:
        export.save_served_model(module, str(path), signatures_)
    else:
        tf.saved_model.save(module, str(path), signatures=signatures_)
    return str(path)


def test_score_examples_reads_the_serving_inputs_from_features(tmp_path):
    served = tf.saved_model.load(_save_tiny_model(tmp_path / "m", inputs=("text", "text_b")))
    examples = scoring.serialized_examples({"text": ["héllo", "ab"], "text_b": ["x", "y"]})
    out = served.signatures[signatures.SCORE_EXAMPLES](examples=tf.constant(examples))
    assert out["length"].numpy().tolist() == [5, 2]
    missing = tf.train.Example().SerializeToString()  # a missing feature reads as "" (length 0)
    assert served.signatures[signatures.SCORE_EXAMPLES](examples=tf.constant([missing]))["length"].numpy().tolist() == [0]


def test_a_model_that_cannot_score_is_a_clear_error(tmp_path):
    sentiment = tasks.get_task("sentiment")
    old = _save_tiny_model(tmp_path / "old", with_scoring=False)
    with pytest.raises(ValueError, match="has no score_examples signature: it was exported before batch scoring"):
        scoring.check_scorable(sentiment, old)
    pair = _save_tiny_model(tmp_path / "pair", inputs=("text", "text_b"))
    with pytest.raises(ValueError, match=r"takes \['text', 'text_b'\], but task sentiment sends \['text'\]"):
        scoring.check_scorable(sentiment, pair)
    scoring.check_scorable(tasks.get_task("pair_classification"), pair)


def test_versions_resolve_to_the_newest_or_the_named_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="no pushed versions under"):
        scoring.resolve_version(str(tmp_path), "")
    for version in ("9", "10", ".staging-11-x"):
        os.makedirs(tmp_path / version)
        (tmp_path / version / "saved_model.pb").write_bytes(b"")
    os.makedirs(tmp_path / "12")  # a version directory still being written: no saved_model.pb yet
    assert scoring.resolve_version(str(tmp_path), "") == "10"
    assert scoring.resolve_version(str(tmp_path), "9") == "9"
    with pytest.raises(FileNotFoundError, match=r"version 7 is not under .* \(it has 9, 10\)"):
        scoring.resolve_version(str(tmp_path), "7")


def _log(example: bytes, outputs: dict):
    from tensorflow_serving.apis import prediction_log_pb2

    log = prediction_log_pb2.PredictionLog()
    request = log.predict_log.request.inputs["examples"]
    request.dtype = tf.string.as_datatype_enum
    request.string_val.append(example)
    for name, value in outputs.items():
        log.predict_log.response.outputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
    return log


def test_a_prediction_log_decodes_into_the_tasks_row_with_its_ids():
    (example,) = scoring.serialized_examples({"text": ["a fine film"], "id": ["row-7"]})
    row = scoring.decode_log(tasks.get_task("sentiment"), _log(example, {
        signatures.PROBABILITIES: [[0.25, 0.75]], signatures.CLASS_IDS: [1]}))
    assert row == {"id": "row-7", "text": "a fine film", "class_id": 1, "probabilities": [0.25, 0.75]}
    (example,) = scoring.serialized_examples({"question": ["who?"], "context": ["Anna bakes."], "question_id": ["q1"]})
    outputs = {signatures.ANSWER_TEXT: [b"Anna"], signatures.ANSWER_START: [0], signatures.ANSWER_END: [4],
               signatures.SCORE: [2.5], signatures.NO_ANSWER_SCORE: [-1.0], signatures.NBEST_TEXTS: [[b"Anna", b""]],
               signatures.NBEST_STARTS: [[0, -1]], signatures.NBEST_ENDS: [[4, -1]], signatures.NBEST_SCORES: [[2.5, 0.0]],
               signatures.NBEST_PROBABILITIES: [[1.0, 0.0]]}
    row = scoring.decode_log(tasks.get_task("qa"), _log(example, outputs))
    assert row["question_id"] == "q1" and row["answer"] == "Anna" and len(row["nbest"]) == 1


def test_rows_are_written_as_json_lines_or_csv(tmp_path):
    rows = [{"text": "a, \"quoted\" text", "class_id": 1, "probabilities": [0.25, 0.75]},
            {"text": "ünïcode", "class_id": 0, "probabilities": [0.5, 0.5]}]
    assert scoring.write_rows(iter(rows), str(tmp_path / "out" / "s.jsonl")) == 2
    assert [json.loads(line) for line in open(tmp_path / "out" / "s.jsonl", encoding="utf-8")] == rows
    assert scoring.write_rows(rows, str(tmp_path / "s.csv"), "csv") == 2
    import csv

    read = list(csv.DictReader(open(tmp_path / "s.csv", encoding="utf-8")))
    assert read[0] == {"text": "a, \"quoted\" text", "class_id": "1", "probabilities": "[0.25, 0.75]"}
    with pytest.raises(ValueError, match="--format 'xml' is not one of"):
        scoring.write_rows(rows, str(tmp_path / "s.xml"), "xml")


def test_skipped_records_are_read_from_the_ingestion_report(tmp_path):
    (tmp_path / "ingestion_report.json").write_text(json.dumps({"counts": {
        "score_records": 5, "skipped_empty_text": 2, "skipped_malformed_row": 1}}))
    assert scoring.skipped_records(str(tmp_path)) == {"empty_text": 2, "malformed_row": 1}
