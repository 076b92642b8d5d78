"""Where one served request's time goes, batch 1, in process: the same SavedModel signature
mechanics around (1) nothing (a string identity: calling a loaded signature from Python), (2)
the in-graph tokenizer and packing alone, (3) the encoder and head alone on packed ids, (4) the
whole served graph (tokenizer -> length-aware packing -> encoder -> softmax; the encoder layers
switched as every float32 export switches them, models/serving_kernels.py), and (5) the whole
graph with the encoder and head XLA-compiled (``jit_compile``). Medians of --requests calls of
short texts (about 12 pieces); each --threads value in its own process (TensorFlow's thread
pools are fixed at start).

    .venv/bin/python benchmarks/request_cost.py [--size tiny] [--threads 1 2]
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

MAX_SEQ_LENGTH = 128
BUCKET = FinetuneConfig.export_length_bucket


def graphs(directory: str, size_name: str) -> dict:
    """{part: SavedModel dir} for each part measured."""
    import keras
    import keras_hub
    import tensorflow as tf

    from benchmarks.cpu_serving import texts_of_length, vocabulary
    from tfx_bert import registry, tokenization
    from tfx_bert_app.models import serving_kernels

    _, vocab = vocabulary(directory)
    tokenizer = tokenization.WordPieceTokenizer(vocab)
    keras.utils.set_random_seed(0)
    size = registry.get_model_size(size_name)
    backbone = keras_hub.models.BertBackbone(**size.backbone_kwargs(tokenizer.vocabulary_size, dropout=0.1))
    head = keras.layers.Dense(2)
    serving_kernels.use_serving_kernels(backbone)  # as every float32 export

    def model(packed):
        return tf.nn.softmax(head(backbone(packed, training=False)["pooled_output"]), axis=-1)

    compiled = tf.function(model, jit_compile=True, autograph=False)
    text = [tf.TensorSpec([None], tf.string, name="text")]
    ids = [tf.TensorSpec([None, None], tf.int32, name=k) for k in ("token_ids", "segment_ids", "padding_mask")]
    parts = {
        "signature_call_only": (text, lambda t: {"text": tf.identity(t)}),
        "tokenize_and_pack": (text, lambda t: dict(tokenizer.encode(t, MAX_SEQ_LENGTH, length_bucket=BUCKET))),
        "encoder_and_head": (ids, lambda a, b, c: {"probabilities": model(
            {"token_ids": a, "segment_ids": b, "padding_mask": c})}),
        "whole_graph": (text, lambda t: {"probabilities": model(tokenizer.encode(t, MAX_SEQ_LENGTH, length_bucket=BUCKET))}),
        "whole_graph_xla_encoder": (text, lambda t: {"probabilities": compiled(
            tokenizer.encode(t, MAX_SEQ_LENGTH, length_bucket=BUCKET))}),
    }
    paths = {}
    for name, (signature, fn) in parts.items():
        module = tf.Module()
        module.backbone, module.head = backbone, head
        module.serve = tf.function(fn, input_signature=signature, autograph=False)
        paths[name] = os.path.join(directory, name)
        tf.saved_model.save(module, paths[name], signatures={"serving_default": module.serve.get_concrete_function()})
    texts = texts_of_length(tokenizer, 12, 64)
    packed = tokenizer.encode(tf.constant(texts), MAX_SEQ_LENGTH, length_bucket=BUCKET)
    with open(os.path.join(directory, "inputs.json"), "w") as f:
        json.dump({"texts": texts, "ids": {k: tf.cast(v, tf.int32).numpy().tolist() for k, v in packed.items()}}, f)
    return paths


def measure(directory: str, threads: int, requests: int) -> dict:
    """Runs in a fresh process: median ms of each part at batch 1."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    from tfx_bert.serving.server import set_tensorflow_parallelism

    set_tensorflow_parallelism(threads, threads)
    with open(os.path.join(directory, "inputs.json")) as f:
        inputs = json.load(f)
    results = {}
    for name in sorted(d for d in os.listdir(directory) if os.path.isdir(os.path.join(directory, d))):
        serve = tf.saved_model.load(os.path.join(directory, name)).signatures["serving_default"]
        if name == "encoder_and_head":
            calls = [{k: tf.constant([v[i]], tf.int32) for k, v in inputs["ids"].items()} for i in range(len(inputs["texts"]))]
        else:
            calls = [{"text": tf.constant([t])} for t in inputs["texts"]]
        for call in calls[:10]:
            serve(**call)
        times = []
        for i in range(requests):
            start = time.perf_counter()
            serve(**calls[i % len(calls)])
            times.append((time.perf_counter() - start) * 1e3)
        results[name] = round(statistics.median(times), 3)
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: the directory to measure, in this process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.threads[0], args.requests)))
        return
    from benchmarks import common

    common.check_machine()
    with tempfile.TemporaryDirectory() as tmp:
        graphs(tmp, args.size)
        for threads in args.threads:
            proc = subprocess.run([sys.executable, __file__, "--measure", tmp, "--threads", str(threads),
                                   "--requests", str(args.requests)], capture_output=True, text=True, check=True)
            print(json.dumps({"size": args.size, "threads": threads,
                              "median_ms": json.loads(proc.stdout.strip().splitlines()[-1])}), flush=True)


if __name__ == "__main__":
    main()
