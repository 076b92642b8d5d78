"""The distillation report: parameters, SavedModel MB and in-process latency of a served
model, for the teacher and the student side by side."""
from __future__ import annotations

import os
import time

import keras
import numpy as np
import tensorflow as tf

from tfx_bert.distill_summary import REPORT_FILE
from tfx_bert_app.models.distillation.student import backbone_setting, num_layers


def parameter_count(model: keras.Model) -> int:
    return int(sum(np.prod(v.shape) for v in model.weights))


def saved_model_mb(export_dir: str) -> float:
    """The SavedModel's size on disk (graph, variables, assets)."""
    total = 0
    for root, _, files in tf.io.gfile.walk(export_dir):
        total += sum(tf.io.gfile.stat(os.path.join(root, f)).length for f in files)
    return total / 2**20


def latency_ms(signature, inputs: dict, runs: int = 30) -> dict:
    """p50 / p99 wall milliseconds of ``signature(**inputs)`` after two warm-up calls."""
    for _ in range(2):
        signature(**inputs)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        signature(**inputs)
        times.append(1000 * (time.perf_counter() - start))
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}


def size_and_latency(model: keras.Model, export_dir: str, inputs: dict) -> dict:
    """Parameters, depth, feed-forward width, SavedModel MB and batch-1 latency of the served
    ``serving_default``."""
    served = tf.saved_model.load(export_dir).signatures["serving_default"]
    return {"parameters": parameter_count(model), "layers": num_layers(model),
            "feed_forward": backbone_setting(model, "intermediate_dim"),
            "saved_model_mb": round(saved_model_mb(export_dir), 2), **latency_ms(served, inputs)}


def report(teacher: keras.Model, student: keras.Model, teacher_dir: str, student_dir: str, run_dir: str) -> dict:
    """Teacher and student side by side (parameters, layers, SavedModel MB, batch-1 latency of
    ``serving_default`` on one short text), printed and written to ``<run_dir>/REPORT_FILE``."""
    import json

    served = tf.saved_model.load(student_dir).signatures["serving_default"]
    text = tf.constant(["a short request to time the model ."])
    inputs = {name: text for name in served.structured_input_signature[1]}
    result = {"teacher": size_and_latency(teacher, teacher_dir, inputs),
              "student": size_and_latency(student, student_dir, inputs)}
    result["speedup_p50"] = result["teacher"]["p50_ms"] / max(result["student"]["p50_ms"], 1e-9)
    print("  [distill] " + "; ".join(
        f"{who}: {r['layers']} layers, {r['parameters']:,} parameters, {r['saved_model_mb']:.1f} MB, "
        f"p50 {r['p50_ms']:.1f} ms" for who, r in (("teacher", result["teacher"]), ("student", result["student"])))
        + f"; {result['speedup_p50']:.2f}x faster at batch 1", flush=True)
    with tf.io.gfile.GFile(os.path.join(run_dir, REPORT_FILE), "w") as f:
        f.write(json.dumps(result, indent=2))
    return result
