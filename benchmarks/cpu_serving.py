"""The project's served graph against Hugging Face's fast tokenizer + ONNX Runtime on a CPU, in
the same run: for each model size and text length, batch 1 (p50, p99 ms) and batch 32 (texts/s).

The project's side is the graph every task exports: raw text -> in-graph WordPiece
(tensorflow-text) -> packing -> keras-hub BertBackbone -> softmax, loaded from a SavedModel and
called in process, three ways: packed to the fixed ``max_seq_length`` (``export_length_bucket:
0``, what every served graph did first), length-aware (the batch's longest row rounded up to
``finetune.export_length_bucket``'s default) with keras-hub's encoder layers as they are ("keras_layers", the export before
``models/serving_kernels.py``), and length-aware with those layers switched to fusable 2-D
matmuls ("length_aware": every export now). ONNX Runtime's side
(``benchmarks/onnx_reference.py``, in ``.bench-hf``) is a ``BertForSequenceClassification`` of
the same shape and vocabulary exported by torch, padded to the batch's longest. Both with
``--threads`` intra-op threads; weights random (speed does not depend on them). With
``--grpc``: also the development server over gRPC, 8 clients at batch 1, for the short texts.

    make .bench-hf/bin/python   # once: torch, transformers, onnxruntime in their own environment
    .venv/bin/python benchmarks/cpu_serving.py [--sizes tiny small base] [--threads 2] [--grpc]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfx_bert.config import FinetuneConfig  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_PYTHON = os.path.join(ROOT, ".bench-hf", "bin", "python")
LENGTHS = {"short": 12, "medium": 60, "long": 250}  # target pieces per text, [CLS] and [SEP] included
MAX_SEQ_LENGTH = 256


def vocabulary(directory: str) -> tuple[str, list[str]]:
    """The demo corpus's words as a WordPiece vocabulary file (both sides read the same file)."""
    from tfx_bert import demo_data, tokenization

    corpus = os.path.join(directory, "corpus.txt")
    demo_data.write_pretraining_corpus(corpus, num_documents=300)
    words = set()
    for line in open(corpus, encoding="utf-8"):
        words.update(tokenization.basic_tokenize(line))
    vocab = tokenization.reserved_tokens() + sorted(words)
    path = os.path.join(directory, "vocab.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    return path, vocab


def texts_of_length(tokenizer, pieces: int, count: int, seed: int = 0) -> list[str]:
    """``count`` texts of about ``pieces`` pieces each (demo reviews, joined)."""
    import random

    import tensorflow as tf

    from tfx_bert import demo_data

    rng, texts = random.Random(seed), []
    while len(texts) < count:
        text = demo_data._review(rng, rng.random() < 0.5)
        while int(tokenizer.tokenize(tf.constant([text])).row_lengths()[0]) + 2 < pieces:
            text += " " + demo_data._review(rng, rng.random() < 0.5)
        texts.append(text)
    return texts


# variant -> (length bucket, encoder layers switched to models/serving_kernels.py's 2-D matmuls)
BUCKET = FinetuneConfig.export_length_bucket  # what every export uses unless configured
VARIANTS = {"fixed_length": (0, True), "keras_layers": (BUCKET, False), "length_aware": (BUCKET, True)}


def export_graph(directory: str, tokenizer, size_name: str, length_bucket: int, switched: bool = True) -> str:
    """The served classifier graph of ``size_name`` (random weights, the same for every call) as
    every task exports it (``switched``: as it did before ``models/serving_kernels.py``)."""
    import keras
    import keras_hub
    import tensorflow as tf

    from tfx_bert import registry
    from tfx_bert_app.models import serving_kernels

    keras.utils.set_random_seed(0)
    size = registry.get_model_size(size_name)
    backbone = keras_hub.models.BertBackbone(**{**size.backbone_kwargs(tokenizer.vocabulary_size, dropout=0.1),
                                                "max_sequence_length": 512})
    head = keras.layers.Dense(2)
    if switched:
        serving_kernels.use_serving_kernels(backbone)
    module = tf.Module()
    module.backbone, module.head = backbone, head

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        packed = tokenizer.encode(text, MAX_SEQ_LENGTH, length_bucket=length_bucket)
        pooled = backbone(packed, training=False)["pooled_output"]
        probabilities = tf.nn.softmax(head(pooled), axis=-1)
        return {"probabilities": probabilities, "class_ids": tf.argmax(probabilities, axis=-1)}

    module.serve = serve
    path = os.path.join(directory, f"{size_name}-{length_bucket}-{'switched' if switched else 'keras'}", "1")
    tf.saved_model.save(module, path, signatures={"serving_default": serve.get_concrete_function()})
    return path


def measure(serve, texts: list[str], requests: int, rounds: int, batch: int) -> dict:
    import tensorflow as tf

    for _ in range(3):
        serve(text=tf.constant(texts[:batch]))
        serve(text=tf.constant(texts[:1]))
    latencies = []
    for i in range(requests):
        start = time.perf_counter()
        serve(text=tf.constant([texts[i % len(texts)]]))
        latencies.append((time.perf_counter() - start) * 1e3)
    latencies.sort()
    start = time.perf_counter()
    for r in range(rounds):
        serve(text=tf.constant([texts[(r * batch + j) % len(texts)] for j in range(batch)]))
    return {"p50_ms": statistics.median(latencies), "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "texts_per_s": rounds * batch / (time.perf_counter() - start)}


def grpc_batch1(model_dir: str, texts: list[str], clients: int, seconds: float, threads: int) -> dict:
    import numpy as np

    from benchmarks.serving_throughput import run_clients, start_server
    from tfx_bert.serving.client import ServingClient

    with tempfile.TemporaryDirectory() as work:
        process, target = start_server(os.path.dirname(model_dir), "gRPC", work, threads)
        try:
            client = ServingClient(target)
            client.wait_until_available("sentiment")
            rps, p50, p99, _, _ = run_clients(
                lambda i: client.predict("sentiment", {"text": np.array([texts[i % len(texts)]], dtype=object)}),
                clients, seconds, process.pid)
            client.close()
        finally:
            process.terminate()
            process.wait()
    return {"requests_per_s": rps, "p50_ms": p50, "p99_ms": p99}


def budget(size: str, length: str) -> tuple[int, int]:
    """(batch-1 requests, batch-32 rounds): fewer where one costs seconds (base, long texts)."""
    heavy = {"base": 4, "small": 2}.get(size, 1) * {"long": 4, "medium": 2}.get(length, 1)
    return max(20, 200 // heavy), max(2, 20 // heavy)


def _rounded(value):
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return round(value, 3) if isinstance(value, float) else value


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small", "base"])
    parser.add_argument("--lengths", nargs="+", default=list(LENGTHS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--grpc", action="store_true")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    if not os.path.exists(BENCH_PYTHON):
        sys.exit("needs the ONNX Runtime environment: make .bench-hf/bin/python")
    from benchmarks import common

    common.check_machine()
    import tensorflow as tf

    from tfx_bert import registry, tokenization
    from tfx_bert.serving.server import set_tensorflow_parallelism

    set_tensorflow_parallelism(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_path, vocab = vocabulary(tmp)
        tokenizer = tokenization.WordPieceTokenizer(vocab)
        texts = {name: texts_of_length(tokenizer, LENGTHS[name], 64) for name in args.lengths}
        texts_path = os.path.join(tmp, "texts.json")
        with open(texts_path, "w", encoding="utf-8") as f:
            json.dump(texts, f)
        for size in args.sizes:
            shape = registry.get_model_size(size)
            requests = {n: budget(size, n)[0] for n in args.lengths}
            rounds = {n: budget(size, n)[1] for n in args.lengths}
            proc = subprocess.run([BENCH_PYTHON, os.path.join(ROOT, "benchmarks", "onnx_reference.py"), "--vocab", vocab_path,
                                   "--shape", json.dumps({k: getattr(shape, k) for k in ("num_layers", "hidden_dim", "num_heads",
                                                                                         "intermediate_dim")}),
                                   "--texts", texts_path, "--max-length", str(MAX_SEQ_LENGTH), "--threads", str(args.threads),
                                   "--requests", json.dumps(requests), "--rounds", json.dumps(rounds)],
                                  capture_output=True, text=True)
            if proc.returncode:
                sys.exit(proc.stderr[-3000:])
            onnx = json.loads(proc.stdout.strip().splitlines()[-1])
            graphs = {variant: export_graph(tmp, tokenizer, size, *VARIANTS[variant]) for variant in dict.fromkeys([*args.variants, "length_aware"])}
            for name in args.lengths:
                row = {"size": size, "length": name, "onnxruntime": onnx[name]}
                for variant, path in graphs.items():
                    serve = tf.saved_model.load(path).signatures["serving_default"]
                    row[variant] = measure(serve, texts[name], requests[name], rounds[name], 32)
                aware, ort_row = row["length_aware"], row["onnxruntime"]
                row["batch1_p50_vs_onnxruntime"] = aware["p50_ms"] / ort_row["p50_ms"]
                row["batch32_throughput_vs_onnxruntime"] = aware["texts_per_s"] / ort_row["texts_per_s"]
                if args.grpc and name == "short":
                    row["grpc_8_clients"] = grpc_batch1(graphs["length_aware"], texts[name], 8, 4.0, args.threads)
                print(json.dumps(_rounded(row)), flush=True)


if __name__ == "__main__":
    main()
