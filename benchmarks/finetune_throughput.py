"""Fine-tuning throughput per task head (examples/s of Keras ``fit`` steps) for the tiny and
small sizes, and in-process latency of the pushed models' serving signatures at batch 1 and 32.

    .venv/bin/python benchmarks/finetune_throughput.py [--sizes tiny,small] [--steps 30]

Training runs the same model builders as the tasks' run_fns (keras-hub BertClassifier; the
NER tagger with softmax or CRF; the QA span extractor, per window; the similarity bi-encoder, per pair = two sentences) on random token ids of the tasks' sequence length, so it
measures the model, not the data. Serving latency uses the models `make demo` / the e2e tests
push under work/serving/ (sentiment, pairs, ner, qa) when they exist (QA: one question on a
two-window context, so per example means per question). Medians; a baseline in the
same run: the plain backbone forward+backward pass (what every head adds to).
"""
import argparse
import glob
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: F401,E402

from tfx_bert_app.models import ner, qa, similarity  # noqa: E402
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


def _throughput(model, x, y, steps):
    dataset = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.fit(dataset, steps_per_epoch=3, epochs=1, verbose=0)  # trace and warm up
    times = []
    for _ in range(3):
        start = time.perf_counter()
        model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
        times.append(time.perf_counter() - start)
    return steps * BATCH / statistics.median(times)


def train_rows(size_name, steps, rng):
    size = registry.get_model_size(size_name)

    def backbone():
        return keras_hub.models.BertBackbone(**size.backbone_kwargs(VOCAB, dropout=0.1))

    rows = {}
    bare = backbone()
    pooled = keras.Model(bare.input, keras.layers.Dense(1)(bare.output["pooled_output"]))
    pooled.compile(optimizer="adam", loss="mse")
    rows["backbone only (baseline)"] = _throughput(pooled, _inputs(rng), np.zeros((BATCH, 1), "float32"), steps)
    for name, classes in (("classification (2 classes)", 2), ("classification (3 classes)", 3)):
        model = keras_hub.models.BertClassifier(backbone=backbone(), num_classes=classes, preprocessor=None)
        model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        rows[name] = _throughput(model, _inputs(rng), rng.integers(0, classes, BATCH).astype("int32"), steps)
    tags = rng.integers(0, 7, (BATCH, SEQ)).astype("int32")
    for name, use_crf in (("ner, softmax", False), ("ner, CRF", True)):
        model = ner.build_tagger(backbone(), 7, 0.1, use_crf)
        model.compile(optimizer="adam", loss=ner.crf_loss(model.get_layer("crf")) if use_crf else ner.masked_softmax_loss)
        rows[name] = _throughput(model, _inputs(rng, with_words=True), tags, steps)
    model = qa.build_span_model(backbone(), 0.1)
    model.compile(optimizer="adam", loss=qa.span_loss)
    positions = np.sort(rng.integers(20, SEQ - 1, (BATCH, 2)), axis=1).astype("int32")
    rows["qa (start/end), windows"] = _throughput(model, _inputs(rng), positions, steps)
    pair_inputs = {**_inputs(rng), **{k + similarity.SECOND: v for k, v in _inputs(rng).items()}}
    model = similarity.build_pair_model(similarity.build_sentence_encoder(backbone(), "mean"), "cosine")
    model.compile(optimizer="adam", loss="mse")
    rows["similarity (cosine), pairs"] = _throughput(model, pair_inputs, rng.uniform(0, 1, BATCH).astype("float32"), steps)
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
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{os.cpu_count()} CPUs; batch {BATCH}, sequence {SEQ}, vocab {VOCAB}; median of 3 x {args.steps} steps")
    for size in args.sizes.split(","):
        rows = train_rows(size, args.steps, rng)
        base = rows["backbone only (baseline)"]
        print(f"\nfine-tuning, {size}:")
        for name, rate in rows.items():
            print(f"  {name:<28}{rate:>9.0f} examples/s  {rate / base:>5.2f} x baseline")
    print("\nserving signature, in process (median ms per call; per example = / batch):")
    for (name, batch), ms in serving_rows().items():
        print(f"  {name:<10} batch {batch:>2}: {ms:7.2f} ms  ({ms / batch:6.2f} ms/example)")


if __name__ == "__main__":
    main()
