"""Domain-adaptive pretraining (pretrain.init_from), measured in one run.

The demo corpus generator has six topics; here they are two domains. A: kitchen, space, sports;
B: garden, music, sea (``demo_data.write_pretraining_corpus(topics=...)``).

1. Pretrain the demo's tiny BERT on domain A (the demo's recipe, its own vocabulary): the
   "published checkpoint".
2. Continue pretraining it on domain B with ``pretrain.init_from`` (its vocabulary and heads kept).
3. Held-out MLM perplexity on B's evaluation instances (static masks: the same masked tokens for
   every model), and on A's, of the checkpoint (before) and the adapted model (after).
4. Fine-tune two tasks on domain B from each encoder (same data, steps and seed; TFMA's accuracy
   on the eval split): sentiment of reviews of B's topics (2,000 labelled; decided by polar words
   neither corpus has), and which of B's three topics a sentence is about, from 150 labelled
   sentences (``demo_data.write_topic_dataset``: knowing which words go together in B).

    .venv/bin/python benchmarks/domain_adaptation.py [--steps 500] [--learning-rate 4e-4] [--work DIR]

``--work``: a directory of an earlier run, whose pretraining runs are reused.

The learning rate: the demo pretrains from scratch at 2e-3; continued pretraining takes a fifth of
it, the ratio of google-research's advice (1e-4 -> "e.g., 2e-5"), whose 2e-5 itself is for BERT-base.
"""
import argparse
import glob
import json
import math
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = [sys.executable, "-m", "tfx_bert.cli"]
DOMAIN_A, DOMAIN_B = ["kitchen", "space", "sports"], ["garden", "music", "sea"]


