"""Fine-tuning throughput per task head (examples/s of Keras ``fit`` steps, the median step) for
the tiny and small sizes, in float32 and under a mixed dtype policy (``finetune.mixed_precision``,
models/precision.py), and in-process latency of the pushed models' serving signatures at batch 1
and 32.

    .venv/bin/python benchmarks/finetune_throughput.py [--sizes tiny,small] [--steps 10]
        [--policies float32,mixed_bfloat16]

Training runs the same model builders as the tasks' run_fns (keras-hub BertClassifier, also
multi-label; the NER tagger with softmax or CRF; the QA span extractor, per window; the
similarity bi-encoder, per pair = two sentences; the dual encoder with one negative, per query;
the re-ranker's candidate lists, per query) on random token ids of the tasks' sequence length,
so it measures the model, not the data. Serving latency uses the models `make demo` / the e2e
tests push under work/serving/ (sentiment, pairs, ner, qa) when they exist (QA: one question on
a two-window context, so per example means per question). Medians; a baseline in the same run:
the plain backbone forward+backward pass (what every head adds to).
"""
import argparse
import glob
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: F401,E402

from tfx_bert_app.models import keras_layers
from tfx_bert_app.models import ner, optimization, precision, qa, rerank, retrieval, similarity  # noqa: E402
from tfx_bert_app.models.fast_kernels import use_fast_kernels  # noqa: E402
from tfx_bert import features, registry  # noqa: E402

VOCAB, SEQ, BATCH = 1000, 64, 32


def _inputs(rng, with_words=False):
    x = {features.TOKEN_IDS: rng.integers(5, VOCAB, (BATCH, SEQ)).astype("int32"),
         features.SEGMENT_IDS: np.zeros((BATCH, SEQ), "int32"),
         features.PADDING_MASK: np.ones((BATCH, SEQ), "int32")}
    if with_words:
        x[features.WORD_POSITIONS] = np.tile(np.arange(1, SEQ + 1, dtype="int32"), (BATCH, 1))
        x[features.WORD_POSITIONS][:, SEQ - 2:] = -1
    return x


def _paired_throughput(builds: dict, x, y, steps, rounds=3) -> dict:
    """{policy: examples/s} of one task's model built under each dtype policy (``builds``:
    policy -> (model, loss)), trained in turns so the machine's drift hits every policy alike:
    the median training step over ``rounds`` fits of ``steps`` steps each."""
    dataset = tf.data.Dataset.from_tensors((x, y)).repeat()
    timers = {}
    for policy, (model, loss) in builds.items():
        use_fast_kernels(model)  # as finetuning.fit trains every head, with its optimizer
        model.compile(optimizer=optimization.adamw(1e-4, 10, 1000), loss=loss, metrics=[])
        model.fit(dataset, steps_per_epoch=3, epochs=1, verbose=0)  # trace and warm up
        timers[policy] = common.step_timer()
    for _ in range(rounds):
        for policy, (model, _) in builds.items():
            model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[timers[policy]])
    return {policy: BATCH / statistics.median(timer.seconds) for policy, timer in timers.items()}


