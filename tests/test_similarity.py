"""Sentence similarity building blocks: the correlation metric (against scipy), pooling, the
bi-encoder export (raw text in, TF Serving's op set, embeddings consistent with similarity),
STS-B ingestion with float scores and the generated data."""
import csv
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats
from tfx.types import standard_artifacts

from tfx_bert_app.models import keras_layers
from tfx_bert_app.models import similarity, similarity_metrics
from tests.helpers import new_artifact, read_examples, run_executor
from tfx_bert import demo_data, tokenization

WORDS = "the warm fresh soup bread chef bakes boils oven rocket moon orbits . a".split()


@pytest.fixture(scope="module")
def tokenizer():
    return tokenization.WordPieceTokenizer(tokenization.reserved_tokens() + WORDS)


def test_correlations_match_scipy_with_ties():
    from tensorflow_model_analysis.metrics import metric_types

    rng = np.random.default_rng(3)
    labels = np.round(rng.uniform(0, 5, 300) * 4) / 4  # many ties, like STS-B's scores
    predictions = labels / 5 + rng.normal(0, 0.3, 300)
    predictions[:20] = 0.5  # ties in the predictions too
    (computation,) = similarity_metrics.Correlation().computations()
    combiner = computation.combiner
    accumulators = []
    for chunk in np.array_split(np.arange(300), 3):  # merged accumulators as Beam combines them
        accumulator = combiner.create_accumulator()
        for i in chunk:
            accumulator = combiner.add_input(accumulator, metric_types.StandardMetricInputs(
                label=np.array([labels[i]]), prediction=np.array([predictions[i]])))
        accumulators.append(accumulator)
    result = {k.name: v for k, v in combiner.extract_output(combiner.merge_accumulators(accumulators)).items()}
    # Beam may merge in any order; correlations do not depend on it.
    assert result["spearman"] == pytest.approx(stats.spearmanr(labels, predictions).statistic, abs=1e-9)
    assert result["pearson"] == pytest.approx(stats.pearsonr(labels, predictions).statistic, abs=1e-9)


@pytest.mark.parametrize("objective", ["cosine", "classification"])
def test_export_serves_similarity_and_embeddings_with_tf_serving_ops(tmp_path, tokenizer, objective):
    import keras_hub

    from tfx_bert.serving import op_check

    backbone = keras_hub.models.BertBackbone(vocabulary_size=tokenizer.vocabulary_size, num_layers=1, num_heads=2,
                                             hidden_dim=16, intermediate_dim=32, max_sequence_length=16)
    encoder = keras_layers.build_sentence_encoder(backbone, "mean")
    model = similarity.build_pair_model(encoder, objective, num_classes=3)
    export_dir = str(tmp_path / objective)
    similarity.export_bi_encoder(model, encoder, export_dir, tokenizer, 16, objective)
    assert op_check.unsupported_ops(export_dir) == []
    served = tf.saved_model.load(export_dir)
    a = ["the chef bakes the warm bread .", "the rocket orbits the moon ."]
    b = ["the chef bakes the fresh soup .", "the rocket orbits the moon ."]
    out = served.signatures["serving_default"](text=tf.constant(a), text_b=tf.constant(b))
    embeddings = served.signatures["embed"](text=tf.constant(a + b))["embedding"].numpy()
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out["similarity"].numpy(), (embeddings[:2] * embeddings[2:]).sum(1), rtol=1e-4, atol=1e-5)
    assert out["similarity"].numpy()[1] == pytest.approx(1.0, abs=1e-5)  # the same sentence twice
    if objective == "classification":
        assert out["probabilities"].shape == (2, 3)
        np.testing.assert_allclose(out["probabilities"].numpy().sum(1), 1.0, rtol=1e-5)
    examples = []
    for x, y in zip(a, b):
        example = tf.train.Example()
        example.features.feature["text"].bytes_list.value.append(x.encode())
        example.features.feature["text_b"].bytes_list.value.append(y.encode())
        examples.append(example.SerializeToString())
    from_examples = served.signatures["serving_tf_example"](examples=tf.constant(examples))
    np.testing.assert_allclose(from_examples["similarity"].numpy(), out["similarity"].numpy(), rtol=1e-5)


def test_sts_ingestion_reads_float_scores_and_counts_bad_ones(tmp_path):
    from tfx_bert_app.components.task_example_gen import executor as ex

    header = "\t".join(demo_data.STSB_HEADER)
    row = lambda a, b, s: "\t".join(["0", "g", "f", "y", "0", "s", "s", a, b, s])  # noqa: E731
    (tmp_path / "train.tsv").write_text("\n".join([header, row("a cat", "a dog", "3.80"), row("x", "y", "n/a"),
                                                   row("p", "q", "0")]) + "\n")
    (tmp_path / "dev.tsv").write_text("\n".join([header, row("a", "b", "5.0")]) + "\n")
    examples = new_artifact(standard_artifacts.Examples, tmp_path / "out")
    props = {ex.INPUT_BASE: str(tmp_path), ex.TRAIN_PATTERN: "train.tsv", ex.EVAL_PATTERN: "dev.tsv",
             ex.INPUT_FORMAT: "glue_tsv", ex.TEXT_FIELD: "sentence1", ex.TEXT_B_FIELD: "sentence2",
             ex.LABEL_FIELD: "score", ex.LABEL_NAMES: "", ex.NUM_CLASSES: 2, ex.STRICT: 0, ex.LABEL_DTYPE: "float"}
    run_executor(ex.Executor, {}, {"examples": [examples]}, props, str(tmp_path / "tmp"))
    scores = sorted(e.features.feature["label"].float_list.value[0]
                    for e in read_examples(os.path.join(examples.uri, "Split-train", "*")))
    assert scores == pytest.approx([0.0, 3.8])
    counts = json.load(open(os.path.join(examples.uri, "ingestion_report.json")))["counts"]
    assert counts["skipped_invalid_score"] == 1


def test_generated_sts_scores_are_not_word_overlap(tmp_path):
    """Swapped subject and object: the same words, a low score; so a bag of words cannot
    solve the data, and fine-tuning has something to learn."""
    demo_data.write_sts_dataset(str(tmp_path), num_train=300, num_eval=50)
    with open(tmp_path / "train.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    swapped = [r for r in rows if sorted(r["sentence1"].split()) == sorted(r["sentence2"].split())
               and r["sentence1"] != r["sentence2"] and r["sentence1"].split()[1] == r["sentence2"].split()[1]]
    assert len(swapped) > 30 and all(abs(float(r["score"]) - 1.5) <= 0.2 + 1e-9 for r in swapped)
    assert all(abs(float(r["score"]) - 5.0) <= 0.2 + 1e-9 for r in rows if r["sentence1"] == r["sentence2"])
    assert len({round(float(r["score"])) for r in rows}) >= 4
    labels = demo_data.write_nli_dataset(str(tmp_path / "nli"), num_train=30, num_eval=10)
    assert labels == {"train.tsv": 30, "dev.tsv": 10}
