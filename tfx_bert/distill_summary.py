"""The teacher and its student side by side, from a fine-tuning pipeline's last distillation:
the gated metric of each (the StudentEvaluator's run, TFMA or retrieval over the corpus, the
teacher as baseline), the retention, and parameters, SavedModel size and batch-1 latency (the
StudentTrainer's report)."""
from __future__ import annotations

import glob
import json
import os

EVALUATOR, TRAINER = "StudentEvaluator", "StudentTrainer"
REPORT_FILE = "distillation_report.json"  # written by models/distillation.report
RETRIEVAL_METRICS = "metrics.json"  # the RetrievalEvaluator's report (a dual encoder's student)


def _latest(pattern: str) -> str | None:
    """The newest execution's output dir (TFX names them by execution id)."""
    found = [p for p in glob.glob(pattern) if os.path.basename(p.rstrip("/")).isdigit()]
    return max(found, key=lambda p: int(os.path.basename(p))) if found else None


def _metric_names(metric) -> set[str]:
    """The names a gated MetricConfig's values may carry, "_" dropped and lower-cased: its
    class's (SparseCategoricalAccuracy) and the ``name`` its JSON config gives (the project's
    combiners, MultiLabelMetrics -> micro_f1, name theirs there)."""
    import json

    names = {metric.class_name, json.loads(metric.config or "{}").get("name", "")} - {""}
    return {name.replace("_", "").lower() for name in names}


def gated_metrics(evaluation_dir: str) -> set[str]:
    """The metrics the evaluation's EvalConfig gates on (those with a threshold), as
    ``_metric_names`` spells them."""
    import tensorflow_model_analysis as tfma

    config = tfma.load_eval_result(evaluation_dir).config
    # With finetune.slices and no slice gate, a threshold is the overall slice's (models/slices.py).
    return {name for spec in config.metrics_specs for m in spec.metrics
            if m.HasField("threshold") or len(m.per_slice_thresholds) for name in _metric_names(m)}


def read(config) -> dict:
    """{"metrics": {name: {"teacher", "student", "retention"}}, "blessed", "report"} of the last
    distillation of ``config``'s fine-tuning pipeline; empty parts where a stage has not run."""
    import tensorflow_model_analysis as tfma

    root = os.path.join(config.pipelines_root, config.finetune.pipeline_name)
    result: dict = {"metrics": {}, "blessed": None, "report": {}}
    run = _latest(os.path.join(root, TRAINER, "model_run", "*"))
    if run and os.path.exists(os.path.join(run, REPORT_FILE)):
        with open(os.path.join(run, REPORT_FILE)) as f:
            result["report"] = json.load(f)
    evaluation = _latest(os.path.join(root, EVALUATOR, "evaluation", "*"))
    if not evaluation:
        return result
    if os.path.exists(os.path.join(evaluation, RETRIEVAL_METRICS)):
        return {**result, **_retrieval(os.path.join(evaluation, RETRIEVAL_METRICS))}
    values: dict = {}
    for record in tfma.load_metrics(evaluation):
        if record.slice_key.single_slice_keys:
            continue  # the overall slice only (finetune.slices adds others)
        for kv in record.metric_keys_and_values:
            if not kv.key.is_diff and kv.value.HasField("double_value"):
                role = "teacher" if kv.key.model_name == "baseline" else "student"
                values.setdefault(kv.key.name, {})[role] = kv.value.double_value.value
    names = gated_metrics(evaluation)
    for key, pair in values.items():
        if key.replace("_", "").lower() in names and {"teacher", "student"} <= set(pair):
            pair["retention"] = pair["student"] / pair["teacher"] if pair["teacher"] else float("nan")
            result["metrics"][key] = pair
    result["blessed"] = tfma.load_validation_result(evaluation).validation_ok
    return result


def _retrieval(metrics_file: str) -> dict:
    """The RetrievalEvaluator's report (a dual encoder's student): its gate metric, both models."""
    with open(metrics_file) as f:
        report = json.load(f)
    gate = report["gate_metric"]
    pair = {"teacher": report["baseline"][gate], "student": report["candidate"][gate], "retention": report["retention"]}
    return {"metrics": {gate: pair}, "blessed": report["blessed"]}


def format_summary(summary: dict) -> str:
    """The side-by-side table the demo and ``tfx-bert distill`` print."""
    lines = ["\n== Distillation: teacher vs student =="]
    report = summary.get("report") or {}
    rows = [("layers", "{}"), ("feed_forward", "{}"), ("parameters", "{:,}"), ("saved_model_mb", "{:.1f} MB"), ("p50_ms", "{:.1f} ms"),
            ("p99_ms", "{:.1f} ms")]
    for key, pair in summary.get("metrics", {}).items():
        lines.append(f"  {key:22} teacher {pair['teacher']:.4f}   student {pair['student']:.4f}   "
                     f"retention {pair['retention']:.1%}")
    for key, fmt in rows:
        if key in report.get("teacher", {}):
            lines.append(f"  {key:22} teacher {fmt.format(report['teacher'][key]):>12}   "
                         f"student {fmt.format(report['student'][key]):>12}")
    if "speedup_p50" in report:
        lines.append(f"  {'speed-up (batch 1)':22} {report['speedup_p50']:.2f}x")
    if summary.get("blessed") is not None:
        lines.append(f"  student blessed        {summary['blessed']}")
    return "\n".join(lines)
