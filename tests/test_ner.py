"""NER building blocks: CRF (against brute force), word-piece alignment, in-graph entity spans
(against the seqeval-verified tagging module), CoNLL ingestion and the TFMA entity metric."""
import itertools
import json
import os
import random

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from tfx_bert_app.models import crf, ner, ner_metrics
from tests.helpers import new_artifact, read_examples, run_executor
from tfx_bert import tagging, tokenization

TYPES = ["PER", "LOC"]


def test_crf_likelihood_and_viterbi_match_brute_force():
    rng = np.random.default_rng(0)
    b, n, t = 4, 4, 3
    logits = rng.normal(size=(b, n, t)).astype("float32")
    transitions = rng.normal(size=(t, t)).astype("float32")
    mask = np.array([[1, 1, 1, 1], [1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0]], bool)
    tags = rng.integers(0, t, size=(b, n))
    likelihood = crf.log_likelihood(logits, tags, mask, transitions).numpy()
    decoded = crf.viterbi_decode(logits, mask, transitions).numpy()
    for i in range(b):
        length = int(mask[i].sum())

        def score(seq):
            return (sum(logits[i, j, seq[j]] for j in range(length))
                    + sum(transitions[seq[j - 1], seq[j]] for j in range(1, length)))

        scores = {seq: score(seq) for seq in itertools.product(range(t), repeat=length)}
        log_z = np.log(sum(np.exp(v) for v in scores.values()))
        assert likelihood[i] == pytest.approx(score(tuple(tags[i][:length])) - log_z, abs=1e-4)
        assert tuple(decoded[i][:length]) == max(scores, key=scores.get)


@pytest.fixture
def tokenizer():
    vocab = tokenization.reserved_tokens() + "the cat sat on ##s mat paris new york , . anna".split()
    return tokenization.WordPieceTokenizer(vocab)


def test_first_piece_labelling_and_truncation(tokenizer):
    words = tf.ragged.constant([["Anna", "cats", "sat", "in", "Paris", "."], ["New", "York"]])
    tags = tf.ragged.constant([[1, 0, 0, 0, 3, 0], [3, 4]], dtype=tf.int64)
    packed = tokenizer.pack_words(tokenizer.tokenize_words(words), 8, tags)
    ids = packed["token_ids"].numpy()
    vocab = tokenizer.vocab
    assert [vocab[i] for i in ids[0]] == ["[CLS]", "anna", "cat", "##s", "sat", "[UNK]", "paris", "[SEP]"]
    # "cats" -> cat ##s: labelled at "cat" only; "." no longer fits (budget 6 pieces).
    assert packed["word_positions"].numpy()[0].tolist() == [1, 2, 4, 5, 6, -1, -1, -1]
    assert packed["word_tags"].numpy()[0].tolist() == [1, 0, 0, 0, 3, -1, -1, -1]
    assert packed["word_tags"].numpy()[1].tolist() == [3, 4, -1, -1, -1, -1, -1, -1]


