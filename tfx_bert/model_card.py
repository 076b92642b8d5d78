"""A model card for every pushed version: ``assets.extra/model_card.{md,html,json}`` beside the
SavedModel, from the artifacts of the run that produced it (their properties are the ML Metadata
records the launcher passed to the Pusher).

model-card-toolkit does not install against this project's lock (it pins TFMA and protobuf
versions TFX 1.16 does not take), so its fields (model details, model parameters, quantitative
analysis, considerations) are written here as Markdown, HTML and JSON.
"""
from __future__ import annotations

import html
import json
import os

CARD_JSON, CARD_MD, CARD_HTML = "model_card.json", "model_card.md", "model_card.html"


def read_evaluation(evaluation_dir: str) -> dict:
    """{"candidate": {metric: value}, "baseline": {...}, "gated": [names], "blessed": bool} of an
    evaluator's output: TFMA's (overall slice) or the RetrievalEvaluator's ``metrics.json``."""
    retrieval = os.path.join(evaluation_dir, "metrics.json")
    if os.path.exists(retrieval):
        with open(retrieval, encoding="utf-8") as f:
            report = json.load(f)
        return {"candidate": report["candidate"], "baseline": report.get("baseline") or {},
                "gated": [report["gate_metric"]], "blessed": report["blessed"]}
    import tensorflow_model_analysis as tfma

    values: dict = {"candidate": {}, "baseline": {}}
    for record in tfma.load_metrics(evaluation_dir):
        if record.slice_key.single_slice_keys:
            continue  # the overall slice only
        for kv in record.metric_keys_and_values:
            if not kv.key.is_diff and kv.value.HasField("double_value") and not kv.key.sub_key.ListFields():
                role = "baseline" if kv.key.model_name == "baseline" else "candidate"
                values[role][kv.key.name] = kv.value.double_value.value
    from tfx_bert.distill_summary import gated_metrics

    gated = gated_metrics(evaluation_dir)  # class or configured names, "_" dropped, lower-cased
    return {**values, "gated": [name for name in values["candidate"] if name.replace("_", "").lower() in gated],
            "blessed": tfma.load_validation_result(evaluation_dir).validation_ok}


def pushed_version_of(base: str, model_uri: str) -> str | None:
    """The version under the model base path ``base`` whose card says it was pushed from the
    Model artifact at ``model_uri`` (None: not pushed there, or pushed before cards existed)."""
    if not model_uri or not os.path.isdir(base):
        return None
    for version in sorted((d for d in os.listdir(base) if d.isdigit()), key=int, reverse=True):
        path = os.path.join(base, version, "assets.extra", CARD_JSON)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                if json.load(f)["model"]["uri"].rstrip("/") == model_uri.rstrip("/"):
                    return version
    return None


def _calibration_line(report: dict) -> str:
    """The card's line on the served probabilities (``models/calibration.py``'s report)."""
    if report.get("at_bound"):
        return (f"- Calibration: none (the temperature fitted on {report['examples']} validation examples went to "
                f"the end of its range)")
    return (f"- Calibration: logits divided by {report['temperature']:.3f}, fitted on {report['examples']} "
            f"validation examples (ECE {report['ece_before']:.4f} -> {report['ece_after']:.4f})")


def to_markdown(card: dict) -> str:
    """The card as Markdown (``tfx-bert model-card`` prints it)."""
    m, data, gate, ev = card["model"], card["data"], card.get("data_gate") or {}, card.get("evaluation") or {}
    lines = [f"# Model card: {m['name']} version {m['version']}", "",
             "## Model details",
             f"- Task: {m['task']} ({m['role']})",
             f"- Encoder: {m['encoder']}",
             f"- Warm-started from: {_model_ref(m.get('warm_started_from'))}",
             f"- Trained: {m.get('steps_run', '?')} steps; exported the weights of step {m.get('best_step', '?')}"
             + (f" (best {m['validation_metric']} on the validation split)" if m.get("validation_metric") else ""),
             *(["- Tuned (TFX Tuner): " + ", ".join(f"{k}={v}" for k, v in m["hyperparameters"].items())]
               if m.get("hyperparameters") else []),
             *([_calibration_line(m["calibration"])] if m.get("calibration") else []),
             *(["- Decision thresholds (tuned on the validation split): "
                + ", ".join(f"{k} {v:.3f}" for k, v in m["decision_thresholds"].items())]
               if m.get("decision_thresholds") else []),
             f"- Artifact: {m['uri']}", "",
             "## Data",
             f"- Spans: {', '.join(map(str, data.get('spans') or [])) or 'no span patterns'}"
             + (f" (version {data['version']})" if data.get("version") is not None else ""),
             "- Rows: " + ", ".join(f"{k} {v}" for k, v in sorted((data.get("counts") or {}).items())),
             f"- Data gate: {_gate_line(gate)}", "",
             "## Evaluation (eval split, overall)",
             f"- Blessed: {ev.get('blessed')}; baseline: {_model_ref(ev.get('baseline_model'))}", "",
             "| metric | this model | baseline |", "|---|---|---|"]
    for name, value in sorted((ev.get("candidate") or {}).items()):
        base = (ev.get("baseline") or {}).get(name)
        gated = " (gated)" if name in (ev.get("gated") or []) else ""
        lines.append(f"| {name}{gated} | {value:.4f} | {'' if base is None else f'{base:.4f}'} |")
    if card.get("retention"):
        lines += ["", "## Distillation", *(f"- {k}: {v:.1%} of the teacher's" for k, v in card["retention"].items())]
    lines += ["", "## Considerations", f"- Intended use: {card.get('intended_use') or 'not stated'}",
              f"- Known limits: {card.get('limitations') or 'not stated'}", ""]
    return "\n".join(lines)


def to_html(card: dict) -> str:
    """The card as a standalone HTML page (the Markdown's content, escaped)."""
    body = []
    for line in to_markdown(card).splitlines():
        text = html.escape(line)
        if line.startswith("# "):
            body.append(f"<h1>{text[2:]}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{text[3:]}</h2>")
        elif line.startswith("- "):
            body.append(f"<li>{text[2:]}</li>")
        elif line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in text.strip("|").split("|")]
            body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    title = html.escape(f"{card['model']['name']} {card['model']['version']}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Model card: {title}</title></head>"
            f"<body>{''.join(body)}</body></html>\n")


def write(card: dict, directory: str) -> None:
    """Writes ``model_card.json``, ``.md`` and ``.html`` into ``directory`` (assets.extra)."""
    import tensorflow as tf

    for name, text in ((CARD_JSON, json.dumps(card, indent=2)), (CARD_MD, to_markdown(card)),
                       (CARD_HTML, to_html(card))):
        with tf.io.gfile.GFile(os.path.join(directory, name), "w") as f:
            f.write(text)


def _model_ref(ref: dict | None) -> str:
    if not ref or not ref.get("uri"):
        return "none"
    return f"version {ref['version']} ({ref['uri']})" if ref.get("version") else ref["uri"]


def _gate_line(gate: dict) -> str:
    if not gate:
        return "not run"
    anomalies = "; ".join(gate.get("anomalies") or [])
    if gate.get("passed") and not anomalies:
        return "passed"
    return f"let through with anomalies ({anomalies})" if gate.get("passed") else f"stopped ({anomalies})"
