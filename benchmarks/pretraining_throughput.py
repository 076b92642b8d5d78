"""Pretraining throughput of the pipeline's model against a plain keras-hub ``BertMaskedLM`` and
Hugging Face ``BertForPreTraining`` (PyTorch) at the same shapes, in the same run: tokens/s and
MFU per size, float32, ``mixed_bfloat16`` and XLA; the input pipeline's own rate; peak RSS.

The models of one size are built in one process and trained in turns (round robin), and the
median step is reported, so a noisy neighbour slows all of them alike rather than whichever ran
last, and a stall costs the steps it hit. Every
model trains on the same cached batches; the tf.data pipeline (dynamic masking) is timed on its
own. ``--vocab`` sets the vocabulary size (default BERT's 30,522): the tied MLM projection is the
largest matmul of a small BERT, so the pipeline's tiny demo vocabulary would hide it.

    .venv/bin/python benchmarks/pretraining_throughput.py [--sizes tiny small] [--steps 8]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from benchmarks import common  # noqa: E402

MAX_PREDICTIONS = 20
POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "xla": "float32", "bf16+xla": "mixed_bfloat16"}


def tf_matmul_peak(dtype: str, n: int = 2048, repeats: int = 10) -> float:
    """TensorFlow's dense-matmul rate in ``dtype`` on this machine (FLOP/s): MFU's denominator."""
    import tensorflow as tf

    a = tf.cast(tf.random.normal([n, n]), dtype)
    f = tf.function(lambda x: tf.matmul(x, x))
    f(a).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        f(a).numpy()
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def _build(kind: str, variant: str, size: str, vocab: int):
    import keras
    import keras_hub

    from tfx_bert import registry
    from tfx_bert_app.models import optimization, pretraining
    from tfx_bert_app.models.fast_kernels import use_fast_kernels

    keras.mixed_precision.set_dtype_policy(POLICIES[variant])
    try:
        backbone = keras_hub.models.BertBackbone(**registry.get_model_size(size).backbone_kwargs(vocab))
        jit = "xla" in variant
        if kind == "pipeline":  # as the pretraining run_fn builds it (its optimizer class, a constant rate)
            model = pretraining.build_pretraining_model(backbone)
            use_fast_kernels(model)
            model.compile(optimizer=optimization.FusedAdamW(1e-4),
                          loss={pretraining.MLM: keras.losses.SparseCategoricalCrossentropy(
                                    from_logits=True, reduction="mean_with_sample_weight"),
                                pretraining.NSP: keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
                          weighted_metrics={pretraining.MLM: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                                            pretraining.NSP: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]},
                          jit_compile=jit)
        else:  # keras-hub's own masked LM on the same batches
            model = keras_hub.models.BertMaskedLM(backbone=backbone, preprocessor=None)
            model.compile(optimizer=keras.optimizers.AdamW(1e-4),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")], jit_compile=jit)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    return model, backbone


def _batches(uri: str, batch: int, vocab: int):
    """(the pipeline's cached batches, keras-hub's view of them, the input pipeline's tokens/s)."""
    from tfx_bert_app.components.pretraining_data import executor as data_ex
    from tfx_bert_app.models import pretraining

    metadata = {**data_ex.read_metadata(uri), "vocab_size": vocab}
    ds = pretraining.make_dataset(os.path.join(uri, "Split-train", "*"), metadata, batch, MAX_PREDICTIONS, 0.15, seed=1)
    iterator = iter(ds)
    next(iterator)
    start = time.perf_counter()
    for _ in range(50):
        next(iterator)
    input_rate = 50 * batch * int(metadata["max_seq_length"]) / (time.perf_counter() - start)
    cached = ds.take(8).cache().repeat()
    return cached, cached.map(lambda x, y, sw: (x, y[pretraining.MLM], sw[pretraining.MLM])), input_rate


class HFTurns:
    """Hugging Face ``BertForPreTraining`` at a size's shapes, in its own PyTorch process
    (``hf_bert_pretraining.py --serve``), timed in turns with the TensorFlow models: each
    ``turn(steps)`` runs that many steps there and keeps their times, so HF's median step sees
    the same machine as the others'."""

    def __init__(self, hf_python: str, size: str, vocab: int, batch: int):
        from tfx_bert import registry

        shape = registry.get_model_size(size)
        self.seconds: list[float] = []
        self._proc = subprocess.Popen(
            [hf_python, os.path.join(ROOT, "benchmarks", "hf_bert_pretraining.py"), "--serve",
             "--layers", str(shape.num_layers), "--hidden", str(shape.hidden_dim), "--heads", str(shape.num_heads),
             "--intermediate", str(shape.intermediate_dim), "--vocab", str(vocab), "--seq", "128",
             "--batch", str(batch), "--predictions", str(MAX_PREDICTIONS)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._answer("READY")

    def _answer(self, tag: str) -> str:
        line = self._proc.stdout.readline()
        if not line.startswith(tag):
            raise RuntimeError(f"the HF worker stopped (exit {self._proc.poll()}): its output was {line!r}")
        return line[len(tag):]

    def turn(self, steps: int) -> None:
        self._proc.stdin.write(f"{steps}\n")
        self._proc.stdin.flush()
        self.seconds += json.loads(self._answer("RESULT"))[1:]  # the first step of a turn, like Keras's

    def close(self) -> None:
        self._proc.stdin.close()
        self._proc.wait()


def measure_size(size: str, uri: str, steps: int, batch: int, vocab: int, variants: list[str], rounds: int,
                 hf_python: str = "") -> dict:
    """In one process: every (kind, variant) model of ``size``, and HF's model when ``hf_python``
    is given, timed in turns. Returns {"<kind> <variant>": tokens/s (median step of all turns)}
    with "hf fp32" among them, the input rate and FLOPs per step."""
    ours, hubs, input_rate = _batches(uri, batch, vocab)
    models = {}
    for variant in variants:
        for kind in ("pipeline", "keras_hub"):
            model, backbone = _build(kind, variant, size, vocab)
            data = ours if kind == "pipeline" else hubs
            model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)  # trace, compile, warm up
            models[f"{kind} {variant}"] = (model, data)
    timers = {name: common.step_timer() for name in models}
    hf = HFTurns(hf_python, size, vocab, batch) if hf_python else None
    for _ in range(rounds):
        for name, (model, data) in models.items():
            model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[timers[name]])
        if hf:
            hf.turn(steps)
    seconds = {name: timer.seconds for name, timer in timers.items()}
    if hf:
        hf.close()
        seconds["hf fp32"] = hf.seconds
    rates = {name: batch * 128 / statistics.median(times) for name, times in seconds.items()}
    hidden = backbone.hidden_dim
    encoder_params = backbone.count_params() - backbone.token_embedding.count_params()
    # Training FLOPs per step: 6 x parameters x tokens for the encoder, plus the tied MLM
    # projection over the masked positions only (hidden x vocabulary).
    flops = 6 * (encoder_params * batch * 128 + hidden * vocab * batch * MAX_PREDICTIONS)
    return {"rates": rates, "input_tokens_per_s": input_rate,
            "flops_per_token": flops / (batch * 128), "params": backbone.count_params(), "peak_rss_mb": common.peak_rss_mb()}


def _in_subprocess(function: str, *args) -> dict:
    code = (f"import json,sys; sys.path.insert(0, {ROOT!r}); from benchmarks.pretraining_throughput import {function}; "
            f"print('RESULT', json.dumps({function}(*{args!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.split("RESULT", 1)[1])


def peaks() -> dict:
    return {"float32": tf_matmul_peak("float32"), "bfloat16": tf_matmul_peak("bfloat16")}


def main():
    from tests.helpers import build_pretraining_examples

    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"])
    parser.add_argument("--variants", nargs="+", default=["fp32", "bf16", "xla"], choices=sorted(POLICIES))
    parser.add_argument("--steps", type=int, default=8, help="steps per timed turn")
    parser.add_argument("--rounds", type=int, default=5, help="turns per model")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=30522)
    parser.add_argument("--hf-python", default=os.path.join(ROOT, ".bench-hf", "bin", "python"),
                        help="python of an env with torch + transformers (make bench creates it)")
    args = parser.parse_args()
    common.check_machine()
    tmp = Path(tempfile.mkdtemp(prefix="bench-pre-"))
    uri = build_pretraining_examples(tmp, num_documents=800, max_seq_length=128).uri
    peak = _in_subprocess("peaks")
    print(f"TensorFlow matmul peak (2048^2): float32 {peak['float32'] / 1e9:.0f} GFLOP/s, bfloat16 "
          f"{peak['bfloat16'] / 1e9:.0f} GFLOP/s; seq 128, batch {args.batch}, vocabulary {args.vocab}, "
          f"{args.rounds} turns of {args.steps} steps per model")
    hf_python = args.hf_python if os.path.exists(args.hf_python) else ""
    for size in args.sizes:
        r = _in_subprocess("measure_size", size, uri, args.steps, args.batch, args.vocab, args.variants, args.rounds,
                           hf_python)
        rates = r["rates"]
        print(f"\n{size} ({r['params'] / 1e6:.1f}M params, peak RSS {r['peak_rss_mb']:.0f} MB; input pipeline alone "
              f"{r['input_tokens_per_s'] / 1e3:.0f}k tok/s)")
        print(f"  {'variant':9} {'pipeline tok/s':>15} {'keras-hub tok/s':>16} {'ratio':>6} {'MFU':>6} "
              f"{'speed-up vs fp32: pipeline':>27} {'keras-hub':>10}")
        for variant in args.variants:
            ours, hub = rates[f"pipeline {variant}"], rates[f"keras_hub {variant}"]
            mfu = ours * r["flops_per_token"] / peak["bfloat16" if "bf16" in variant else "float32"]
            speedup = (f"{ours / rates['pipeline fp32']:27.2f} {hub / rates['keras_hub fp32']:10.2f}"
                       if "fp32" in args.variants else "")
            print(f"  {variant:9} {ours:15.0f} {hub:16.0f} {ours / hub:6.2f} {mfu:6.1%} {speedup}", flush=True)
        if hf_python:
            hf = rates["hf fp32"]
            best = max(rates[f"pipeline {v}"] for v in args.variants)
            print(f"  HF transformers BertForPreTraining (PyTorch CPU, float32): {hf:.0f} tok/s; pipeline float32 "
                  f"/ HF {rates.get('pipeline fp32', best) / hf:.2f}, best pipeline variant / HF {best / hf:.2f}", flush=True)
    if not hf_python:
        print(f"(no {args.hf_python}: no HF transformers comparison; `make bench` creates it)")


if __name__ == "__main__":
    main()
