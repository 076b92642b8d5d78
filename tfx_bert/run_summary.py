"""A readable summary of a pipeline run, read back from ML Metadata."""
from __future__ import annotations

import dataclasses

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

_STATES = {v: k for k, v in metadata_store_pb2.Execution.State.items()}


@dataclasses.dataclass
class ComponentRun:
    name: str
    state: str
    seconds: float
    outputs: dict  # output key -> list of URIs
    started_ms: int = 0


def component_runs(connection_config, pipeline_name: str, since_ms: int) -> list[ComponentRun]:
    """The newest execution of each node of ``pipeline_name`` started after ``since_ms``."""
    store = metadata_store.MetadataStore(connection_config)
    runs = []
    for context in store.get_contexts_by_type("node"):
        if not context.name.startswith(pipeline_name + "."):
            continue
        executions = [e for e in store.get_executions_by_context(context.id)
                      if e.create_time_since_epoch >= since_ms]
        if not executions:
            continue
        execution = max(executions, key=lambda e: (e.create_time_since_epoch, e.id))
        outputs: dict[str, list] = {}
        events = store.get_events_by_execution_ids([execution.id])
        output_events = [e for e in events if e.type == metadata_store_pb2.Event.OUTPUT]
        artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in output_events])}
        for event in output_events:
            key = event.path.steps[0].key if event.path.steps else "output"
            outputs.setdefault(key, []).append(artifacts[event.artifact_id].uri)
        seconds = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000
        runs.append(ComponentRun(context.name[len(pipeline_name) + 1:],
                                 _STATES.get(execution.last_known_state, "?"), seconds, outputs,
                                 execution.create_time_since_epoch))
    runs.sort(key=lambda r: (r.started_ms, r.name))
    return runs


def format_runs(pipeline_name: str, runs: list[ComponentRun], total_seconds: float) -> str:
    """A table: component, state, seconds, outputs."""
    lines = [f"Pipeline {pipeline_name}: {len(runs)} components in {total_seconds:.1f}s"]
    width = max([len(r.name) for r in runs] + [9])
    lines.append(f"  {'component'.ljust(width)}  {'state':9} {'time':>7}  outputs")
    for r in runs:
        keys = sorted(r.outputs)
        outs = "; ".join(f"{k}: {', '.join(r.outputs[k])}" for k in keys[:2]) or "-"
        if len(keys) > 2:
            outs += f"; (+{len(keys) - 2} more: {', '.join(keys[2:])})"
        lines.append(f"  {r.name.ljust(width)}  {r.state:9} {r.seconds:6.1f}s  {outs}")
    return "\n".join(lines)