def _cli(*args):
    start = time.time()
    proc = subprocess.run(CLI + list(args), cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(proc.stdout[-4000:] + proc.stderr[-4000:])
    return time.time() - start


def _pretrain(work: str, corpus: str, *sets: str) -> tuple[str, str, float]:
    """(the Trainer's model dir, the eval instances' examples dir, seconds; 0: reused)."""
    pipeline = os.path.join(work, "pipelines", "tfx-bert-pretrain")
    found = glob.glob(os.path.join(pipeline, "Trainer", "model", "*", "Format-Serving"))
    seconds = 0.0 if found else _cli("pretrain", "--demo", "--work-dir", work, "--set", f"pretrain.corpus_pattern={corpus}",
                   "--set", "pretrain.enable_statistics=false", *[x for s in sets for x in ("--set", s)])
    [model] = glob.glob(os.path.join(pipeline, "Trainer", "model", "*", "Format-Serving"))
    [examples] = glob.glob(os.path.join(pipeline, "PretrainingDataGen", "pretraining_examples", "*"))
    return model, examples, seconds


def mlm_perplexity(model_dir: str, examples_dir: str, batches: int = 40, batch_size: int = 32) -> float:
    """exp(mean cross-entropy) of the MLM head over the masked tokens of ``batches`` batches of
    the eval split (static masks, read in order: every model sees the same tokens)."""
    import numpy as np
    import tensorflow as tf

    from tfx_bert.pretraining_metadata import read_metadata
    from tfx_bert_app.models import pretrained_heads, pretraining

    metadata = read_metadata(examples_dir)
    _, model, _ = pretrained_heads.load_pretraining_model(model_dir, dtype="float32")
    data = pretraining.make_dataset(os.path.join(examples_dir, "Split-eval", "*"), metadata, batch_size,
                                    int(metadata["max_predictions_per_seq"]), 0.15, seed=0, repeat=False)
    total, count = 0.0, 0.0
    for x, y, weights in data.take(batches):
        logits = model(x, training=False)[pretraining.MLM]
        loss = tf.keras.losses.sparse_categorical_crossentropy(y[pretraining.MLM], logits, from_logits=True)
        total += float(np.sum(loss.numpy() * weights[pretraining.MLM].numpy()))
        count += float(np.sum(weights[pretraining.MLM].numpy()))
    return math.exp(total / count)


def _finetune_accuracy(work: str, encoder: str, data: str, *sets: str) -> float:
    import tensorflow_model_analysis as tfma

    _cli("finetune", "--demo", "--work-dir", work, "--set", f"finetune.encoder_uri={encoder}",
         "--set", f"finetune.data_dir={data}", "--set", "finetune.accuracy_threshold=0",
         *[x for s in sets for x in ("--set", s)])
    [evaluation] = glob.glob(os.path.join(work, "pipelines", "tfx-bert-sentiment", "Evaluator", "evaluation", "*"))
    return [kv.value.double_value.value for r in tfma.load_metrics(evaluation) for kv in r.metric_keys_and_values
            if kv.key.name == "sparse_categorical_accuracy"][0]


def main():
    from benchmarks import common
    from tfx_bert import demo_data

    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=500, help="continued-pretraining steps on domain B")
    parser.add_argument("--learning-rate", type=float, default=4e-4)
    parser.add_argument("--work", default="")
    args = parser.parse_args()
    common.check_machine()
    work = args.work or tempfile.mkdtemp(prefix="bench-dapt-")
    for name, topics in (("a", DOMAIN_A), ("b", DOMAIN_B)):
        demo_data.write_pretraining_corpus(os.path.join(work, "corpus", name, "corpus.txt"), topics=topics)
    base, a_eval, a_seconds = _pretrain(os.path.join(work, "pretrain-a"), os.path.join(work, "corpus", "a", "*"))
    adapted, b_eval, b_seconds = _pretrain(
        os.path.join(work, "continue-b"), os.path.join(work, "corpus", "b", "*"), f"pretrain.init_from={base}",
        f"pretrain.train_steps={args.steps}", f"pretrain.learning_rate={args.learning_rate}",
        "pretrain.masking=static", "pretrain.max_seq_length=64", "pretrain.max_predictions_per_seq=10")
    perplexity = {(model, domain): mlm_perplexity(path, examples)
                  for model, path in (("checkpoint (A)", base), ("adapted (A -> B)", adapted))
                  for domain, examples in (("B", b_eval), ("A", a_eval))}
    sentiment, topic = os.path.join(work, "sentiment-b"), os.path.join(work, "topic-b")
    demo_data.write_sentiment_dataset(sentiment, topics=DOMAIN_B)
    demo_data.write_topic_dataset(topic, DOMAIN_B)
    tasks = {"sentiment": (sentiment,), "topic": (topic, "finetune.num_classes=3", "finetune.train_steps=100")}
    encoders = (("checkpoint (A)", base), ("adapted (A -> B)", adapted))
    accuracy = {(task, name): _finetune_accuracy(os.path.join(work, f"finetune-{task}-{i}"), encoder, *data)
                for task, data in tasks.items() for i, (name, encoder) in enumerate(encoders)}
    print(f"pretraining on A (demo recipe): {a_seconds:.0f} s; continued on B: {args.steps} steps at "
          f"{args.learning_rate:g}, {b_seconds:.0f} s (0: reused)")
    print("| model | MLM perplexity, held-out B | MLM perplexity, held-out A | sentiment on B (2,000 labelled) | "
          "topic on B (150 labelled) |")
    print("|---|---|---|---|---|")
    for name, _ in encoders:
        print(f"| {name} | {perplexity[(name, 'B')]:.2f} | {perplexity[(name, 'A')]:.2f} | "
              f"{accuracy[('sentiment', name)]:.3f} | {accuracy[('topic', name)]:.3f} |")
    print(json.dumps({"perplexity": {f"{m} on {d}": v for (m, d), v in perplexity.items()},
                      "accuracy": {f"{t}, {m}": v for (t, m), v in accuracy.items()}}))


if __name__ == "__main__":
    main()
