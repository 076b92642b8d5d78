"""Can a cross-encoder learn that a query's word is in the passage? A probe of the re-ranking
task's starting point (issue 18: the demo's re-ranker never beat its first stage).

    .venv/bin/python benchmarks/cross_encoder_probe.py --encoder DIR [--steps 400] [--seeds 0 1]

DIR: a pretraining run's encoder (``.../Trainer/model/<id>/Format-Serving``, e.g. the demo's).
The task is the simplest thing a re-ranker must learn: the query is one name of the demo
language, and its candidates are "<name> says the chef bakes the bread ." for the same name and
three others. Relevance is token identity across the two segments, nothing else. Each variant
trains the task's own cross-encoder (``models.rerank``: listwise loss, AdamW with the pipeline's
schedule, batch 16) and is scored by its top-1 over all the names' full lists (chance 1 / names):

* ``pretrained``: the encoder as the re-ranking task loads it, scored from BERT's pooled output
  (the NSP-trained tanh pooler), as ``build_cross_encoder`` does;
* ``pretrained, new pooler``: the same encoder with the pooler's weights drawn afresh (as a
  randomly initialised backbone has them);
* ``pretrained, new top layer``: the last Transformer layer and the pooler drawn afresh;
* ``pretrained, [CLS] state``: the same encoder scored from the [CLS] hidden state (the pooler
  not used);
* ``random init``: the same configuration, randomly initialised (the baseline);
* ``pretrained, exact-match cue``: the pretrained encoder as the task builds it by default
  (``finetune.exact_match``: pieces found in both segments marked by a segment type of their own).
"""
import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfx_bert_app.models import encoder as encoder_lib  # noqa: E402
from tfx_bert_app.models import optimization, rerank  # noqa: E402
from tfx_bert import demo_data, features  # noqa: E402

SEQ_LEN, CANDIDATES, BATCH = 16, 4, 16


def cls_state_scorer(backbone) -> keras.Model:
    """One pair's inputs -> a score from the [CLS] hidden state, bypassing the pooler."""
    inputs = {key: keras.Input(shape=(None,), dtype="int32", name=key) for key in features.MODEL_INPUT_KEYS}
    cls = backbone(inputs)["sequence_output"][:, 0]
    return keras.Model(inputs, keras.layers.Reshape(())(keras.layers.Dense(1)(keras.layers.Dropout(0.1)(cls))))


def variants(encoder_dir: str) -> dict:
    """name -> a function building a fresh cross-encoder."""
    def random_backbone():
        backbone = encoder_lib.load_backbone(encoder_dir)
        return type(backbone).from_config(backbone.get_config())

    def pretrained_with_fresh(*names):
        """The pretrained encoder with the named layers' weights drawn afresh."""
        def build():
            backbone, fresh = encoder_lib.load_backbone(encoder_dir), random_backbone()
            for name in names:
                backbone.get_layer(name).set_weights(fresh.get_layer(name).get_weights())
            return rerank.build_cross_encoder(backbone)
        return build

    top_layer = f"transformer_layer_{encoder_lib.load_backbone(encoder_dir).num_layers - 1}"
    return {
        "pretrained": lambda: rerank.build_cross_encoder(encoder_lib.load_backbone(encoder_dir)),
        "pretrained, new pooler": pretrained_with_fresh("pooled_dense"),
        # Re-initialising the top layers helps fine-tuning on small data (Zhang et al. 2021,
        # "Revisiting Few-sample BERT Fine-tuning").
        "pretrained, new top layer": pretrained_with_fresh(top_layer, "pooled_dense"),
        "pretrained, [CLS] state": lambda: cls_state_scorer(encoder_lib.load_backbone(encoder_dir)),
        "random init": lambda: rerank.build_cross_encoder(random_backbone()),
        "pretrained, exact-match cue": lambda: rerank.build_cross_encoder(
            encoder_lib.load_backbone(encoder_dir), exact_match_ignored=rerank.special_ids(
                encoder_lib.load_tokenizer(encoder_dir))),
    }


def encode(tokenizer, queries, passages) -> dict:
    packed = tokenizer.encode(tf.constant(queries), SEQ_LEN, texts_b=tf.constant(passages))
    return {k: tf.cast(v, tf.int32) for k, v in packed.items()}


def train_and_score(cross_encoder, tokenizer, names, steps: int, seed: int) -> tuple[float, float]:
    """(top-1 over every name's full list, the last 50 steps' mean training loss)."""
    passages = [f"{name} says the chef bakes the bread ." for name in names]
    model = rerank.build_list_model(cross_encoder, SEQ_LEN, CANDIDATES)
    loss, labels, _ = rerank.loss_and_labels("listwise", CANDIDATES)
    model.compile(optimizer=optimization.adamw(1e-3, max(1, steps // 10), steps), loss=loss)
    rng, losses = np.random.default_rng(seed), []
    for _ in range(steps):
        queries, candidates = [], []
        for i in rng.integers(len(names), size=BATCH):
            others = [j for j in rng.permutation(len(names)) if j != i][:CANDIDATES - 1]
            queries += [names[i]] * CANDIDATES
            candidates += [passages[j] for j in [i, *others]]
        x = {k: tf.reshape(v, [BATCH, CANDIDATES * SEQ_LEN]) for k, v in encode(tokenizer, queries, candidates).items()}
        losses.append(float(model.train_on_batch(x, labels(BATCH))))
    hits = 0
    for i, name in enumerate(names):
        scores = np.asarray(cross_encoder(encode(tokenizer, [name] * len(names), passages), training=False))
        hits += int(np.argmax(scores) == i)
    return hits / len(names), float(np.mean(losses[-50:]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoder", required=True, help="a pretraining run's encoder (Format-Serving dir)")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--variants", nargs="+", help="a subset of the variants, by name (default: all)")
    args = parser.parse_args()
    tokenizer = encoder_lib.load_tokenizer(args.encoder)
    names = demo_data.NAMES
    print(f"{len(names)} names, {CANDIDATES} candidates per list, {args.steps} steps, batch {BATCH}; "
          f"chance top-1 {1 / len(names):.3f}")
    print("| variant | seed | top-1 | training loss (last 50 steps; ln 4 = 1.386) | seconds |\n|---|---|---|---|---|")
    chosen = variants(args.encoder)
    unknown = set(args.variants or ()) - set(chosen)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {sorted(chosen)}")
    for name, build in chosen.items():
        if args.variants and name not in args.variants:
            continue
        for seed in args.seeds:
            keras.utils.set_random_seed(seed)
            start = time.perf_counter()
            top1, loss = train_and_score(build(), tokenizer, names, args.steps, seed)
            print(f"| {name} | {seed} | {top1:.3f} | {loss:.3f} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
