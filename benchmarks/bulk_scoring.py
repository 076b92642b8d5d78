"""Batch scoring throughput, in the same run: `tfx-bert score` (TaskExampleGen -> BulkInferrer on
the local Beam runner) against the same pushed model served over gRPC (the development server,
``clients`` threads sending batches of ``batch`` rows) and called in-process (``serving_default``
on batches of ``batch``), on generated CSVs of each size. Rows/s of each; the score run also by
its BulkInferrer step alone (the whole command includes starting Python, TensorFlow and MLMD).

    .venv/bin/python benchmarks/bulk_scoring.py --work-dir WORK [--rows 10000 100000]

WORK holds a pushed model (``WORK/serving/<model>``), e.g. after `make demo` (work dir ``work``).
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_rows(path: str, rows: int, seed: int = 0) -> list[str]:
    from tfx_bert import demo_data

    rng = random.Random(seed)
    texts = [demo_data._review(rng, rng.random() < 0.5) for _ in range(rows)]
    with open(path, "w", encoding="utf-8") as f:
        f.write("text\n" + "".join(f'"{t}"\n' for t in texts))
    return texts


def score_command(work: str, model: str, path: str, out: str) -> tuple[float, float]:
    """(the whole command's wall seconds, its BulkInferrer step's seconds)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tfx_bert.cli", "score", "--demo", "--work-dir", work,
                           "--model", model, "--input", path, "--output", out, "--set", "finetune.label_field="],
                          cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
    step = re.search(r"BulkInferrer\s+COMPLETE\s+([\d.]+)s", proc.stdout)
    return wall, float(step.group(1)) if step else float("nan")


def grpc_rows_per_second(model_base: str, model: str, texts: list[str], clients: int, batch: int) -> float:
    from tfx_bert.cli import DevServer
    from tfx_bert.serving.client import ServingClient

    batches = [texts[i:i + batch] for i in range(0, len(texts), batch)]
    with DevServer(model, model_base) as server:
        with ServingClient(server.target) as probe:
            probe.wait_until_available(model)
        lock, queue = threading.Lock(), list(range(len(batches)))

        def work():
            import numpy as np

            with ServingClient(server.target) as client:
                while True:
                    with lock:
                        if not queue:
                            return
                        i = queue.pop()
                    client.predict(model, {"text": np.array(batches[i], dtype=object)})

        start = time.perf_counter()
        threads = [threading.Thread(target=work) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return len(texts) / (time.perf_counter() - start)


def in_process_rows_per_second(version_dir: str, texts: list[str], batch: int) -> float:
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    serve = tf.saved_model.load(version_dir).signatures["serving_default"]
    serve(text=tf.constant(texts[:batch]))  # traced and warm
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        serve(text=tf.constant(texts[i:i + batch]))
    return len(texts) / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--model", default="sentiment")
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    from benchmarks import common
    from tfx_bert import scoring

    common.check_machine()
    base = os.path.join(os.path.abspath(args.work_dir), "serving", args.model)
    version_dir = os.path.join(base, scoring.resolve_version(base, ""))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            path = os.path.join(tmp, f"rows-{rows}.csv")
            texts = write_rows(path, rows)
            wall, step = score_command(args.work_dir, args.model, path, os.path.join(tmp, f"scores-{rows}.jsonl"))
            grpc = grpc_rows_per_second(base, args.model, texts, args.clients, args.batch)
            local = in_process_rows_per_second(version_dir, texts, args.batch)
            results.append({"rows": rows, "score_command_rows_per_s": rows / wall, "bulk_inferrer_rows_per_s": rows / step,
                            f"grpc_{args.clients}_clients_batch_{args.batch}_rows_per_s": grpc,
                            f"in_process_batch_{args.batch}_rows_per_s": local,
                            "bulk_inferrer_vs_grpc": (rows / step) / grpc, "bulk_inferrer_vs_in_process": (rows / step) / local})
            print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in results[-1].items()}), flush=True)


if __name__ == "__main__":
    main()