def _task_models(size_name, rng):
    """(task, build(backbone factory) -> (model, loss), inputs, labels) for every task head."""
    size = registry.get_model_size(size_name)

    def backbone():
        return keras_hub.models.BertBackbone(**size.backbone_kwargs(VOCAB, dropout=0.1))

    def classifier(classes):
        return keras_hub.models.BertClassifier(backbone=backbone(), num_classes=classes, preprocessor=None)

    def bare():
        b = backbone()
        return keras.Model(b.input, keras.layers.Dense(1)(b.output["pooled_output"])), "mse"

    def tagger(use_crf):
        model = ner.build_tagger(backbone(), 7, 0.1, use_crf)
        return model, ner.crf_loss(model.get_layer("crf")) if use_crf else ner.masked_softmax_loss

    def dual_encoder():
        tower = keras_layers.build_sentence_encoder(backbone(), "mean")
        return retrieval.build_dual_encoder(tower, tower, SEQ, 1, 0.05), sparse_ce

    sparse_ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    pair_inputs = {**_inputs(rng), **{k + similarity.SECOND: v for k, v in _inputs(rng).items()}}
    queries = {k + retrieval.QUERY_SUFFIX: v[:, :SEQ // 4] for k, v in _inputs(rng).items()}
    negatives = {k + retrieval.NEGATIVES_SUFFIX: v for k, v in _inputs(rng).items()}
    return [
        ("backbone only (baseline)", bare, _inputs(rng), np.zeros((BATCH, 1), "float32")),
        ("classification (2 classes)", lambda: (classifier(2), sparse_ce), _inputs(rng),
         rng.integers(0, 2, BATCH).astype("int32")),
        ("classification (3 classes)", lambda: (classifier(3), sparse_ce), _inputs(rng),
         rng.integers(0, 3, BATCH).astype("int32")),
        ("multilabel (6 labels)", lambda: (classifier(6), keras.losses.BinaryCrossentropy(from_logits=True)),
         _inputs(rng), rng.integers(0, 2, (BATCH, 6)).astype("float32")),
        ("ner, softmax", lambda: tagger(False), _inputs(rng, with_words=True), rng.integers(0, 7, (BATCH, SEQ)).astype("int32")),
        ("ner, CRF", lambda: tagger(True), _inputs(rng, with_words=True), rng.integers(0, 7, (BATCH, SEQ)).astype("int32")),
        ("qa (start/end), windows", lambda: (qa.build_span_model(backbone(), 0.1), qa.span_loss), _inputs(rng),
         np.sort(rng.integers(20, SEQ - 1, (BATCH, 2)), axis=1).astype("int32")),
        ("similarity (cosine), pairs", lambda: (similarity.build_pair_model(
            keras_layers.build_sentence_encoder(backbone(), "mean"), "cosine"), "mse"),
         pair_inputs, rng.uniform(0, 1, BATCH).astype("float32")),
        ("retrieval (1 negative), queries", dual_encoder, {**queries, **_inputs(rng), **negatives},
         np.arange(BATCH, dtype="int32")),
        ("rerank (4 candidates), queries", lambda: (rerank.build_list_model(rerank.build_cross_encoder(backbone()), SEQ, 4),
                                                   sparse_ce),
         {k: np.tile(v, (1, 4)) for k, v in _inputs(rng).items()}, np.zeros(BATCH, "int32")),
    ]


def train_rows(size_name, steps, rng, policies=("float32",)) -> dict:
    """{task: {policy: examples/s}} of every task head's training model under each dtype policy."""
    rows = {}
    for name, build, x, y in _task_models(size_name, rng):
        builds = {}
        for policy in policies:
            precision.use_policy(policy)
            builds[policy] = build()
        precision.use_policy("float32")
        rows[name] = _paired_throughput(builds, x, y, steps)
    return rows


QA_CONTEXT = ("Anna bakes the warm bread. Boris boils the fresh soup. Every morning the chef slices a crisp "
              "onion. In the evening, greta sees that the oven roasts the pepper again. Nobody knew why the "
              "dark comet reaches the moon. The tall hedge grows the wild rose. Every morning the sailor "
              "steers a calm boat. Mira roasts the spicy garlic.")
SERVING_INPUTS = {
    "sentiment": lambda n: {"text": tf.constant(["the soup was really wonderful and the bread was great ."] * n)},
    "pairs": lambda n: {"text": tf.constant(["the chef bakes the bread ."] * n),
                        "text_b": tf.constant(["the rocket orbits the moon ."] * n)},
    "ner": lambda n: {"text": tf.constant(["Anna Berg flew to New York to meet Omar Aziz of Acme Tools ."] * n)},
    "similarity": lambda n: {"text": tf.constant(["the warm soup boils the bread ."] * n),
                             "text_b": tf.constant(["the fresh soup boils the onion ."] * n)},
    "qa": lambda n: {"question": tf.constant(["What is it that Mira roasts?"] * n),
                     "context": tf.constant([QA_CONTEXT] * n)},
}


def serving_rows(repeats=50):
    rows = {}
    for name, make in SERVING_INPUTS.items():
        versions = sorted(glob.glob(os.path.join("work", "serving", name, "*", "saved_model.pb")))
        if not versions:
            print(f"(no pushed {name} model under work/serving/{name}: run the e2e tests or make demo)")
            continue
        signature = tf.saved_model.load(os.path.dirname(versions[-1])).signatures["serving_default"]
        for batch in (1, 32):
            inputs = make(batch)
            for _ in range(5):
                signature(**inputs)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                signature(**inputs)
                times.append(time.perf_counter() - start)
            rows[(name, batch)] = statistics.median(times) * 1e3
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="tiny,small")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed fit (3 fits per model)")
    parser.add_argument("--policies", default="float32,mixed_bfloat16",
                        help="dtype policies to train under (models/precision.py)")
    args = parser.parse_args()
    common.check_machine()
    rng = np.random.default_rng(0)
    print(f"{os.cpu_count()} CPUs; batch {BATCH}, sequence {SEQ}, vocab {VOCAB}; median step of 3 x {args.steps}, the policies in turns")
    for size in args.sizes.split(","):
        policies = args.policies.split(",")
        rows = train_rows(size, args.steps, rng, policies)
        base = rows["backbone only (baseline)"]
        print(f"\nfine-tuning, {size} (examples/s; x base: against the bare backbone under the same policy):")
        print(f"  {'task':<32}" + "".join(f"{p:>26}" for p in policies)
              + ("".join(f"  {p} / float32" for p in policies if p != "float32") if "float32" in policies else ""))
        for name, rates in rows.items():
            cells = "".join(f"{rates[p]:>13.0f} ({rates[p] / base[p]:4.2f} x base)" for p in policies)
            ratios = "".join(f"{rates[p] / rates['float32']:>{len(p) + 12}.2f}" for p in policies
                             if p != "float32" and "float32" in policies)
            print(f"  {name:<32}{cells}{ratios}")
    print("\nserving signature, in process (median ms per call; per example = / batch):")
    for (name, batch), ms in serving_rows().items():
        print(f"  {name:<10} batch {batch:>2}: {ms:7.2f} ms  ({ms / batch:6.2f} ms/example)")


if __name__ == "__main__":
    main()
