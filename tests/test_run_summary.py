"""tfx_bert.run_summary: the newest execution of each component of a pipeline, read back from
a real ML Metadata store, and the table printed after a run."""
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from tfx_bert import run_summary


def _store(path):
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(path)  # what the local runner uses
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return config, metadata_store.MetadataStore(config)


def _execution(store, node_context, state, outputs=()):
    type_id = store.put_execution_type(metadata_store_pb2.ExecutionType(name="Component"))
    artifact_type = store.put_artifact_type(metadata_store_pb2.ArtifactType(name="Artifact"))
    artifacts_and_events = []
    for key, uri in outputs:
        event = metadata_store_pb2.Event(type=metadata_store_pb2.Event.OUTPUT)
        event.path.steps.add().key = key
        artifacts_and_events.append((metadata_store_pb2.Artifact(type_id=artifact_type, uri=uri), event))
    store.put_execution(metadata_store_pb2.Execution(type_id=type_id, last_known_state=state),
                        artifacts_and_events, [node_context])


def test_newest_execution_of_each_node_with_its_outputs_and_only_this_pipeline(tmp_path):
    config, store = _store(tmp_path / "metadata.sqlite")
    node_type = store.put_context_type(metadata_store_pb2.ContextType(name="node"))
    ids = store.put_contexts([metadata_store_pb2.Context(type_id=node_type, name=name)
                              for name in ("p.ExampleGen", "p.Trainer", "other.Trainer")])
    examples_ctx, trainer_ctx, other_ctx = store.get_contexts_by_id(ids)
    _execution(store, examples_ctx, metadata_store_pb2.Execution.COMPLETE, [("examples", "/p/examples/1")])
    _execution(store, trainer_ctx, metadata_store_pb2.Execution.FAILED)
    _execution(store, trainer_ctx, metadata_store_pb2.Execution.COMPLETE, [("model", "/p/model/3"),
                                                                           ("model_run", "/p/run/3")])
    _execution(store, other_ctx, metadata_store_pb2.Execution.COMPLETE, [("model", "/other/model")])

    runs = run_summary.component_runs(config, "p", since_ms=0)
    assert [(r.name, r.state) for r in runs] == [("ExampleGen", "COMPLETE"), ("Trainer", "COMPLETE")]
    assert runs[1].outputs == {"model": ["/p/model/3"], "model_run": ["/p/run/3"]}
    assert run_summary.component_runs(config, "p", since_ms=2 ** 62) == []  # nothing started since then

    table = run_summary.format_runs("p", runs, 12.5).splitlines()
    assert table[0] == "Pipeline p: 2 components in 12.5s"
    assert table[2].split()[:3] == ["ExampleGen", "COMPLETE", "0.0s"] and "examples: /p/examples/1" in table[2]
    assert "model: /p/model/3; model_run: /p/run/3" in table[3]


def test_a_trainers_validation_curve_marks_the_exported_step(tmp_path):
    import json

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / run_summary.TRAIN_METRICS).write_text(json.dumps({
        "best_step": 20, "steps_run": 30, "validation_metric": "val_accuracy",
        "validation_curve": [{"step": 10, "val_accuracy": 0.5}, {"step": 20, "val_accuracy": 0.75},
                             {"step": 30, "val_accuracy": 0.7}]}))
    (tmp_path / "unvalidated").mkdir()
    (tmp_path / "unvalidated" / run_summary.TRAIN_METRICS).write_text(json.dumps({"loss": 0.3}))
    runs = [run_summary.ComponentRun("Trainer", "COMPLETE", 1.0, {"model_run": [str(tmp_path / "run")]}),
            run_summary.ComponentRun("StudentTrainer", "COMPLETE", 1.0, {"model_run": [str(tmp_path / "unvalidated")]}),
            run_summary.ComponentRun("Pusher", "COMPLETE", 1.0, {})]
    assert run_summary.training_curves(runs) == [
        "  Trainer: validation accuracy by step: 10: 0.5000, 20: 0.7500 (exported), 30: 0.7000; 30 steps run"]


def test_the_spans_an_example_gen_read_are_noted_beside_its_outputs():
    from tfx.types import standard_artifacts

    examples = standard_artifacts.Examples()
    examples.span, examples.version = 3, 1
    examples.set_json_value_custom_property("spans", [2, 3])
    assert run_summary._span_note(examples.mlmd_artifact) == "spans 2, 3 (version 1)"
    assert run_summary._span_note(standard_artifacts.Examples().mlmd_artifact) == ""
    run = run_summary.ComponentRun("TaskExampleGen", "COMPLETE", 2.0, {"examples": ["/x/1"]}, 0, ["span 3"])
    assert run_summary.format_runs("p", [run], 2.0).splitlines()[-1].endswith("examples: /x/1 [span 3]")
