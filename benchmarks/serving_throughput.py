"""Requests/s and latency of the sentiment model over gRPC (development server in its own
process) at batch 1 with 1, 8 and 32 concurrent clients, against calling the same SavedModel
signature in-process with as many threads (the ceiling); then at 8 and 32 clients with
server-side batching on, in two configurations: a 2 ms batch timeout, and TF Serving's advice
for CPU-only servers (batch_timeout_micros 0, num_batch_threads = CPU cores: a batch is what
queued while the previous ones ran). Same machine, same run; medians of --repeats.

CPU ms per request is also printed: the benchmark process's (the in-process calls, or the
gRPC clients) and the server process's. Their difference is what serving over gRPC costs.

    .venv/bin/python benchmarks/serving_throughput.py [--model-dir work/serving/sentiment/<v>]
        [--seconds 4] [--repeats 3] [--model-size tiny] [--intra-op-threads N]

``--intra-op-threads N`` gives both sides TF Serving's ``--tensorflow_intra_op_parallelism``:
the in-process calls and the server.

Without --model-dir it uses the newest version under work/serving/sentiment (what `make demo`
pushes) or, when there is none, exports a stand-in with the same graph: in-graph WordPiece ->
keras-hub BertBackbone -> Dense softmax (random weights: speed does not depend on them).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfx_bert.serving import client as client_lib  # noqa: E402
from tfx_bert.serving.model_config import batching_parameters_text, parallelism_flags  # noqa: E402
from tfx_bert.serving.servable import list_versions  # noqa: E402
from tfx_bert.serving.server import set_tensorflow_parallelism  # noqa: E402

SENTENCES = ["the film was a delight from start to finish .", "a dull , lifeless and overlong mess .",
             "great acting , but the plot made no sense at all .", "i would happily watch it again ."]


def export_stand_in(directory: str, size_name: str, seq_len: int = 64) -> str:
    """A sentiment-shaped SavedModel (text -> probabilities, class_ids) with random weights."""
    import keras
    import keras_hub

    from tfx_bert import registry, tokenization
    from tfx_bert.demo_data import write_demo_data

    data = write_demo_data(os.path.join(directory, "data"))
    words = set()
    for path in tf.io.gfile.glob(data["corpus"]):
        for line in open(path, encoding="utf-8"):
            words.update(tokenization.basic_tokenize(line))
    vocab = tokenization.reserved_tokens() + sorted(words)
    tokenizer = tokenization.WordPieceTokenizer(vocab)
    size = registry.get_model_size(size_name)
    backbone = keras_hub.models.BertBackbone(**size.backbone_kwargs(len(vocab), dropout=0.1))
    head = keras.layers.Dense(2, activation="softmax")
    module = tf.Module()
    module.backbone, module.head = backbone, head

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        packed = tokenizer.encode(text, seq_len)
        hidden = backbone({"token_ids": packed["token_ids"], "segment_ids": packed["segment_ids"],
                           "padding_mask": packed["padding_mask"]})["pooled_output"]
        probabilities = head(hidden)
        return {"probabilities": probabilities, "class_ids": tf.argmax(probabilities, axis=-1)}

    module.serve = serve
    export = os.path.join(directory, "sentiment", "1")
    tf.saved_model.save(module, export, signatures={"serving_default": serve.get_concrete_function()})
    return export


def process_cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of this process, or of ``pid`` (Linux /proc)."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_clients(call, clients: int, seconds: float, server_pid: int | None = None):
    """``clients`` threads calling ``call(i)`` for ``seconds``; (requests/s, p50 ms, p99 ms,
    CPU ms per request here, CPU ms per request in the server process)."""
    latencies, stop = [[] for _ in range(clients)], threading.Event()
    cpu_here = process_cpu_seconds()
    cpu_server = process_cpu_seconds(server_pid) if server_pid else 0.0

    def loop(k):
        i = k
        while not stop.is_set():
            start = time.perf_counter()
            call(i)
            latencies[k].append(time.perf_counter() - start)
            i += clients

    threads = [threading.Thread(target=loop, args=(k,)) for k in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    cpu_here = process_cpu_seconds() - cpu_here
    cpu_server = process_cpu_seconds(server_pid) - cpu_server if server_pid else 0.0
    flat = sorted(x for per in latencies for x in per)
    return (len(flat) / elapsed, flat[len(flat) // 2] * 1e3, flat[int(len(flat) * 0.99)] * 1e3,
            cpu_here / len(flat) * 1e3, cpu_server / len(flat) * 1e3)


def median_of(repeats, fn):
    runs = [fn() for _ in range(repeats)]
    return tuple(statistics.median(r[i] for r in runs) for i in range(len(runs[0])))


# name -> batching parameters file text (None: batching off)
CONFIGS = {
    "gRPC": None,
    "gRPC, batch 2ms": batching_parameters_text(32, 2000, 1),
    "gRPC, batch 0ms": batching_parameters_text(32, 0, os.cpu_count() or 1),
}


def start_server(model_base: str, name: str, workdir: str, intra_op_threads: int):
    port_file = os.path.join(workdir, f"port-{len(os.listdir(workdir))}")
    command = [sys.executable, "-m", "tfx_bert.serving.server", "--model_name", "sentiment",
               "--model_base_path", model_base, "--port", "0", "--port_file", port_file,
               *parallelism_flags(intra_op_threads)]
    if CONFIGS[name]:
        params = os.path.join(workdir, f"batching-{len(os.listdir(workdir))}.config")
        with open(params, "w") as f:
            f.write(CONFIGS[name])
        command += ["--enable_batching", "--batching_parameters_file", params]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not os.path.exists(port_file):
        if process.poll() is not None:
            raise RuntimeError("the server did not start")
        time.sleep(0.2)
    return process, f"127.0.0.1:{open(port_file).read()}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", default="")
    parser.add_argument("--model-size", default="tiny")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--intra-op-threads", type=int, default=0, help="0: TensorFlow's default")
    args = parser.parse_args()
    common.check_machine()
    set_tensorflow_parallelism(args.intra_op_threads)
    workdir = tempfile.mkdtemp()
    model_dir = args.model_dir
    if not model_dir:
        pushed = list_versions(os.path.abspath("work/serving/sentiment"))
        model_dir = pushed[max(pushed)] if pushed else export_stand_in(workdir, args.model_size)
    model_dir = os.path.abspath(model_dir)
    model_base = os.path.join(workdir, "base")
    os.makedirs(model_base)
    os.symlink(model_dir, os.path.join(model_base, "1"))
    print(f"model: {model_dir}; {os.cpu_count()} CPUs; {args.seconds}s per point, median of {args.repeats}; "
          f"intra-op threads {args.intra_op_threads or 'TensorFlow default'}")

    signature = tf.saved_model.load(model_dir).signatures["serving_default"]
    inputs = [tf.constant([s]) for s in SENTENCES]
    for x in inputs:
        signature(text=x)

    rows = []
    for clients in (1, 8, 32):
        rows.append(("in-process", clients, median_of(args.repeats, lambda: run_clients(
            lambda i: signature(text=inputs[i % len(inputs)]), clients, args.seconds))))
    for name in CONFIGS:
        process, target = start_server(model_base, name, workdir, args.intra_op_threads)
        try:
            with client_lib.ServingClient(target, timeout=30) as client:
                client.wait_until_available("sentiment")
                arrays = [np.array([s], dtype=object) for s in SENTENCES]
                for a in arrays:
                    client.predict("sentiment", {"text": a})
                for clients in ((8, 32) if CONFIGS[name] else (1, 8, 32)):
                    rows.append((name, clients, median_of(
                        args.repeats, lambda: run_clients(
                            lambda i: client.predict("sentiment", {"text": arrays[i % len(arrays)]}),
                            clients, args.seconds, process.pid))))
        finally:
            process.terminate()
            process.wait()

    ceiling = {c: r[0] for name, c, r in rows if name == "in-process"}
    print(f"\n{'path':<16}{'clients':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'vs in-process':>15}"
          f"{'CPU ms/req: here':>18}{'server':>8}")
    for name, clients, (rps, p50, p99, cpu_here, cpu_server) in rows:
        print(f"{name:<16}{clients:>8}{rps:>10.0f}{p50:>9.1f}{p99:>9.1f}{rps / ceiling[clients]:>15.2f}"
              f"{cpu_here:>18.2f}{cpu_server:>8.2f}")
    rps = {(n, c): r[0] for n, c, r in rows}
    print("\nat 8 clients, share of in-process (target >= 70%): " + ", ".join(
        f"{name} {rps[name, 8] / ceiling[8]:.0%}" for name in CONFIGS))
    print("batching at 32 clients, requests/s vs gRPC without: " + ", ".join(
        f"{name} x{rps[name, 32] / rps['gRPC', 32]:.2f}" for name in CONFIGS if CONFIGS[name]))


if __name__ == "__main__":
    main()