def test_in_graph_entity_spans_match_the_tagging_module():
    rng = random.Random(3)
    names = tagging.tag_names(TYPES)
    rows = [[rng.randrange(len(names)) for _ in range(rng.randint(1, 9))] for _ in range(300)]
    width = max(len(r) for r in rows)
    dense = tf.constant([r + [-1] * (width - len(r)) for r in rows], tf.int64)
    texts = [" ".join(f"w{j}" for j in range(len(r))) for r in rows]
    starts = tf.ragged.constant([[3 * j for j in range(len(r))] for r in rows], dtype=tf.int64)
    ends = tf.ragged.constant([[3 * j + 2 for j in range(len(r))] for r in rows], dtype=tf.int64)
    out = ner.entity_spans(dense, starts, ends, tf.constant(texts), TYPES)
    for i, row in enumerate(rows):
        expected = tagging.entities([names[t] for t in row])
        got_types = [t.decode() for t in out["entity_types"][i].numpy() if t]
        got = list(zip(got_types, out["entity_starts"][i].numpy()[:len(got_types)] // 3,
                       (out["entity_ends"][i].numpy()[:len(got_types)] - 2) // 3))
        assert got == expected, (row, got, expected)
        for text, (_, first, last) in zip(out["entity_texts"][i].numpy(), expected):
            assert text.decode() == texts[i][3 * first:3 * last + 2]


def _conll_props(base, strict=0, scheme="iob1"):
    from tfx_bert_app.components.task_example_gen import executor as ex

    return {ex.INPUT_BASE: str(base), ex.TRAIN_PATTERN: "train.txt", ex.EVAL_PATTERN: "dev.txt",
            ex.INPUT_FORMAT: "conll", ex.TEXT_FIELD: "", ex.TEXT_B_FIELD: "", ex.LABEL_FIELD: "",
            ex.LABEL_NAMES: json.dumps(TYPES), ex.NUM_CLASSES: 2, ex.STRICT: strict, ex.TAG_SCHEME: scheme}


def test_conll_ingestion_converts_iob1_and_counts_bad_sentences(tmp_path):
    from tfx_bert_app.components.task_example_gen import executor as ex

    (tmp_path / "train.txt").write_text(
        "-DOCSTART- -X- -X- O\n\n"
        "Anna NNP B-NP I-PER\nflew VBD B-VP O\nto TO B-PP O\nNew NNP B-NP I-LOC\nYork NNP I-NP I-LOC\n\n"
        "Bad\nline O\n\n"  # a line without a tag column: the sentence is skipped
        "Acme NNP B-NP I-ORG\n\n"  # ORG is not an entity type here
        "Paris NNP B-NP I-LOC\nParis NNP B-NP B-LOC\n")  # IOB1: B- separates adjacent entities
    (tmp_path / "dev.txt").write_text("Anna NNP B-NP I-PER\n")
    examples = new_artifact(standard_artifacts.Examples, tmp_path / "out")
    run_executor(ex.Executor, {}, {"examples": [examples]}, _conll_props(tmp_path), str(tmp_path / "tmp"))
    rows = [(list(e.features.feature["tokens"].bytes_list.value), list(e.features.feature["tags"].int64_list.value),
             e.features.feature["text"].bytes_list.value[0].decode())
            for e in read_examples(os.path.join(examples.uri, "Split-train", "*"))]
    names = tagging.tag_names(TYPES)
    by_text = {text: [names[t] for t in tags] for _, tags, text in rows}
    assert by_text == {"Anna flew to New York": ["B-PER", "O", "O", "B-LOC", "I-LOC"],
                       "Paris Paris": ["B-LOC", "B-LOC"]}
    counts = json.load(open(os.path.join(examples.uri, "ingestion_report.json")))["counts"]
    assert counts["skipped_malformed_line"] == 1 and counts["skipped_unknown_label"] == 1


def test_conll_strict_mode_names_the_line(tmp_path):
    from tfx_bert_app.components.task_example_gen import executor as ex
    from tfx_bert_app.components.text_example_gen.executor import BadInputError

    (tmp_path / "train.txt").write_text("Anna B-PER\nwent O\n\nX S-PER\n")
    (tmp_path / "dev.txt").write_text("Anna B-PER\n")
    examples = new_artifact(standard_artifacts.Examples, tmp_path / "out")
    with pytest.raises(BadInputError, match=r"train.txt:4: invalid tag: tag 'S-PER' is not valid IOB2"):
        run_executor(ex.Executor, {}, {"examples": [examples]}, _conll_props(tmp_path, strict=1, scheme="iob2"),
                     str(tmp_path / "tmp"))


def test_tfma_entity_metric_matches_the_tagging_module():
    from tensorflow_model_analysis.metrics import metric_types

    rng = random.Random(5)
    names = tagging.tag_names(TYPES)
    true = [[rng.randrange(len(names)) for _ in range(rng.randint(1, 8))] for _ in range(200)]
    predicted = [[t if rng.random() < 0.7 else rng.randrange(len(names)) for t in row] + [-1] * 3 for row in true]
    (computation,) = ner_metrics.EntityF1(entity_types=TYPES).computations()
    combiner = computation.combiner
    accumulator = combiner.create_accumulator()
    for label, prediction in zip(true, predicted):
        element = metric_types.StandardMetricInputs(label=np.array(label), prediction=np.array(prediction))
        accumulator = combiner.add_input(accumulator, element)
    result = {k.name: v for k, v in combiner.extract_output(combiner.merge_accumulators([accumulator])).items()}
    expected = tagging.entity_scores([[names[t] for t in r] for r in true],
                                     [[names[t] for t in r if t >= 0] for r in predicted])
    assert result["entity_f1"] == pytest.approx(expected["f1"])
    assert result["entity_precision"] == pytest.approx(expected["precision"])
    assert result["entity_recall"] == pytest.approx(expected["recall"])
    for entity_type in TYPES:
        assert result[f"entity_f1/{entity_type}"] == pytest.approx(expected["per_type"][entity_type]["f1"])
