"""Continuous training end to end (`tfx-bert demo --loop`): three spans arrive; the second, with
label drift, is stopped by the data gate; the third continues from the first's blessed model.
Read back from ML Metadata and the pushed versions' model cards."""
import json
import os

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from tfx_bert import model_card

pytestmark = pytest.mark.slow
PIPELINE = "tfx-bert-sentiment"


def _node_runs(store, node: str) -> list[tuple]:
    """(execution, {input key: [artifacts]}, {output key: [artifacts]}) of each run of ``node``,
    oldest first."""
    context = store.get_context_by_type_and_name("node", f"{PIPELINE}.{node}")
    runs = []
    for execution in sorted(store.get_executions_by_context(context.id), key=lambda e: e.id):
        sides: tuple = ({}, {})
        for event in store.get_events_by_execution_ids([execution.id]):
            side = {metadata_store_pb2.Event.INPUT: 0, metadata_store_pb2.Event.OUTPUT: 1}.get(event.type)
            if side is not None:
                [artifact] = store.get_artifacts_by_id([event.artifact_id])
                sides[side].setdefault(event.path.steps[0].key, []).append(artifact)
        runs.append((execution, *sides))
    return runs


def _custom(artifact, name):
    value = artifact.custom_properties[name]
    if value.HasField("struct_value"):
        from google.protobuf import json_format

        data = json.loads(json_format.MessageToJson(value.struct_value))
        return data["__value__"] if set(data) == {"__value__"} else data  # TFX wraps lists, not dicts
    return value.int_value if value.HasField("int_value") else value.string_value


def test_the_loop_stops_the_drifted_span_and_continues_from_the_blessed_model(finetuned):
    import tensorflow_model_analysis as tfma

    work, output = finetuned.work("loop"), finetuned.output("loop")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = os.path.join(work, "metadata.sqlite")
    store = metadata_store.MetadataStore(config)

    gates = _node_runs(store, "DataGate")
    assert [_custom(outputs["result"][0], "passed") for _, _, outputs in gates] == [1, 0, 1]
    assert "label: L-infinity distance" in _custom(gates[1][2]["result"][0], "anomalies")
    assert "stopped by the data gate" in output and "label: L-infinity distance" in output
    spans = [_custom(inputs["examples"][0], "spans") for _, inputs, _ in gates]
    assert spans == [[1], [2], [3]]

    trainers = _node_runs(store, "Trainer")  # span 2 produced no Model
    assert len(trainers) == 2 and "base_model" not in trainers[0][1]  # span 1: nothing blessed yet
    first_model, third_model = trainers[0][2]["model"][0], trainers[1][2]["model"][0]
    assert [m.uri for m in trainers[1][1]["base_model"]] == [first_model.uri]  # span 1's blessed model
    assert trainers[1][1]["encoder"][0].uri == trainers[0][1]["encoder"][0].uri  # both built on the encoder
    assert _custom(third_model, "warm_started_from") == first_model.uri

    pushers = _node_runs(store, "Pusher")
    pushed = [(outputs["pushed_model"][0], inputs) for _, inputs, outputs in pushers]
    assert len(pushed) == 2 and all(_custom(p, "pushed") == 1 for p, _ in pushed)
    for (pushed_model, inputs), model in zip(pushed, (first_model, third_model)):
        version_dir = _custom(pushed_model, "pushed_destination")
        with open(os.path.join(version_dir, "assets.extra", model_card.CARD_JSON)) as f:
            card = json.load(f)
        examples, evaluation = inputs["examples"][0], inputs["evaluation"][0]
        assert card["model"]["uri"] == model.uri and card["model"]["version"] == int(_custom(pushed_model, "pushed_version"))
        assert card["data"]["spans"] == _custom(examples, "spans")
        assert card["data"]["counts"] == {k: int(v) for k, v in _custom(examples, "ingestion_counts").items()}
        assert card["evaluation"] == {**model_card.read_evaluation(evaluation.uri),
                                      "baseline_model": card["evaluation"]["baseline_model"]}
        assert os.path.exists(os.path.join(version_dir, "assets.extra", model_card.CARD_HTML))
    first_card, third_card = (json.load(open(os.path.join(_custom(p, "pushed_destination"), "assets.extra",
                                                          model_card.CARD_JSON))) for p, _ in pushed)
    assert first_card["model"]["warm_started_from"] is None and first_card["evaluation"]["baseline_model"] is None
    span1_version = str(first_card["model"]["version"])
    assert third_card["model"]["warm_started_from"] == {"uri": first_model.uri, "version": span1_version}
    assert third_card["evaluation"]["baseline_model"]["version"] == span1_version  # compared against span 1's
    # TFMA evaluated span 3's model beside span 1's: the diff metrics the change threshold reads.
    third_evaluation = pushed[1][1]["evaluation"][0].uri
    assert any(kv.key.is_diff and kv.key.model_name == "candidate" for record in tfma.load_metrics(third_evaluation)
               for kv in record.metric_keys_and_values), "span 3 was not compared against span 1's blessed model"
    assert f"version {third_card['model']['version']})" in output.split("Predictions over gRPC")[1].splitlines()[0]
