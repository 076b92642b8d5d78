"""A readable summary of a pipeline run, read back from ML Metadata: its components, and each
Trainer's validation curve with the step whose weights were exported."""
from __future__ import annotations

import dataclasses
import json
import os

from google.protobuf import json_format
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from tfx_bert.data_profile import GATE_FILE, Anomaly

_STATES = {v: k for k, v in metadata_store_pb2.Execution.State.items()}


@dataclasses.dataclass
class ComponentRun:
    name: str
    state: str
    seconds: float
    outputs: dict  # output key -> list of URIs
    started_ms: int = 0
    notes: list = dataclasses.field(default_factory=list)  # what its outputs say: the spans read


def _span_note(artifact) -> str:
    """``spans 2, 3 (version 1)`` for an Examples artifact an ExampleGen read spans into; ""
    otherwise."""
    spans = artifact.custom_properties.get("spans")
    if spans is None or not spans.HasField("struct_value"):
        return ""
    values = [int(v) for v in json.loads(json_format.MessageToJson(spans.struct_value)).get("__value__", [])]
    version = artifact.properties["version"].int_value if "version" in artifact.properties else None
    return (f"span{'s' if len(values) > 1 else ''} {', '.join(map(str, values))}"
            + (f" (version {version})" if version is not None else ""))


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
        notes = []
        for event in output_events:
            key = event.path.steps[0].key if event.path.steps else "output"
            outputs.setdefault(key, []).append(artifacts[event.artifact_id].uri)
            notes += [note for note in [_span_note(artifacts[event.artifact_id])] if note]
        seconds = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000
        runs.append(ComponentRun(context.name[len(pipeline_name) + 1:],
                                 _STATES.get(execution.last_known_state, "?"), seconds, outputs,
                                 execution.create_time_since_epoch, notes))
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
        lines.append(f"  {r.name.ljust(width)}  {r.state:9} {r.seconds:6.1f}s  {outs}"
                     + "".join(f" [{note}]" for note in r.notes))
    return "\n".join(lines)


TRAIN_METRICS = "train_metrics.json"  # written by the fine-tuning loop (models/finetuning.report)


def format_curve(curve: list[dict], best_step: int, name: str) -> str:
    """``validation <metric> by step: 20: 0.61, 40: 0.74 (exported), ...``: each round's value of
    ``name`` (a ``val_`` metric of the curve's points)."""
    points = ", ".join(f"{p['step']}: {p[name]:.4f}" + (" (exported)" if p["step"] == best_step else "") for p in curve)
    return f"validation {name[4:]} by step: {points}"


def output_files(runs: list[ComponentRun], key: str, name: str) -> list[tuple[ComponentRun, dict]]:
    """(run, the JSON file ``name`` read) for each output ``key`` of ``runs`` that holds one."""
    found = []
    for run in runs:
        for uri in run.outputs.get(key, []):
            path = os.path.join(uri, name)
            if os.path.exists(path):
                with open(path, encoding="utf-8") as f:
                    found.append((run, json.load(f)))
    return found


def training_curves(runs: list[ComponentRun]) -> list[str]:
    """A line per Trainer of ``runs`` that validated: its name and ``format_curve``'s line, and
    the steps run where it stopped early."""
    return [f"  {run.name}: " + format_curve(m["validation_curve"], m["best_step"], m["validation_metric"])
            + f"; {m['steps_run']} steps run"
            for run, m in output_files(runs, "model_run", TRAIN_METRICS) if m.get("validation_curve")]


class DataGateStopped(RuntimeError):
    """The data gate stopped the run's span: nothing after it ran."""


def gate_report(runs: list[ComponentRun]) -> dict | None:
    """The data gate's report (``data_gate.json``) of ``runs``; None where no gate ran."""
    return next((report for _, report in output_files(runs, "result", GATE_FILE)), None)


def check_gate(runs: list[ComponentRun]) -> None:
    """Raises DataGateStopped, naming each anomaly (feature, measure, value, threshold), when the
    run's data gate stopped its span."""
    report = gate_report(runs)
    if report is None or report["passed"]:
        return
    anomalies = "; ".join(str(Anomaly(**a)) for a in report["anomalies"])
    raise DataGateStopped(f"the data gate stopped span {report.get('span')}: nothing was trained or pushed "
                          f"(finetune.allow_anomalies=true lets it through knowingly). Anomalies: {anomalies}")


TRIALS_FILE = "trials.json"  # written by components/bert_tuner


def tuner_trials(runs: list[ComponentRun]) -> list[str]:
    """A line per trial of the run's Tuner (values, score, seconds; the winner marked)."""
    return [f"  Tuner trial {t['trial_id']}: " + ", ".join(f"{k}={v}" for k, v in t["values"].items())
            + (f" -> {report['objective']} {t['score']:.4f}" if t["score"] is not None else f" ({t['status']})")
            + (f" in {t['seconds']:.1f} s" if t.get("seconds") else "") + (" (best)" if t["best"] else "")
            for _, report in output_files(runs, "tuner_results", TRIALS_FILE)[:1] for t in report["trials"]]


def _slice_name(slice_key) -> str:
    """TFMA's slice key proto as ``feature=value[, ...]``."""
    parts = []
    for key in slice_key.single_slice_keys:
        value = key.WhichOneof("kind")
        raw = getattr(key, value) if value else ""
        parts.append(f"{key.column}={raw.decode() if isinstance(raw, bytes) else raw}")
    return ", ".join(parts) or "overall"


def worst_slice(evaluation_dir: str) -> dict | None:
    """The slice (``finetune.slices``; not the overall one) whose gated metric is lowest in a
    TFMA evaluation, with its example count and the overall value; None without slices."""
    import tensorflow_model_analysis as tfma

    from tfx_bert.distill_summary import gated_metrics

    gated = gated_metrics(evaluation_dir)
    values, counts, overall = {}, {}, {}
    for record in tfma.load_metrics(evaluation_dir):
        name = _slice_name(record.slice_key)
        for kv in record.metric_keys_and_values:
            if kv.key.model_name == "baseline" or kv.key.is_diff or not kv.value.HasField("double_value"):
                continue
            if kv.key.name == "example_count":
                counts[name] = kv.value.double_value.value
            elif kv.key.name.replace("_", "").lower() in gated and not kv.key.sub_key.ListFields():
                (overall if name == "overall" else values)[kv.key.name, name] = kv.value.double_value.value
    if not values:
        return None
    (metric, name), value = min(values.items(), key=lambda item: item[1])
    return {"slice": name, "metric": metric, "value": value, "examples": int(counts.get(name, 0)),
            "overall": overall.get((metric, "overall"))}


def worst_slices(runs: list[ComponentRun]) -> list[str]:
    """A line per Evaluator of ``runs`` that sliced: its worst slice on the gated metric."""
    lines = []
    for run in runs:
        for uri in run.outputs.get("evaluation", []):
            if not os.path.exists(os.path.join(uri, "eval_config.json")):
                continue
            worst = worst_slice(uri)
            if worst:
                overall = f" (overall {worst['overall']:.4f})" if worst["overall"] is not None else ""
                lines.append(f"  {run.name}: worst slice {worst['slice']} ({worst['examples']} examples): "
                             f"{worst['metric']} {worst['value']:.4f}{overall}")
    return lines
