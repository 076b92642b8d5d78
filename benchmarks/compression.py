"""Served-model compression (``export_precision``): float32 vs float16 vs int8, measured in one
run on the same machine (ratios to float32; medians of alternating repeats).

From a work dir where a classification pipeline ran (``make demo`` leaves sentiment), the
Trainer's Keras model and Transform graph are exported at each precision by the task's own
export (``classification.export_classifier``), then each SavedModel is op-checked and measured:
variables MB, batch-1 latency (p50 / p99), batch-32 throughput, and accuracy on the eval split
with its change against float32.

    python benchmarks/compression.py --work-dir work [--task sentiment] [--repeats 3]
"""
from __future__ import annotations

import argparse
import csv
import glob
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (the exported graphs' WordPiece ops)

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

TEXT = "the soup was wonderful and the staff were kind ."


def _latest(pattern: str) -> str:
    found = glob.glob(pattern)
    if not found:
        raise SystemExit(f"Nothing matches {pattern}: run `make demo` (or the task's pipeline) into --work-dir first.")
    return max(found, key=lambda p: int(p.rstrip("/").split(os.sep)[-1]))


def export_all(pipeline_dir: str, out_dir: str) -> dict:
    """{precision: SavedModel dir}, each exported from the Trainer's latest model."""
    import tensorflow_transform as tft

    from tfx_bert_app.models import classification, compression, distillation

    model_dir = _latest(os.path.join(pipeline_dir, "Trainer", "model", "*"))
    teacher = distillation.load_teacher(os.path.join(model_dir, "Format-Serving"))
    transform = tft.TFTransformOutput(_latest(os.path.join(pipeline_dir, "Transform", "transform_graph", "*")))
    classes = [str(i) for i in range(int(teacher.get_config().get("num_classes", 2)))]
    exports = {}
    for precision in compression.PRECISIONS:
        exports[precision] = os.path.join(out_dir, precision)
        classification.export_classifier(teacher, transform, exports[precision], classes, precision)
    return exports


def measure(export_dir: str, texts: list[str]) -> dict:
    from tfx_bert_app.models import distillation

    signature = tf.saved_model.load(export_dir).signatures["serving_default"]
    latency = distillation.latency_ms(signature, {"text": tf.constant([TEXT])}, runs=100)
    batch = {"text": tf.constant([texts[i % len(texts)] for i in range(32)])}
    signature(**batch)
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 1.0:
        signature(**batch)
        n += 32
    return {**latency, "batch32_per_s": n / (time.perf_counter() - start)}


def accuracy(export_dir: str, rows: list[dict]) -> float:
    signature = tf.saved_model.load(export_dir).signatures["serving_default"]
    predicted = np.concatenate([signature(text=tf.constant([r["text"] for r in rows[i:i + 64]]))["class_ids"].numpy()
                                for i in range(0, len(rows), 64)])
    return float((predicted == np.array([int(r["label"]) for r in rows])).mean())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work-dir", default="work")
    parser.add_argument("--task", default="sentiment")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    common.check_machine()
    from tfx_bert.serving import op_check
    from tfx_bert_app.models import distillation

    pipeline_dir = os.path.join(args.work_dir, "pipelines", f"tfx-bert-{args.task}")
    rows = []
    for path in glob.glob(os.path.join(args.work_dir, "data", args.task, "eval", "*.csv")):
        with open(path, encoding="utf-8") as f:
            rows += list(csv.DictReader(f))
    exports = export_all(pipeline_dir, tempfile.mkdtemp(prefix="compression-"))
    runs = {p: [] for p in exports}
    for _ in range(args.repeats):  # alternate, so machine noise falls on every precision
        for precision, directory in exports.items():
            runs[precision].append(measure(directory, [r["text"] for r in rows] or [TEXT]))
    base = None
    print(f"\n== {args.task}: served model by export_precision (ratios to float32) ==")
    print(f"  {'precision':10} {'vars MB':>8} {'p50 ms':>7} {'p99 ms':>7} {'batch32/s':>10} {'accuracy':>9} {'ops ok':>6}")
    for precision, directory in exports.items():
        m = {k: statistics.median(r[k] for r in runs[precision]) for k in runs[precision][0]}
        m["mb"] = distillation.saved_model_mb(os.path.join(directory, "variables"))
        m["accuracy"] = accuracy(directory, rows) if rows else float("nan")
        base = base or m
        ops_ok = op_check.unsupported_ops(directory) == []
        print(f"  {precision:10} {m['mb']:8.2f} {m['p50_ms']:7.2f} {m['p99_ms']:7.2f} {m['batch32_per_s']:10.0f} "
              f"{m['accuracy']:9.4f} {str(ops_ok):>6}   size {m['mb'] / base['mb']:.2f}x, "
              f"p50 {m['p50_ms'] / base['p50_ms']:.2f}x, throughput {m['batch32_per_s'] / base['batch32_per_s']:.2f}x, "
              f"accuracy {m['accuracy'] - base['accuracy']:+.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
