"""Teacher vs distilled student, measured in one run on the same machine (ratios; medians).

For each pushed teacher / student pair of a work dir (``make demo`` leaves sentiment and
sentiment-student; ``--pair name:student_name[:pipeline_name]`` adds others, the pipeline whose
distillation metrics to print; default tfx-bert-<name>): parameters, SavedModel MB,
in-process latency at batch 1 (p50 / p99), throughput at batch 32, gRPC throughput with 8 client
threads against the development server serving both, and the gated metric with its retention
(the StudentEvaluator's TFMA run). Teacher and student are timed alternately, so machine noise
falls on both.

    python benchmarks/distillation.py --work-dir work [--seconds 4] [--repeats 3]
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
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
from benchmarks.serving_throughput import run_clients  # noqa: E402

TEXTS = ["the soup was wonderful and the staff were kind .", "a dull , slow film with nothing to say .",
         "i would come back tomorrow .", "not worth the price ."]
# Sample strings for each task's serving inputs (by input name; others get TEXTS).
INPUT_TEXTS = {
    "question": ["who bakes the bread ?", "where did anna go ?"],
    "context": ["anna says the chef bakes the bread every morning before the shop opens .",
                "nobody in dublin knew greta , so anna went to paris on monday ."],
    "query": ["does the chef bake the bread ?", "who went to paris ?"],
}


def task_inputs(signature, n: int) -> dict:
    """A batch of ``n`` for the serving signature's own inputs: each string input filled from
    ``INPUT_TEXTS`` (``TEXTS`` for any other name), a list input (re-ranking's candidates) 4 wide."""
    _, specs = signature.structured_input_signature
    inputs = {}
    for name, spec in specs.items():
        pool = INPUT_TEXTS.get(name, TEXTS)
        shape = [n] + [4 for _ in spec.shape[1:]]
        flat = [pool[i % len(pool)] for i in range(int(np.prod(shape)))]
        inputs[name] = tf.constant(np.array(flat, dtype=object).reshape(shape))
    return inputs


def _latest(base: str) -> str:
    versions = [d for d in os.listdir(base) if d.isdigit()]
    return os.path.join(base, max(versions, key=int))


def in_process(version_dir: str, repeats: int) -> dict:
    from tfx_bert_app.models import distillation

    signature = tf.saved_model.load(version_dir).signatures["serving_default"]
    one, batch = task_inputs(signature, 1), task_inputs(signature, 32)
    latency = distillation.latency_ms(signature, one, runs=100)
    signature(**batch)
    rates = []
    for _ in range(repeats):
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < 1.0:
            signature(**batch)
            n += 32
        rates.append(n / (time.perf_counter() - start))
    return {**latency, "batch32_per_s": statistics.median(rates),
            "saved_model_mb": distillation.saved_model_mb(version_dir)}


@functools.lru_cache(maxsize=None)
def _one_request(version_dir: str) -> dict:
    signature = tf.saved_model.load(version_dir).signatures["serving_default"]
    return {k: v.numpy() for k, v in task_inputs(signature, 1).items()}


def grpc_rate(target: str, name: str, version_dir: str, seconds: float) -> float:
    from tfx_bert.serving.client import ServingClient

    request = _one_request(version_dir)
    with ServingClient(target) as client:
        client.wait_until_available(name)

        def call(i):
            client.predict(name, request)

        return run_clients(call, 8, seconds)[0]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work-dir", default="work")
    parser.add_argument("--pair", action="append", default=[], help="teacher:student model names")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    common.check_machine()
    from tfx_bert import config as config_lib
    from tfx_bert import distill_summary
    from tfx_bert.cli import DevServer
    from tfx_bert.serving import model_config

    config = config_lib.load_config(overrides=[f"work_dir={args.work_dir}"], demo=True)
    pairs = [tuple(p.split(":")) for p in args.pair] or [
        (config.finetune.model_name, config.distill.model_name, config.finetune.pipeline_name)]
    for teacher, student, *pipeline in pairs:
        summary = distill_summary.read(dataclasses.replace(
            config, finetune=dataclasses.replace(config.finetune, pipeline_name=(pipeline or [f"tfx-bert-{teacher}"])[0])))
        bases = {who: os.path.join(config.serving_base, name) for who, name in (("teacher", teacher), ("student", student))}
        rows = {who: [] for who in bases}
        for _ in range(args.repeats):  # alternate, so noise falls on both
            for who, base in bases.items():
                rows[who].append(in_process(_latest(base), 1))
        measured = {who: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for who, runs in rows.items()}
        config_file = os.path.join(tempfile.mkdtemp(), "models.config")
        with open(config_file, "w") as f:
            f.write(model_config.to_text([model_config.ModelConfig(n, bases[w]) for w, n in
                                          (("teacher", teacher), ("student", student))]))
        with DevServer(None, None, model_config_file=config_file) as server:
            for who, name in (("teacher", teacher), ("student", student)):
                measured[who]["grpc_8_clients_per_s"] = statistics.median(
                    grpc_rate(server.target, name, _latest(bases[who]), args.seconds) for _ in range(args.repeats))
        print(f"\n== {teacher} (teacher) vs {student} (student) ==")
        report = summary.get("report", {})
        for key in ("layers", "feed_forward", "parameters"):
            if key in report.get("teacher", {}):
                print(f"  {key:24} {report['teacher'][key]:>12,}  {report['student'][key]:>12,}")
        for key in ("saved_model_mb", "p50_ms", "p99_ms", "batch32_per_s", "grpc_8_clients_per_s"):
            t, s = measured["teacher"][key], measured["student"][key]
            print(f"  {key:24} {t:>12.2f}  {s:>12.2f}   student/teacher {s / t:.2f}x")
        for key, pair in summary.get("metrics", {}).items():
            print(f"  {key:24} {pair['teacher']:>12.4f}  {pair['student']:>12.4f}   retention {pair['retention']:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
