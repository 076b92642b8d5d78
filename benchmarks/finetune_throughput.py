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

from tfx_bert_app.models import ner, precision, qa, rerank, retrieval, similarity  # noqa: E402
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


def _throughput(model, x, y, steps, rounds=3):
    """Examples/s: the median training step over ``rounds`` fits of ``steps`` steps."""
    dataset = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.fit(dataset, steps_per_epoch=3, epochs=1, verbose=0)  # trace and warm up
    timer = common.step_timer()
    for _ in range(rounds):
        model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[timer])
    return BATCH / statistics.median(timer.seconds)


def train_rows(size_name, steps, rng, policy="float32"):
    """{task: examples/s} of every task head's training model under the dtype ``policy``."""
    size = registry.get_model_size(size_name)
    precision.use_policy(policy)

    def backbone():
        return keras_hub.models.BertBackbone(**size.backbone_kwargs(VOCAB, dropout=0.1))

    def fit(name, model, loss, x, y):
        model.compile(optimizer="adam", loss=loss)
        rows[name] = _throughput(model, x, y, steps)

    rows = {}
    bare = backbone()
    fit("backbone only (baseline)", keras.Model(bare.input, keras.layers.Dense(1)(bare.output["pooled_output"])),
        "mse", _inputs(rng), np.zeros((BATCH, 1), "float32"))
    for name, classes in (("classification (2 classes)", 2), ("classification (3 classes)", 3)):
        fit(name, keras_hub.models.BertClassifier(backbone=backbone(), num_classes=classes, preprocessor=None),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True), _inputs(rng),
            rng.integers(0, classes, BATCH).astype("int32"))
    fit("multilabel (6 labels)", keras_hub.models.BertClassifier(backbone=backbone(), num_classes=6, preprocessor=None),
        keras.losses.BinaryCrossentropy(from_logits=True), _inputs(rng), rng.integers(0, 2, (BATCH, 6)).astype("float32"))
    tags = rng.integers(0, 7, (BATCH, SEQ)).astype("int32")
    for name, use_crf in (("ner, softmax", False), ("ner, CRF", True)):
        model = ner.build_tagger(backbone(), 7, 0.1, use_crf)
        fit(name, model, ner.crf_loss(model.get_layer("crf")) if use_crf else ner.masked_softmax_loss,
            _inputs(rng, with_words=True), tags)
    positions = np.sort(rng.integers(20, SEQ - 1, (BATCH, 2)), axis=1).astype("int32")
    fit("qa (start/end), windows", qa.build_span_model(backbone(), 0.1), qa.span_loss, _inputs(rng), positions)
    pair_inputs = {**_inputs(rng), **{k + similarity.SECOND: v for k, v in _inputs(rng).items()}}
    fit("similarity (cosine), pairs", similarity.build_pair_model(similarity.build_sentence_encoder(backbone(), "mean"), "cosine"),
        "mse", pair_inputs, rng.uniform(0, 1, BATCH).astype("float32"))
    tower = similarity.build_sentence_encoder(backbone(), "mean")
    queries = {k + retrieval.QUERY_SUFFIX: v[:, :SEQ // 4] for k, v in _inputs(rng).items()}
    negatives = {k + retrieval.NEGATIVES_SUFFIX: v for k, v in _inputs(rng).items()}
    fit("retrieval (1 negative), queries", retrieval.build_dual_encoder(tower, tower, SEQ, 1, 0.05),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True), {**queries, **_inputs(rng), **negatives},
        np.arange(BATCH, dtype="int32"))
    lists = {k: np.tile(v, (1, 4)) for k, v in _inputs(rng).items()}
    fit("rerank (4 candidates), queries", rerank.build_list_model(rerank.build_cross_encoder(backbone()), SEQ, 4),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True), lists, np.zeros(BATCH, "int32"))
    precision.use_policy("float32")
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
    print(f"{os.cpu_count()} CPUs; batch {BATCH}, sequence {SEQ}, vocab {VOCAB}; median step of 3 x {args.steps}")
    for size in args.sizes.split(","):
        rows = {policy: train_rows(size, args.steps, rng, policy) for policy in args.policies.split(",")}
        print(f"\nfine-tuning, {size} (examples/s; x baseline: against the bare backbone under the same policy):")
        print(f"  {'task':<32}" + "".join(f"{p:>26}" for p in rows) + ("   mixed / float32" if len(rows) > 1 else ""))
        for name in rows[next(iter(rows))]:
            cells = "".join(f"{r[name]:>13.0f} ({r[name] / r['backbone only (baseline)']:4.2f} x base)" for r in rows.values())
            ratio = "".join(f"{r[name] / rows['float32'][name]:>9.2f}" for p, r in rows.items()
                            if p != "float32" and "float32" in rows)
            print(f"  {name:<32}{cells}{ratio}")
    print("\nserving signature, in process (median ms per call; per example = / batch):")
    for (name, batch), ms in serving_rows().items():
        print(f"  {name:<10} batch {batch:>2}: {ms:7.2f} ms  ({ms / batch:6.2f} ms/example)")


if __name__ == "__main__":
    main()
